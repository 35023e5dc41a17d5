#!/usr/bin/env python3
"""f16_model.py SRC DST — a copy of a Hugging Face model folder with its model.safetensors
stored as float16 (half the bytes: all-MiniLM-L6-v2 goes from 91 MB to 45 MB, small enough to
travel to the GPU machine). Every other file is copied as it is. Float32 tensors are rounded
to nearest even (IEEE binary16, as dre's own fp16 conversion); other dtypes are kept.
Standard library only: the GPU machine's tools, and this machine, need nothing installed.
"""
import json
import os
import shutil
import struct
import sys
from array import array


def convert(src_path, dst_path):
    with open(src_path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    if sys.byteorder != "little":
        sys.exit("f16_model: needs a little-endian machine")
    out_header, chunks, offset = {}, [], 0
    for name, meta in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]
                             if isinstance(kv[1], dict) else -1):
        if name == "__metadata__":
            out_header[name] = meta
            continue
        begin, end = meta["data_offsets"]
        raw = data[begin:end]
        dtype = meta["dtype"]
        if dtype == "F32":
            values = array("f")
            values.frombytes(raw)
            raw = struct.pack(f"<{len(values)}e", *values)
            dtype = "F16"
        out_header[name] = {"dtype": dtype, "shape": meta["shape"],
                            "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(out_header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    tmp = dst_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for chunk in chunks:
            f.write(chunk)
    os.replace(tmp, dst_path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if not os.path.isfile(os.path.join(src, "model.safetensors")):
        sys.exit(f"f16_model: {src} has no model.safetensors")
    os.makedirs(dst, exist_ok=True)
    for entry in os.listdir(src):
        if entry == "model.safetensors":
            continue
        s, d = os.path.join(src, entry), os.path.join(dst, entry)
        if os.path.isdir(s):
            shutil.copytree(s, d, dirs_exist_ok=True)
        else:
            shutil.copy2(s, d)
    convert(os.path.join(src, "model.safetensors"), os.path.join(dst, "model.safetensors"))
    print(f"f16_model: {src} -> {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
