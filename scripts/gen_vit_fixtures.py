#!/usr/bin/env python3
"""Reference values for Tessera's Vision Transformer (nn/src/models/vit.rs, tested by
nn/tests/vit.rs).

Pinned versions (scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3.

How to run
----------
    /opt/torchenv/bin/python scripts/gen_vit_fixtures.py          # writes both fixtures
    /opt/torchenv/bin/python scripts/gen_vit_fixtures.py --check  # verifies the committed files
    /opt/torchenv/bin/python scripts/gen_vit_fixtures.py --convert dino_deitsmall16_pretrain.pth out.safetensors

The model below is a minimal re-implementation of facebookresearch/dino ``vision_transformer.py``
(same module tree, so the same parameter names; LayerNorm eps 1e-6, exact GELU, qkv with bias,
DINO's ``interpolate_pos_encoding`` verbatim, including its (w, h) = (dim 2, dim 3) naming and
the +0.1 scale-factor trick). The dino repository is not imported.

Fixtures
--------
``tests/fixtures/vit_tiny.safetensors`` (every tensor F64): embed 48, depth 2, heads 3, patch 4,
img_size 16 (a stored 4x4 grid), 3 channels. Weights: DINO's init from ``torch.manual_seed(0)``,
then ``+ 0.02 * randn`` on every parameter so that biases and norms are not trivial.
* ``param.<name>``: the weights; ``input.24x20`` [2, 3, 24, 20] (positional interpolation
  to a 6x5 grid) and ``input.16`` [2, 3, 16, 16] (the stored grid).
* ``cls.24x20``, ``attn.24x20`` [2, 3, 31, 31], ``inter.24x20.{0,1}`` (get_intermediate_layers
  with n=2), ``cls.16``.
* ``upstream`` [2, 48]: the gradient fed back on ``cls.24x20``; ``grad.<name>`` for every
  parameter and ``grad.input`` for the image.

``tests/fixtures/vit_s16.safetensors`` (F32): DINO ViT-S/16 (384 dims, 12 blocks, 6 heads,
img_size 224) with *recipe* weights (below), too big to commit, regenerated in the Rust test.
* ``image.224`` [1, 3, 224, 224] and ``image.96`` [1, 3, 96, 96] (also recipe values, named
  ``image.224`` / ``image.96``, center 0, scale 1); ``cls.<s>`` [1, 384] and ``attn.<s>``
  [1, 6, 1+n, 1+n] for s in 224, 96.
The ViT-S state dict itself is written to /tmp/tessera_vit_s16_recipe.safetensors (not
committed): ``VisionTransformer::load_checkpoint`` loads it as it would a converted DINO one.

The recipe (deterministic, identical in Rust: nn/tests/vit.rs ``recipe``)
-------------------------------------------------------------------------
For a tensor called ``name`` with ``n`` elements in row-major order:
    h     = FNV-1a 64 of the UTF-8 name (offset 0xcbf29ce484222325, prime 0x100000001b3)
    z_i   = splitmix64_mix(h + (i + 1) * 0x9E3779B97F4A7C15)        (wrapping, i = 0..n-1)
            with mix(z) = z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27;
                          z *= 0x94D049BB133111EB; z ^= z >> 31
    u_i   = (z_i >> 11) * 2^-53                                     (uniform in [0, 1))
    value = center + scale * (2 u_i - 1)   in f64, then rounded to f32
with (center, scale) by name: cls_token and pos_embed (0, 0.04); patch_embed.proj.* (0,
1/sqrt(in_chans * p * p)); LayerNorm weights (``norm*.weight``) (1, 0.1); other biases (0,
0.02); other (Linear) weights (0, 0.1).
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from safetensors_out import safetensors_bytes
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
OUT_TINY = ROOT / "tests" / "fixtures" / "vit_tiny.safetensors"
OUT_S16 = ROOT / "tests" / "fixtures" / "vit_s16.safetensors"
TMP_S16_WEIGHTS = Path("/tmp/tessera_vit_s16_recipe.safetensors")

torch.use_deterministic_algorithms(True)
F64 = torch.float64


write_safetensors = safetensors_bytes


# --------------------------------------------------------------------------- DINO's ViT


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x), attn


class Block(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x, return_attention=False):
        y, attn = self.attn(self.norm1(x))
        if return_attention:
            return attn
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def interpolate_pos_encoding(self, x, w, h):  # verbatim DINO
        npatch = x.shape[1] - 1
        N = self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        class_pos_embed = self.pos_embed[:, 0]
        patch_pos_embed = self.pos_embed[:, 1:]
        dim = x.shape[-1]
        w0 = w // self.patch_embed.patch_size
        h0 = h // self.patch_embed.patch_size
        w0, h0 = w0 + 0.1, h0 + 0.1
        patch_pos_embed = nn.functional.interpolate(
            patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)),
            mode="bicubic",
        )
        assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
        patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)

    def prepare_tokens(self, x):
        B, nc, w, h = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        return x + self.interpolate_pos_encoding(x, w, h)

    def forward(self, x):
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]

    def get_last_selfattention(self, x):
        x = self.prepare_tokens(x)
        for blk in self.blocks[:-1]:
            x = blk(x)
        return self.blocks[-1](x, return_attention=True)

    def get_intermediate_layers(self, x, n=1):
        x = self.prepare_tokens(x)
        out = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if len(self.blocks) - i <= n:
                out.append(self.norm(x))
        return out


# --------------------------------------------------------------------------- recipe

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def recipe_values(name, n, center, scale):
    with np.errstate(over="ignore"):
        z = np.uint64(fnv1a64(name)) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return (center + scale * (2.0 * u - 1.0)).astype(np.float32)


def recipe_params(name, shape):
    if name in ("cls_token", "pos_embed"):
        return 0.0, 0.04
    if name.startswith("patch_embed.proj."):
        return 0.0, 1.0 / math.sqrt(3 * 16 * 16)
    if name.endswith(".weight") and name.split(".")[-2].startswith("norm"):
        return 1.0, 0.1
    if name.endswith(".bias"):
        return 0.0, 0.02
    return 0.0, 0.1


def recipe_tensor(name, shape, center, scale):
    v = recipe_values(name, int(np.prod(shape)), center, scale)
    return torch.from_numpy(v.reshape(shape))


# --------------------------------------------------------------------------- fixtures


def tiny_fixture():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=16, patch_size=4, in_chans=3, embed_dim=48, depth=2, num_heads=3).to(F64)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen, dtype=F64))
    t = {f"param.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 24, 20, generator=gen, dtype=F64, requires_grad=True)
    x16 = torch.randn(2, 3, 16, 16, generator=gen, dtype=F64)
    up = torch.randn(2, 48, generator=gen, dtype=F64)
    cls = model(x)
    (cls * up).sum().backward()
    with torch.no_grad():
        t.update({
            "input.24x20": x.detach().clone(), "input.16": x16, "upstream": up, "cls.24x20": cls.detach(),
            "attn.24x20": model.get_last_selfattention(x), "cls.16": model(x16), "grad.input": x.grad,
        })
        for i, o in enumerate(model.get_intermediate_layers(x, 2)):
            t[f"inter.24x20.{i}"] = o
    for k, p in model.named_parameters():
        t[f"grad.{k}"] = p.grad.detach().clone()
    meta = {"config": json.dumps({"img_size": 16, "patch_size": 4, "in_chans": 3, "embed_dim": 48,
                                  "depth": 2, "num_heads": 3, "norm_eps": 1e-6})}
    return t, meta


def vit_s16_model():
    model = VisionTransformer(img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12, num_heads=6)
    sd = {k: recipe_tensor(k, tuple(v.shape), *recipe_params(k, v.shape)) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    return model, sd


def s16_fixture():
    model, sd = vit_s16_model()
    t = {}
    with torch.no_grad():
        for s in (224, 96):
            img = recipe_tensor(f"image.{s}", (1, 3, s, s), 0.0, 1.0)
            t[f"image.{s}"] = img
            t[f"cls.{s}"] = model(img)
            t[f"attn.{s}"] = model.get_last_selfattention(img)
    meta = {"config": json.dumps({"img_size": 224, "patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6})}
    return t, meta, sd


def convert(src, dst):
    """A DINO .pth (backbone or full training checkpoint) to a safetensors backbone state dict."""
    ck = torch.load(src, map_location="cpu", weights_only=False)
    for key in ("teacher", "state_dict", "model"):
        if isinstance(ck, dict) and key in ck and isinstance(ck[key], dict):
            ck = ck[key]
            break
    out = {}
    for k, v in ck.items():
        k = k.removeprefix("module.")
        if k.startswith("head."):
            continue
        out[k.removeprefix("backbone.")] = v.float()
    Path(dst).write_bytes(write_safetensors(out, {"source": str(src)}))
    print(f"wrote {len(out)} tensors to {dst}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    ap.add_argument("--convert", nargs=2, metavar=("PTH", "SAFETENSORS"))
    args = ap.parse_args()
    if args.convert:
        return convert(*args.convert)
    versions = f"torch {torch.__version__}, numpy {np.__version__}"
    tiny, tiny_meta = tiny_fixture()
    s16, s16_meta, sd = s16_fixture()
    files = {
        OUT_TINY: write_safetensors(tiny, {**tiny_meta, "_versions": versions}),
        OUT_S16: write_safetensors(s16, {**s16_meta, "_versions": versions}),
    }
    TMP_S16_WEIGHTS.write_bytes(write_safetensors(sd, {"recipe": "scripts/gen_vit_fixtures.py"}))
    if args.check:
        bad = [p for p, b in files.items() if not p.exists() or p.read_bytes() != b]
        if bad:
            print("differs: " + ", ".join(map(str, bad)))
            sys.exit(1)
        print("fixtures up to date")
        return
    for p, b in files.items():
        p.write_bytes(b)
        print(f"wrote {p} ({len(b)} bytes)")


if __name__ == "__main__":
    main()
