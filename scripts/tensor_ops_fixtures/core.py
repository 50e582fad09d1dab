"""Writing the safetensors file and building cases: the shared tensor/metadata store, the
per-case generators and input helpers, ``emit`` and ``diff_case``."""

import json
import zlib

import torch

from safetensors_out import safetensors_bytes

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

def write_safetensors(tensors: dict, metadata: dict) -> bytes:
    return safetensors_bytes(tensors, metadata, sort_header_keys=False)


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
