"""PyTorch reference of the default DINO recipe of `cargo run --example dino_vit_s`.

What it is: the main job's default recipe (DINO, ViT-Tiny-ish on Fashion-MNIST) written
independently in PyTorch from the DINO paper and the semantics of the official code, so the README
can compare Tessera and PyTorch on identical settings: same data, model, crops, loss, optimiser,
per-step schedules and k-NN protocol. It reports k-NN accuracy before and after training and the
training throughput (img/s; images = batch items, not crops) on this machine.

Command for the README table (all defaults = the recipe; about 10 minutes on 2 CPU threads):

    /work/venv-parity/bin/python scripts/dino_torch_reference.py --seed 0

Tiny smoke run (a minute at one thread):

    /work/venv-parity/bin/python scripts/dino_torch_reference.py --epochs 1 --train-images 512 \\
        --eval-train 500 --eval-test 200 --threads 1

Pinned: Python 3, torch 2.9.1 (CPU build), numpy 2.1.3 (the /work/venv-parity environment).
torchvision is not used: the augmentations are plain tensor ops (see `multicrop`).

Recipe (the defaults)
---------------------
Data     all 10,000 embedded train images for training; k-NN bank = all 10,000 train images,
         test = all 2,000 test images; pixels in [0, 1] standardised with the mean/std of the
         whole train split (one grey channel). `--train-images/--eval-train/--eval-test N`
         take class-balanced seeded subsets instead (0 = all).
Model    ViT: patch 7 on 28 px (16 patches + CLS), embed 192, depth 6, heads 3, MLP ratio 4,
         qkv bias, pre-norm, LayerNorm eps 1e-6, exact GELU, learned pos-embed (bicubically
         interpolated to the 2x2 grid of 14-px local crops with --local-crops N), final norm. Init: Linear weights
         trunc-normal 0.02 / bias 0, LayerNorm 1 / 0, pos-embed and CLS trunc-normal 0.02, the
         patch-embedding conv keeps PyTorch's default init (DINO's init only touches Linear and
         LayerNorm). Head: MLP 192-2048-2048-256 (GELU), L2-normalise, weight-normalised
         256 -> 2048 last layer with g fixed at 1.
Crops    2 global 28 px (random resized crop scale 0.4-1, ratio 3/4-4/3, bilinear); no local
         crops by default (`--local-crops N`: N local 14 px, scale 0.1-0.4); flip p 0.5; brightness 0.4 / contrast 0.4 jitter with p 0.8 in random
         order (torchvision ColorJitter semantics, clamped to [0, 1]); no blur, no solarisation.
         Teacher: the 2 global crops; student: all crops.
Loss     DINO loss, student temperature 0.1, teacher temperature 0.04 constant, centre momentum 0.9.
Optim    AdamW (0.9, 0.999, eps 1e-8), batch 128 (drop-last: 78 steps per epoch), peak lr
         0.0005 * 128 / 256 = 2.5e-4; all schedules per step over schedule-epochs * 78 steps (default 20 epochs), of which the run trains the first epochs * 78:
         lr linear warm-up 0 -> peak over the first floor(10% of total) steps (DINO's
         np.linspace, both ends included), then cosine to 1e-6; weight decay cosine 0.04 -> 0.4
         (none on biases and 1-D params); teacher EMA momentum cosine 0.99 -> 1; gradient norm
         clipped to 3.0 per parameter; last head layer's gradients dropped during the first
         floor(5% of total) steps.
Length   `--epochs N` (default 8, of `--schedule-epochs` 20). `--minutes M` instead times a few steps on a throw-away copy
         of the models (the training RNG streams are untouched) and picks the largest whole
         number of epochs whose training steps fit in M minutes (training only, k-NN excluded);
         if not even one epoch fits, it trains that many steps of a single, truncated epoch (the
         schedules then span those steps). With both flags, the smaller length wins.
Eval     weighted k-NN (k 20, T 0.07, cosine similarity, weights exp(sim / T)) on student CLS,
         student mean patch token (after the final norm), teacher CLS, teacher mean patch token,
         before training (random init; teacher = student then) and after training; plus the
         raw-pixel floor (standardised pixels, flattened, L2-normalised). The last line is
         `RESULT seed=.. steps=.. train_s=.. img_per_s=.. raw=.. student_cls_before=.. ...`
         (accuracies in percent).
"""

import argparse
import copy
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
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d, bias=True)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp_ratio * d)
        self.fc2 = nn.Linear(mlp_ratio * d, d)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d_head)) v
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))  # exact (erf) GELU


class ViT(nn.Module):
    def __init__(self, img, patch, chans, d, depth, heads, mlp_ratio):
        super().__init__()
        self.patch_embed = nn.Conv2d(chans, d, patch, patch)  # PyTorch default init (as DINO)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, d))
        self.blocks = nn.ModuleList(Block(d, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def pos(self, n):
        """Position embedding for n patches: bicubic resize of the patch grid exactly as DINO's
        interpolate_pos_encoding: scale_factor (side + 0.1) / side0 (4x4 -> 2x2: 2.1 / 4, so the
        source step is 4 / 2.1, not 2), align_corners False; the CLS entry is kept."""
        if n == self.pos_embed.shape[1] - 1:
            return self.pos_embed
        side0 = int(math.sqrt(self.pos_embed.shape[1] - 1))
        side = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].reshape(1, side0, side0, -1).permute(0, 3, 1, 2)
        f = (side + 0.1) / side0
        grid = F.interpolate(grid, scale_factor=(f, f), mode="bicubic", align_corners=False)
        assert grid.shape[-1] == side and grid.shape[-2] == side
        return torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], 1)

    def tokens(self, x):
        """All tokens after the final norm: [B, 1 + patches, d]."""
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos(x.shape[1])
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, x):
        return self.tokens(x)[:, 0]


class DinoHead(nn.Module):
    def __init__(self, d, out_dim, hidden=2048, bottleneck=256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # As DINO: the last layer keeps nn.Linear's default init for v (its scale is irrelevant
        # under weight norm) and g = 1 is frozen (norm_last_layer true).
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck, out_dim, bias=False)
        )
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad = False

    def forward(self, x):
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class Net(nn.Module):
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops):
        # Same-resolution crops go through the backbone together, as DINO's MultiCropWrapper.
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
    def __init__(self, out_dim, ncrops, teacher_temp, student_temp, center_m):
        self.center = torch.zeros(1, out_dim)
        self.ncrops, self.tt, self.st, self.cm = ncrops, teacher_temp, student_temp, center_m

    def __call__(self, student_out, teacher_out):
        s = (student_out / self.st).chunk(self.ncrops)
        t = F.softmax((teacher_out - self.center) / self.tt, dim=-1).detach().chunk(2)
        total, n = 0.0, 0
        for iq, q in enumerate(t):
            for v in range(self.ncrops):
                if v == iq:  # the student is not asked to predict the teacher on the same view
                    continue
                total = total + torch.sum(-q * F.log_softmax(s[v], dim=-1), dim=-1).mean()
                n += 1
        with torch.no_grad():
            self.center = self.center * self.cm + teacher_out.mean(0, keepdim=True) * (1 - self.cm)
        return total / n, torch.cat(t)


def cosine_schedule(base, final, total, warmup=0, start_warmup=0.0):
    """Per-step values: np.linspace(start_warmup, base, warmup) (both ends included, as DINO),
    then base -> final along half a cosine over the remaining steps (final itself not reached)."""
    warm = np.linspace(start_warmup, base, warmup)
    it = np.arange(total - warmup)
    rest = final + 0.5 * (base - final) * (1 + np.cos(np.pi * it / max(len(it), 1)))
    return np.concatenate([warm, rest])


# ---------------------------------------------------------------- augmentations


def rrc_boxes(n, size_hw, scale, ratio, rng):
    """torchvision RandomResizedCrop.get_params for n crops at once: up to 10 tries per crop,
    integer boxes (y, x, h, w); fallback (no try fits) = the whole (square) image."""
    h, w = size_hw
    area = h * w
    ta = area * rng.uniform(scale[0], scale[1], (n, 10))
    ar = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), (n, 10)))
    cw = np.rint(np.sqrt(ta * ar)).astype(np.int64)  # rint = Python round (half to even)
    ch = np.rint(np.sqrt(ta / ar)).astype(np.int64)
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = ok.argmax(1)
    good = ok.any(1)
    rows = np.arange(n)
    cw = np.where(good, cw[rows, first], w)
    ch = np.where(good, ch[rows, first], h)
    y = np.floor(rng.random(n) * (h - ch + 1)).astype(np.int64)
    x = np.floor(rng.random(n) * (w - cw + 1)).astype(np.int64)
    return y, x, ch, cw


def crop_views(imgs, size, scale, ratio, rng):
    """Random resized crop (bilinear) + horizontal flip (p 0.5) + brightness/contrast jitter
    (p 0.8), batched. imgs [B, 1, H, W] in [0, 1] -> [B, 1, size, size] in [0, 1]."""
    b, _, h, w = imgs.shape
    y, x, ch, cw = rrc_boxes(b, (h, w), scale, ratio, rng)
    flip = rng.random(b) < 0.5
    # Output pixel i samples the crop at (i + 0.5) * cw / size - 0.5, clamped to the crop's
    # pixels: exactly F.interpolate(crop, size, "bilinear", align_corners=False) (no antialias),
    # expressed in grid_sample's normalised image coordinates.
    t = (np.arange(size) + 0.5) / size  # [size]
    sx = np.clip(t[None] * cw[:, None] - 0.5, 0, cw[:, None] - 1) + x[:, None]  # [B, size]
    sy = np.clip(t[None] * ch[:, None] - 0.5, 0, ch[:, None] - 1) + y[:, None]
    gx = (2.0 * sx + 1.0) / w - 1.0
    gy = (2.0 * sy + 1.0) / h - 1.0
    gx = np.where(flip[:, None], gx[:, ::-1], gx)
    grid = np.stack(np.broadcast_arrays(gx[:, None, :], gy[:, :, None]), -1)  # [B, S, S, 2]
    grid = torch.from_numpy(grid.astype(np.float32))
    v = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # ColorJitter(brightness 0.4, contrast 0.4) applied with p 0.8, the two ops in random order;
    # a grey image has no saturation/hue. Factors uniform in [0.6, 1.4]; results clamped to [0, 1].
    apply = torch.from_numpy(rng.random(b) < 0.8).view(b, 1, 1, 1)
    fb = torch.from_numpy(rng.uniform(0.6, 1.4, b).astype(np.float32)).view(b, 1, 1, 1)
    fc = torch.from_numpy(rng.uniform(0.6, 1.4, b).astype(np.float32)).view(b, 1, 1, 1)
    b_first = torch.from_numpy(rng.random(b) < 0.5).view(b, 1, 1, 1)

    def bright(z):
        return (z * fb).clamp(0, 1)

    def contrast(z):
        m = z.mean(dim=(1, 2, 3), keepdim=True)
        return (fc * z + (1 - fc) * m).clamp(0, 1)

    jit = torch.where(b_first, contrast(bright(v)), bright(contrast(v)))
    return torch.where(apply, jit, v)


def multicrop(batch, args, rng, mean, std):
    gsz, lsz = args.img_size, args.img_size // 2
    ratio = (3 / 4, 4 / 3)
    crops = [crop_views(batch, gsz, args.global_crops_scale, ratio, rng) for _ in range(2)]
    crops += [crop_views(batch, lsz, args.local_crops_scale, ratio, rng)
              for _ in range(args.local_crops)]
    return [(c - mean) / std for c in crops]


# ---------------------------------------------------------------- k-NN


@torch.no_grad()
def features(backbone, images, mean, std):
    """L2-normalised (CLS, mean patch token) features, both after the final norm."""
    backbone.eval()
    cls, patch = [], []
    for i in range(0, len(images), 500):
        tok = backbone.tokens((images[i : i + 500] - mean) / std)
        cls.append(tok[:, 0])
        patch.append(tok[:, 1:].mean(1))
    return F.normalize(torch.cat(cls), dim=1), F.normalize(torch.cat(patch), dim=1)


@torch.no_grad()
def knn(train_f, train_y, test_f, test_y, k=20, t=0.07, classes=10):
    """DINO's weighted k-NN vote: top-k cosine neighbours, each votes exp(sim / T)."""
    correct = 0
    for i in range(0, len(test_f), 500):
        sim = test_f[i : i + 500] @ train_f.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(top), classes).scatter_add_(1, train_y[idx], (top / t).exp())
        correct += (votes.argmax(1) == test_y[i : i + 500]).sum().item()
    return 100.0 * correct / len(test_f)


# ---------------------------------------------------------------- training


def param_groups(model):
    """DINO's groups: weight decay on everything but biases and 1-D parameters (norms).
    Frozen parameters (the head's weight-norm g) are left out of the optimiser."""
    decay, no_decay = [], []
    for name, q in model.named_parameters():
        if not q.requires_grad:
            continue
        (no_decay if name.endswith(".bias") or q.ndim == 1 else decay).append(q)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_step(student, teacher, opt, loss_fn, crops, lr, wd, mom, freeze, clip):
    for i, group in enumerate(opt.param_groups):
        group["lr"] = lr
        if i == 0:
            group["weight_decay"] = wd
    student.train()
    teacher.train()  # no BatchNorm / dropout in this model: train and eval modes agree
    with torch.no_grad():
        t_out = teacher(crops[:2])
    s_out = student(crops)
    loss, probs = loss_fn(s_out, t_out)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:  # DINO clips each parameter's gradient norm separately
        grads = [q.grad for q in student.parameters() if q.grad is not None]
        norms = torch._foreach_norm(grads)
        for gq, n in zip(grads, norms):
            c = clip / (n.item() + 1e-6)
            if c < 1:
                gq.mul_(c)
    if freeze:  # drop the last layer's gradients: AdamW then skips it (no decay either)
        for name, q in student.named_parameters():
            if "last_layer" in name:
                q.grad = None
    opt.step()
    with torch.no_grad():  # teacher <- m * teacher + (1 - m) * student
        sp, tp = list(student.parameters()), list(teacher.parameters())
        torch._foreach_mul_(tp, mom)
        torch._foreach_add_(tp, sp, alpha=1 - mom)
    return loss.item(), probs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 8 unless --minutes)")
    p.add_argument("--schedule-epochs", type=int, default=20,
                   help="epochs the schedules span; the run stops after --epochs of them "
                        "(as dino_vit_s: a short run is the start of a longer schedule)")
    p.add_argument("--minutes", type=float, default=None,
                   help="fit the training length (whole epochs) into M minutes of training")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.0005, help="base lr for batch 256")
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--warmup-frac", type=float, default=0.10, help="lr warm-up, fraction of steps")
    p.add_argument("--freeze-frac", type=float, default=0.05,
                   help="head last layer frozen for this fraction of the steps")
    p.add_argument("--img-size", type=int, default=28)
    p.add_argument("--patch-size", type=int, default=7)
    p.add_argument("--local-crops", type=int, default=0)
    p.add_argument("--global-crops-scale", type=float, nargs=2, default=(0.4, 1.0))
    p.add_argument("--local-crops-scale", type=float, nargs=2, default=(0.1, 0.4))
    p.add_argument("--out-dim", type=int, default=2048)
    p.add_argument("--student-temp", type=float, default=0.1)
    p.add_argument("--teacher-temp", type=float, default=0.04)
    p.add_argument("--center-momentum", type=float, default=0.9)
    p.add_argument("--momentum-teacher", type=float, default=0.99)
    p.add_argument("--weight-decay", type=float, default=0.04)
    p.add_argument("--weight-decay-end", type=float, default=0.4)
    p.add_argument("--clip-grad", type=float, default=3.0)
    p.add_argument("--embed-dim", type=int, default=192)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=3)
    p.add_argument("--mlp-ratio", type=int, default=4)
    p.add_argument("--train-images", type=int, default=0, help="balanced train subset (0: all)")
    p.add_argument("--eval-train", type=int, default=0, help="balanced k-NN bank subset (0: all)")
    p.add_argument("--eval-test", type=int, default=0, help="balanced k-NN test subset (0: all)")
    p.add_argument("--log-every", type=int, default=10, help="print the loss every N steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)  # shuffling and augmentations

    xtr = read_idx(DATA / "train-images-idx3-ubyte.gz")
    ytr = read_idx(DATA / "train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(DATA / "t10k-images-idx3-ubyte.gz")
    yte = read_idx(DATA / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    to_t = lambda x: torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    full_train = to_t(xtr)
    mean, std = full_train.mean().item(), full_train.std().item()  # train split, 1 channel
    train_x = to_t(balanced(xtr, ytr, args.train_images, args.seed)[0])
    bank_x, bank_y = balanced(xtr, ytr, args.eval_train, args.seed + 1)
    test_x, test_y = balanced(xte, yte, args.eval_test, args.seed + 2)
    bank_x, test_x = to_t(bank_x), to_t(test_x)
    bank_y, test_y = torch.from_numpy(bank_y), torch.from_numpy(test_y)
    print(f"data: train {len(train_x)}, k-NN bank {len(bank_x)}, test {len(test_x)}; "
          f"standardise mean {mean:.4f} std {std:.4f}; threads {args.threads}, seed {args.seed}")

    def make():
        vit = ViT(args.img_size, args.patch_size, 1, args.embed_dim, args.depth, args.heads,
                  args.mlp_ratio)
        return Net(vit, DinoHead(args.embed_dim, args.out_dim))

    student = make()
    teacher = copy.deepcopy(student)
    for q in teacher.parameters():
        q.requires_grad = False
    nparam = sum(q.numel() for q in student.backbone.parameters())
    nhead = sum(q.numel() for q in student.head.parameters())
    print(f"model: ViT {nparam / 1e6:.2f} M parameters, head {nhead / 1e6:.2f} M")

    acc = {}
    raw = lambda x: F.normalize(((x - mean) / std).flatten(1), dim=1)
    acc["raw"] = knn(raw(bank_x), bank_y, raw(test_x), test_y)

    def evaluate(tag):
        t0 = time.time()
        for who, net in (("student", student), ("teacher", teacher)):
            bc, bp = features(net.backbone, bank_x, mean, std)
            tc, tp = features(net.backbone, test_x, mean, std)
            acc[f"{who}_cls_{tag}"] = knn(bc, bank_y, tc, test_y)
            acc[f"{who}_patch_{tag}"] = knn(bp, bank_y, tp, test_y)
        print(f"k-NN {tag}: student cls {acc[f'student_cls_{tag}']:.2f}% "
              f"patch {acc[f'student_patch_{tag}']:.2f}%, teacher cls "
              f"{acc[f'teacher_cls_{tag}']:.2f}% patch {acc[f'teacher_patch_{tag}']:.2f}% "
              f"({time.time() - t0:.1f} s)", flush=True)

    evaluate("before")

    per_epoch = len(train_x) // args.batch_size  # drop-last
    assert per_epoch > 0, "fewer training images than one batch"
    epochs = 8 if args.epochs is None and args.minutes is None else args.epochs
    total = None if epochs is None else epochs * per_epoch
    if args.minutes is not None:
        # Time a few steps on throw-away copies (own RNG), so that the real run is unchanged.
        s2, t2 = copy.deepcopy(student), copy.deepcopy(teacher)
        o2 = torch.optim.AdamW(param_groups(s2), betas=(0.9, 0.999), eps=1e-8)
        l2 = DinoLoss(args.out_dim, 2 + args.local_crops, args.teacher_temp, args.student_temp,
                      args.center_momentum)
        r2 = np.random.default_rng(args.seed + 12345)
        times = []
        for i in range(4):
            t0 = time.time()
            b = train_x[r2.permutation(len(train_x))[: args.batch_size]]
            train_step(s2, t2, o2, l2, multicrop(b, args, r2, mean, std), 1e-5, 0.04, 0.99,
                       False, args.clip_grad)
            times.append(time.time() - t0)
        step_s = float(np.median(times[1:]))  # the first step is warm-up
        fit = int(args.minutes * 60 / step_s)
        fit_total = (fit // per_epoch) * per_epoch if fit >= per_epoch else max(fit, 1)
        total = fit_total if total is None else min(total, fit_total)
        epochs = math.ceil(total / per_epoch)
        del s2, t2, o2
        print(f"--minutes {args.minutes}: {step_s:.2f} s/step timed -> {fit} steps fit, "
              f"training {total} steps ({total / per_epoch:.2f} epochs of {per_epoch})")

    peak = args.lr * args.batch_size / 256
    # The schedules span --schedule-epochs (at least the run); the run trains `total` steps.
    sched = max(args.schedule_epochs * per_epoch, total)
    warm = int(args.warmup_frac * sched)
    freeze = int(args.freeze_frac * sched)
    lr_s = cosine_schedule(peak, args.min_lr, sched, warm)
    wd_s = cosine_schedule(args.weight_decay, args.weight_decay_end, sched)
    mom_s = cosine_schedule(args.momentum_teacher, 1.0, sched)
    assert len(lr_s) == len(wd_s) == len(mom_s) == sched
    print(f"schedule: {sched} steps, training the first {total} ({total / per_epoch:.2f} epochs "
          f"of {per_epoch} steps, batch {args.batch_size}); "
          f"lr 0 -> {peak:.3g} over {warm} steps, first {lr_s[0]:.3g}, peak {lr_s.max():.4g}, "
          f"at the run's end {lr_s[total - 1]:.3g}; wd {wd_s[0]:.3g} -> {wd_s[total - 1]:.4g}; "
          f"momentum {mom_s[0]:.4g} -> {mom_s[total - 1]:.6f}; last layer frozen for {freeze} "
          f"steps", flush=True)

    loss_fn = DinoLoss(args.out_dim, 2 + args.local_crops, args.teacher_temp, args.student_temp,
                       args.center_momentum)
    opt = torch.optim.AdamW(param_groups(student), betas=(0.9, 0.999), eps=1e-8)

    it, train_s, seen, first_loss = 0, 0.0, 0, None
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(train_x)))
        losses, ents, bents = [], [], []
        for s in range(per_epoch):
            if it == total:
                break
            t0 = time.time()
            batch = train_x[order[s * args.batch_size : (s + 1) * args.batch_size]]
            crops = multicrop(batch, args, rng, mean, std)
            loss, probs = train_step(student, teacher, opt, loss_fn, crops, lr_s[it], wd_s[it],
                                     mom_s[it], it < freeze, args.clip_grad)
            train_s += time.time() - t0
            if not math.isfinite(loss):
                raise SystemExit(f"non-finite loss {loss} at step {it}")
            first_loss = loss if first_loss is None else first_loss
            losses.append(loss)
            ents.append(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean().item())
            pm = probs.mean(0)
            bents.append(-(pm * pm.clamp_min(1e-30).log()).sum().item())
            it += 1
            seen += len(batch)
            if args.log_every and (it % args.log_every == 0 or it == 1):
                print(f"  step {it}/{total}: loss {loss:.4f}, lr {lr_s[it - 1]:.3g}, "
                      f"wd {wd_s[it - 1]:.3g}, momentum {mom_s[it - 1]:.5f}, "
                      f"{seen / train_s:.1f} img/s", flush=True)
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f} (last {losses[-1]:.4f}), "
              f"teacher entropy {np.mean(ents):.2f} (batch mean {np.mean(bents):.2f}) of "
              f"ln K {math.log(args.out_dim):.2f}, {seen / train_s:.1f} img/s", flush=True)
    ips = seen / train_s
    print(f"training: {it} steps, {seen} images in {train_s:.1f} s = {ips:.1f} img/s "
          f"(loss {first_loss:.4f} -> {losses[-1]:.4f})")

    evaluate("after")
    rows = [("raw pixels (floor)", acc["raw"], None)]
    for who in ("student", "teacher"):
        for f in ("cls", "patch"):
            rows.append((f"{who} {'CLS' if f == 'cls' else 'patch mean'}",
                         acc[f"{who}_{f}_before"], acc[f"{who}_{f}_after"]))
    print(f"\nk-NN top-1 (k 20, T 0.07), bank {len(bank_x)}, test {len(test_x)}:")
    print(f"  {'feature':<22}{'before':>9}{'after':>9}")
    for name, b, a in rows:
        print(f"  {name:<22}{b:>8.2f}%" + ("" if a is None else f"{a:>8.2f}%"))
    keys = ["raw", "student_cls_before", "student_cls_after", "student_patch_before",
            "student_patch_after", "teacher_cls_after", "teacher_patch_after"]
    print(f"RESULT seed={args.seed} steps={it} train_s={train_s:.1f} img_per_s={ips:.2f} "
          + " ".join(f"{k}={acc[k]:.2f}" for k in keys))


if __name__ == "__main__":
    main()
