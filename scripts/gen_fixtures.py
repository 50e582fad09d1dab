#!/usr/bin/env python3
"""Reference values for Tessera's tensor ops and their gradients, computed by PyTorch.

How to run
----------
    python -m venv .venv && .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/gen_fixtures.py          # regenerates everything

from the repository root (or from anywhere: paths are relative to this file). It writes
``tests/fixtures/tensor_ops.safetensors``. The output is deterministic: every case draws its
inputs from its own ``torch.Generator`` seeded by a CRC32 of the case name (so adding a case
does not change the others), PyTorch runs on one CPU thread, and the file is written with
sorted keys. Rerunning with the pinned versions must give a byte-identical file;
``--check`` verifies that without writing.

File format
-----------
Plain safetensors (written by ``write_safetensors`` in ``tensor_ops_fixtures/core.py``, no
package needed): an 8-byte
little-endian header length, a JSON header (padded with spaces to a multiple of 8), then the
raw little-endian data of every tensor.

* Tensor keys are ``<case>.<name>``; case names use ``[a-z0-9_]`` only (no dots).
  Common names: inputs as the op names them (``x``, ``a``, ``b``, ``weight``, ``index``...),
  ``out`` (or ``out0``, ``out1``, ... for ops returning a list), extra outputs (``indices``,
  ``mean``, ``var``), and for differentiable cases ``grad_out`` (a random upstream gradient,
  or ``grad_out0``, ... per output) plus ``grad_<input>`` = d(sum(out * grad_out))/d(input)
  from ``torch.autograd.grad``.
* Dtypes: float tensors are ``F64``; every float input is drawn in f64 and rounded to the
  nearest f32, so casting inputs down to f32 is exact and an f32 run of an op only sees its own
  rounding. Indices (argmax, max-pool indices, gather/scatter indices) are ``I64``; boolean
  results and conditions (comparisons, ``where``) are ``U8`` holding 0/1. The ``cast`` cases
  also hold ``F32``, ``F16`` and ``BF16`` tensors (the exact bits PyTorch rounds to).
* Non-tensor parameters: ``__metadata__`` maps each case name to a JSON object (as a string),
  always with ``"op"`` naming the Tessera op family (``unary``, ``binary``, ``compare``,
  ``where``, ``reduce``, ``argmax``, ``argmin``, ``matmul``, ``softmax``, ``log_softmax``,
  ``layer_norm``, ``batch_norm_train``, ``batch_norm_eval``, ``conv2d``, ``max_pool2d``,
  ``avg_pool2d``, ``adaptive_avg_pool2d``, ``index_select``, ``gather``, ``scatter_add``,
  ``cat``, ``stack``, ``split``, ``chunk``, ``pad``, ``interpolate_bicubic``, ``cast``) and the
  op's arguments under PyTorch's names (``axes``, ``keepdim``, ``stride``, ``padding``...;
  pairs are ``[h, w]``). Metadata keys starting with ``_`` describe the file itself.
  ``"grads"`` lists the inputs that have a ``grad_<input>`` tensor.

Layout
------
This file is the entry point; the cases live in the package ``scripts/tensor_ops_fixtures/``,
one module per op family: ``core`` (file writing, ``gen``/``randn``/... input helpers, ``emit``,
``diff_case``), ``elementwise``, ``reductions``, ``images`` and ``indexing``.

Adding a case: add it to the ``*_cases`` function of its family (``diff_case`` or ``emit``),
rerun, and commit the regenerated file; the Rust tests (``tensor/tests/fixtures/``) pick up
every case of a known ``op`` automatically. A new family also goes into ``ALL`` below.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tensor_ops_fixtures.core import META, TENSORS, write_safetensors  # noqa: E402
from tensor_ops_fixtures.elementwise import (  # noqa: E402
    binary_cases, cast_cases, compare_cases, nan_cases, unary_cases, where_cases,
)
from tensor_ops_fixtures.images import conv_cases, interpolate_cases, pool_cases  # noqa: E402
from tensor_ops_fixtures.indexing import concat_cases, index_cases, pad_cases  # noqa: E402
from tensor_ops_fixtures.reductions import (  # noqa: E402
    matmul_cases, norm_cases, reduce_cases, softmax_cases,
)

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures"
FORMAT = "tessera-fixtures-v1"

ALL = [unary_cases, binary_cases, nan_cases, compare_cases, where_cases, reduce_cases, matmul_cases,
       softmax_cases, norm_cases, conv_cases, pool_cases, index_cases, concat_cases,
       pad_cases, interpolate_cases, cast_cases]


def build() -> bytes:
    TENSORS.clear()
    META.clear()
    for f in ALL:
        f()
    meta = dict(META)
    meta["_format"] = FORMAT
    meta["_generator"] = "scripts/gen_fixtures.py"
    meta["_torch"] = torch.__version__.split("+")[0]
    meta["_numpy"] = np.__version__
    return write_safetensors(TENSORS, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the committed file is current")
    args = ap.parse_args()
    data = build()
    path = OUT_DIR / "tensor_ops.safetensors"
    if args.check:
        same = path.exists() and path.read_bytes() == data
        print(f"{path.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"wrote {path.relative_to(ROOT)}: {len(META)} cases, {len(TENSORS)} tensors, "
          f"{len(data)} bytes")


if __name__ == "__main__":
    main()
