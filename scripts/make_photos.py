#!/usr/bin/env python3
"""Rebuilds data/photos/ (the CC0 photos used by examples/attention_maps.rs) from the
scikit-image wheel.

    pip download scikit-image==0.26.0 --no-deps -d /tmp/skimg
    pip install pillow
    python scripts/make_photos.py /tmp/skimg/scikit_image-0.26.0-*.whl

Each photo is resized so that its shorter side is 224 px (Pillow's LANCZOS filter), then
center-cropped to 224 x 224 (torchvision's Resize(224) + CenterCrop(224)) and saved as an
8-bit RGB PNG. See data/photos/README.md for sources and licences.
"""

import io
import sys
import zipfile
from pathlib import Path

from PIL import Image

SIZE = 224
# file in the wheel -> file in data/photos
PHOTOS = {
    "skimage/data/chelsea.png": "chelsea.png",
    "skimage/data/coffee.png": "coffee.png",
}


def resize_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(__file__).resolve().parent.parent / "data" / "photos"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(sys.argv[1]) as wheel:
        for src, dst in PHOTOS.items():
            img = Image.open(io.BytesIO(wheel.read(src))).convert("RGB")
            small = resize_crop(img, SIZE)
            small.save(out / dst, optimize=True)
            print(f"{src} {img.size[0]}x{img.size[1]} -> {out / dst} {SIZE}x{SIZE}")


if __name__ == "__main__":
    main()
