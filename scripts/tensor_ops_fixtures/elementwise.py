"""Elementwise cases: unary functions, broadcasting binary ops, NaN propagation, comparisons,
``where`` and dtype casts."""

import math

import torch
import torch.nn.functional as F

from .core import away_from_zero, diff_case, emit, gen, randn, uniform


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
