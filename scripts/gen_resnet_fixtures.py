#!/usr/bin/env python3
"""Reference values for tessera-nn's Conv2d / BatchNorm layers and torchvision's ResNet.

Pinned versions (scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3. torchvision
is optional: when ``import torchvision`` works (0.24.1 matches torch 2.9.1; it needs Pillow),
every model is cross-checked against ``torchvision.models.resnet50/resnet18`` (same state dict
keys, shapes and outputs); otherwise the minimal ResNet below, written with torchvision's names
and structure (v1.5: the stride on the 3x3 conv), is used alone.

How to run
----------
    /opt/torchenv/bin/python scripts/gen_resnet_fixtures.py          # writes the files
    /opt/torchenv/bin/python scripts/gen_resnet_fixtures.py --check  # compares with them

Weights are not stored (ResNet-50 is 100 MB): every parameter, buffer and input comes from
the deterministic RECIPE below, which nn/tests/resnet.rs reimplements bit for bit.

RECIPE (``recipe_values``)
--------------------------
For a tensor named ``name`` with ``n`` elements (row-major):

* ``h0 = fnv1a64(utf8(name))`` (offset basis 0xcbf29ce484222325, prime 0x100000001b3);
* ``u[i] = (splitmix64(h0 + i) >> 11) * 2**-53 * 2 - 1`` in f64 (all integer arithmetic mod
  2**64; splitmix64 is the finalizer: ``z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) *
  0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; z ^ z>>31``), uniform in [-1, 1);
* ``value = offset + scale * u`` in f64, then rounded to f32, with ``(offset, scale)`` by kind:
  conv weight (rank 4): ``(0, sqrt(6 / fan_in))`` (variance 2 / fan_in); ``fc.weight``:
  ``(0, sqrt(3 / in_features))``; ``fc.bias``: ``(0, 0.1)``; BN ``weight``: ``(0.6, 0.2)``;
  BN ``bias`` and ``running_mean``: ``(0, 0.1)``; ``running_var``: ``(1.5, 0.5)`` (in [1, 2));
  ``num_batches_tracked``: 3 (I64). Inputs ``input`` and output gradients ``grad_out``:
  ``(0, 1)``.

Gradient summaries: for each parameter ``p`` with gradient ``G`` (f32), ``gsum.<p>`` is
``[sum(G * r), sum(G * G)]`` in f64, where ``r`` is the recipe's ``u`` for the name
``probe.<p>``: a check of every gradient that costs two numbers.

Files (F32 unless noted)
------------------------
* ``resnet50_eval.safetensors``: ``input`` [1, 3, 224, 224], ``logits`` [1, 1000] of
  ``resnet50(num_classes=1000).eval()``; ``features`` [1, 2048].
* ``resnet50_train.safetensors`` (F64, see ``resnet_files`` for why): train mode, ``input``
  [2, 3, 64, 64], ``grad_out`` [2, 1000]
  (loss = sum(logits * grad_out)); ``logits``; ``grad.<p>`` for conv1.weight,
  layer1.0.conv1.weight, layer4.2.bn3.weight, layer4.2.bn3.bias, fc.bias and the first 8 rows
  of fc.weight (``grad.fc.weight.rows0_8``); ``gsum.<p>`` (F64) for every parameter; every BN
  ``running_mean`` / ``running_var`` after the forward (``after.<name>``), and
  ``after.num_batches_tracked`` (F64, 4).
* ``resnet18_small.safetensors``: ResNet-18 with the small stem (3x3 stride-1 conv1, no
  max-pool), 1 input channel, 10 classes, ``input`` [2, 1, 28, 28]: ``eval.logits``, then in
  train mode ``train.logits``, ``grad.<p>`` for conv1.weight, layer4.1.bn2.weight, fc.weight,
  fc.bias, ``gsum.<p>`` for all, ``after.<bn buffers>``.
* ``resnet_bn.safetensors`` (F64): BatchNorm1d on [5, 3] and [4, 3, 6], BatchNorm2d on
  [3, 2, 4, 5], with momentum 0.1 and None: see ``bn_cases``.

The state-dict layout (names and shapes in torchvision's order) is in each ResNet file's
metadata ``state_dict`` ("name:d0,d1,..;" per entry).
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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
M64 = (1 << 64) - 1

# ----------------------------------------------------------------------------- the recipe


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def recipe_u(name, n):
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64(fnv1a64(name))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0**-53) * 2.0 - 1.0


def recipe_affine(name, shape):
    last = name.rsplit(".", 1)[-1]
    if len(shape) == 4:
        return 0.0, math.sqrt(6.0 / (shape[1] * shape[2] * shape[3]))
    if name.startswith("fc."):
        return (0.0, math.sqrt(3.0 / shape[1])) if last == "weight" else (0.0, 0.1)
    return {"weight": (0.6, 0.2), "bias": (0.0, 0.1), "running_mean": (0.0, 0.1),
            "running_var": (1.5, 0.5)}.get(last, (0.0, 1.0))


def recipe_values(name, shape):
    if name.endswith("num_batches_tracked"):
        return torch.tensor(3, dtype=torch.int64)
    offset, scale = recipe_affine(name, shape)
    n = int(np.prod(shape)) if len(shape) else 1
    v = offset + scale * recipe_u(name, n)
    return torch.from_numpy(v.astype(np.float32)).reshape(shape)


# -------------------------------------------------- a minimal ResNet with torchvision's names


class Block(nn.Module):
    def __init__(self, bottleneck, inplanes, planes, stride):
        super().__init__()
        out = planes * (4 if bottleneck else 1)
        if bottleneck:  # v1.5: stride on conv2 (3x3)
            specs = [(inplanes, planes, 1, 1), (planes, planes, 3, stride), (planes, out, 1, 1)]
        else:
            specs = [(inplanes, planes, 3, stride), (planes, planes, 3, 1)]
        self.n = len(specs)
        for i, (ci, co, k, s) in enumerate(specs, 1):
            setattr(self, f"conv{i}", nn.Conv2d(ci, co, k, s, k // 2, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(co))
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        h = x
        for i in range(1, self.n + 1):
            h = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(h))
            if i < self.n:
                h = F.relu(h)
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    def __init__(self, bottleneck, layers, num_classes, in_channels=3, small_stem=False):
        super().__init__()
        k, s, p = (3, 1, 1) if small_stem else (7, 2, 3)
        self.conv1 = nn.Conv2d(in_channels, 64, k, s, p, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.small_stem = small_stem
        inplanes = 64
        for stage, n in enumerate(layers):
            planes = 64 << stage
            blocks = []
            for i in range(n):
                blocks.append(Block(bottleneck, inplanes, planes, 2 if stage > 0 and i == 0 else 1))
                inplanes = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, num_classes)

    def features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        if not self.small_stem:
            x = F.max_pool2d(x, 3, 2, 1)
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x):
        return self.fc(self.features(x))


def torchvision_twin(model, arch, num_classes, in_channels, small_stem):
    """torchvision's model with the same weights, or None if torchvision is not importable."""
    try:
        import torchvision
    except ImportError:
        return None
    tv = getattr(torchvision.models, arch)(num_classes=num_classes)
    if small_stem:
        tv.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        tv.maxpool = nn.Identity()
    elif in_channels != 3:
        tv.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    ours, theirs = model.state_dict(), tv.state_dict()
    assert list(ours) == list(theirs), "state dict keys differ from torchvision's"
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    tv.load_state_dict(ours)
    return tv


# ------------------------------------------------------------------------------ the files

OUT = {}


def put(file, name, t, dtype=torch.float32):
    OUT.setdefault(file, ({}, {}))[0][name] = t.detach().to(dtype).contiguous().clone()


def meta(file, key, value):
    OUT.setdefault(file, ({}, {}))[1][key] = value


def build(arch, num_classes, in_channels=3, small_stem=False):
    bottleneck, layers = {"resnet50": (True, [3, 4, 6, 3]), "resnet18": (False, [2, 2, 2, 2])}[arch]
    model = ResNet(bottleneck, layers, num_classes, in_channels, small_stem)
    sd = {k: recipe_values(k, list(v.shape)) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    return model, torchvision_twin(model, arch, num_classes, in_channels, small_stem)


def describe(file, model, tv):
    layout = "".join(f"{k}:{','.join(map(str, v.shape))};" for k, v in model.state_dict().items())
    meta(file, "state_dict", layout)
    # Printed, not stored, so that the files are the same with and without torchvision.
    print(f"{file}: torchvision cross-check", "skipped" if tv is None else "passed")


def train_step(file, model, tv, x, g, full_grads, fc_rows=None, dtype=torch.float32):
    """One train-mode forward + backward of sum(logits * g); records logits, grads, buffers."""
    model.train()
    put(file, "input", x, dtype)
    put(file, "grad_out", g, dtype)
    if tv is not None:
        tv.train()
        tv_logits = tv(x)
    logits = model(x)
    if tv is not None:
        torch.testing.assert_close(tv_logits, logits, rtol=0, atol=0)
    (logits * g).sum().backward()
    put(file, "train.logits", logits, dtype)
    for name, p in model.named_parameters():
        gr = p.grad.double()
        r = torch.from_numpy(recipe_u("probe." + name, p.numel())).reshape(p.shape)
        put(file, f"gsum.{name}", torch.stack([(gr * r).sum(), (gr * gr).sum()]), torch.float64)
        if name in full_grads:
            put(file, f"grad.{name}", p.grad, dtype)
        if name == "fc.weight" and fc_rows:
            put(file, f"grad.fc.weight.rows0_{fc_rows}", p.grad[:fc_rows], dtype)
    for name, b in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            put(file, f"after.{name}", b, dtype)
    put(file, "after.num_batches_tracked", model.bn1.num_batches_tracked, torch.float64)


def resnet_files():
    # (a) ResNet-50 eval at 224x224, batch 1.
    f = "resnet50_eval"
    model, tv = build("resnet50", 1000)
    describe(f, model, tv)
    x = recipe_values("input", [1, 3, 224, 224])
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        logits = model.fc(feats)
        if tv is not None:
            torch.testing.assert_close(tv.eval()(x), logits, rtol=0, atol=0)
    put(f, "input", x)
    put(f, "features", feats)
    put(f, "logits", logits)

    # (b) ResNet-50 train mode at 64x64, batch 2, in F64: with these weights the train-mode
    # gradients are ill-conditioned (PyTorch's own f32 and f64 gradients differ by up to ~20%
    # in layer3/layer4), so f32 cannot be the reference. The recipe values are f32-rounded,
    # then widened.
    f = "resnet50_train"
    model, tv = build("resnet50", 1000)
    describe(f, model, tv)
    model, tv = model.double(), (None if tv is None else tv.double())
    x, g = recipe_values("input", [2, 3, 64, 64]), recipe_values("grad_out", [2, 1000])
    full = {"conv1.weight", "layer1.0.conv1.weight", "layer4.2.bn3.weight", "layer4.2.bn3.bias",
            "fc.bias"}
    train_step(f, model, tv, x.double(), g.double(), full, fc_rows=8, dtype=torch.float64)

    # (c) ResNet-18, small stem, grayscale, 10 classes, 28x28.
    f = "resnet18_small"
    model, tv = build("resnet18", 10, in_channels=1, small_stem=True)
    describe(f, model, tv)
    x, g = recipe_values("input", [2, 1, 28, 28]), recipe_values("grad_out", [2, 10])
    model.eval()
    with torch.no_grad():
        put(f, "eval.logits", model(x))
    full = {"conv1.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"}
    train_step(f, model, tv, x, g, full)


def bn_cases():
    """BatchNorm layers: 3 train steps, then eval; F64."""
    f = "resnet_bn"
    gen = torch.Generator().manual_seed(0)
    cases = [("bn1d_2", nn.BatchNorm1d, [5, 3], 0.1), ("bn1d_3", nn.BatchNorm1d, [4, 3, 6], 0.1),
             ("bn2d", nn.BatchNorm2d, [3, 2, 4, 5], 0.1), ("bn2d_cma", nn.BatchNorm2d, [3, 2, 4, 5], None)]
    for case, cls, shape, momentum in cases:
        c = shape[1]
        bn = cls(c, momentum=momentum).double()
        with torch.no_grad():
            bn.weight.copy_(torch.rand(c, generator=gen, dtype=torch.float64) + 0.5)
            bn.bias.copy_(torch.rand(c, generator=gen, dtype=torch.float64) - 0.5)
        put(f, f"{case}.weight", bn.weight, torch.float64)
        put(f, f"{case}.bias", bn.bias, torch.float64)
        for step in range(3):
            x = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 1).requires_grad_()
            g = torch.randn(shape, generator=gen, dtype=torch.float64)
            bn.zero_grad()
            y = bn(x)
            (y * g).sum().backward()
            p = f"{case}.step{step}"
            for k, v in [("x", x), ("g", g), ("y", y), ("dx", x.grad), ("dweight", bn.weight.grad),
                         ("dbias", bn.bias.grad), ("running_mean", bn.running_mean),
                         ("running_var", bn.running_var), ("num_batches_tracked", bn.num_batches_tracked)]:
                put(f, f"{p}.{k}", v, torch.float64)
        bn.eval()
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        put(f, f"{case}.eval.x", x, torch.float64)
        put(f, f"{case}.eval.y", bn(x), torch.float64)
        meta(f, case, json.dumps({"shape": shape, "momentum": momentum}))


# ------------------------------------------------------------------------- safetensors I/O


def to_bytes(tensors, metadata):
    return safetensors_bytes(tensors, metadata, sort_header_keys=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    args = ap.parse_args()
    bn_cases()
    resnet_files()
    ok = True
    for file, (tensors, metadata) in sorted(OUT.items()):
        metadata["_format"] = "tessera-resnet-fixtures-v1"
        metadata["_versions"] = f"torch {torch.__version__}, numpy {np.__version__}"
        path = FIX / f"{file}.safetensors"
        data = to_bytes(tensors, metadata)
        if args.check:
            same = path.exists() and path.read_bytes() == data
            ok &= same
            print(f"{path.name}: {'ok' if same else 'DIFFERS'}")
        else:
            path.write_bytes(data)
            print(f"wrote {path.relative_to(ROOT)} ({len(data) / 1e6:.2f} MB)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
