#!/usr/bin/env python3
"""Reference values for two full DINO iterations (ssl/src/train/dino.rs, tested by
ssl/tests/dino_step_fixture.rs).

Pinned versions (scripts/requirements-fixtures.txt): torch==2.9.1, numpy==2.1.3.

    /opt/torchenv/bin/python scripts/gen_dino_step_fixture.py          # writes the fixture
    /opt/torchenv/bin/python scripts/gen_dino_step_fixture.py --check  # compares with it

This re-implements facebookresearch/dino's ``main_dino.py`` training iteration
(``train_one_epoch``) with its helpers (``utils.cosine_scheduler``,
``utils.get_params_groups``, ``utils.clip_gradients``, ``utils.cancel_gradients_last_layer``,
``MultiCropWrapper``, ``DINOHead``, ``DINOLoss``); the ViT is the one of
scripts/gen_vit_fixtures.py. The dino repository is not imported.

Setup (all F64): ViT embed 16, depth 1, heads 2, patch 4, img_size 16, 3 channels; DINOHead
out_dim 8, 3 layers, hidden 12, bottleneck 6, norm_last_layer; batch 2 images with 2 global
crops (16 px) and 2 local crops (8 px). Hyper-parameters: lr 0.1 (scaled by 2/256), min_lr
1e-6, warmup_epochs 0, weight decay 0.04 -> 0.4, momentum_teacher 0.996, teacher temperature
0.04 -> 0.07 over 2 epochs, clip_grad 0.3 (small, so that some gradients are clipped),
freeze_last_layer 1, 3 epochs of 1 iteration. Step 0 runs at epoch 0 (last layer frozen),
step 1 at epoch 1 (last layer trained, Adam state from step 0 reused).

Tensors: ``init.<name>`` the student's initial state (DINO init from manual_seed(0), then
``+ 0.02 * randn`` on every trainable parameter so that biases are not zero); for s in 0, 1:
``step{s}.global`` [4, 3, 16, 16] (view 0 of both images, then view 1), ``step{s}.local``
[4, 3, 8, 8], ``step{s}.loss``, ``step{s}.grad_raw.<name>`` (before clipping),
``step{s}.grad.<name>`` (after clipping and the last-layer cancellation; absent when
cancelled), ``step{s}.student.<name>`` (after AdamW), ``step{s}.teacher.<name>`` (after the
EMA), ``step{s}.center``.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_vit_fixtures import VisionTransformer, write_safetensors  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "ssl_dino_step.safetensors"
torch.use_deterministic_algorithms(True)
F64 = torch.float64

CFG = dict(out_dim=8, hidden=12, bottleneck=6, lr=0.1, batch=2, min_lr=1e-6, warmup_epochs=0,
           wd=0.04, wd_end=0.4, momentum_teacher=0.996, warmup_teacher_temp=0.04,
           teacher_temp=0.07, warmup_teacher_temp_epochs=2, clip_grad=0.3,
           freeze_last_layer=1, epochs=3, niter=1, local_crops_number=2)


class DINOHead(nn.Module):  # DINO vision_transformer.py, use_bn=False
    def __init__(self, in_dim, out_dim, norm_last_layer=True, nlayers=3, hidden_dim=2048,
                 bottleneck_dim=256):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
        for _ in range(nlayers - 2):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):  # DINO utils.py
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x):
        if not isinstance(x, list):
            x = [x]
        idx_crops = torch.cumsum(torch.unique_consecutive(
            torch.tensor([inp.shape[-1] for inp in x]), return_counts=True)[1], 0)
        start_idx, output = 0, torch.empty(0).to(x[0].device, x[0].dtype)
        for end_idx in idx_crops:
            _out = self.backbone(torch.cat(x[start_idx:end_idx]))
            output = torch.cat((output, _out))
            start_idx = end_idx
        return self.head(output)


class DINOLoss(nn.Module):  # main_dino.py, single process
    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp,
                 warmup_teacher_temp_epochs, nepochs, student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp, self.center_momentum, self.ncrops = student_temp, center_momentum, ncrops
        self.register_buffer("center", torch.zeros(1, out_dim, dtype=F64))
        self.teacher_temp_schedule = np.concatenate((
            np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
            np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))

    def forward(self, student_output, teacher_output, epoch):
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss, n_loss_terms = 0, 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(teacher_output)
        return total_loss

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True) / len(teacher_output)
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0,
                     start_warmup_value=0):  # DINO utils.py
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def get_params_groups(model):  # DINO utils.py
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def clip_gradients(model, clip):  # DINO utils.py
    for _, p in model.named_parameters():
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)


def cancel_gradients_last_layer(epoch, model, freeze_last_layer):  # DINO utils.py
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if "last_layer" in n:
            p.grad = None


def build():
    c = CFG
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=16, patch_size=4, in_chans=3, embed_dim=16, depth=1, num_heads=2)
    head = DINOHead(16, c["out_dim"], True, 3, c["hidden"], c["bottleneck"])
    student = MultiCropWrapper(vit, head).to(F64)
    with torch.no_grad():
        for p in student.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    # DINO builds the teacher separately, then copies the student's state into it.
    teacher = MultiCropWrapper(
        VisionTransformer(img_size=16, patch_size=4, in_chans=3, embed_dim=16, depth=1, num_heads=2),
        DINOHead(16, c["out_dim"], True, 3, c["hidden"], c["bottleneck"])).to(F64)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    return student, teacher


def generate():
    c = CFG
    student, teacher = build()
    out = {f"init.{k}": v.clone() for k, v in student.state_dict().items()}
    ncrops = 2 + c["local_crops_number"]
    dino_loss = DINOLoss(c["out_dim"], ncrops, c["warmup_teacher_temp"], c["teacher_temp"],
                         c["warmup_teacher_temp_epochs"], c["epochs"])
    optimizer = torch.optim.AdamW(get_params_groups(student))
    lr_schedule = cosine_scheduler(c["lr"] * c["batch"] / 256.0, c["min_lr"], c["epochs"],
                                   c["niter"], warmup_epochs=c["warmup_epochs"])
    wd_schedule = cosine_scheduler(c["wd"], c["wd_end"], c["epochs"], c["niter"])
    momentum_schedule = cosine_scheduler(c["momentum_teacher"], 1, c["epochs"], c["niter"])
    gen = torch.Generator().manual_seed(1)
    names = [n for n, _ in student.named_parameters()]
    clipped_any = 0
    for step, epoch in [(0, 0), (1, 1)]:
        it = c["niter"] * epoch + 0
        for i, pg in enumerate(optimizer.param_groups):
            pg["lr"] = lr_schedule[it]
            if i == 0:
                pg["weight_decay"] = wd_schedule[it]
        b = c["batch"]
        globals_ = [torch.randn(b, 3, 16, 16, generator=gen, dtype=F64) for _ in range(2)]
        locals_ = [torch.randn(b, 3, 8, 8, generator=gen, dtype=F64) for _ in range(c["local_crops_number"])]
        images = globals_ + locals_
        out[f"step{step}.global"] = torch.cat(globals_)
        out[f"step{step}.local"] = torch.cat(locals_)
        with torch.no_grad():
            teacher_output = teacher(images[:2])
        student_output = student(images)
        loss = dino_loss(student_output, teacher_output, epoch)
        optimizer.zero_grad()
        loss.backward()
        for n, p in student.named_parameters():
            if p.grad is not None:
                out[f"step{step}.grad_raw.{n}"] = p.grad.clone()
                clipped_any += int(p.grad.norm() > c["clip_grad"])
        clip_gradients(student, c["clip_grad"])
        cancel_gradients_last_layer(epoch, student, c["freeze_last_layer"])
        for n, p in student.named_parameters():
            if p.grad is not None:
                out[f"step{step}.grad.{n}"] = p.grad.clone()
        optimizer.step()
        with torch.no_grad():
            m = momentum_schedule[it]
            for param_q, param_k in zip(student.parameters(), teacher.parameters()):
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
        out[f"step{step}.loss"] = loss.detach().reshape(())
        for n, p in student.state_dict().items():
            out[f"step{step}.student.{n}"] = p.clone()
        for n, p in teacher.state_dict().items():
            out[f"step{step}.teacher.{n}"] = p.clone()
        out[f"step{step}.center"] = dino_loss.center.clone()
        print(f"step {step}: loss {loss.item():.6f} lr {lr_schedule[it]:.3e} wd {wd_schedule[it]:.4f} m {m:.6f}")
    print(f"{clipped_any} gradients clipped over 2 steps, {len(names)} parameters")
    return {k: v.to(F64).contiguous() for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    tensors = generate()
    if args.check:
        meta = {"generator": "scripts/gen_dino_step_fixture.py", "torch": torch.__version__}
        meta.update({k: str(v) for k, v in CFG.items()})
        if OUT.read_bytes() != write_safetensors(tensors, meta):
            sys.exit("fixture differs")
        print("fixture matches")
        return
    meta = {"generator": "scripts/gen_dino_step_fixture.py", "torch": torch.__version__}
    meta.update({k: str(v) for k, v in CFG.items()})
    OUT.write_bytes(write_safetensors(tensors, meta))
    print(f"wrote {OUT} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
