"""Indexing (index_select, gather, scatter_add), joining/splitting and padding."""

import torch
import torch.nn.functional as F

from .core import diff_case, gen, randn


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
