"""Reductions and the ops built on them: reduce, argmax/argmin, matmul, softmax, the norms."""

import torch
import torch.nn.functional as F

from .core import diff_case, emit, gen, randn, uniform


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
