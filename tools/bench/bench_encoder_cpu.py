#!/usr/bin/env python3
"""bench_encoder_cpu.py — dre's CPU encoder beside ONNX Runtime and sentence-transformers, in
one run on the same texts, and the table the README and closing notes carry.

Each round runs `dre bench encoder --device cpu --corpus FILE --n N` at every thread count
(OMP_NUM_THREADS), the OpenBLAS path of dre too with --openblas (DRE_CPU_GEMM=openblas), dre's
bf16 and PyTorch's bf16 (sentence-transformers with the model in bf16) with --bf16, dre's int8
and ONNX Runtime's int8 (quantize_dynamic of the same export) with --int8, and
tools/bench/peer_encoder_cpu.py at the same thread counts; rounds alternate which goes first, since
this machine's speed drifts over minutes. Prints every measured line, then one markdown
table: docs/s per thread count and the single 12-token query's p50 / p99 at each, the mean
over rounds (each round's figures are in the lines above it).

Usage: python3 tools/bench/bench_encoder_cpu.py --corpus ../shared/data/scifact-train/corpus.jsonl
       [--n 300] [--threads 1,2] [--rounds 2] [--openblas] [--bf16] [--int8] [--dre build/dre]
Needs what tools/bench/peer_encoder_cpu.py needs (the fixture tools, onnxruntime, onnx)."""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env_extra):
    env = dict(os.environ, **env_extra)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    lines = [l for l in out.splitlines() if "what=end_to_end" in l or "what=query_latency" in l]
    for l in lines:
        print(l, flush=True)
    return lines


def fields(line):
    return dict(re.findall(r"(\w+)=(\S+)", line))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--openblas", action="store_true", help="also dre's OpenBLAS path")
    ap.add_argument("--bf16", action="store_true", help="also dre bf16 and PyTorch bf16")
    ap.add_argument("--int8", action="store_true", help="also dre int8 and ONNX Runtime int8")
    ap.add_argument("--dre", default=os.path.join(HERE, "..", "..", "build", "dre"))
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    def dre(env_extra, name, precision="fp32"):
        rows = []
        for t in threads:
            env = dict(env_extra, OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t))
            for l in run([args.dre, "bench", "encoder", "--device", "cpu", "--precision",
                          precision, "--corpus", args.corpus, "--n", str(args.n)], env):
                rows.append((name, l))
        return rows

    def peers():
        rows = []
        whos = ("onnxruntime" + (",onnxruntime_int8" if args.int8 else "") + ",st" +
                (",st_bf16" if args.bf16 else ""))
        for l in run([sys.executable, os.path.join(HERE, "peer_encoder_cpu.py"), "--corpus",
                      args.corpus, "--n", str(args.n), "--threads", args.threads, "--who", whos],
                     {}):
            who = fields(l)["who"]
            names = {"onnxruntime": "ONNX Runtime",
                     "onnxruntime_int8": "ONNX Runtime int8 (quantize_dynamic)",
                     "sentence_transformers": "sentence-transformers",
                     "torch_bf16": "PyTorch bf16 (sentence-transformers)"}
            rows.append((names.get(who, who), l))
        return rows

    measured = []
    for r in range(args.rounds):
        print(f"# round {r + 1}", flush=True)
        steps = [lambda: dre({}, "dre fp32")]
        if args.openblas:
            steps.append(lambda: dre({"DRE_CPU_GEMM": "openblas"}, "dre fp32, OpenBLAS path"))
        if args.bf16:
            steps.append(lambda: dre({}, "dre bf16", "bf16"))
        if args.int8:
            steps.append(lambda: dre({}, "dre int8", "int8"))
        steps.append(peers)
        if r % 2:
            steps.reverse()
        for step in steps:
            measured += step()

    table = {}
    for name, line in measured:
        f = fields(line)
        entry = table.setdefault(name, {}).setdefault(int(f["threads"]), {"dps": [], "q": []})
        if f["what"] == "end_to_end":
            entry["dps"].append(float(f["texts_per_s"]))
        else:
            entry["q"].append((float(f["p50_ms"]), float(f["p99_ms"])))

    def mean(xs):
        return sum(xs) / len(xs) if xs else float("nan")

    ort = table.get("ONNX Runtime", {})
    head = "| engine | " + " | ".join(f"docs/s, {t} thr" for t in threads)
    head += " | " + " | ".join(f"query p50 / p99 ms, {t} thr" for t in threads)
    head += " | docs/s vs ONNX Runtime, " + " / ".join(f"{t} thr" for t in threads) + " |"
    print(f"\n{args.n} documents of {os.path.basename(args.corpus)}, {args.rounds} round(s), "
          "mean over rounds\n")
    print(head)
    print("|" + " --- |" * (2 + 2 * len(threads)))
    for name, per in table.items():
        cells = [f"{mean(per[t]['dps']):.1f}" if t in per else "-" for t in threads]
        for t in threads:
            q = per.get(t, {}).get("q", [])
            cells.append(f"{mean([a for a, _ in q]):.1f} / {mean([b for _, b in q]):.1f}"
                         if q else "-")
        ratios = []
        for t in threads:
            if t in per and t in ort and mean(ort[t]["dps"]) > 0:
                ratios.append(f"{mean(per[t]['dps']) / mean(ort[t]['dps']):.2f}x")
            else:
                ratios.append("-")
        cells.append(" / ".join(ratios))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
