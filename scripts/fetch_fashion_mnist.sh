#!/usr/bin/env bash
# fetch_fashion_mnist.sh: the whole Fashion-MNIST (60,000 train / 10,000 test images, the
# four gzip IDX files as Zalando distributes them) from Debian's package
# `dataset-fashion-mnist` (MIT), into a folder that `--data` reads.
#
#   bash scripts/fetch_fashion_mnist.sh                 # into fmnist-full/ (git-ignored)
#   DEST=/data/fmnist bash scripts/fetch_fashion_mnist.sh
#   cargo run --release --example dino_vit_s -- --data fmnist-full
#
# The repo embeds a 10,000 / 2,000 subset (data/fashion-mnist); this is the full split, for
# the GPU run of the main-job issue (~31 MB download; the GPU machines have no network, so
# fetch it here and carry the folder: `carry: ["gpu-bundle.tar.xz", "fmnist-full"]`).
# Needs: apt-get (any Debian or Ubuntu with the default sources), dpkg-deb, sha256sum.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${DEST:-$REPO/fmnist-full}
# The package version this script was checked against; another version is refused unless
# SHA256 is overridden with its hash.
VERSION=0.0~git20200523.55506a9-1
SHA256=${SHA256:-39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0}
FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"

if [ -f "$DEST/train-images-idx3-ubyte.gz" ] && [ -f "$DEST/t10k-labels-idx1-ubyte.gz" ]; then
  echo "fetch_fashion_mnist: $DEST already holds the data"; exit 0
fi
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download "dataset-fashion-mnist=$VERSION" 2>/dev/null) || {
  echo "fetch_fashion_mnist: apt-get download dataset-fashion-mnist=$VERSION failed" \
       "(run apt-get update first, or check that the Debian sources are reachable)" >&2
  exit 1
}
deb=$(ls "$TMP"/*.deb)
echo "$SHA256  $deb" | sha256sum -c --quiet - || {
  echo "fetch_fashion_mnist: $deb does not have the pinned sha256" >&2; exit 1; }
dpkg-deb -x "$deb" "$TMP/x"
mkdir -p "$DEST"
for f in $FILES; do cp "$TMP/x/usr/share/datasets/fashion-mnist/$f" "$DEST/"; done
cp "$TMP/x/usr/share/doc/dataset-fashion-mnist/copyright" "$DEST/LICENSE-copyright.txt"
echo "fetch_fashion_mnist: $DEST ($(du -sh "$DEST" | cut -f1)): $FILES"
