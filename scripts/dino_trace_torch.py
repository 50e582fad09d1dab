"""Replays a `--trace` of `cargo run --example dino_vit_s` in PyTorch, step by step.

The trace (src/run/trace.rs) holds Tessera's initial trainer state, every step's crops and
scheduled values, and its loss per step. This script loads the same weights into the
independent PyTorch implementation of the recipe in scripts/dino_torch_reference.py (model,
DINO loss, AdamW groups, per-parameter gradient clipping, frozen last layer, teacher EMA), runs
the same steps on the same crops with the same learning rate, weight decay, EMA momentum and
teacher temperature, and prints both losses side by side; at the end it compares every tensor
of the final state. Equal steps agree to rounding, which grows slowly (compare a `--f64`
replay: PyTorch's own f32 and f64 runs part by as much); a step that differs parts at once.

    cargo run --release --example dino_vit_s -- --trace /tmp/dino_trace --epochs 1
    /work/venv-parity/bin/python scripts/dino_trace_torch.py /tmp/dino_trace [--f64]

Pinned: Python 3, torch 2.9.1 (CPU build), numpy 2.1.3 (the /work/venv-parity environment).
"""

import argparse
import ast
from pathlib import Path

import numpy as np
import torch

from byol_trace_torch import read_safetensors, read_steps, report_final
from dino_torch_reference import DinoHead, DinoLoss, Net, ViT, param_groups, train_step


def to_reference(name):
    """Tessera's (DINO's official) parameter name -> the reference script's."""
    return (
        name.replace(".attn.qkv.", ".qkv.")
        .replace(".attn.proj.", ".proj.")
        .replace(".mlp.fc1.", ".fc1.")
        .replace(".mlp.fc2.", ".fc2.")
        .replace("patch_embed.proj.", "patch_embed.")
        .replace("last_layer.weight_g", "last_layer.parametrizations.weight.original0")
        .replace("last_layer.weight_v", "last_layer.parametrizations.weight.original1")
    )


def build(sd, prefix):
    own = {to_reference(k[len(prefix) :]): v for k, v in sd.items() if k.startswith(prefix)}
    d = own["backbone.cls_token"].shape[-1]
    patch = own["backbone.patch_embed.weight"].shape[-1]
    chans = own["backbone.patch_embed.weight"].shape[1]
    tokens = own["backbone.pos_embed"].shape[1] - 1
    img = int(round(tokens**0.5)) * patch
    depth = 1 + max(int(k.split(".")[2]) for k in own if k.startswith("backbone.blocks."))
    mlp_ratio = own["backbone.blocks.0.fc1.weight"].shape[0] // d
    hidden = own["head.mlp.0.weight"].shape[0]
    bottleneck = own["head.mlp.4.weight"].shape[0]
    out_dim = own["head.last_layer.parametrizations.weight.original1"].shape[0]
    return own, (img, patch, chans, d, depth, mlp_ratio), (hidden, bottleneck, out_dim)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--heads", type=int, default=3, help="attention heads (not in the state)")
    ap.add_argument("--batch", type=int, default=128, help="images per step")
    ap.add_argument("--clip-grad", type=float, default=3.0)
    ap.add_argument("--student-temp", type=float, default=0.1)
    ap.add_argument("--center-momentum", type=float, default=0.9)
    ap.add_argument("--f64", action="store_true", help="replay in float64")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dt = torch.float64 if a.f64 else torch.float32
    init = read_safetensors(a.trace / "init.safetensors")
    nets = []
    for prefix in ("student.", "teacher."):
        own, (img, patch, chans, d, depth, ratio), (hidden, bottleneck, out_dim) = build(init, prefix)
        net = Net(ViT(img, patch, chans, d, depth, a.heads, ratio),
                  DinoHead(d, out_dim, hidden, bottleneck))
        net.load_state_dict(own, strict=True)
        nets.append(net.to(dt))
    student, teacher = nets
    for q in teacher.parameters():
        q.requires_grad = False
    shapes = [ast.literal_eval(l) for l in (a.trace / "inputs.txt").read_text().splitlines()]
    per_step = sum(int(np.prod(s)) for s in shapes)
    ncrops = sum(s[0] for s in shapes) // a.batch
    rows = read_steps(a.trace)
    inputs = np.memmap(a.trace / "inputs.f32", dtype=np.float32, mode="r").reshape(len(rows), per_step)
    loss_fn = DinoLoss(out_dim, ncrops, rows[0]["teacher_temp"], a.student_temp, a.center_momentum)
    loss_fn.center = init["dino_loss.center"].to(dt)
    opt = torch.optim.AdamW(param_groups(student), betas=(0.9, 0.999), eps=1e-8)
    print(f"{len(rows)} steps of {ncrops} crops x {a.batch} images; {'f64' if a.f64 else 'f32'}")
    print("step  tessera_loss  torch_loss  diff")
    for k, r in enumerate(rows):
        flat, crops, at = torch.from_numpy(np.array(inputs[k])).to(dt), [], 0
        for s in shapes:  # each tensor holds its crops one after another, `batch` images each
            n = int(np.prod(s))
            crops += list(flat[at : at + n].reshape(s).chunk(s[0] // a.batch))
            at += n
        loss_fn.tt = r["teacher_temp"]
        loss, _ = train_step(student, teacher, opt, loss_fn, crops, r["lr"], r["weight_decay"],
                             r["momentum"], r["last_layer_frozen"] > 0.5, a.clip_grad)
        if k % a.every == 0 or k == len(rows) - 1:
            print(f"{k:4d}  {r['loss']:.6f}  {loss:.6f}  {loss - r['loss']:+.2e}", flush=True)
    mine = {"student." + k: v for k, v in student.state_dict().items()}
    mine.update({"teacher." + k: v for k, v in teacher.state_dict().items()})
    mine["dino_loss.center"] = loss_fn.center
    final = read_safetensors(a.trace / "final.safetensors")
    final = {to_reference(k): v for k, v in final.items()}
    report_final(mine, final)


if __name__ == "__main__":
    main()
