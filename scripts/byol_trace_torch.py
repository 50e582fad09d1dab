"""Replays a `--trace` of `cargo run --example byol_resnet50` in PyTorch, step by step.

The trace (src/run/trace.rs) holds Tessera's initial trainer state, every view it trained on and
its loss, learning rate and EMA rate per step. This script builds the same networks (torchvision's ResNet names,
so Tessera's state dict loads strictly), trains on the same views with the same learning and EMA
rates, and prints, every `--every` steps, both losses and their difference; at the end it
compares every tensor of the final state. Identical steps agree to float rounding, which grows
slowly over many steps; a step that differs shows as a loss gap that opens at once.

    cargo run --release --example byol_resnet50 -- --trace /tmp/byol_trace --epochs 2
    /work/venv-parity/bin/python scripts/byol_trace_torch.py /tmp/byol_trace [--f64]

It replays the default `small` preset's step (SGD with momentum 0.9 and weight decay 5e-4 on
weights only; `--weight-decay` for another value).

Pinned: Python 3, torch 2.9.1 (CPU build), numpy 2.1.3 (the /work/venv-parity environment).
"""

import argparse
import json
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from byol_torch_reference import SmallResNet, mlp, regression

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    raw = Path(path).read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        a, b = h["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=DTYPES[h["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(h["shape"]).copy())
    return out


def build(sd, prefix, with_predictor):
    """The reference's networks with the state of `prefix` (its heads are `nn.Sequential`s,
    Tessera's are named `net.*` after DeepMind's `MLP`)."""
    width = sd[prefix + "backbone.conv1.weight"].shape[0]
    in_ch = sd[prefix + "backbone.conv1.weight"].shape[1]
    hidden, dim = sd[prefix + "projector.net.0.weight"].shape[0], width * 8
    proj = sd[prefix + "projector.net.3.weight"].shape[0]
    m = nn.ModuleDict(dict(backbone=SmallResNet(width, in_ch), projector=mlp(dim, hidden, proj)))
    if with_predictor:
        m["predictor"] = mlp(proj, hidden, proj)
    own = {k[len(prefix) :].replace(".net.", "."): v for k, v in sd.items() if k.startswith(prefix)}
    m.load_state_dict(own, strict=True)
    return m


def read_steps(trace):
    """steps.tsv as a list of {column: float}."""
    lines = (trace / "steps.tsv").read_text().splitlines()
    names = lines[0].split("\t")
    return [dict(zip(names, map(float, l.split("\t")))) for l in lines[1:]]


def report_final(mine, final):
    """Prints the tensors of `mine` furthest (relative L2) from Tessera's `final`."""
    worst = []
    for name, t in mine.items():
        if name not in final or t.dtype == torch.int64:
            continue
        ref = final[name].to(torch.float64)
        t = t.to(torch.float64).reshape(ref.shape)
        d = (t - ref).norm() / ref.norm().clamp_min(1e-12)
        worst.append((d.item(), name, ref.norm().item(), t.norm().item()))
    worst.sort(reverse=True)
    print("final state, largest relative differences (|tessera|, |torch|):")
    for d, name, rn, tn in worst[:8]:
        print(f"  {d:.3e}  {name}  {rn:.4f}  {tn:.4f}")
    print(f"  median over {len(worst)} tensors: {np.median([w[0] for w in worst]):.3e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--f64", action="store_true", help="replay in float64")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128, help="the trace's batch size")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dt = torch.float64 if a.f64 else torch.float32
    init = read_safetensors(a.trace / "init.safetensors")
    online = build(init, "online.", True).to(dt)
    target = build(init, "target.", False).to(dt)
    for q in target.parameters():
        q.requires_grad = False
    rows = read_steps(a.trace)
    losses = [r["loss"] for r in rows]
    lrs = [r["lr"] for r in rows]
    taus = [r["tau"] for r in rows]
    c = init["online.backbone.conv1.weight"].shape[1]
    views = np.memmap(a.trace / "inputs.f32", dtype=np.float32, mode="r")
    # Each step holds 2 views of `batch` square images.
    hw = int(round((views.size / (len(rows) * 2 * a.batch * c)) ** 0.5))
    views = views.reshape(len(rows), 2, a.batch, c, hw, hw)
    decay = [q for _, q in online.named_parameters() if q.ndim > 1]
    no_decay = [q for _, q in online.named_parameters() if q.ndim <= 1]
    opt = torch.optim.SGD(
        [dict(params=decay, weight_decay=a.weight_decay), dict(params=no_decay, weight_decay=0.0)],
        lr=0.0,
        momentum=0.9,
    )
    print("step  tessera_loss  torch_loss  diff")
    for k in range(len(rows)):
        v1 = torch.from_numpy(np.array(views[k, 0])).to(dt)
        v2 = torch.from_numpy(np.array(views[k, 1])).to(dt)
        for g in opt.param_groups:
            g["lr"] = lrs[k]
        p1 = online["predictor"](online["projector"](online["backbone"](v1)))
        p2 = online["predictor"](online["projector"](online["backbone"](v2)))
        with torch.no_grad():
            z1 = target["projector"](target["backbone"](v1))
            z2 = target["projector"](target["backbone"](v2))
        loss = (regression(p1, z2) + regression(p2, z1)).mean()  # sg(z): z has no graph
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            tp = list(target.parameters())
            sp = [q for n, q in online.named_parameters() if not n.startswith("predictor.")]
            torch._foreach_lerp_(tp, sp, 1.0 - taus[k])
        if k % a.every == 0 or k == len(rows) - 1:
            print(f"{k:4d}  {losses[k]:.6f}  {loss.item():.6f}  {loss.item() - losses[k]:+.2e}")
    tessera_name = lambda k: k.replace("projector.", "projector.net.").replace(
        "predictor.", "predictor.net.")
    mine = {"online." + tessera_name(k): v for k, v in online.state_dict().items()}
    mine.update({"target." + tessera_name(k): v for k, v in target.state_dict().items()})
    report_final(mine, read_safetensors(a.trace / "final.safetensors"))

if __name__ == "__main__":
    main()
