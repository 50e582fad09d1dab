"""PyTorch reference of `cargo run --example byol_resnet50` (its default `small` preset).

The BYOL positive control written independently in PyTorch from the BYOL paper and the
semantics of deepmind-research's code, so that the README can put Tessera and PyTorch side by
side on identical settings: same data, model, views, loss, optimiser, per-step schedules and
k-NN protocol. It prints k-NN accuracy before and after every epoch and the training
throughput (img/s; images = batch items, not views).

    /work/venv-parity/bin/python scripts/byol_torch_reference.py --seed 0            # the recipe
    /work/venv-parity/bin/python scripts/byol_torch_reference.py --epochs 1 \\
        --train-images 1280 --eval-train 1000 --eval-test 500                       # smoke run

Pinned: Python 3, torch 2.9.1 (CPU build), numpy 2.1.3 (the /work/venv-parity environment).
torchvision is not used; the data reader, the random-resized-crop views and the k-NN come from
scripts/dino_torch_reference.py.

Recipe (the defaults)
---------------------
Data     all 10,000 embedded train images; k-NN bank = all 10,000 train images, test = all
         2,000 test images; pixels in [0, 1] standardised with the train split's mean/std.
Model    ResNet-18 layout (BasicBlock, [2, 2, 2, 2]) at width 16 (stages 16-32-64-128), CIFAR
         stem (3x3 stride-1 conv, no max-pool), nn.Conv2d's default init (--init torchvision:
         torchvision's kaiming_normal fan_out; BatchNorm weight 1, bias 0), 128-d pooled features
         (0.7M parameters). Projector 128 -> 512 -> 128 and predictor 128 -> 512 -> 128, each
         Linear-BatchNorm1d-ReLU-Linear without bias in the last Linear (DeepMind's MLP).
Views    two views per image: random resized crop 28 px (scale 0.2-1, ratio 3/4-4/3), flip p
         0.5, brightness/contrast jitter 0.4 with p 0.8; no blur, no solarisation.
Loss     BYOL's symmetric 2 - 2 cos(p, sg(z)), mean over the batch; each view goes through the
         online and the target network on its own (BatchNorm per view).
Optim    SGD, momentum 0.9, weight decay 5e-4 on weights (none on biases and BatchNorm), batch
         128 (drop-last: 78 steps per epoch), peak lr 0.2 * 128 / 256 = 0.1 with BYOL's warm-up
         (step k of W gets k * peak / W) over the first epoch, then cosine to 0; target EMA
         tau = 1 - (1 - 0.99)(cos(pi k / K) + 1) / 2 over the K steps of the run.
Eval     weighted k-NN (k 20, T 0.07) on the L2-normalised features of the online backbone
         (the headline: BYOL keeps the online encoder) and of the target (EMA) backbone,
         BatchNorm in eval mode, before training and after every epoch; the last line is
         `RESULT seed=.. epochs=.. train_s=.. img_per_s=.. raw=.. before=.. after=..
         after_target=..` (`after`: the online backbone).
"""

import argparse
import copy
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dino_torch_reference import DATA, balanced, crop_views, knn, read_idx


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class SmallResNet(nn.Module):
    """torchvision's ResNet-18 layout at `width`, with the CIFAR stem; no classifier."""

    def __init__(self, width=16, in_ch=1, init="torchvision"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for stage in range(4):  # torchvision's names: layer1 .. layer4
            cout = width << stage
            blocks = [BasicBlock(cin, cout, 2 if stage > 0 else 1), BasicBlock(cout, cout, 1)]
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            cin = cout
        self.dim = cin
        for m in self.modules():  # torchvision's init, or nn.Conv2d's own default
            if isinstance(m, nn.Conv2d) and init == "torchvision":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x.mean(dim=(2, 3))


def mlp(cin, hidden, out):
    return nn.Sequential(nn.Linear(cin, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out, bias=False))


def regression(p, z):
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)


@torch.no_grad()
def features(backbone, images, mean, std):
    backbone.eval()
    out = [backbone((images[i : i + 500] - mean) / std) for i in range(0, len(images), 500)]
    backbone.train()
    return F.normalize(torch.cat(out), dim=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.2, help="base lr for batch 256")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--tau", type=float, default=0.99)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--proj", type=int, default=128)
    p.add_argument("--scale", type=float, nargs=2, default=(0.2, 1.0))
    p.add_argument("--train-images", type=int, default=0, help="balanced train subset (0: all)")
    p.add_argument("--eval-train", type=int, default=0, help="balanced k-NN bank subset (0: all)")
    p.add_argument("--eval-test", type=int, default=0, help="balanced k-NN test subset (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=("torchvision", "pytorch"), default="pytorch",
                   help="conv init: torchvision's kaiming_normal fan_out, or nn.Conv2d's default")
    p.add_argument("--predictor-lr", type=float, default=1.0,
                   help="the predictor's lr as a multiple of the schedule's (1: BYOL's)")
    a = p.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)

    xtr = read_idx(DATA / "train-images-idx3-ubyte.gz")
    ytr = read_idx(DATA / "train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(DATA / "t10k-images-idx3-ubyte.gz")
    yte = read_idx(DATA / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    to_t = lambda x: torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    full = to_t(xtr)
    mean, std = full.mean().item(), full.std().item()
    train_x = to_t(balanced(xtr, ytr, a.train_images, a.seed)[0])
    bank_x, bank_y = balanced(xtr, ytr, a.eval_train, a.seed + 1)
    test_x, test_y = balanced(xte, yte, a.eval_test, a.seed + 2)
    bank_x, test_x = to_t(bank_x), to_t(test_x)
    bank_y, test_y = torch.from_numpy(bank_y), torch.from_numpy(test_y)

    def evaluate(net):
        return knn(features(net, bank_x, mean, std), bank_y, features(net, test_x, mean, std),
                   test_y)

    raw = knn(F.normalize(((bank_x - mean) / std).flatten(1), dim=1), bank_y,
              F.normalize(((test_x - mean) / std).flatten(1), dim=1), test_y)
    online = nn.ModuleDict(dict(backbone=SmallResNet(a.width, init=a.init)))
    online["projector"] = mlp(online["backbone"].dim, a.hidden, a.proj)
    online["predictor"] = mlp(a.proj, a.hidden, a.proj)
    target = nn.ModuleDict(dict(backbone=copy.deepcopy(online["backbone"]),
                                projector=copy.deepcopy(online["projector"])))
    for q in target.parameters():
        q.requires_grad = False
    n_params = sum(q.numel() for q in online["backbone"].parameters())
    # Weight decay on weights, none on biases and BatchNorm; `lr_mult` scales the schedule's
    # lr (the predictor's, with --predictor-lr).
    groups = []
    for pred in (False, True):
        for decay in (True, False):
            qs = [q for n, q in online.named_parameters()
                  if n.startswith("predictor.") == pred and (q.ndim > 1) == decay]
            groups.append(dict(params=qs, weight_decay=a.weight_decay if decay else 0.0,
                               lr_mult=a.predictor_lr if pred else 1.0))
    opt = torch.optim.SGD(groups, lr=0.0, momentum=0.9)
    niter = len(train_x) // a.batch_size
    total, warm = a.epochs * niter, a.warmup_epochs * niter
    peak = a.lr * a.batch_size / 256

    def lr_at(k):
        if k < warm:
            return peak * k / warm
        return 0.5 * peak * (1 + math.cos(math.pi * (k - warm) / max(total - warm, 1)))

    before = evaluate(target["backbone"])
    print(f"data: train {len(train_x)}, bank {len(bank_x)}, test {len(test_x)}; backbone "
          f"{n_params} params; raw pixels {raw:.2f}%, random init {before:.2f}%", flush=True)
    step, train_s, after, after_target = 0, 0.0, before, before
    for epoch in range(a.epochs):
        order = rng.permutation(len(train_x))
        t0 = time.perf_counter()
        loss_sum = 0.0
        for i in range(niter):
            batch = train_x[order[i * a.batch_size : (i + 1) * a.batch_size]]
            v1, v2 = [(crop_views(batch, 28, a.scale, (3 / 4, 4 / 3), rng) - mean) / std
                      for _ in range(2)]
            for g in opt.param_groups:
                g["lr"] = lr_at(step) * g["lr_mult"]
            o, t = online, target
            p1 = o["predictor"](o["projector"](o["backbone"](v1)))
            p2 = o["predictor"](o["projector"](o["backbone"](v2)))
            with torch.no_grad():
                z1 = t["projector"](t["backbone"](v1))
                z2 = t["projector"](t["backbone"](v2))
            loss = (regression(p1, z2) + regression(p2, z1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tau = 1 - (1 - a.tau) * (math.cos(math.pi * step / total) + 1) / 2
            with torch.no_grad():
                tp = list(t.parameters())
                sp = [q.detach() for n, q in o.named_parameters() if not n.startswith("predictor.")]
                # Parameters only: the target's BatchNorm running statistics are its own, from
                # its forward passes in training mode (as Tessera's `ema_update`).
                torch._foreach_lerp_(tp, sp, 1.0 - tau)
            loss_sum += loss.item()
            step += 1
        dt = time.perf_counter() - t0
        train_s += dt
        after, after_target = evaluate(online["backbone"]), evaluate(target["backbone"])
        print(f"epoch {epoch + 1}/{a.epochs}: loss {loss_sum / niter:.4f}, k-NN online "
              f"{after:.2f}%, target {after_target:.2f}%, {niter * a.batch_size / dt:.1f} img/s",
              flush=True)
    print(f"RESULT seed={a.seed} epochs={a.epochs} train_s={train_s:.1f} "
          f"img_per_s={step * a.batch_size / max(train_s, 1e-9):.1f} raw={raw:.2f} "
          f"before={before:.2f} after={after:.2f} after_target={after_target:.2f}")


if __name__ == "__main__":
    main()
