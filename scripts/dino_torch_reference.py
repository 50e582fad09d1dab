"""The main job's recipe in PyTorch, for comparison with `cargo run --example dino_vit_s`.

Same data (the embedded Fashion-MNIST subset), model (ViT-S with a DINO head), objective,
optimizer and schedules as the Rust example, written independently from the DINO paper and
the semantics of the official code. It answers two questions on the same machine:

* does a recipe learn at all at this scale (k-NN before / after, as the Rust example prints), and
* how fast is PyTorch here (images/s), for BENCHMARKS.md.

The augmentations follow DINO's multi-crop (random resized crop, flip, brightness/contrast
jitter, blur, solarize), implemented with plain tensor ops because torchvision is not pinned.
They are not bit-identical to the Rust pipeline; the comparison is about learning, not bits.

    /opt/torchenv/bin/python scripts/dino_torch_reference.py --epochs 2 --train-images 512

Pinned: torch 2.9.1 (CPU), numpy (see scripts/requirements-fixtures.txt).
"""

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = Path(__file__).resolve().parent.parent / "data" / "fashion-mnist"


def read_idx(path):
    raw = gzip.open(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def balanced(images, labels, n, seed):
    """The first n/10 images of each class after a seeded shuffle (n = 0: all)."""
    if n == 0:
        return images, labels
    order = np.random.default_rng(seed).permutation(len(labels))
    per = n // 10
    keep = np.concatenate([order[labels[order] == c][:per] for c in range(10)])
    keep.sort()
    return images[keep], labels[keep]


# ---------------------------------------------------------------- model


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, img, patch, chans, d, depth, heads):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Conv2d(chans, d, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, d))
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos(self, n):
        if n == self.pos_embed.shape[1] - 1:
            return self.pos_embed
        side0 = int(math.sqrt(self.pos_embed.shape[1] - 1))
        side = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, side0, side0, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], 1)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos(x.shape[1])
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


class DinoHead(nn.Module):
    def __init__(self, d, out_dim, hidden, bottleneck, norm_last_layer, use_bn=False):
        super().__init__()
        bn = (lambda: nn.BatchNorm1d(hidden)) if use_bn else nn.Identity
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), bn(), nn.GELU(), nn.Linear(hidden, hidden), bn(), nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck, out_dim, bias=False)
        )
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class Net(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops):
        # Same-resolution crops go through the backbone together, as in DINO's MultiCropWrapper.
        feats, i = [], 0
        while i < len(crops):
            j = i
            while j < len(crops) and crops[j].shape[-1] == crops[i].shape[-1]:
                j += 1
            feats.append(self.backbone(torch.cat(crops[i:j])))
            i = j
        return self.head(torch.cat(feats))


# ---------------------------------------------------------------- objective


class DinoLoss:
    def __init__(self, out_dim, ncrops, teacher_temps, student_temp=0.1, center_m=0.9):
        self.center = torch.zeros(1, out_dim)
        self.ncrops, self.temps, self.st, self.cm = ncrops, teacher_temps, student_temp, center_m

    def __call__(self, student_out, teacher_out, epoch):
        s = (student_out / self.st).chunk(self.ncrops)
        t = F.softmax((teacher_out - self.center) / self.temps[epoch], dim=-1).detach().chunk(2)
        total, n = 0.0, 0
        for iq, q in enumerate(t):
            for v in range(self.ncrops):
                if v == iq:
                    continue
                total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
                n += 1
        with torch.no_grad():
            self.center = self.center * self.cm + teacher_out.mean(0, keepdim=True) * (1 - self.cm)
        return total / n, torch.cat(t)


def cosine(base, final, epochs, niter_per_ep, warmup_epochs=0, start_warmup=0.0):
    warm = np.linspace(start_warmup, base, warmup_epochs * niter_per_ep)
    iters = np.arange(epochs * niter_per_ep - len(warm))
    rest = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    return np.concatenate([warm, rest])


# ---------------------------------------------------------------- augmentations


def random_resized_crop(img, size, scale, g):
    """img [C, H, W] -> [C, size, size], torchvision's RandomResizedCrop sampling."""
    _, h, w = img.shape
    area = h * w
    for _ in range(10):
        a = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(1, generator=g).item())
        logr = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * torch.rand(1, generator=g).item()
        r = math.exp(logr)
        cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
        if 0 < cw <= w and 0 < ch <= h:
            y = int(torch.randint(0, h - ch + 1, (1,), generator=g))
            x = int(torch.randint(0, w - cw + 1, (1,), generator=g))
            break
    else:
        ch, cw, y, x = h, w, 0, 0
    crop = img[:, y : y + ch, x : x + cw][None]
    return F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]


def view(img, size, scale, blur_p, solarize_p, g, max_sigma):
    v = random_resized_crop(img, size, scale, g)
    if torch.rand(1, generator=g) < 0.5:
        v = v.flip(-1)
    if torch.rand(1, generator=g) < 0.8:  # brightness 0.4, contrast 0.4 (grey: no sat/hue)
        for op in torch.randperm(2, generator=g).tolist():
            f = 0.6 + 0.8 * torch.rand(1, generator=g).item()
            v = (v * f if op == 0 else (v - v.mean()) * f + v.mean()).clamp(0, 1)
    if torch.rand(1, generator=g) < blur_p:
        sigma = 0.1 * max_sigma / 2.0 + (max_sigma - 0.1 * max_sigma / 2.0) * torch.rand(1, generator=g).item()
        k = int(2 * math.ceil(3 * sigma) + 1)
        xs = torch.arange(k) - k // 2
        w1 = torch.exp(-(xs**2) / (2 * sigma**2))
        w1 = w1 / w1.sum()
        pad = F.pad(v[None], (k // 2,) * 4, mode="reflect") if k // 2 < v.shape[-1] else v[None]
        v = F.conv2d(F.conv2d(pad, w1.view(1, 1, 1, k)), w1.view(1, 1, k, 1))[0]
    if torch.rand(1, generator=g) < solarize_p:
        v = torch.where(v >= 0.5, 1 - v, v)
    return v


def multicrop(batch, args, g, mean, std):
    gsz, lsz = args.img_size, args.img_size // 2
    smax = 2.0 * gsz / 224
    gs, ls = tuple(args.global_crops_scale), tuple(args.local_crops_scale)
    g1 = [view(x, gsz, gs, 1.0, 0.0, g, smax) for x in batch]
    g2 = [view(x, gsz, gs, 0.1, 0.2, g, smax) for x in batch]
    crops = [torch.stack(g1), torch.stack(g2)]
    for _ in range(args.local_crops):
        crops.append(torch.stack([view(x, lsz, ls, 0.5, 0.0, g, smax) for x in batch]))
    return [(c - mean) / std for c in crops]


# ---------------------------------------------------------------- k-NN


@torch.no_grad()
def features(backbone, images, mean, std):
    out = [backbone((images[i : i + 256] - mean) / std) for i in range(0, len(images), 256)]
    return F.normalize(torch.cat(out), dim=1)


def knn(train_f, train_y, test_f, test_y, k=20, t=0.07):
    sim = test_f @ train_f.T
    top, idx = sim.topk(k, dim=1)
    votes = torch.zeros(len(test_f), 10).scatter_add_(1, train_y[idx], (top / t).exp())
    return (votes.argmax(1) == test_y).float().mean().item() * 100


# ---------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.0005, help="base lr for batch 256")
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--img-size", type=int, default=28)
    p.add_argument("--patch-size", type=int, default=7)
    p.add_argument("--local-crops", type=int, default=4)
    p.add_argument("--global-crops-scale", type=float, nargs=2, default=(0.4, 1.0))
    p.add_argument("--local-crops-scale", type=float, nargs=2, default=(0.05, 0.4))
    p.add_argument("--use-bn-in-head", type=int, default=0)
    p.add_argument("--out-dim", type=int, default=4096)
    p.add_argument("--teacher-temp", type=float, default=0.04)
    p.add_argument("--warmup-teacher-temp", type=float, default=0.04)
    p.add_argument("--warmup-teacher-temp-epochs", type=int, default=0)
    p.add_argument("--momentum-teacher", type=float, default=0.996)
    p.add_argument("--freeze-last-layer", type=int, default=1)
    p.add_argument("--norm-last-layer", type=int, default=1)
    p.add_argument("--weight-decay", type=float, default=0.04)
    p.add_argument("--weight-decay-end", type=float, default=0.4)
    p.add_argument("--clip-grad", type=float, default=3.0)
    p.add_argument("--train-images", type=int, default=512)
    p.add_argument("--eval-train", type=int, default=1000)
    p.add_argument("--eval-test", type=int, default=500)
    p.add_argument("--knn-every", type=int, default=0)
    p.add_argument("--embed-dim", type=int, default=384)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)

    xtr = read_idx(DATA / "train-images-idx3-ubyte.gz")
    ytr = read_idx(DATA / "train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(DATA / "t10k-images-idx3-ubyte.gz")
    yte = read_idx(DATA / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    to_t = lambda x: torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    train_x, _ = balanced(xtr, ytr, args.train_images, args.seed)
    bank_x, bank_y = balanced(xtr, ytr, args.eval_train, args.seed + 1)
    test_x, test_y = balanced(xte, yte, args.eval_test, args.seed + 2)
    train_x, bank_x, test_x = to_t(train_x), to_t(bank_x), to_t(test_x)
    bank_y, test_y = torch.from_numpy(bank_y), torch.from_numpy(test_y)
    mean, std = train_x.mean(), train_x.std()

    raw = lambda x: F.normalize(((x - mean) / std).flatten(1), dim=1)
    print(f"raw-pixel k-NN: {knn(raw(bank_x), bank_y, raw(test_x), test_y):.1f}%")

    def make():
        vit = ViT(args.img_size, args.patch_size, 1, args.embed_dim, args.depth, args.heads)
        head = DinoHead(args.embed_dim, args.out_dim, 2048, 256, bool(args.norm_last_layer),
                        bool(args.use_bn_in_head))
        return Net(vit, head)

    student = make()
    teacher = make()
    teacher.load_state_dict(student.state_dict())
    for q in teacher.parameters():
        q.requires_grad = False

    def evaluate(tag):
        teacher.eval()
        acc = knn(features(teacher.backbone, bank_x, mean, std), bank_y,
                  features(teacher.backbone, test_x, mean, std), test_y)
        print(f"k-NN {tag}: {acc:.1f}%", flush=True)
        return acc

    evaluate("before training")
    steps = len(train_x) // args.batch_size
    lr_s = cosine(args.lr * args.batch_size / 256, args.min_lr, args.epochs, steps,
                  min(args.warmup_epochs, args.epochs))
    wd_s = cosine(args.weight_decay, args.weight_decay_end, args.epochs, steps)
    mom_s = cosine(args.momentum_teacher, 1.0, args.epochs, steps)
    temps = np.concatenate([
        np.linspace(args.warmup_teacher_temp, args.teacher_temp, args.warmup_teacher_temp_epochs),
        np.ones(max(args.epochs - args.warmup_teacher_temp_epochs, 0)) * args.teacher_temp,
    ])
    loss_fn = DinoLoss(args.out_dim, 2 + args.local_crops, temps)
    decay = [q for n, q in student.named_parameters() if q.requires_grad and q.ndim > 1]
    no_decay = [q for n, q in student.named_parameters() if q.requires_grad and q.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
    last = [q for n, q in student.named_parameters() if "last_layer" in n]

    it, t0, seen = 0, time.time(), 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(train_x), generator=g)
        loss_sum, ents, bents = 0.0, [], []
        for s in range(steps):
            batch = train_x[order[s * args.batch_size : (s + 1) * args.batch_size]]
            crops = multicrop(batch, args, g, mean, std)
            for i, group in enumerate(opt.param_groups):
                group["lr"] = lr_s[it]
                if i == 0:
                    group["weight_decay"] = wd_s[it]
            student.train()
            teacher.train()  # as in DINO: a BatchNorm head uses batch statistics in both
            t_out = teacher(crops[:2])
            s_out = student(crops)
            loss, probs = loss_fn(s_out, t_out, epoch)
            opt.zero_grad()
            loss.backward()
            if args.clip_grad > 0:  # DINO clips each parameter's gradient norm separately
                for q in student.parameters():
                    if q.grad is not None:
                        n = q.grad.norm()
                        if n > args.clip_grad:
                            q.grad.mul_(args.clip_grad / (n + 1e-6))
            if epoch < args.freeze_last_layer:
                for q in last:
                    q.grad = None
            opt.step()
            with torch.no_grad():
                m = mom_s[it]
                for qs, qt in zip(student.parameters(), teacher.parameters()):
                    qt.mul_(m).add_((1 - m) * qs.detach())
            ents.append(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean().item())
            pm = probs.mean(0)
            bents.append(-(pm * pm.clamp_min(1e-30).log()).sum().item())
            loss_sum += loss.item()
            it += 1
            seen += len(batch)
        ips = seen / (time.time() - t0)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / steps:.4f}, lr {lr_s[it - 1]:.2e}, "
              f"teacher entropy {np.mean(ents):.2f} (batch {np.mean(bents):.2f}) of ln K "
              f"{math.log(args.out_dim):.2f}, {ips:.1f} img/s", flush=True)
        if args.knn_every and (epoch + 1) % args.knn_every == 0 and epoch + 1 < args.epochs:
            evaluate(f"after epoch {epoch + 1}")
    evaluate("after training")
    print(f"wall {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
