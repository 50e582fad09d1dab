#!/usr/bin/env python3
"""Reference values for tessera-ssl's objectives: DINO's head and loss, BYOL's loss and MLP
head, and the teacher EMA, computed by PyTorch with the official semantics reimplemented
below (DINO: facebookresearch/dino ``main_dino.py`` ``DINOLoss`` and the EMA in
``train_one_epoch``, ``vision_transformer.py`` ``DINOHead``; BYOL: lucidrains
``byol-pytorch`` ``loss_fn`` and ``MLP``).

Pinned versions (also in scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3.

How to run
----------
    .venv/bin/python scripts/gen_ssl_objective_fixtures.py          # writes the file
    .venv/bin/python scripts/gen_ssl_objective_fixtures.py --check  # verifies the committed file

from anywhere (paths are relative to this file). Deterministic: each case draws from its own
``torch.Generator`` seeded with a CRC32 of the case name, PyTorch runs on one CPU thread, and
the safetensors file (``tests/fixtures/ssl_objectives.safetensors``) is written with sorted
keys by ``scripts/safetensors_out.py`` (no package needed).

Contents
--------
Keys are ``<case>.<name>``; case names have no dots, names may (parameter names). Float
tensors are F64; every random input is rounded to the nearest f32 first, so an f32 run sees
the same inputs. ``num_batches_tracked`` is I64. ``__metadata__`` holds one JSON object per
case (its configuration) plus ``_format`` and ``_versions``. The Rust side is
ssl/tests/objectives.rs.

* ``head3`` (3 layers, ``norm_last_layer``), ``head2free`` (2 layers, ``weight_g`` trained)
  and ``head1`` (1 layer): a ``DINOHead`` (in 16, hidden 32, bottleneck 8, out 20).
  ``param.<name>`` are its parameters under PyTorch's names, ``x`` [6, 16] the input, ``out``
  the output, ``grad_out`` a random upstream gradient, ``grad.<name>`` and ``grad_x`` the
  gradients of ``sum(out * grad_out)`` (no ``grad.last_layer.weight_g`` when it is frozen).
* ``dinoloss_e0`` and ``dinoloss_e3``: ``DINOLoss`` (out_dim 20, ncrops 4 = 2 global +
  2 local, B = 3, teacher temperature 0.04 -> 0.07 over 5 of 10 epochs) at epoch 0 and at
  epoch 3 (inside the warm-up, 0.0625), over two consecutive steps k = 1, 2 (the center
  carries over): ``student<k>`` [12, 20], ``teacher<k>`` [6, 20], ``loss<k>`` (a scalar),
  ``grad_student<k>`` (d loss / d student output) and ``center<k>`` (the center after step k).
* ``byol``: ``p1``, ``p2``, ``z1``, ``z2`` [5, 8]; ``loss`` = ``(loss_fn(p1, z2) +
  loss_fn(p2, z1)).mean()``, ``loss_one`` = ``loss_fn(p1, z2)`` per sample, ``grad_p1``,
  ``grad_p2``. ``byolzero``: the same with row 2 of ``p2`` zero (F.normalize's eps branch:
  its gradient is ``grad / 1e-12``).
* ``byolmlp``: ``MLP(10, 8, hidden 16)`` = Linear, BatchNorm1d, ReLU, Linear, in training
  mode: ``param.<name>``, ``x`` [6, 10], ``out``, ``grad_out``, ``grad.<name>``, ``grad_x``,
  then the buffers after that forward (``buffer.net.1.running_mean`` / ``running_var`` /
  ``num_batches_tracked``) and ``out_eval``, the eval-mode output with those statistics.
  This is lucidrains' layout, whose last Linear has a bias (``net.3.bias``); DeepMind's
  official ``MLP`` (``byol/utils/networks.py``) has none there, and that is Tessera's default
  (``MlpHeadConfig::last_bias = false``). The Rust test checks this case with
  ``last_bias: true``; ssl/tests/parity.rs checks the strict load of the official layout.
* ``ema``: ``teacher.<name>`` and ``student.<name>`` for ``a.weight`` [3, 4], ``a.bias``
  [3], ``b.weight`` [2, 3]; ``out.<name>`` after DINO's in-place update with momentum 0.996,
  then ``out2.<name>`` after a second update with momentum 0.9 (same student).
"""

import argparse
import json
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from safetensors_out import safetensors_bytes
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "ssl_objectives.safetensors"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64

TENSORS = {}
META = {
    "_format": "tessera-ssl-objective-fixtures-v1",
    "_versions": f"torch {torch.__version__.split('+')[0]}, numpy {np.__version__}",
}



write_safetensors = safetensors_bytes


def put(case, name, t):
    assert "." not in case
    t = t.detach()
    if t.is_floating_point():
        t = t.to(F64)
    TENSORS[f"{case}.{name}"] = t.clone()


def meta(case, **params):
    META[case] = json.dumps(params, sort_keys=True, separators=(",", ":"))


def gen(case):
    g = torch.Generator()
    g.manual_seed(zlib.crc32(case.encode()))
    return g


def randn(g, *shape, scale=1.0):
    """Normal values rounded to the nearest f32 (kept as f64)."""
    return (torch.randn(shape, generator=g, dtype=F64) * scale).to(torch.float32).to(F64)


def uniform(g, *shape, low=0.0, high=1.0):
    return (torch.rand(shape, generator=g, dtype=F64) * (high - low) + low).to(torch.float32).to(F64)


# --------------------------------------------------------------------------- DINO (official semantics)


class DINOHead(nn.Module):
    """vision_transformer.py DINOHead (use_bn=False)."""

    def __init__(self, in_dim, out_dim, norm_last_layer=True, nlayers=3, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
            for _ in range(nlayers - 2):
                layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nn.utils.weight_norm is deprecated; same math
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = self.mlp(x)
        x = nn.functional.normalize(x, dim=-1, p=2)
        x = self.last_layer(x)
        return x


class DINOLoss(nn.Module):
    """main_dino.py DINOLoss, single process (the all_reduce is the identity)."""

    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs,
                 student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim, dtype=F64))
        self.teacher_temp_schedule = np.concatenate((
            np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
            np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp,
        ))

    def forward(self, student_output, teacher_output, epoch):
        student_out = student_output / self.student_temp
        student_out = student_out.chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(2)
        total_loss = 0
        n_loss_terms = 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(teacher_output)
        return total_loss

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        batch_center = batch_center / (len(teacher_output) * 1)  # world size 1
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


def head_case(case, nlayers, norm_last_layer):
    g = gen(case)
    cfg = dict(in_dim=16, out_dim=20, hidden_dim=32, bottleneck_dim=8, nlayers=nlayers,
               norm_last_layer=norm_last_layer)
    head = DINOHead(cfg["in_dim"], cfg["out_dim"], norm_last_layer=norm_last_layer, nlayers=nlayers,
                    hidden_dim=cfg["hidden_dim"], bottleneck_dim=cfg["bottleneck_dim"]).to(F64)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name == "last_layer.weight_g":
                if not norm_last_layer:
                    p.copy_(uniform(g, *p.shape, low=0.5, high=1.5))
            elif name.endswith("bias"):
                p.copy_(randn(g, *p.shape, scale=0.1))
            else:
                p.copy_(randn(g, *p.shape, scale=0.3))
            put(case, f"param.{name}", p)
    x = randn(g, 6, cfg["in_dim"]).requires_grad_(True)
    out = head(x)
    grad_out = randn(g, *out.shape)
    params = [(n, p) for n, p in head.named_parameters() if p.requires_grad]
    grads = torch.autograd.grad(out, [x] + [p for _, p in params], grad_out)
    put(case, "x", x)
    put(case, "out", out)
    put(case, "grad_out", grad_out)
    put(case, "grad_x", grads[0])
    for (n, _), gr in zip(params, grads[1:]):
        put(case, f"grad.{n}", gr)
    meta(case, op="dino_head", **cfg)


def dino_loss_case(case, epoch):
    g = gen(case)
    cfg = dict(out_dim=20, ncrops=4, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=5,
               nepochs=10, student_temp=0.1, center_momentum=0.9)
    batch = 3
    loss_fn = DINOLoss(**cfg)
    for k in (1, 2):
        student = randn(g, cfg["ncrops"] * batch, cfg["out_dim"], scale=2.0).requires_grad_(True)
        teacher = (randn(g, 2 * batch, cfg["out_dim"], scale=0.5) + 0.3 * k).to(torch.float32).to(F64)
        loss = loss_fn(student, teacher, epoch)
        (grad,) = torch.autograd.grad(loss, [student])
        put(case, f"student{k}", student)
        put(case, f"teacher{k}", teacher)
        put(case, f"loss{k}", loss)
        put(case, f"grad_student{k}", grad)
        put(case, f"center{k}", loss_fn.center)
    meta(case, op="dino_loss", epoch=epoch, batch=batch,
         teacher_temp_at_epoch=float(loss_fn.teacher_temp_schedule[epoch]), **cfg)


# --------------------------------------------------------------------------- BYOL (lucidrains semantics)


def byol_loss_fn(x, y):
    x = F.normalize(x, dim=-1, p=2)
    y = F.normalize(y, dim=-1, p=2)
    return 2 - 2 * (x * y).sum(dim=-1)


def MLP(dim, projection_size, hidden_size=4096):
    return nn.Sequential(
        nn.Linear(dim, hidden_size),
        nn.BatchNorm1d(hidden_size),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_size, projection_size),
    )


class Net(nn.Module):
    """Holds the MLP under the name `net`, as the Rust MlpHead names it."""

    def __init__(self, *args):
        super().__init__()
        self.net = MLP(*args)

    def forward(self, x):
        return self.net(x)


def byol_case(case, zero_row):
    g = gen(case)
    p1 = randn(g, 5, 8).requires_grad_(True)
    p2 = randn(g, 5, 8)
    if zero_row:
        p2[2] = 0.0
    p2.requires_grad_(True)
    z1, z2 = randn(g, 5, 8), randn(g, 5, 8)
    loss_one = byol_loss_fn(p1, z2.detach())
    loss_two = byol_loss_fn(p2, z1.detach())
    loss = (loss_one + loss_two).mean()
    g1, g2 = torch.autograd.grad(loss, [p1, p2])
    for n, t in dict(p1=p1, p2=p2, z1=z1, z2=z2, loss=loss, loss_one=loss_one, grad_p1=g1, grad_p2=g2).items():
        put(case, n, t)
    meta(case, op="byol_loss", zero_row=zero_row)


def byol_mlp_case(case):
    g = gen(case)
    cfg = dict(in_dim=10, hidden_dim=16, out_dim=8)
    m = Net(cfg["in_dim"], cfg["out_dim"], cfg["hidden_dim"]).to(F64)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "net.1.weight":
                p.copy_(uniform(g, *p.shape, low=0.5, high=1.5))
            elif name.endswith("bias"):
                p.copy_(randn(g, *p.shape, scale=0.1))
            else:
                p.copy_(randn(g, *p.shape, scale=0.3))
            put(case, f"param.{name}", p)
    m.train()
    x = randn(g, 6, cfg["in_dim"]).requires_grad_(True)
    out = m(x)
    grad_out = randn(g, *out.shape)
    params = list(m.named_parameters())
    grads = torch.autograd.grad(out, [x] + [p for _, p in params], grad_out)
    put(case, "x", x)
    put(case, "out", out)
    put(case, "grad_out", grad_out)
    put(case, "grad_x", grads[0])
    for (n, _), gr in zip(params, grads[1:]):
        put(case, f"grad.{n}", gr)
    for n, b in m.named_buffers():
        put(case, f"buffer.{n}", b)
    m.eval()
    with torch.no_grad():
        put(case, "out_eval", m(x))
    meta(case, op="byol_mlp", **cfg)


# --------------------------------------------------------------------------- EMA (DINO's update)


def ema_case(case):
    g = gen(case)
    shapes = {"a.weight": (3, 4), "a.bias": (3,), "b.weight": (2, 3)}
    teacher = {n: randn(g, *s) for n, s in shapes.items()}
    student = {n: randn(g, *s) for n, s in shapes.items()}
    for n in shapes:
        put(case, f"teacher.{n}", teacher[n])
        put(case, f"student.{n}", student[n])
    momenta = [0.996, 0.9]
    with torch.no_grad():
        for step, m in enumerate(momenta, 1):
            for n in shapes:
                param_k, param_q = teacher[n], student[n]
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
                put(case, f"out{'' if step == 1 else step}.{n}", param_k)
    meta(case, op="ema", momenta=momenta)


head_case("head3", 3, True)
head_case("head2free", 2, False)
head_case("head1", 1, True)
dino_loss_case("dinoloss_e0", 0)
dino_loss_case("dinoloss_e3", 3)
byol_case("byol", False)
byol_case("byolzero", True)
byol_mlp_case("byolmlp")
ema_case("ema")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="verify the committed file instead of writing")
    args = ap.parse_args()
    data = write_safetensors(TENSORS, META)
    if args.check:
        ok = OUT.exists() and OUT.read_bytes() == data
        print(f"{OUT}: {'up to date' if ok else 'DIFFERS'}")
        sys.exit(0 if ok else 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(TENSORS)} tensors, {len(data)} bytes)")


if __name__ == "__main__":
    main()
