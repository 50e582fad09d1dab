"""NCHW image ops: convolution, pooling and bicubic interpolation."""

import math

import torch.nn.functional as F

from .core import diff_case, gen, randn, uniform


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
