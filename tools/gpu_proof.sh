#!/usr/bin/env bash
# gpu_proof.sh [--pack DIR | --build DIR] OUTDIR — proves every GPU claim of dre in one run
# of at most 8 minutes on a GPU machine: the GPU tests, the encoder's parity with the CPU
# encoder and sentence-transformers, dre bench encoder beside the PyTorch peer, exact search
# against FAISS, Nsight Compute, compute-sanitizer and the SASS table. OUTDIR/proof.md and
# OUTDIR/proof.jsonl are rewritten after every stage. Without a GPU the same stages run on
# the CUDA emulation (a dry run; records marked emulated). See tools/gpu/gpu_proof.py.
#
# On the GPU machine, with a pack made here by tools/gpu_pack.sh:
#   tools/gpu_proof.sh --pack .devpack "$OUT"
exec python3 "$(dirname "$0")/gpu/gpu_proof.py" "$@"
