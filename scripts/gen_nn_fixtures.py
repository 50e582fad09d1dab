#!/usr/bin/env python3
"""Reference values for tessera-nn: optimizers, gradient clipping and schedules.

Pinned versions (also in scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3.

How to run
----------
    .venv/bin/python scripts/gen_nn_fixtures.py           # writes tests/fixtures/nn_optim.safetensors
    .venv/bin/python scripts/gen_nn_fixtures.py --check   # verifies the committed file

from anywhere (paths are relative to this file). Deterministic: inputs come from a
``torch.Generator`` with a fixed seed, PyTorch runs on one CPU thread, keys are sorted, and the
safetensors file is written by ``scripts/safetensors_out.py`` (no package needed).

Contents (every tensor F64; the Rust tests are nn/tests/optim_fixtures.rs and
nn/tests/schedules.rs, which hard-code the same configurations as ``CASES`` below)
-------------------------------------------------------------------------------------------
* ``init.<p>`` for parameters ``w`` [3, 2], ``b`` [3] and ``z`` [2, 2] (zeros, to exercise the
  zero-norm branch of LARS); ``grad.step<k>.<p>`` for steps k = 1, 2, 3.
* ``<case>.step<k>.<p>``: the parameters after step k of optimizer case ``<case>``. Groups
  list parameter names; the flat order is the groups' names concatenated.
* ``clip.grad.<p>`` (inputs), ``clip_per_param.out.<p>`` / ``clip_per_param.norms`` (DINO's
  ``utils.clip_gradients`` with clip 1.0) and ``clip_global.out.<p>`` /
  ``clip_global.total_norm`` (``torch.nn.utils.clip_grad_norm_`` with max_norm 1.5).
* ``schedule.<name>``: schedule arrays computed with NumPy exactly as DINO's and BYOL's code.
* ``__metadata__``: one JSON string per case with its configuration.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from safetensors_out import safetensors_bytes

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "nn_optim.safetensors"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64

TENSORS = {}
META = {"_format": "tessera-nn-fixtures-v1", "_versions": f"torch {torch.__version__}, numpy {np.__version__}"}


def put(name, value):
    TENSORS[name] = torch.as_tensor(value, dtype=F64).detach().clone().contiguous()


def write_safetensors(tensors, metadata):
    return safetensors_bytes(tensors, metadata, cast=torch.float64)


# --------------------------------------------------------------------------- inputs

NAMES = ["w", "b", "z"]
SHAPES = {"w": (3, 2), "b": (3,), "z": (2, 2)}
gen = torch.Generator().manual_seed(20251129)
INIT = {
    "w": torch.randn(SHAPES["w"], generator=gen, dtype=F64),
    "b": torch.randn(SHAPES["b"], generator=gen, dtype=F64),
    "z": torch.zeros(SHAPES["z"], dtype=F64),
}
GRADS = [{n: torch.randn(SHAPES[n], generator=gen, dtype=F64) for n in NAMES} for _ in range(3)]
for n in NAMES:
    put(f"init.{n}", INIT[n])
    for k, g in enumerate(GRADS, 1):
        put(f"grad.step{k}.{n}", g[n])


# --------------------------------------------------------------------------- BYOL's LARS

class ByolLars(torch.optim.Optimizer):
    """LARS as deepmind-research byol/utils/optimizers.py `lars` (add_weight_decay ->
    scale_by_lars -> scale(-lr)); groups with ``lars_exclude`` skip weight decay and adaptation."""

    def __init__(self, params, lr, weight_decay=0.0, momentum=0.9, eta=1e-3):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta,
                                      lars_exclude=False))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                u = p.grad
                if not group["lars_exclude"]:
                    u = u + group["weight_decay"] * p
                    pn = torch.linalg.vector_norm(p)
                    un = torch.linalg.vector_norm(u)
                    one = torch.ones_like(pn)
                    trust = torch.where(pn > 0, torch.where(un > 0, group["eta"] * pn / un, one), one)
                    u = u * trust
                state = self.state[p]
                buf = state.get("momentum_buffer", torch.zeros_like(p))
                buf = group["momentum"] * buf + u
                state["momentum_buffer"] = buf
                p.add_(buf, alpha=-group["lr"])


# --------------------------------------------------------------------------- optimizer cases

# name -> (constructor, groups [(names, options)], optimizer-wide options)
CASES = {
    "sgd": ("SGD", [(["w", "b", "z"], {})], dict(lr=0.1)),
    "sgd_momentum": ("SGD", [(["w", "z"], dict(lr=0.1, weight_decay=0.01)), (["b"], dict(lr=0.05, weight_decay=0.0))],
                     dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": ("SGD", [(["w", "b", "z"], {})], dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd_dampening": ("SGD", [(["w", "b", "z"], {})], dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.02)),
    "adamw": ("AdamW", [(["w", "z"], dict(weight_decay=0.04)), (["b"], dict(weight_decay=0.0))],
              dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    "adamw_betas": ("AdamW", [(["w", "b", "z"], {})], dict(lr=0.02, betas=(0.3, 0.99), eps=1e-6, weight_decay=0.1)),
    "lars": ("LARS", [(["w", "z"], dict(weight_decay=0.01)), (["b"], dict(weight_decay=0.01, lars_exclude=True))],
             dict(lr=0.2, momentum=0.9, eta=1e-3)),
}


def run_case(name, kind, groups, opts):
    params = {n: torch.nn.Parameter(INIT[n].clone()) for n in NAMES}
    pg = [dict(params=[params[n] for n in names], **o) for names, o in groups]
    opt = {"SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW, "LARS": ByolLars}[kind](pg, **opts)
    for k, grads in enumerate(GRADS, 1):
        for n in NAMES:
            params[n].grad = grads[n].clone()
        opt.step()
        for n in NAMES:
            put(f"{name}.step{k}.{n}", params[n])
    META[name] = json.dumps(dict(optimizer=kind, groups=[dict(names=n, **o) for n, o in groups], **opts),
                            sort_keys=True)


for case, (kind, groups, opts) in CASES.items():
    run_case(case, kind, groups, opts)


# --------------------------------------------------------------------------- clipping

CLIP_GRADS = {n: GRADS[0][n] * (0.1 if n == "z" else 1.0) for n in NAMES}
for n in NAMES:
    put(f"clip.grad.{n}", CLIP_GRADS[n])


def dino_clip_gradients(grads, clip):
    """DINO utils.clip_gradients, on plain gradient tensors."""
    norms, out = [], []
    for g in grads:
        param_norm = g.norm(2)
        norms.append(param_norm.item())
        clip_coef = clip / (param_norm + 1e-6)
        out.append(g * clip_coef if clip_coef < 1 else g.clone())
    return norms, out


norms, clipped = dino_clip_gradients([CLIP_GRADS[n] for n in NAMES], 1.0)
put("clip_per_param.norms", norms)
for n, g in zip(NAMES, clipped):
    put(f"clip_per_param.out.{n}", g)
ps = [torch.nn.Parameter(torch.zeros(SHAPES[n], dtype=F64)) for n in NAMES]
for p, n in zip(ps, NAMES):
    p.grad = CLIP_GRADS[n].clone()
total = torch.nn.utils.clip_grad_norm_(ps, max_norm=1.5)
put("clip_global.total_norm", [total.item()])
for p, n in zip(ps, NAMES):
    put(f"clip_global.out.{n}", p.grad)
META["clip_per_param"] = json.dumps(dict(clip=1.0, order=NAMES))
META["clip_global"] = json.dumps(dict(max_norm=1.5, order=NAMES))


# --------------------------------------------------------------------------- schedules

def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """DINO utils.cosine_scheduler (same NumPy operations, same order)."""
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def teacher_temp(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs):
    """DINOLoss.__init__'s teacher_temp_schedule."""
    return np.concatenate((np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
                           np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))


def byol_target_ema(base_ema, max_steps, steps):
    """BYOL target_ema / _cosine_decay, in float64."""
    k = np.minimum(np.asarray(steps, dtype=np.float64), max_steps)
    decay = 1.0 * (0.5 * (1 + np.cos(np.pi * k / max_steps)))
    return 1.0 - (1.0 - base_ema) * decay


SCHEDULES = {
    "cos_lr": ("cosine", [0.0005 * 64 / 256, 1e-6, 5, 3, 2, 0.0]),
    "cos_wd": ("cosine", [0.04, 0.4, 4, 5, 0, 0.0]),
    "cos_momentum": ("cosine", [0.996, 1.0, 3, 7, 0, 0.0]),
    "cos_warmup_one": ("cosine", [1.0, 0.1, 3, 1, 1, 0.5]),
    "cos_all_warmup": ("cosine", [1.0, 0.0, 2, 3, 2, 0.2]),
    "cos_flat_warmup": ("cosine", [0.3, 0.1, 3, 2, 1, 0.3]),
    "cos_long": ("cosine", [0.7, 0.001, 10, 37, 3, 1e-4]),
    "teacher_temp": ("teacher_temp", [0.04, 0.07, 3, 5]),
    "teacher_temp_dino": ("teacher_temp", [0.04, 0.07, 30, 100]),
    "teacher_temp_none": ("teacher_temp", [0.04, 0.07, 0, 4]),
    "byol_ema": ("byol_ema", [0.996, 10, 13]),
}
for name, (kind, args) in SCHEDULES.items():
    if kind == "cosine":
        a = list(args)
        values = cosine_scheduler(a[0], a[1], a[2], a[3], warmup_epochs=a[4], start_warmup_value=a[5])
    elif kind == "teacher_temp":
        values = teacher_temp(*args)
    else:
        values = byol_target_ema(args[0], args[1], np.arange(args[2]))
    put(f"schedule.{name}", values)
    META[f"schedule.{name}"] = json.dumps(dict(kind=kind, args=args))


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
