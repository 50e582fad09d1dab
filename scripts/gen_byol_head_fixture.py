#!/usr/bin/env python3
"""Reference values for tessera-ssl's BYOL MLP head in DeepMind's official layout: the last
Linear has no bias (``MLP`` in ``byol/utils/networks.py``: ``hk.Linear(hidden)`` with bias,
``hk.BatchNorm``, ReLU, ``hk.Linear(output, with_bias=False)``), written as the PyTorch
``nn.Sequential(Linear(in, hidden), BatchNorm1d(hidden), ReLU, Linear(hidden, out,
bias=False))`` that ``MlpHead`` (ssl/src/byol/heads.rs, ``last_bias: false``) mirrors.

Pinned versions (also in scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3.

How to run
----------
    /work/venv-parity/bin/python scripts/gen_byol_head_fixture.py          # writes the file
    /work/venv-parity/bin/python scripts/gen_byol_head_fixture.py --check  # verifies it

(any Python with those versions; paths are relative to this file). Deterministic: the case
draws from a ``torch.Generator`` seeded with the CRC32 of its name, PyTorch runs on one CPU
thread, and the safetensors file (``tests/fixtures/ssl_byol_head.safetensors``) is written
with sorted keys by ``scripts/safetensors_out.py`` (no package needed).

Contents
--------
One case, ``byolhead`` (in 6, hidden 8, out 4, batch 5), in F64 (``num_batches_tracked``
is I64); keys are ``byolhead.<name>``; ``__metadata__`` holds the case's configuration as
JSON plus ``_format`` and ``_versions``. Every random value is rounded to the nearest f32
first. The Rust side is ssl/tests/byol_head_fixture.rs.

* ``param.<name>``: the parameters under the names of the Rust head, ``net.0.weight``
  [8, 6], ``net.0.bias`` [8], ``net.1.weight`` / ``net.1.bias`` [8], ``net.3.weight`` [4, 8]
  and no ``net.3.bias``.
* ``buffer0.<name>``: the BatchNorm buffers before the forward (``net.1.running_mean``,
  ``net.1.running_var``, ``net.1.num_batches_tracked`` = 3), not PyTorch's defaults, so the
  running-stat update is checked from a non-trivial state. ``param.*`` plus ``buffer0.*`` is
  the complete state dict a strict load needs.
* ``x`` [5, 6]: the input; ``out`` [5, 4]: the training-mode output; ``loss_w`` [5, 4]:
  fixed random weights; ``loss`` = ``sum(out * loss_w)``; ``grad_x`` and ``grad.<name>``:
  its gradients w.r.t. the input and every parameter.
* ``buffer.<name>``: the BatchNorm buffers after that forward (momentum 0.1, unbiased
  batch variance, ``num_batches_tracked`` = 4); ``out_eval``: the eval-mode output with them.
* ``lucidrains_bias`` [4]: a random last-layer bias and ``out_lucidrains``: the
  training-mode output of the same head with it (lucidrains' ``byol-pytorch`` layout, from
  the same ``buffer0`` state), i.e. ``out + lucidrains_bias``, which the test uses to show that a
  bias would be caught.
"""

import argparse
import copy
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from safetensors_out import safetensors_bytes
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "ssl_byol_head.safetensors"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
F64 = torch.float64

TENSORS = {}
META = {
    "_format": "tessera-ssl-byol-head-fixture-v1",
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


class Net(nn.Module):
    """DeepMind's BYOL ``MLP`` as a PyTorch Sequential held under ``net`` (the Rust names)."""

    def __init__(self, in_dim, hidden_dim, out_dim, last_bias=False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),  # eps 1e-5, momentum 0.1
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim, bias=last_bias),
        )

    def forward(self, x):
        return self.net(x)


def byol_head_case(case):
    g = gen(case)
    cfg = dict(in_dim=6, hidden_dim=8, out_dim=4, batch=5, eps=1e-5, momentum=0.1, last_bias=False)
    m = Net(cfg["in_dim"], cfg["hidden_dim"], cfg["out_dim"]).to(F64)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["net.0.weight", "net.0.bias", "net.1.weight", "net.1.bias", "net.3.weight"], names
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name == "net.1.weight":
                p.copy_(uniform(g, *p.shape, low=0.5, high=1.5))
            elif name.endswith("bias"):
                p.copy_(randn(g, *p.shape, scale=0.1))
            else:
                p.copy_(randn(g, *p.shape, scale=0.4))
            put(case, f"param.{name}", p)
        bn = m.net[1]
        bn.running_mean.copy_(randn(g, cfg["hidden_dim"], scale=0.2))
        bn.running_var.copy_(uniform(g, cfg["hidden_dim"], low=0.5, high=2.0))
        bn.num_batches_tracked.fill_(3)
    for n, b in m.named_buffers():
        put(case, f"buffer0.{n}", b)
    # The lucidrains variant: the same head plus a last-layer bias, from the same state.
    bias = randn(g, cfg["out_dim"], scale=0.5)
    luc = Net(cfg["in_dim"], cfg["hidden_dim"], cfg["out_dim"], last_bias=True).to(F64)
    luc.load_state_dict({**copy.deepcopy(m.state_dict()), "net.3.bias": bias})

    m.train()
    x = randn(g, cfg["batch"], cfg["in_dim"]).requires_grad_(True)
    loss_w = randn(g, cfg["batch"], cfg["out_dim"])
    out = m(x)
    loss = (out * loss_w).sum()
    params = list(m.named_parameters())
    grads = torch.autograd.grad(loss, [x] + [p for _, p in params])
    put(case, "x", x)
    put(case, "out", out)
    put(case, "loss_w", loss_w)
    put(case, "loss", loss)
    put(case, "grad_x", grads[0])
    for (n, _), gr in zip(params, grads[1:]):
        put(case, f"grad.{n}", gr)
    for n, b in m.named_buffers():
        put(case, f"buffer.{n}", b)
    assert int(m.net[1].num_batches_tracked) == 4
    m.eval()
    with torch.no_grad():
        put(case, "out_eval", m(x))

    luc.train()
    with torch.no_grad():
        out_luc = luc(x)
    assert torch.allclose(out_luc, out + bias, rtol=0, atol=1e-14)
    put(case, "lucidrains_bias", bias)
    put(case, "out_lucidrains", out_luc)
    meta(case, op="byol_head", **cfg)


byol_head_case("byolhead")


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
