"""Builds the embedded Fashion-MNIST subset in data/fashion-mnist/ (numpy 2.1.3).

Source: Debian's package `dataset-fashion-mnist` (the official IDX files, MIT/Expat licence):
    apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb /tmp/fmnist
    python scripts/make_fashion_mnist_subset.py /tmp/fmnist/usr/share/datasets/fashion-mnist

The subset is balanced and deterministic: the first 1000 training images of each class and the
first 200 test images of each class, in file order, written as gzipped IDX files (the same
format as the originals, so any MNIST reader opens them). gzip mtime is 0 so output is
byte-identical across runs.
"""
import gzip
import struct
import sys

import numpy as np


def read_idx(path):
    b = gzip.open(path).read()
    ndim = struct.unpack(">I", b[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, b[4 : 4 + 4 * ndim])
    return np.frombuffer(b[4 + 4 * ndim :], dtype=np.uint8).reshape(dims)


def write_idx(path, arr):
    header = struct.pack(">I", 0x0800 | arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.GzipFile(path, "wb", mtime=0, compresslevel=9) as f:
        f.write(header + arr.tobytes())


def subset(images, labels, per_class):
    idx = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
    return images[idx], labels[idx]


def main(src, out="data/fashion-mnist"):
    for split, prefix, per_class in [("train", "train", 1000), ("test", "t10k", 200)]:
        images = read_idx(f"{src}/{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(f"{src}/{prefix}-labels-idx1-ubyte.gz")
        images, labels = subset(images, labels, per_class)
        write_idx(f"{out}/{prefix}-images-idx3-ubyte.gz", images)
        write_idx(f"{out}/{prefix}-labels-idx1-ubyte.gz", labels)
        print(split, images.shape, np.bincount(labels))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/fmnist/usr/share/datasets/fashion-mnist")
