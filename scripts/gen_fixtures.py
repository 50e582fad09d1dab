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
Plain safetensors (written by ``write_safetensors`` below, no package needed): an 8-byte
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

Adding a case: call one of the ``case_*`` helpers at the bottom (or ``emit`` directly), rerun,
and commit the regenerated file; the Rust tests (tensor/tests/fixtures.rs) pick up every case of
a known ``op`` automatically.
"""

import argparse
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures"
FORMAT = "tessera-fixtures-v1"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# ----------------------------------------------------------------------------- file writing

ST_DTYPE = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.uint8: "U8",
    torch.bool: "U8",
}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    np_dtype = {
        torch.float64: "<f8",
        torch.float32: "<f4",
        torch.int64: "<i8",
        torch.uint8: "u1",
    }[t.dtype]
    return t.numpy().astype(np_dtype).tobytes()


def write_safetensors(tensors: dict, metadata: dict) -> bytes:
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for key in sorted(tensors):
        t = tensors[key]
        data = tensor_bytes(t)
        header[key] = {
            "dtype": ST_DTYPE[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


# ----------------------------------------------------------------------------- case building

TENSORS: dict = {}
META: dict = {}


def gen(case: str) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(zlib.crc32(case.encode()))
    return g


def f32_exact(t: torch.Tensor) -> torch.Tensor:
    """Rounds f64 values to the nearest f32 (kept as f64) so that f32 runs see the same input."""
    return t.to(torch.float32).to(torch.float64)


def randn(g, *shape, scale=1.0, shift=0.0):
    return f32_exact(torch.randn(tuple(shape), generator=g, dtype=torch.float64) * scale + shift)


def uniform(g, *shape, low=0.0, high=1.0):
    return f32_exact(torch.rand(tuple(shape), generator=g, dtype=torch.float64) * (high - low) + low)


def away_from_zero(g, *shape, low=0.25, high=2.0):
    """Random values with |x| in [low, high] and a random sign (no kinks of abs/relu hit)."""
    mag = uniform(g, *shape, low=low, high=high)
    sign = torch.randint(0, 2, tuple(shape), generator=g).to(torch.float64) * 2 - 1
    return mag * sign


def emit(case: str, params: dict, tensors: dict):
    assert "." not in case and case not in META, case
    assert "op" in params
    META[case] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    for name, t in tensors.items():
        t = t.detach()
        if t.is_floating_point() and name not in ("out_f32", "out_f16", "out_bf16", "x_f32"):
            t = t.to(torch.float64)
        TENSORS[f"{case}.{name}"] = t


def diff_case(case, params, fn, inputs, grad_inputs=None, g=None, extra=None):
    """Runs `fn(**inputs)`, stores inputs, outputs, a random `grad_out` and input gradients.

    `fn` returns one tensor, a list (stored as out0, out1, ...), or a dict whose "out" entry is
    the differentiated output (other entries are stored as extra outputs).
    """
    g = g or gen(case)
    if grad_inputs is None:
        grad_inputs = [k for k, v in inputs.items() if v is not None and v.is_floating_point()]
    leaves = {}
    for k, v in inputs.items():
        if v is None:
            continue
        v = v.clone()
        if k in grad_inputs:
            v.requires_grad_(True)
        leaves[k] = v
    call_args = {k: leaves.get(k) for k in inputs}
    res = fn(**call_args)
    stored = {k: v for k, v in leaves.items()}
    if isinstance(res, dict):
        outs = {"out": res["out"]}
        for k, v in res.items():
            if k != "out":
                stored[k] = v
        diff_outs = [("out", res["out"])]
    elif isinstance(res, (list, tuple)):
        diff_outs = [(f"out{i}", r) for i, r in enumerate(res)]
        outs = dict(diff_outs)
    else:
        diff_outs = [("out", res)]
        outs = {"out": res}
    stored.update(outs)
    if grad_inputs:
        grads_out = []
        for name, o in diff_outs:
            go = randn(g, *o.shape)
            stored["grad_" + name] = go
            grads_out.append(go)
        gi = torch.autograd.grad(
            [o for _, o in diff_outs], [leaves[k] for k in grad_inputs], grads_out
        )
        for k, v in zip(grad_inputs, gi):
            stored["grad_" + k] = v
    if extra:
        stored.update(extra)
    emit(case, dict(params, grads=list(grad_inputs)), stored)


# ----------------------------------------------------------------------------- cases


def unary_cases():
    def x_default(g):
        return randn(g, 3, 4, scale=1.5)

    def x_pos(g):
        return uniform(g, 3, 4, low=0.1, high=3.0)

    specs = [
        ("neg", x_default, lambda x: -x, {}),
        ("abs", lambda g: away_from_zero(g, 3, 4), torch.abs, {}),
        ("sign", lambda g: away_from_zero(g, 3, 4), torch.sign, {}),
        ("exp", x_default, torch.exp, {}),
        ("log", x_pos, torch.log, {}),
        ("sqrt", x_pos, torch.sqrt, {}),
        ("rsqrt", x_pos, torch.rsqrt, {}),
        ("recip", lambda g: away_from_zero(g, 3, 4), torch.reciprocal, {}),
        ("square", x_default, torch.square, {}),
        ("tanh", x_default, torch.tanh, {}),
        ("erf", x_default, torch.erf, {}),
        ("relu", lambda g: away_from_zero(g, 3, 4), torch.relu, {}),
        ("gelu", lambda g: randn(g, 3, 4, scale=2.0), lambda x: F.gelu(x), {}),
    ]
    for name, make, fn, extra in specs:
        case = f"unary_{name}"
        g = gen(case)
        diff_case(case, {"op": "unary", "fn": name, **extra}, lambda x, fn=fn: fn(x), {"x": make(g)})
    # sigmoid far into both tails (stability), plus ordinary values
    case = "unary_sigmoid"
    g = gen(case)
    x = randn(g, 3, 4, scale=2.0)
    x[0, 0], x[0, 1], x[1, 2], x[2, 3] = -40.0, 40.0, -745.0, 30.0
    diff_case(case, {"op": "unary", "fn": "sigmoid"}, torch.sigmoid, {"x": x})
    # powf: fractional exponents on positive bases, an integer exponent on negative bases
    for name, p, make in [
        ("powf_2_5", 2.5, x_pos),
        ("powf_neg1_5", -1.5, x_pos),
        ("powf_0_5", 0.5, x_pos),
        ("powf_3", 3.0, x_default),
        ("powf_2", 2.0, x_default),
    ]:
        case = f"unary_{name}"
        g = gen(case)
        diff_case(case, {"op": "unary", "fn": "powf", "p": p}, lambda x, p=p: x.pow(p), {"x": make(g)})


def binary_cases():
    fns = {
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "maximum": torch.maximum,
        "minimum": torch.minimum,
        "pow": torch.pow,
    }
    # (suffix, a shape, b shape): same shape, two-sided broadcast, rank mismatch, scalar
    layouts = [
        ("same", (3, 4), (3, 4)),
        ("bcast", (2, 1, 4), (3, 1)),
        ("rank", (2, 3, 4), (4,)),
        ("scalar", (3, 4), ()),
    ]
    for name, fn in fns.items():
        for suffix, sa, sb in layouts:
            case = f"binary_{name}_{suffix}"
            g = gen(case)
            if name == "pow":
                a = uniform(g, *sa, low=0.2, high=2.5)
                b = randn(g, *sb)
            elif name == "div":
                a = randn(g, *sa)
                b = away_from_zero(g, *sb, low=0.5, high=2.0)
            else:
                a = randn(g, *sa)
                b = randn(g, *sb)
            diff_case(case, {"op": "binary", "fn": name}, lambda a, b, fn=fn: fn(a, b), {"a": a, "b": b})


def nan_cases():
    """NaN propagates through maximum/minimum and max/min reductions, as in PyTorch."""
    g = gen("nan_inputs")
    a = randn(g, 3, 4)
    b = randn(g, 3, 4)
    a[0, 1] = float("nan")
    b[2, 2] = float("nan")
    for name, fn in [("maximum", torch.maximum), ("minimum", torch.minimum)]:
        emit(f"binary_{name}_nan", {"op": "binary", "fn": name}, {"a": a, "b": b, "out": fn(a, b)})
    for name in ["max", "min"]:
        out = a.amax(dim=1) if name == "max" else a.amin(dim=1)
        emit(f"reduce_{name}_nan", {"op": "reduce", "fn": name, "axes": [1], "keepdim": False},
             {"x": a, "out": out})


def compare_cases():
    grid = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64)
    for name in ["eq", "ne", "lt", "le", "gt", "ge"]:
        for suffix, sa, sb in [("bcast", (3, 4), (4,)), ("same", (2, 5), (2, 5))]:
            case = f"compare_{name}_{suffix}"
            g = gen(case)
            a = grid[torch.randint(0, 5, sa, generator=g)]
            b = grid[torch.randint(0, 5, sb, generator=g)]
            out = getattr(torch, name)(a, b)
            emit(case, {"op": "compare", "fn": name}, {"a": a, "b": b, "out": out})


def where_cases():
    for suffix, sc, sa, sb in [("bcast", (3, 1), (3, 4), (4,)), ("same", (2, 3), (2, 3), (2, 3))]:
        case = f"where_{suffix}"
        g = gen(case)
        cond = torch.randint(0, 2, sc, generator=g).to(torch.bool)
        diff_case(
            case,
            {"op": "where"},
            lambda cond, a, b: torch.where(cond, a, b),
            {"cond": cond, "a": randn(g, *sa), "b": randn(g, *sb)},
            grad_inputs=["a", "b"],
        )


def reduce_cases():
    axis_sets = [("all", []), ("ax1", [1]), ("ax02", [0, 2]), ("neg", [-1])]
    for fn in ["sum", "mean", "max", "min", "var", "var_biased"]:
        for sname, axes in axis_sets:
            for keepdim in [False, True]:
                case = f"reduce_{fn}_{sname}_{'keep' if keepdim else 'drop'}"
                g = gen(case)
                x = randn(g, 2, 3, 4)
                dims = axes if axes else list(range(3))
                if fn == "sum":
                    f = lambda x: x.sum(dim=dims, keepdim=keepdim)  # noqa: E731
                elif fn == "mean":
                    f = lambda x: x.mean(dim=dims, keepdim=keepdim)  # noqa: E731
                elif fn == "max":
                    f = lambda x: x.amax(dim=dims, keepdim=keepdim)  # noqa: E731
                elif fn == "min":
                    f = lambda x: x.amin(dim=dims, keepdim=keepdim)  # noqa: E731
                else:
                    corr = 1 if fn == "var" else 0
                    f = lambda x, c=corr: x.var(dim=dims, correction=c, keepdim=keepdim)  # noqa: E731
                params = {"op": "reduce", "fn": "var" if fn.startswith("var") else fn,
                          "axes": axes, "keepdim": keepdim}
                if fn.startswith("var"):
                    params["correction"] = 1 if fn == "var" else 0
                diff_case(case, params, f, {"x": x})
    for fn in ["sum", "max", "var"]:
        case = f"reduce_{fn}_4d_ax13"
        g = gen(case)
        params = {"op": "reduce", "fn": fn, "axes": [1, 3], "keepdim": True}
        if fn == "var":
            params["correction"] = 1
        f = {"sum": lambda x: x.sum(dim=[1, 3], keepdim=True),
             "max": lambda x: x.amax(dim=[1, 3], keepdim=True),
             "var": lambda x: x.var(dim=[1, 3], keepdim=True)}[fn]
        diff_case(case, params, f, {"x": randn(g, 2, 3, 2, 4)})
    for op in ["argmax", "argmin"]:
        for axis in [0, 1, -1]:
            for keepdim in [False, True]:
                case = f"{op}_ax{axis if axis >= 0 else 'm1'}_{'keep' if keepdim else 'drop'}"
                g = gen(case)
                x = randn(g, 3, 4, 5)
                out = getattr(torch, op)(x, dim=axis, keepdim=keepdim)
                emit(case, {"op": op, "axis": axis, "keepdim": keepdim}, {"x": x, "out": out})
        # ties: the first extremum wins
        case = f"{op}_ties"
        g = gen(case)
        x = torch.randint(0, 3, (4, 6), generator=g).to(torch.float64)
        out = getattr(torch, op)(x, dim=1)
        emit(case, {"op": op, "axis": 1, "keepdim": False}, {"x": x, "out": out})


def matmul_cases():
    for name, sa, sb in [
        ("2d", (3, 4), (4, 5)),
        ("batched", (2, 3, 4), (2, 4, 5)),
        ("bcast_batch", (2, 1, 3, 4), (3, 4, 5)),
        ("bcast_rank", (4, 3), (2, 3, 3, 2)),
        ("vec_mat", (4,), (4, 5)),
        ("mat_vec", (3, 4), (4,)),
        ("batched_vec", (2, 3, 4), (4,)),
    ]:
        case = f"matmul_{name}"
        g = gen(case)
        diff_case(case, {"op": "matmul"}, lambda a, b: torch.matmul(a, b), {"a": randn(g, *sa), "b": randn(g, *sb)},
                  grad_inputs=["a", "b"])


def softmax_cases():
    for op, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
        for name, shape, axis, shift in [
            ("lastdim", (2, 3, 5), -1, 0.0),
            ("dim1", (2, 3, 5), 1, 0.0),
            ("dim0", (4, 3), 0, 0.0),
            ("large", (3, 6), -1, 1000.0),  # overflows without subtracting the max
        ]:
            case = f"{op}_{name}"
            g = gen(case)
            x = randn(g, *shape, scale=2.0, shift=shift)
            diff_case(case, {"op": op, "axis": axis}, lambda x, fn=fn, a=axis: fn(x, dim=a), {"x": x})
    # attention-style masking: -inf entries get probability 0
    case = "softmax_masked"
    g = gen(case)
    x = randn(g, 3, 5)
    x[0, 1] = x[1, 0] = x[1, 4] = x[2, 2] = float("-inf")
    diff_case(case, {"op": "softmax", "axis": -1}, lambda x: F.softmax(x, dim=-1), {"x": x})


def norm_cases():
    for name, shape, nshape, affine, eps in [
        ("affine", (2, 3, 8), (8,), True, 1e-6),
        ("two_dims", (2, 3, 8), (3, 8), False, 1e-5),
        ("rank2", (5, 6), (6,), True, 1e-5),
    ]:
        case = f"layer_norm_{name}"
        g = gen(case)
        inputs = {"x": randn(g, *shape, scale=2.0, shift=0.5)}
        if affine:
            inputs["weight"] = randn(g, *nshape, scale=0.5, shift=1.0)
            inputs["bias"] = randn(g, *nshape, scale=0.5)
        diff_case(
            case,
            {"op": "layer_norm", "normalized_shape": list(nshape), "eps": eps},
            lambda x, weight=None, bias=None, ns=nshape, e=eps: F.layer_norm(x, ns, weight, bias, e),
            inputs,
        )
    for name, shape, affine in [("4d", (4, 3, 3, 3), True), ("2d", (6, 4), True), ("noaffine", (3, 2, 5), False)]:
        case = f"batch_norm_train_{name}"
        g = gen(case)
        c = shape[1]
        inputs = {"x": randn(g, *shape, scale=2.0, shift=0.5)}
        if affine:
            inputs["weight"] = randn(g, c, scale=0.5, shift=1.0)
            inputs["bias"] = randn(g, c, scale=0.5)
        eps = 1e-5
        axes = [0] + list(range(2, len(shape)))

        def bn(x, weight=None, bias=None, axes=axes, eps=eps):
            out = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
            return {
                "out": out,
                "mean": x.detach().mean(dim=axes),
                "var": x.detach().var(dim=axes, correction=0),
                "var_unbiased": x.detach().var(dim=axes, correction=1),
            }

        diff_case(case, {"op": "batch_norm_train", "eps": eps}, bn, inputs)
    for name, shape, affine in [("4d", (2, 3, 4, 4), True), ("2d", (5, 4), False)]:
        case = f"batch_norm_eval_{name}"
        g = gen(case)
        c = shape[1]
        inputs = {
            "x": randn(g, *shape, scale=2.0),
            "running_mean": randn(g, c, scale=0.5),
            "running_var": uniform(g, c, low=0.5, high=2.0),
        }
        if affine:
            inputs["weight"] = randn(g, c, scale=0.5, shift=1.0)
            inputs["bias"] = randn(g, c, scale=0.5)
        eps = 1e-5
        diff_case(
            case,
            {"op": "batch_norm_eval", "eps": eps},
            lambda x, running_mean, running_var, weight=None, bias=None: F.batch_norm(
                x, running_mean, running_var, weight, bias, training=False, eps=eps
            ),
            inputs,
            grad_inputs=[k for k in ["x", "weight", "bias"] if k in inputs],
        )


def conv_cases():
    for name, xs, ws, bias, stride, padding, dilation, groups in [
        ("basic", (2, 3, 7, 7), (4, 3, 3, 3), True, (1, 1), (0, 0), (1, 1), 1),
        ("stride_pad", (2, 3, 8, 7), (5, 3, 3, 2), False, (2, 1), (1, 2), (1, 1), 1),
        ("dilation", (1, 2, 9, 9), (3, 2, 3, 3), True, (1, 1), (2, 2), (2, 2), 1),
        ("dilation_stride", (1, 2, 10, 9), (2, 2, 2, 3), False, (3, 2), (1, 0), (3, 2), 1),
        ("groups", (2, 4, 6, 6), (6, 2, 3, 3), True, (2, 2), (1, 1), (1, 1), 2),
        ("depthwise", (2, 3, 6, 6), (3, 1, 3, 3), True, (1, 1), (1, 1), (1, 1), 3),
        ("depthwise_mult", (1, 3, 5, 6), (6, 1, 3, 3), False, (2, 1), (1, 1), (1, 1), 3),
        ("patch_embed", (2, 3, 8, 8), (4, 3, 4, 4), True, (4, 4), (0, 0), (1, 1), 1),
        ("pointwise", (2, 5, 3, 4), (3, 5, 1, 1), True, (1, 1), (0, 0), (1, 1), 1),
    ]:
        case = f"conv2d_{name}"
        g = gen(case)
        inputs = {"x": randn(g, *xs), "weight": randn(g, *ws, scale=0.5)}
        if bias:
            inputs["bias"] = randn(g, ws[0], scale=0.5)
        diff_case(
            case,
            {"op": "conv2d", "stride": list(stride), "padding": list(padding),
             "dilation": list(dilation), "groups": groups},
            lambda x, weight, bias=None, s=stride, p=padding, d=dilation, gr=groups: F.conv2d(
                x, weight, bias, stride=s, padding=p, dilation=d, groups=gr
            ),
            inputs,
        )


def pool_cases():
    for name, xs, k, s, p, d in [
        ("stem", (2, 3, 7, 7), (3, 3), (2, 2), (1, 1), (1, 1)),
        ("k2s2", (1, 2, 6, 5), (2, 2), (2, 2), (0, 0), (1, 1)),
        ("rect", (2, 2, 7, 6), (3, 2), (2, 1), (1, 1), (1, 1)),
        ("dilation", (1, 2, 7, 7), (3, 3), (1, 1), (1, 1), (2, 2)),
        ("negative", (1, 2, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),  # padding is -inf, not 0
    ]:
        case = f"max_pool2d_{name}"
        g = gen(case)
        x = randn(g, *xs)
        if name == "negative":
            x = -uniform(g, *xs, low=0.5, high=2.0)

        def mp(x, k=k, s=s, p=p, d=d):
            out, idx = F.max_pool2d(x, k, s, p, d, return_indices=True)
            return {"out": out, "indices": idx}

        diff_case(case, {"op": "max_pool2d", "kernel": list(k), "stride": list(s),
                         "padding": list(p), "dilation": list(d)}, mp, {"x": x})
    for name, xs, k, s, p, cip in [
        ("pad_count", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), True),
        ("pad_nocount", (2, 2, 7, 7), (3, 3), (2, 2), (1, 1), False),
        ("k2s2", (1, 3, 6, 6), (2, 2), (2, 2), (0, 0), True),
        ("rect_nocount", (1, 2, 6, 7), (3, 2), (2, 1), (1, 1), False),
        ("rect_count", (1, 2, 6, 7), (3, 2), (2, 1), (1, 1), True),
    ]:
        case = f"avg_pool2d_{name}"
        g = gen(case)
        diff_case(
            case,
            {"op": "avg_pool2d", "kernel": list(k), "stride": list(s), "padding": list(p),
             "count_include_pad": cip},
            lambda x, k=k, s=s, p=p, c=cip: F.avg_pool2d(x, k, s, p, count_include_pad=c),
            {"x": randn(g, *xs)},
        )
    for name, xs, o in [
        ("7to3", (2, 3, 7, 7), (3, 3)),
        ("5x6to3x4", (1, 2, 5, 6), (3, 4)),
        ("global", (2, 4, 5, 5), (1, 1)),
        ("upsample", (1, 1, 3, 2), (5, 4)),
    ]:
        case = f"adaptive_avg_pool2d_{name}"
        g = gen(case)
        diff_case(
            case,
            {"op": "adaptive_avg_pool2d", "output_size": list(o)},
            lambda x, o=o: F.adaptive_avg_pool2d(x, o),
            {"x": randn(g, *xs)},
        )


def index_cases():
    for name, xs, axis, idx in [
        ("ax0", (4, 5), 0, [3, 0, 3, 1]),
        ("ax1", (2, 5, 3), 1, [4, 4, 0]),
        ("last", (3, 4), -1, [2, 0, 1, 2, 3]),
    ]:
        case = f"index_select_{name}"
        g = gen(case)
        diff_case(
            case,
            {"op": "index_select", "axis": axis},
            lambda x, index, a=axis: torch.index_select(x, a, index),
            {"x": randn(g, *xs), "index": torch.tensor(idx, dtype=torch.int64)},
        )
    for name, xs, axis, ishape in [
        ("ax1", (3, 4), 1, (3, 2)),
        ("ax0", (3, 4), 0, (2, 4)),
        ("3d_smaller", (2, 5, 3), 1, (2, 7, 2)),
    ]:
        case = f"gather_{name}"
        g = gen(case)
        index = torch.randint(0, xs[axis], ishape, generator=g)
        diff_case(
            case,
            {"op": "gather", "axis": axis},
            lambda x, index, a=axis: torch.gather(x, a, index),
            {"x": randn(g, *xs), "index": index},
        )
    for name, xs, axis, ishape in [
        ("ax1", (3, 5), 1, (3, 4)),
        ("ax0", (4, 3), 0, (6, 3)),
        ("3d_smaller", (2, 4, 3), -1, (2, 3, 5)),
    ]:
        case = f"scatter_add_{name}"
        g = gen(case)
        index = torch.randint(0, xs[axis], ishape, generator=g)
        diff_case(
            case,
            {"op": "scatter_add", "axis": axis},
            lambda x, index, src, a=axis: x.scatter_add(a, index, src),
            {"x": randn(g, *xs), "index": index, "src": randn(g, *ishape)},
        )


def concat_cases():
    for name, shapes, axis in [
        ("ax1", [(2, 3), (2, 1), (2, 4)], 1),
        ("ax0_3d", [(1, 2, 3), (3, 2, 3)], 0),
        ("neg", [(2, 2, 3), (2, 2, 1)], -1),
    ]:
        case = f"cat_{name}"
        g = gen(case)
        inputs = {f"x{i}": randn(g, *s) for i, s in enumerate(shapes)}
        diff_case(case, {"op": "cat", "axis": axis, "n": len(shapes)},
                  lambda a=axis, **xs: torch.cat([xs[f"x{i}"] for i in range(len(xs))], dim=a),
                  inputs)
    for name, shape, n, axis in [("ax0", (2, 3), 3, 0), ("ax1", (2, 3), 2, 1), ("last", (2, 3), 2, -1)]:
        case = f"stack_{name}"
        g = gen(case)
        inputs = {f"x{i}": randn(g, *shape) for i in range(n)}
        diff_case(case, {"op": "stack", "axis": axis, "n": n},
                  lambda a=axis, **xs: torch.stack([xs[f"x{i}"] for i in range(len(xs))], dim=a),
                  inputs)
    for name, shape, arg, axis in [
        ("size", (7, 4), 3, 0),
        ("size_exact", (2, 6), 2, 1),
        ("sizes", (3, 4), [1, 3], -1),
        ("sizes_zero", (5, 2), [2, 0, 3], 0),
    ]:
        case = f"split_{name}"
        g = gen(case)
        x = randn(g, *shape)
        n = len(torch.split(x, arg, dim=axis))
        key = "sizes" if isinstance(arg, list) else "size"
        diff_case(case, {"op": "split", key: arg, "axis": axis, "n": n},
                  lambda x, s=arg, a=axis: list(torch.split(x, s, dim=a)), {"x": x})
    for name, shape, chunks, axis in [
        ("uneven", (7, 4), 3, 0),
        ("even", (2, 6), 3, 1),
        ("fewer", (2, 6), 4, -1),  # torch returns 3 chunks of 2, not 4
    ]:
        case = f"chunk_{name}"
        g = gen(case)
        x = randn(g, *shape)
        n = len(torch.chunk(x, chunks, dim=axis))
        diff_case(case, {"op": "chunk", "chunks": chunks, "axis": axis, "n": n},
                  lambda x, c=chunks, a=axis: list(torch.chunk(x, c, dim=a)), {"x": x})


def pad_cases():
    for name, shape, pads, value in [
        ("last", (2, 3, 4), [1, 2], 0.0),
        ("last2", (2, 3, 4), [1, 0, 2, 1], -1.5),
        ("three", (2, 3, 2), [0, 1, 1, 0, 2, 2], 0.25),
        ("nchw", (1, 2, 3, 3), [1, 1, 1, 1], 0.0),
    ]:
        case = f"pad_{name}"
        g = gen(case)
        diff_case(case, {"op": "pad", "pads": pads, "value": value},
                  lambda x, p=pads, v=value: F.pad(x, p, value=v), {"x": randn(g, *shape)})


def interpolate_cases():
    # DINO's interpolate_pos_encoding: a 14x14 grid of patch embeddings resized for a 6x6 grid
    # with scale_factor = (6 + 0.1) / 14 on both axes (output 6x6, but the coordinate mapping
    # uses 14 / 6.1, not 14 / 6).
    dino = (6 + 0.1) / math.sqrt(196)
    for name, xs, size, scale, ac in [
        ("dino_scale", (1, 8, 14, 14), None, (dino, dino), False),
        ("dino_scale_rect", (1, 4, 14, 14), None, ((5 + 0.1) / 14, (9 + 0.1) / 14), False),
        ("scale_up", (2, 1, 4, 4), None, (2.5, 1.5), False),
        ("size", (1, 2, 5, 7), (9, 4), None, False),
        ("size_down", (1, 2, 8, 8), (3, 5), None, False),
        ("align_corners", (1, 2, 5, 5), (8, 3), None, True),
        ("align_corners_scale", (1, 1, 4, 5), None, (1.75, 0.6), True),
        ("to_one", (1, 1, 4, 4), (1, 2), None, False),
    ]:
        case = f"interpolate_bicubic_{name}"
        g = gen(case)
        params = {"op": "interpolate_bicubic", "align_corners": ac}
        if size is not None:
            params["size"] = list(size)
        else:
            params["scale_factor"] = list(scale)
        diff_case(
            case,
            params,
            lambda x, sz=size, sc=scale, a=ac: F.interpolate(
                x, size=sz, scale_factor=sc, mode="bicubic", align_corners=a
            ),
            {"x": randn(g, *xs)},
        )


def cast_cases():
    g = gen("cast_values")
    special = [
        0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3, 65504.0, 65519.99, 65520.0, 1e5, -1e5, 1e-8, 6e-8,
        5.960464477539063e-08, 2.9802322387695312e-08, 3e-5, 1e-40, 1e-46, 3.4e38, 3.5e38,
        1e39, -1e39, 1.0 + 2.0**-11, 1.0 + 2.0**-11 + 2.0**-30, 1.0 + 3 * 2.0**-11,
        1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-8 + 2.0**-40, 1.0 + 2.0**-24,
        1.0 + 3 * 2.0**-24, 1.0 + 2.0**-24 + 2.0**-50, math.pi, -math.e, 123456.789,
        float("inf"), float("-inf"), 2.0**-126, 2.0**-149, 2.0**-150, 2.0**-150 * 1.0000001,
    ]
    x = torch.cat([torch.tensor(special, dtype=torch.float64),
                   torch.randn(24, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(
                       -6, 6, (24,), generator=g).to(torch.float64)])
    x = x.reshape(8, 8)
    emit("cast_f64", {"op": "cast"}, {
        "x": x,
        "out_f32": x.to(torch.float32),
        "out_f16": x.to(torch.float16),
        "out_bf16": x.to(torch.bfloat16),
    })
    # The same values from an f32 tensor (double rounding differs from f64 -> f16 directly).
    x32 = x.to(torch.float32)
    emit("cast_f32", {"op": "cast"}, {
        "x_f32": x32,
        "out_f16": x32.to(torch.float16),
        "out_bf16": x32.to(torch.bfloat16),
    })


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
