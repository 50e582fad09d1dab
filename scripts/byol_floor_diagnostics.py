"""What the random-init k-NN floor of `byol_resnet50`'s small preset measures.

The example (and scripts/byol_torch_reference.py) evaluates a fresh ResNet in eval mode, as
DINO's `eval_knn.py` evaluates any backbone. A fresh BatchNorm's running statistics are its
initial ones (mean 0, variance 1), so in eval mode every BatchNorm is the identity and the
"random init" is an unnormalised random ReLU network. This script measures, for the preset's
model (ResNet-18 layout at width 16, CIFAR stem; the reference's `SmallResNet`) and seeds 0
and 1, the k-NN top-1 (k 20, T 0.07, bank = the 10,000 embedded train images, test = the
2,000 test images, standardised pixels) of:

- torchvision's init, eval mode: the floor the example prints;
- the same weights, flattened 128x4x4 maps instead of the pooled 128-d feature;
- the same weights with BatchNorm statistics measured on the clean training images (what
  BYOL's first epoch puts there, from augmented views);
- PyTorch's default Conv2d init (kaiming-uniform, a = sqrt(5)) instead of torchvision's.

    /work/venv-parity/bin/python scripts/byol_floor_diagnostics.py     # ~2 minutes, 1 thread

Pinned: torch 2.9.1 (CPU), numpy 2.1.3 (the /work/venv-parity environment).
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from byol_torch_reference import SmallResNet
from dino_torch_reference import DATA, knn, read_idx


def main():
    torch.set_num_threads(1)
    to_t = lambda x: torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    tr = to_t(read_idx(DATA / "train-images-idx3-ubyte.gz"))
    te = to_t(read_idx(DATA / "t10k-images-idx3-ubyte.gz"))
    labels = lambda f: torch.from_numpy(read_idx(DATA / f).astype(np.int64))
    ytr, yte = labels("train-labels-idx1-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    mean, std = tr.mean(), tr.std()
    tr, te = (tr - mean) / std, (te - mean) / std

    @torch.no_grad()
    def top1(net, pooled=True):
        net.eval()

        def feats(x):
            out = []
            for i in range(0, len(x), 500):
                z = F.relu(net.bn1(net.conv1(x[i : i + 500])))
                for j in range(1, 5):
                    z = getattr(net, f"layer{j}")(z)
                out.append(z.mean((2, 3)) if pooled else z.flatten(1))
            return F.normalize(torch.cat(out), dim=1)

        return knn(feats(tr), ytr, feats(te), yte)

    print("seed  torchvision init  flattened maps  BN stats of the train images  "
          "PyTorch default conv init")
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = SmallResNet(16)
        floor, flat = top1(net), top1(net, pooled=False)
        net.train()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a plain average over the batches
        with torch.no_grad():
            for i in range(0, len(tr), 500):
                net(tr[i : i + 500])
        calibrated = top1(net)
        torch.manual_seed(seed)
        net = SmallResNet(16)
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
        default = top1(net)
        print(f"{seed:4d}  {floor:16.2f}  {flat:14.2f}  {calibrated:28.2f}  {default:25.2f}",
              flush=True)


if __name__ == "__main__":
    main()
