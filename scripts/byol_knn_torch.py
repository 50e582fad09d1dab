"""k-NN of a `byol_resnet50` checkpoint computed by PyTorch's code: a cross-check of the
example's evaluation path.

Loads the online and target backbones of Tessera's `checkpoint.safetensors` strictly into the
reference's `SmallResNet` (scripts/byol_torch_reference.py) and prints their weighted k-NN
top-1 (k 20, T 0.07; bank = the 10,000 embedded train images, test = the 2,000 test images,
standardised with the train split's mean/std, BatchNorm in eval mode): the numbers the
example printed for the same checkpoint, if the two evaluations agree.

    /work/venv-parity/bin/python scripts/byol_knn_torch.py runs/byol_resnet50/checkpoint.safetensors

Pinned: torch 2.9.1 (CPU), numpy 2.1.3 (the /work/venv-parity environment). Only for the small
preset's full-split defaults (`--eval-train 0 --eval-test 0`).
"""

import sys

import numpy as np
import torch

from byol_torch_reference import features
from byol_trace_torch import build, read_safetensors
from dino_torch_reference import DATA, knn, read_idx


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    sd = read_safetensors(sys.argv[1])
    to_t = lambda x: torch.from_numpy(x.astype(np.float32) / 255.0)[:, None]
    labels = lambda f: torch.from_numpy(read_idx(DATA / f).astype(np.int64))
    tr = to_t(read_idx(DATA / "train-images-idx3-ubyte.gz"))
    te = to_t(read_idx(DATA / "t10k-images-idx3-ubyte.gz"))
    ytr, yte = labels("train-labels-idx1-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
    mean, std = tr.mean().item(), tr.std().item()
    for prefix in ("online.", "target."):
        net = build(sd, prefix, with_predictor=prefix == "online.")["backbone"]
        top1 = knn(features(net, tr, mean, std), ytr, features(net, te, mean, std), yte)
        print(f"{prefix[:-1]} backbone: top-1 {top1:.2f}%", flush=True)


if __name__ == "__main__":
    main()
