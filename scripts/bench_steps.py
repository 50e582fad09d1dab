"""PyTorch eager counterpart of `examples/bench_steps.rs`: whole SSL training-step throughput.

Same models, shapes and optimizers as the Rust side (the backbones are those of
scripts/bench_models.py, imported from it):

- `dino_vit_s16`: DINO's step (`main_dino.py` `train_one_epoch` body). ViT-S/16 student and
  teacher with DINO's positional-embedding interpolation for the local crops; DINO head
  384 -> 2048 -> 2048 -> 256 (GELU), L2 normalization, weight-normed last layer 256 -> 65536
  (g fixed at 1); multi-crop forward as `MultiCropWrapper` (one backbone call per
  resolution group, the head once on the concatenated features); 2 global crops of
  `--img-size` and `--local-crops` local crops of `--local-size`; teacher on the global
  crops under no_grad; DINO loss (student temp 0.1, teacher temp 0.04, centering with
  momentum 0.9); per-parameter gradient clipping at 3.0 (DINO's `clip_gradients`, done with
  foreach ops); AdamW (lr 0.0005*batch/256, weight decay 0.04 on weights, 0 on biases and
  rank-1 parameters; torch's default foreach implementation); teacher EMA 0.996 (foreach
  lerp). The last layer is not frozen (as `freeze_last_layer = 0` on the Rust side).
- `dino_default`: the same step at the size of `examples/dino_vit_s`'s default recipe: ViT
  192 wide, 6 deep, 3 heads, patch 7; head 192 -> 2048 -> 2048 -> 256 -> 2048; batch 128 with
  2 global crops of 28 px per image and no local crops (as the default recipe; `--local-crops
  4` times the previous default's step).
- `byol_resnet50`: BYOL's step. ResNet-50 (torchvision v1.5, no classifier) online and
  target; projector 2048 -> 4096 -> 256 and predictor 256 -> 4096 -> 256, each
  Linear-BatchNorm1d-ReLU-Linear; two views of `--img-size`, each through the online and
  the target network separately (BatchNorm per view); loss mean_b(2 - 2cos(p1, z2) + 2 -
  2cos(p2, z1)); LARS (momentum 0.9, trust coefficient 1e-3, weight decay 1.5e-6, biases
  and BatchNorm parameters excluded from decay and adaptation, lr 0.2*batch/256; the same
  update rule as Tessera's `Lars`, written with foreach ops); target EMA 0.996.
- `byol_small`: the same step at the size of `examples/byol_resnet50`'s default preset: the
  ResNet-18 layout at width 16 with the CIFAR-style stem (3x3 stride 1, no max-pool) on
  1-channel 28-px views, projector and predictor 512 -> 128 (last Linear without bias), SGD
  (momentum 0.9, weight decay 5e-4, lr 0.2*batch/256), batch 128, target EMA 0.99.

Like DINO's and Tessera's trainers, each step reads the loss (`loss.item()`) before the
backward pass. `--dtype bf16` runs the forward passes and the loss under
`torch.autocast(device_type, dtype=torch.bfloat16)`: f32 master weights, optimizer state
and inputs, bf16 matmuls/convolutions. (Tessera's bf16 is pure bf16: weights, optimizer
state and activations.) f32 runs use torch's defaults: TF32 off for matmuls, on for cuDNN
convolutions (see `--tf32`); cudnn.benchmark off unless `--cudnn-benchmark`.

Each step is timed between two `torch.cuda.synchronize()` calls; the result is the median
over `--steps` steps after `--warmup` untimed ones, in images (batch samples) per second.
Peak memory is `torch.cuda.max_memory_allocated()` since the start (weights, optimizer
state, activations) on a GPU, and the process's peak resident set (`ru_maxrss`) on the CPU,
which the Rust side reads as `VmHWM`. The last line is machine-readable, as the Rust binary's:
`RESULT model=... dtype=... batch=... img_per_s=... step_ms=... steps=... peak_mb=...`.
`--time-limit S` ends the run early once the steps have taken S seconds (at least one timed
step), as on the Rust side. `--profile` also prints the timed steps' time per step by phase
(the same phases as the Rust trainers') and, from one more step run under `torch.profiler`
after them, the backward by node: the counterpart of `bench_steps --profile`.

    python scripts/bench_steps.py --model dino_vit_s16 --batch 64 --steps 10 --warmup 3
    # quick check on the CPU:
    python scripts/bench_steps.py --device cpu --tiny --img-size 32 --local-size 16 \
        --local-crops 2 --batch 4 --steps 2 --warmup 1
"""
import argparse
import contextlib
import copy
import math
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_models as bm  # noqa: E402  (the ViT-S and ResNet-50 of the CPU benchmark)


# --- DINO ------------------------------------------------------------------------------

class ViT(bm.VisionTransformer):
    """bench_models' DINO ViT with DINO's `interpolate_pos_encoding` for other crop sizes."""

    def __init__(self, img_size, patch_size, embed_dim, depth, num_heads):
        super().__init__(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads)
        self.patch_size = patch_size

    def interpolate_pos_encoding(self, npatch, h, w):
        n = self.pos_embed.shape[1] - 1
        if npatch == n and h == w:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim, side = self.pos_embed.shape[-1], int(math.sqrt(n))
        h0, w0 = h // self.patch_size, w // self.patch_size
        patch_pos = F.interpolate(
            patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2),
            size=(h0, w0), mode="bicubic", align_corners=False)
        return torch.cat((cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)

    def forward(self, x):
        _, _, h, w = x.shape
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        pos = self.interpolate_pos_encoding(x.shape[1], h, w)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + pos
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


class DINOHead(nn.Module):
    def __init__(self, in_dim, out_dim, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False  # norm_last_layer=True

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """DINO's MultiCropWrapper, given the crops already grouped by resolution."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, groups):
        return self.head(torch.cat([self.backbone(g) for g in groups]))


class DINOLoss(nn.Module):
    def __init__(self, out_dim, ncrops, teacher_temp=0.04, student_temp=0.1,
                 center_momentum=0.9):
        super().__init__()
        self.ncrops, self.teacher_temp = ncrops, teacher_temp
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student_output, teacher_output):
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        teacher_out = F.softmax((teacher_output - self.center) / self.teacher_temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(2)
        total, n = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                total = total + torch.sum(-q * F.log_softmax(student_out[v], dim=-1),
                                          dim=-1).mean()
                n += 1
        self.update_center(teacher_output)
        return total / n

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = teacher_output.sum(dim=0, keepdim=True) / len(teacher_output)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


def decay_groups(model, wd):
    """DINO's get_params_groups: no weight decay on biases and rank-1 parameters; frozen
    parameters (the head's weight_g) left out."""
    reg, not_reg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (not_reg if name.endswith(".bias") or p.ndim <= 1 else reg).append(p)
    return [{"params": reg, "weight_decay": wd, "lars": True},
            {"params": not_reg, "weight_decay": 0.0, "lars": False}]


@torch.no_grad()
def clip_gradients(params, clip):
    """DINO's clip_gradients (per-parameter norm), with foreach ops."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack(torch._foreach_norm(grads))
    coefs = (clip / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, list(coefs.unbind()))


@torch.no_grad()
def ema(teacher, student, m):
    tp = [p for p in teacher.parameters()]
    sp = [p.detach() for p in student.parameters()]
    torch._foreach_lerp_(tp, sp, 1.0 - m)


class DinoStep:
    def __init__(self, a, dev):
        if a.tiny:
            vit = dict(embed_dim=32, depth=2, num_heads=2)
            hidden, bottleneck = 64, 16
        elif a.model == "dino_default":
            vit = dict(embed_dim=192, depth=6, num_heads=3)
            hidden, bottleneck = 2048, 256
        else:
            vit = dict(embed_dim=384, depth=12, num_heads=6)
            hidden, bottleneck = 2048, 256
        def make():
            return MultiCropWrapper(ViT(a.img_size, a.patch_size, **vit),
                                    DINOHead(vit["embed_dim"], a.out_dim, hidden, bottleneck))
        # DINO builds the teacher apart and copies the student's state into it (a module with
        # torch.nn.utils.weight_norm cannot be deep-copied).
        self.student, self.teacher = make().to(dev), make().to(dev)
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False
        self.student.train()
        self.teacher.train()
        self.loss_fn = DINOLoss(a.out_dim, 2 + a.local_crops).to(dev)
        lr = 0.0005 * a.batch / 256
        self.opt = torch.optim.AdamW(decay_groups(self.student, 0.04), lr=lr)
        self.params = [p for p in self.student.parameters() if p.requires_grad]
        b = a.batch
        self.groups = [torch.randn(2 * b, 3, a.img_size, a.img_size, device=dev)]
        if a.local_crops > 0:
            self.groups.append(
                torch.randn(a.local_crops * b, 3, a.local_size, a.local_size, device=dev))
        self.autocast, self.phase = a.autocast, a.phase
        self.what = (f"DINO: ViT(embed {vit['embed_dim']}, depth {vit['depth']}, heads "
                     f"{vit['num_heads']}, patch {a.patch_size}) + head {hidden}-{bottleneck}-"
                     f"{a.out_dim}, 2x{a.img_size}px + {a.local_crops}x{a.local_size}px crops "
                     f"per image; AdamW, clip 3.0, teacher EMA")

    def step(self):
        phase = self.phase
        with phase("teacher forward"), self.autocast():
            teacher_out = self.teacher(self.groups[:1])
        with phase("student forward"), self.autocast():
            student_out = self.student(self.groups)
        with phase("loss"):
            with self.autocast():
                loss = self.loss_fn(student_out, teacher_out)
            value = loss.item()
        with phase.backward_ops(), phase("backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        with phase("clip"):
            clip_gradients(self.params, 3.0)
        with phase("optimizer"):
            self.opt.step()
        with phase("teacher EMA"):
            ema(self.teacher, self.student, 0.996)
        return value


# --- BYOL ------------------------------------------------------------------------------

class ResNet(bm.ResNet50):
    """bench_models' ResNet-50 with a configurable number of bottlenecks per stage and no
    classifier (`fc` is the identity): the 2048-wide pooled features."""

    def __init__(self, blocks=(3, 4, 6, 3)):
        if tuple(blocks) == (3, 4, 6, 3):
            super().__init__()
        else:
            nn.Module.__init__(self)
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            layers, inplanes = [], 64
            for stage, n in enumerate(blocks):
                planes = 64 << stage
                stage_blocks = []
                for i in range(n):
                    stage_blocks.append(bm.Bottleneck(inplanes, planes,
                                                      2 if stage > 0 and i == 0 else 1))
                    inplanes = planes * 4
                layers.append(nn.Sequential(*stage_blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Identity()


def mlp(in_dim, hidden, out):
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out))


class Lars(torch.optim.Optimizer):
    """Tessera's `Lars` (BYOL's LARS): for groups with `lars`, u = g + wd*p, scaled by the trust
    ratio eta*|p|/|u| when both norms are positive; others u = g. b = mu*b + u; p -= lr*b."""

    def __init__(self, groups, lr, momentum=0.9, eta=1e-3):
        super().__init__(groups, dict(lr=lr, momentum=momentum, eta=eta, weight_decay=0.0,
                                      lars=False))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            grads = [p.grad for p in ps]
            if g["lars"]:
                if g["weight_decay"]:
                    grads = torch._foreach_add(grads, ps, alpha=g["weight_decay"])
                pn = torch.stack(torch._foreach_norm(ps))
                un = torch.stack(torch._foreach_norm(grads))
                trust = torch.where((pn > 0) & (un > 0), g["eta"] * pn / un,
                                    torch.ones_like(pn))
                torch._foreach_mul_(grads, list(trust.unbind()))
            bufs = []
            for p, u in zip(ps, grads):
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.clone(u).detach()
                    bufs.append(None)
                else:
                    bufs.append(st["momentum_buffer"])
            old = [(b, u) for b, u in zip(bufs, grads) if b is not None]
            if old:
                ob = [b for b, _ in old]
                torch._foreach_mul_(ob, g["momentum"])
                torch._foreach_add_(ob, [u for _, u in old])
            torch._foreach_add_(ps, [self.state[p]["momentum_buffer"] for p in ps],
                                alpha=-g["lr"])


def online_and_target(backbone, projector, predictor, dev):
    """BYOL's online network (backbone, projector, predictor) and its target (a frozen copy
    of the backbone and projector), both in training mode (BatchNorm per batch)."""
    online = nn.ModuleDict(dict(backbone=backbone, projector=projector,
                                predictor=predictor)).to(dev)
    target = nn.ModuleDict(dict(backbone=copy.deepcopy(online["backbone"]),
                                projector=copy.deepcopy(online["projector"])))
    for p in target.parameters():
        p.requires_grad = False
    online.train()
    target.train()
    return online, target


class ByolSmallStep:
    """The default (`small`) preset of examples/byol_resnet50: the ResNet-18 layout at width 16
    with the CIFAR stem on 1-channel images (scripts/byol_torch_reference.py's SmallResNet),
    projector and predictor 512-128 with BatchNorm, SGD (momentum 0.9, weight decay 5e-4, lr
    0.2*batch/256), target EMA 0.99."""

    def __init__(self, a, dev):
        from byol_torch_reference import SmallResNet, mlp as byol_mlp
        backbone = SmallResNet(width=16, in_ch=1)
        self.online, self.target = online_and_target(
            backbone, byol_mlp(backbone.dim, 512, 128), byol_mlp(128, 512, 128), dev)
        self.opt = torch.optim.SGD(decay_groups(self.online, 5e-4), lr=0.2 * a.batch / 256,
                                   momentum=0.9)
        self.v1 = torch.randn(a.batch, 1, a.img_size, a.img_size, device=dev)
        self.v2 = torch.randn(a.batch, 1, a.img_size, a.img_size, device=dev)
        self.autocast, self.phase = a.autocast, a.phase
        self.what = (f"BYOL: ResNet-18 layout at width 16 with the CIFAR-style stem, 1 channel + "
                     f"projector/predictor 512-128 with BatchNorm, 2 views of {a.img_size}px; "
                     f"SGD, target EMA")

    def step(self):
        return ByolStep.step(self, tau=0.99)


def regression_loss(p, z):
    return 2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)


class ByolStep:
    def __init__(self, a, dev):
        blocks = (1, 1, 1, 1) if a.tiny else (3, 4, 6, 3)
        hidden, proj = (64, 16) if a.tiny else (4096, 256)
        self.online, self.target = online_and_target(
            ResNet(blocks), mlp(2048, hidden, proj), mlp(proj, hidden, proj), dev)
        lr = 0.2 * a.batch / 256
        self.opt = Lars(decay_groups(self.online, 1.5e-6), lr=lr)
        self.v1 = torch.randn(a.batch, 3, a.img_size, a.img_size, device=dev)
        self.v2 = torch.randn(a.batch, 3, a.img_size, a.img_size, device=dev)
        self.autocast, self.phase = a.autocast, a.phase
        self.what = (f"BYOL: ResNet(bottleneck, layers {list(blocks)}) + projector/predictor "
                     f"{hidden}-{proj} with BatchNorm, 2 views of {a.img_size}px; LARS, "
                     f"target EMA")

    def step(self, tau=0.996):
        o, t, phase = self.online, self.target, self.phase
        with phase("online forward"), self.autocast():
            p1 = o["predictor"](o["projector"](o["backbone"](self.v1)))
            p2 = o["predictor"](o["projector"](o["backbone"](self.v2)))
        with phase("target forward"), self.autocast(), torch.no_grad():
            z1 = t["projector"](t["backbone"](self.v1))
            z2 = t["projector"](t["backbone"](self.v2))
        with phase("loss"):
            with self.autocast():
                loss = (regression_loss(p1, z2) + regression_loss(p2, z1)).mean()
            value = loss.item()
        with phase.backward_ops(), phase("backward"):
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        with phase("optimizer"):
            self.opt.step()
        with phase("target EMA"), torch.no_grad():
            tp = list(t.parameters())
            sp = [p.detach() for n, p in o.named_parameters() if not n.startswith("predictor.")]
            torch._foreach_lerp_(tp, sp, 1.0 - tau)
        return value


# --- driver ----------------------------------------------------------------------------

class Phases:
    """`--profile`'s timers. `with phases("backward"): ...` adds the block's wall time
    (between two device synchronizations) to that name while `on`: the counterpart of
    `tessera::autograd::profile::phase` in the Rust trainers. `with phases.backward_ops():`
    runs its block under `torch.profiler` while `ops` (kept for `print_profile`). The steps
    wrap their backward in it, and the driver turns `ops` on for one extra step after the
    timed ones: once used, the profiler slowed every later step of this process (the forward
    passes about twofold at `dino_default`'s size, torch 2.9.1 on the CPU), so the phases come
    from the timed steps without it."""

    def __init__(self, sync):
        self.sync, self.on, self.ops, self.totals, self.profiles = sync, False, False, {}, []

    @contextlib.contextmanager
    def backward_ops(self):
        if not self.ops:
            yield
            return
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            yield
        self.profiles.append(prof)

    @contextlib.contextmanager
    def __call__(self, name):
        if not self.on:
            yield
            return
        self.sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            calls, total = self.totals.get(name, (0, 0.0))
            self.totals[name] = (calls + 1, total + time.perf_counter() - t0)


def print_profile(phases, steps):
    """Per step: the phases in order (the timed steps), then each backward node's time in
    the extra profiled step (torch.profiler's `autograd::engine::evaluate_function: <Node>`
    events, their children included), as `bench_steps --profile` prints tessera's."""
    def table(title, rows, steps):
        total = sum(t for _, _, t in rows)
        print(f"{title:<34} {'calls':>7} {'ms':>11} {'share':>7}")
        for name, calls, t in rows:
            share = t / total * 100 if total else 0.0
            print(f"  {name:<32} {round(calls / steps):>7} {t / steps * 1e3:>11.2f} {share:>6.1f}%")
        print(f"  {'(sum)':<32} {'':>7} {total / steps * 1e3:>11.2f}")
    print(f"time per step ({steps} timed steps):")
    table("phase", [(n, c, t) for n, (c, t) in phases.totals.items()], steps)
    print("the backward under torch.profiler (one more step, not timed above):")
    prefix = "autograd::engine::evaluate_function: "
    ops = {}
    for prof in phases.profiles:
        for e in prof.key_averages():
            if e.key.startswith(prefix):
                calls, total = ops.get(e.key[len(prefix):], (0, 0.0))
                ops[e.key[len(prefix):]] = (calls + e.count, total + e.cpu_time_total / 1e6)
    rows = sorted(((n, c, t) for n, (c, t) in ops.items()), key=lambda r: -r[2])
    table("backward op", rows, max(len(phases.profiles), 1))


def peak_rss_mb():
    """The process's peak resident set in MiB (Linux reports ru_maxrss in KiB), or None."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["dino_vit_s16", "dino_default", "byol_resnet50",
                                        "byol_small"],
                    default="dino_vit_s16")
    ap.add_argument("--batch", type=int, default=None, help="default 64; dino_default: 128")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--time-limit", type=float, default=0.0,
                    help="stop early once the steps have taken S seconds, keeping the timed "
                         "steps so far (at least one; 0 = no limit)")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--img-size", type=int, default=None, help="default 224; dino_default: 28")
    ap.add_argument("--local-size", type=int, default=None, help="default 96; dino_default: 14")
    ap.add_argument("--local-crops", type=int, default=None,
                    help="default 10; dino_default: 0")
    ap.add_argument("--patch-size", type=int, default=None,
                    help="default 16; dino_default: 7, --tiny: 8")
    ap.add_argument("--out-dim", type=int, default=None,
                    help="default 65536; dino_default: 2048, --tiny: 128")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--tf32", choices=["default", "on", "off"], default="default",
                    help="TF32 for f32 matmuls and convolutions (default: torch's defaults, "
                         "matmul off, cuDNN conv on)")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true",
                    help="also print the timed steps' time by phase and by backward op "
                         "(torch.profiler; take throughput from a run without it)")
    a = ap.parse_args()
    small = a.model in ("dino_default", "byol_small")
    for name, paper, default in [("batch", 64, 128), ("img_size", 224, 28),
                                 ("local_size", 96, 14), ("local_crops", 10, 0)]:
        if getattr(a, name) is None:
            setattr(a, name, default if small else paper)
    if a.patch_size is None:
        a.patch_size = 8 if a.tiny else 7 if small else 16
    if a.out_dim is None:
        a.out_dim = 128 if a.tiny else 2048 if small else 65536
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.tf32 != "default":
        torch.backends.cuda.matmul.allow_tf32 = a.tf32 == "on"
        torch.backends.cudnn.allow_tf32 = a.tf32 == "on"
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    torch.manual_seed(a.seed)
    cuda = dev.type == "cuda"
    if a.dtype == "bf16":
        a.autocast = lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    else:
        a.autocast = lambda: torch.autocast(device_type=dev.type, enabled=False)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    a.phase = Phases(sync)

    t = time.perf_counter()
    steps = dict(byol_resnet50=ByolStep, byol_small=ByolSmallStep)
    bench = steps.get(a.model, DinoStep)(a, dev)
    sync()
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    print(f"bench_steps.py: {a.model} on {a.device} ({name}), {a.dtype}, batch {a.batch}, "
          f"{bench.what}; torch {torch.__version__}, tf32 matmul "
          f"{torch.backends.cuda.matmul.allow_tf32} / cudnn {torch.backends.cudnn.allow_tf32}, "
          f"cudnn.benchmark {torch.backends.cudnn.benchmark}; built in "
          f"{time.perf_counter() - t:.2f} s")
    if a.dtype == "bf16":
        print("dtype bf16: torch.autocast(bfloat16) (f32 master weights, optimizer state and "
              "inputs; bf16 matmuls/convs), unlike Tessera's pure bf16")

    times = []
    # Past --time-limit: the remaining warm-up is skipped and the run stops after the next
    # timed step.
    start, over, i = time.perf_counter(), False, 0
    while len(times) < a.steps:
        timed = i >= a.warmup or over
        a.phase.on = timed and a.profile
        sync()
        t0 = time.perf_counter()
        loss = bench.step()
        sync()
        s = time.perf_counter() - t0
        kind = "step" if timed else "warm-up"
        mem = f", peak {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB" if cuda else ""
        print(f"{kind} {i}: {s * 1e3:.1f} ms, loss {loss:.5f}, {a.batch / s:.1f} img/s{mem}")
        if not math.isfinite(loss):
            sys.exit(f"error: the loss is {loss} at step {i}")
        if timed:
            times.append(s)
        i += 1
        if a.time_limit > 0 and time.perf_counter() - start > a.time_limit:
            if times:
                if len(times) < a.steps:
                    print(f"--time-limit {a.time_limit} s reached: {len(times)} of {a.steps} "
                          f"timed steps")
                break
            over = True
    if a.profile:
        a.phase.on, a.phase.ops = False, True
        bench.step()
        a.phase.ops = False
        print_profile(a.phase, len(times))
    med = statistics.median(times)
    ips = a.batch / med
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
        measure = "peak allocated (torch.cuda.max_memory_allocated)"
    else:
        peak = peak_rss_mb()
        measure = "peak resident set (ru_maxrss)"
    print(f"median step {med * 1e3:.1f} ms over {len(times)} steps -> {ips:.2f} img/s"
          + ("" if peak is None else f"; {measure} {peak:.0f} MiB"))
    peak_mb = "na" if peak is None else f"{peak:.0f}"
    print(f"RESULT model={a.model} dtype={a.dtype} batch={a.batch} img_per_s={ips:.3f} "
          f"step_ms={med * 1e3:.2f} steps={len(times)} peak_mb={peak_mb}")


if __name__ == "__main__":
    main()
