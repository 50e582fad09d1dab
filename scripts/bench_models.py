"""PyTorch CPU reference for `nn/examples/bench_models.rs`: whole-model training throughput.

Same models (DINO ViT-S/16 backbone, torchvision ResNet-50 v1.5 with 1000 classes), written
here because torchvision is not installed in /opt/torchenv; same shapes and FLOPs, fp32.
Each step: forward, loss (ViT: mean of the CLS features; ResNet-50: cross-entropy of the
logits against fixed random labels), backward, AdamW (lr 1e-4, weight decay 0.04 on weights,
0 on biases and norms, as DINO's parameter groups). Prints per-step times, the median
images/s over the measured steps and the peak RSS (ru_maxrss); the last line is
machine-readable (`RESULT ...`), as the Rust binary's. `--precision bf16` runs the forward and
the loss under `torch.autocast("cpu", torch.bfloat16)` (f32 master weights and optimizer), the
counterpart of the Rust side's `--precision bf16` (bf16 GEMM inputs, f32 everything else).

    /opt/torchenv/bin/python scripts/bench_models.py --model vit_s16 --batch 8 --size 224 \
        --steps 3 --warmup 1 --threads 2
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- DINO vision_transformer.py (drop_path_rate 0, no dropout) ---------------------------

class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6):
        super().__init__()
        n = (img_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]


# --- torchvision resnet.py, ResNet-50 (Bottleneck v1.5: stride on the 3x3) ---------------

class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride,
                                                      bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(y + identity)


class ResNet50(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers, inplanes = [], 64
        for stage, blocks in enumerate([3, 4, 6, 3]):
            planes = 64 << stage
            stage_blocks = []
            for i in range(blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                stage_blocks.append(Bottleneck(inplanes, planes, stride))
                inplanes = planes * 4
            layers.append(nn.Sequential(*stage_blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(inplanes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def param_groups(model, lr, wd):
    """DINO's get_params_groups: no weight decay on biases and rank-1 parameters."""
    reg, not_reg = [], []
    for name, p in model.named_parameters():
        (not_reg if name.endswith(".bias") or p.ndim <= 1 else reg).append(p)
    return [{"params": reg, "lr": lr, "weight_decay": wd},
            {"params": not_reg, "lr": lr, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["vit_s16", "resnet50"], default="vit_s16")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    import contextlib
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.precision == "bf16" \
        else contextlib.nullcontext

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t = time.perf_counter()
    model = VisionTransformer(img_size=a.size) if a.model == "vit_s16" else ResNet50()
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 1e-4, 0.04), lr=1e-4)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"bench_models.py: {a.model} ({n_params} params), batch {a.batch}, "
          f"{a.size}x{a.size}, {a.precision}, torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, built in {time.perf_counter() - t:.2f} s")

    x = torch.randn(a.batch, 3, a.size, a.size)
    labels = torch.randint(0, 1000, (a.batch,))
    measured, measured_cpu = [], []
    for step in range(a.warmup + a.steps):
        cpu0 = time.process_time()  # user + system, all threads
        t0 = time.perf_counter()
        with autocast():
            out = model(x)
            loss = out.mean() if a.model == "vit_s16" else F.cross_entropy(out, labels)
        t_fwd = time.perf_counter() - t0
        t1 = time.perf_counter()
        loss.backward()
        t_bwd = time.perf_counter() - t1
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t_opt = time.perf_counter() - t2
        total = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        kind = "warm-up" if step < a.warmup else "step"
        print(f"{kind} {step}: {total:.3f} s (forward {t_fwd:.3f}, backward {t_bwd:.3f}, "
              f"optimizer {t_opt:.3f}), CPU time {cpu:.2f} s, loss {loss.item():.5f}, "
              f"{a.batch / total:.2f} img/s")
        if step >= a.warmup:
            measured.append(total)
            measured_cpu.append(cpu)
    med = statistics.median(measured)
    med_cpu = statistics.median(measured_cpu)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    print(f"median step {med:.3f} s (CPU time {med_cpu:.2f} s) over {len(measured)} steps -> "
          f"{a.batch / med:.3f} images/s; peak memory (ru_maxrss) {peak_mib} MiB")
    print(f"RESULT model={a.model} images_per_s={a.batch / med:.4f} median_step_s={med:.4f} "
          f"cpu_step_s={med_cpu:.3f} peak_mem={peak_mib}MiB precision={a.precision}")


if __name__ == "__main__":
    main()
