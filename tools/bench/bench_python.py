#!/usr/bin/env python3
"""bench_python.py — what the Python package costs over the C library, and where
sentence-transformers stands, encoding the same texts on the CPU with the same threads.

    python3 tools/bench/bench_python.py [--n 1000] [--texts abstracts|titles] [--threads N]
                                        [--reps 3] [--no-st]

Three timings of the same n texts (the demo corpus's, repeated), best of --reps after a
warm-up, the model loaded beforehand in each:
  c       dre_encode_texts from a small C program on the package's libdre.so
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


# c: the same call (dre_encode_texts) from C, on the same libdre.so, timed the same way
C_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "dre.h"
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
int main(int argc, char **argv) { /* model texts.txt n_threads reps */
    static char *texts[100000];
    size_t n = 0, cap = 0;
    char *line = NULL;
    FILE *f = fopen(argv[2], "r");
    while (n < 100000 && getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = 0;
        texts[n++] = strdup(line);
    }
    dre_model *m;
    dre_tokenizer *tok;
    dre_encoder *enc;
    if (dre_model_open(argv[1], &m) || dre_tokenizer_open(argv[1], &tok) ||
        dre_encoder_open(m, DRE_DEVICE_CPU, 0, &enc)) {
        fprintf(stderr, "%s\n", dre_last_error());
        return 1;
    }
    float *out = malloc(n * (size_t)dre_encoder_dim(enc) * sizeof *out);
    int threads = atoi(argv[3]), reps = atoi(argv[4]);
    dre_encode_texts(enc, tok, (const char *const *)texts, n < 32 ? n : 32, threads, out);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (dre_encode_texts(enc, tok, (const char *const *)texts, n, threads, out)) return 1;
        if (now() - t0 < best) best = now() - t0;
    }
    printf("%.6f\n", best);
    return 0;
}
"""
pkg = os.path.dirname(dre.__file__)
with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "texts.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    with open(os.path.join(tmp, "harness.c"), "w") as f:
        f.write(C_HARNESS)
    subprocess.run(["cc", "-O2", "-o", os.path.join(tmp, "harness"), os.path.join(tmp, "harness.c"),
                    "-I", pkg, "-L", pkg, "-ldre", "-Wl,-rpath," + pkg], check=True)
    r = subprocess.run([os.path.join(tmp, "harness"), args.model, os.path.join(tmp, "texts.txt"),
                        str(args.threads), str(args.reps)], capture_output=True, text=True,
                       check=True)
    report("c", float(r.stdout))

with dre.Encoder(args.model, device="cpu") as enc:
    report("python", best(lambda t: enc.encode(t, threads=args.threads)))

if not args.no_st:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(args.threads)
    st = SentenceTransformer(args.model, device="cpu")
    report("st", best(lambda t: st.encode(t, batch_size=32)))
sys.exit(0)
