#!/usr/bin/env python3
"""Reference values for the tanh-approximate GELU (``F.gelu(x, approximate="tanh")``) and its
gradient, computed by PyTorch.

How to run (same pinned versions as the other fixtures, ``scripts/requirements-fixtures.txt``)
--------------------------------------------------------------------------------------------
    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/gen_gelu_tanh_fixtures.py          # writes the file
    .venv/bin/python scripts/gen_gelu_tanh_fixtures.py --check  # verifies it is current

It writes ``tests/fixtures/gelu_tanh.safetensors`` in exactly the format of
``tensor_ops.safetensors`` (see ``scripts/gen_fixtures.py``; ``op`` ``"unary"``, ``fn``
``"gelu_tanh"``), using the same helpers (``tensor_ops_fixtures/core.py``: per-case CRC32
seeds, f32-exact f64 inputs, ``grad_out`` / ``grad_x``).

Why a separate file: regenerating ``tensor_ops.safetensors`` with torch 2.9.1 on a different
CPU changes the last bits of some unrelated cases (conv2d, matmul, exp...), so the tanh-GELU
cases live here and the committed ``tensor_ops.safetensors`` stays as it is.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tensor_ops_fixtures.core import META, TENSORS, diff_case, f32_exact, gen, randn, write_safetensors  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PATH = ROOT / "tests" / "fixtures" / "gelu_tanh.safetensors"
FORMAT = "tessera-fixtures-v1"


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")


def cases():
    params = {"op": "unary", "fn": "gelu_tanh"}
    # ordinary values, as the exact GELU's `unary_gelu` case
    case = "unary_gelu_tanh"
    diff_case(case, params, gelu_tanh, {"x": randn(gen(case), 3, 4, scale=2.0)})
    # a wider sweep: both tails (where tanh saturates), zero and small values
    case = "unary_gelu_tanh_wide"
    x = torch.linspace(-9.0, 9.0, 24, dtype=torch.float64).reshape(4, 6)
    x[0, 0], x[0, 1], x[3, 5] = 0.0, -1e-3, 30.0
    diff_case(case, params, gelu_tanh, {"x": f32_exact(x)})
    # large batch-like input of moderate values
    case = "unary_gelu_tanh_batch"
    diff_case(case, params, gelu_tanh, {"x": randn(gen(case), 2, 3, 5, scale=1.0, shift=-0.5)})


def build() -> bytes:
    TENSORS.clear()
    META.clear()
    cases()
    meta = dict(META)
    meta["_format"] = FORMAT
    meta["_generator"] = "scripts/gen_gelu_tanh_fixtures.py"
    meta["_torch"] = torch.__version__.split("+")[0]
    meta["_numpy"] = np.__version__
    return write_safetensors(TENSORS, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the committed file is current")
    args = ap.parse_args()
    data = build()
    if args.check:
        same = PATH.exists() and PATH.read_bytes() == data
        print(f"{PATH.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    PATH.write_bytes(data)
    print(f"wrote {PATH.relative_to(ROOT)}: {len(META)} cases, {len(TENSORS)} tensors, {len(data)} bytes")


if __name__ == "__main__":
    main()
