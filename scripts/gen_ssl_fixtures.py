#!/usr/bin/env python3
"""Reference values for tessera-ssl's weighted k-NN classifier, computed by PyTorch.

How to run
----------
    /opt/torchenv/bin/python scripts/gen_ssl_fixtures.py           # regenerates the file
    /opt/torchenv/bin/python scripts/gen_ssl_fixtures.py --check   # verifies it is current

(pinned versions: scripts/requirements-fixtures.txt, torch 2.9.1 and numpy 2.1.3). It writes
``tests/fixtures/ssl_knn.safetensors``, read by ``ssl/tests/knn_fixture.rs``. The output is
deterministic (a fixed ``torch.Generator`` seed, one CPU thread, sorted keys).

What it computes
----------------
``knn_classifier`` below reimplements DINO's ``eval_knn.py`` function of the same name:
L2-normalized features (``F.normalize(dim=1)``), cosine similarity by a matrix product in
chunks of test rows, ``topk`` neighbours, one-hot votes weighted by ``exp(sim / T)`` with
T = 0.07, classes sorted by summed vote; top-1 and top-5 (``min(5, k)``) accuracy. Two
deliberate choices make the answer unique, and the Rust side follows them: the class sort is
``stable=True`` (equal votes keep the lower class first; DINO's unstable sort leaves this
open), and the generator asserts that no neighbour set or top-1 class is decided by a margin
under 1e-5, so that an f32 implementation must agree too. Accuracies are fractions, not
DINO's percentages.

File format: plain safetensors written by ``scripts/safetensors_out.py`` (the writer of
``scripts/gen_fixtures.py``). Case ``knn``: ``train`` [200, 16] and ``test`` [50, 16] (F64,
values rounded to f32), ``train_labels`` / ``test_labels`` (I64), and per k in {10, 20}:
``pred_k<k>`` (I64), ``top1_k<k>`` and ``top5_k<k>`` (F64, shape [1]). Metadata ``knn``:
``{"op": "knn", "ks": [10, 20], "temperature": 0.07, "num_classes": 10}``.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from safetensors_out import safetensors_bytes
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "ssl_knn.safetensors"
FORMAT = "tessera-fixtures-v1"

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)



def write_safetensors(tensors: dict, metadata: dict) -> bytes:
    return safetensors_bytes(tensors, metadata, sort_header_keys=False)


def knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes,
                   chunk=16):
    """DINO's eval_knn.knn_classifier (features normalized first, as its caller does)."""
    train_features = F.normalize(train_features, dim=1, p=2)
    test_features = F.normalize(test_features, dim=1, p=2)
    train_t = train_features.t()
    top1 = top5 = total = 0
    preds, margins = [], []
    for idx in range(0, test_labels.shape[0], chunk):
        features = test_features[idx: idx + chunk]
        targets = test_labels[idx: idx + chunk]
        b = targets.shape[0]
        similarity = torch.mm(features, train_t)
        # k + 1 neighbours, to measure how clearly the k-th beats the next one.
        distances, indices = similarity.topk(k + 1, largest=True, sorted=True)
        margins.append((distances[:, k - 1] - distances[:, k]).min().item())
        distances, indices = distances[:, :k], indices[:, :k]
        candidates = train_labels.view(1, -1).expand(b, -1)
        retrieved = torch.gather(candidates, 1, indices)
        one_hot = torch.zeros(b * k, num_classes, dtype=train_features.dtype)
        one_hot.scatter_(1, retrieved.reshape(-1, 1), 1)
        weights = distances.clone().div_(T).exp_()
        probs = torch.sum(one_hot.view(b, -1, num_classes) * weights.view(b, -1, 1), 1)
        sorted_probs, predictions = probs.sort(stable=True, dim=1, descending=True)
        margins.append(((sorted_probs[:, 0] - sorted_probs[:, 1]) / sorted_probs[:, 0]).min().item())
        correct = predictions.eq(targets.view(-1, 1))
        top1 += correct.narrow(1, 0, 1).sum().item()
        top5 += correct.narrow(1, 0, min(5, k)).sum().item()
        total += b
        preds.append(predictions[:, 0])
    return torch.cat(preds), top1 / total, top5 / total, min(margins)


def build() -> bytes:
    g = torch.Generator().manual_seed(20260)
    n_train, n_test, dim, classes, T, ks = 200, 50, 16, 10, 0.07, [10, 20]
    centers = torch.randn(classes, dim, generator=g, dtype=torch.float64)
    train_labels = torch.arange(n_train) % classes
    test_labels = torch.randint(0, classes, (n_test,), generator=g)

    def sample(labels):
        x = centers[labels] + 1.2 * torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
        return x.to(torch.float32).to(torch.float64)  # exactly representable in f32

    train, test = sample(train_labels), sample(test_labels)
    tensors = {
        "knn.train": train,
        "knn.test": test,
        "knn.train_labels": train_labels,
        "knn.test_labels": test_labels,
    }
    for k in ks:
        pred, top1, top5, margin = knn_classifier(train, train_labels, test, test_labels, k, T,
                                                  classes)
        assert margin > 1e-5, f"k={k}: a decision margin of {margin} is too close to a tie"
        tensors[f"knn.pred_k{k}"] = pred
        tensors[f"knn.top1_k{k}"] = torch.tensor([top1], dtype=torch.float64)
        tensors[f"knn.top5_k{k}"] = torch.tensor([top5], dtype=torch.float64)
        print(f"k={k}: top1 {top1:.3f} top5 {top5:.3f} (min margin {margin:.2e})")
    meta = {
        "knn": json.dumps({"op": "knn", "ks": ks, "temperature": T, "num_classes": classes},
                          sort_keys=True, separators=(",", ":")),
        "_format": FORMAT,
        "_generator": "scripts/gen_ssl_fixtures.py",
        "_torch": torch.__version__.split("+")[0],
        "_numpy": np.__version__,
    }
    return write_safetensors(tensors, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the committed file is current")
    args = ap.parse_args()
    data = build()
    if args.check:
        same = OUT.exists() and OUT.read_bytes() == data
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        sys.exit(0 if same else 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(data)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data)} bytes")


if __name__ == "__main__":
    main()
