#!/usr/bin/env python3
"""bench_python.py — what the Python package costs over the C library, and where
sentence-transformers stands, encoding the same texts on the CPU with the same threads.

    python3 tools/bench/bench_python.py [--n 1000] [--texts abstracts|titles] [--threads N]
                                        [--reps 3] [--dre build/dre] [--no-st]

Three timings of the same n texts (the demo corpus's, repeated), best of --reps after a
warm-up, the model loaded beforehand in each:
  c       `dre encode --device cpu`: its own timing of dre_encode_texts (stderr summary)
  python  dre.Encoder(device="cpu").encode(texts): the same call through cffi
  st      sentence_transformers.SentenceTransformer(...).encode(texts) (torch threads set)
One line per measurement: what=... n=... threads=... seconds=... texts_per_s=...
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--n", type=int, default=1000)
ap.add_argument("--texts", choices=["abstracts", "titles"], default="abstracts")
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--model", default=os.path.join(root, "models", "all-MiniLM-L6-v2"))
ap.add_argument("--dre", default=os.environ.get("DRE_BINARY") or os.path.join(root, "build", "dre"))
ap.add_argument("--no-st", action="store_true", help="skip sentence-transformers")
args = ap.parse_args()
# OpenMP reads this when libdre loads: set before importing dre
os.environ["OMP_NUM_THREADS"] = str(args.threads)

import dre  # noqa: E402

with open(os.path.join(root, "tests", "data", "papers.jsonl"), encoding="utf-8") as f:
    docs = [json.loads(line) for line in f]
field = "text" if args.texts == "abstracts" else "title"
texts = [" ".join(d[field].split()) for d in docs]  # one line each, for dre encode's stdin
texts = (texts * (args.n // len(texts) + 1))[: args.n]


def report(what, seconds):
    print(f"what={what} texts={args.texts} n={args.n} threads={args.threads} "
          f"seconds={seconds:.3f} texts_per_s={args.n / seconds:.1f}", flush=True)


def best(fn):
    fn(texts[: min(32, len(texts))])  # warm-up
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        fn(texts)
        times.append(time.perf_counter() - start)
    return min(times)


# c: the CLI's own timing of dre_encode_texts, model loading excluded
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "out.npy")
    stdin = ("\n".join(texts) + "\n").encode()
    times = []
    for _ in range(args.reps):
        r = subprocess.run([args.dre, "encode", "--device", "cpu", "--model", args.model,
                            "--threads", str(args.threads), "--output", out], input=stdin,
                           capture_output=True, check=True,
                           env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
        times.append(float(re.search(rb", ([0-9.]+) s encoding", r.stderr).group(1)))
    report("c", min(times))

with dre.Encoder(args.model, device="cpu") as enc:
    report("python", best(lambda t: enc.encode(t, threads=args.threads)))

if not args.no_st:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    st = SentenceTransformer(args.model, device="cpu")
    report("st", best(lambda t: st.encode(t, batch_size=32)))
sys.exit(0)
