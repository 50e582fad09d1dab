"""The safetensors writer the fixture scripts share, so that they need no `safetensors` package.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's
dtype, shape and byte range, plus `__metadata__` strings) padded with spaces to a multiple of
8 bytes, then the tensors' bytes in header order. Tensors are written in sorted-name order,
so a script that draws the same values writes the same bytes.
"""

import json
import struct

import torch

# torch dtype -> safetensors dtype (bool is stored as U8, 0 or 1)
ST_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.uint8: "U8",
    torch.bool: "U8",
}


def tensor_bytes(t):
    """A tensor's values as little-endian bytes in row-major order."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    if t.dtype in (torch.float16, torch.bfloat16):
        # numpy has no bfloat16: the 16-bit patterns are written as they are.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    np_dtype = {torch.float64: "<f8", torch.float32: "<f4", torch.int64: "<i8", torch.uint8: "u1"}
    return t.numpy().astype(np_dtype[t.dtype]).tobytes()


def safetensors_bytes(tensors, metadata, sort_header_keys=True, cast=None):
    """The file's bytes for `tensors` (name -> tensor) and `metadata` (name -> str).

    `cast` converts every tensor to one dtype first. `sort_header_keys=False` keeps the
    header's keys in insertion order (`__metadata__` first, then the sorted names), which is
    how `gen_ssl_fixtures.py` wrote its file.
    """
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name] if cast is None else tensors[name].to(cast)
        data = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":"), sort_keys=sort_header_keys).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)
