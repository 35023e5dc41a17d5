#!/usr/bin/env python3
"""charts.py — the benchmark outputs as PNG charts (matplotlib), beside README's tables.

Reads what the benchmarks print, unchanged:
  - `key=value` lines: `dre bench encoder` and tools/bench/bench_encoder_cpu.py (bench=encoder,
    bench=peer_cpu), tools/bench/bench_serve.sh (bench=serve), tools/bench/bench_scale.sh
    (bench=scale); other lines are ignored, so a whole log can be given;
  - the GPU proof kit's proof.jsonl (tools/gpu_proof.sh), one JSON object a line.
and draws, for what it finds (a chart whose data is absent is not drawn):
  cpu_encoder.png   docs/s of each engine and precision at each thread count (mean over rounds)
  cpu_latency.png   a 12-token query's p50 and p99 per engine, at each thread count
  serve.png         requests/s and p50 / p99 latency of dre serve against the peer, per
                    endpoint and concurrency
  scale.png         embed docs/s, search and serve queries/s: one rank or shard against many
  gpu_encoder.png   proof.jsonl: each kernel's share of a layer, per model, and end-to-end
                    texts/s against the peer (Hugging Face fp16)
  gpu_search.png    proof.jsonl: exact search on the GPU against FAISS Flat on the CPU
Charts from the CUDA emulation's proof.jsonl say so in their title (no GPU timing in them).

Usage: python3 tools/bench/charts.py --out DIR LOG_OR_JSONL...
Prints each chart's path. Needs matplotlib (DRE_SETUP_FIXTURE_TOOLS=1 tools/setup.sh)."""
import argparse
import collections
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)

PAIR = re.compile(r"(\w+)=(\S+)")
COLOURS = ["#1f5fa8", "#5b9bd5", "#a9c9ec", "#c0504d", "#e59a98", "#7f7f7f", "#f2a93b", "#6aa84f"]


def number(text):
    try:
        return float(text)
    except ValueError:
        return text


def read_records(paths):
    """Every benchmark record in the files: (key=value records, proof.jsonl records)."""
    lines, proof = [], []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for raw in f:
                raw = raw.strip()
                if raw.startswith("{"):
                    try:
                        rec = json.loads(raw)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(rec, dict) and "stage" in rec:
                        proof.append(rec)
                elif raw.startswith("bench="):
                    lines.append({k: number(v) for k, v in PAIR.findall(raw)})
    return lines, proof


def engine_of(rec):
    """A CPU encoder record's row name: dre and its precision, or the peer."""
    if rec["bench"] == "encoder":
        return "dre " + str(rec.get("precision", "fp32"))
    return {
        "onnxruntime": "ONNX Runtime fp32",
        "onnxruntime_int8": "ONNX Runtime int8",
        "sentence_transformers": "PyTorch fp32 (sentence-transformers)",
        "torch_bf16": "PyTorch bf16",
    }.get(rec["who"], str(rec["who"]))


def mean_by(records, key_fn, value):
    groups = collections.OrderedDict()
    for r in records:
        if value in r:
            groups.setdefault(key_fn(r), []).append(r[value])
    return {k: statistics.mean(v) for k, v in groups.items()}


def grouped_bars(ax, rows, columns, values, fmt="{:.0f}"):
    """One group of bars per row, one bar per column; values[(row, column)]."""
    width = 0.8 / max(1, len(columns))
    for j, col in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(rows))]
        ys = [values.get((row, col), 0) for row in rows]
        bars = ax.bar(xs, ys, width, label=str(col), color=COLOURS[j % len(COLOURS)])
        for b, y in zip(bars, ys):
            if y:
                ax.annotate(fmt.format(y), (b.get_x() + b.get_width() / 2, y), ha="center",
                            va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(rows, rotation=20, ha="right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def save(fig, out, name):
    path = os.path.join(out, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)


def cpu_charts(lines, out):
    cpu = [r for r in lines if r.get("bench") in ("encoder", "peer_cpu") and
           r.get("device", "cpu") == "cpu" and "threads" in r]
    ends = [r for r in cpu if r.get("what") == "end_to_end"]
    if ends:
        speed = mean_by(ends, lambda r: (engine_of(r), int(r["threads"])), "texts_per_s")
        rows = sorted({k[0] for k in speed}, key=lambda e: -speed.get((e, 2), speed.get((e, 1), 0)))
        threads = sorted({k[1] for k in speed})
        first = ends[0]
        fig, ax = plt.subplots(figsize=(9, 4.2))
        grouped_bars(ax, rows, [f"{t} thread{'s' * (t > 1)}" for t in threads],
                     {(e, f"{t} thread{'s' * (t > 1)}"): v for (e, t), v in speed.items()})
        ax.set_ylabel("documents / s")
        ax.set_title(f"CPU encoder, {first.get('model', '')}: {int(first.get('n', 0))} abstracts "
                     f"({first.get('texts', '')}), mean of {len(ends) // max(1, len(speed))} "
                     "round(s)", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, out, "cpu_encoder.png")
    lat = [r for r in cpu if r.get("what") == "query_latency"]
    if lat:
        p50 = mean_by(lat, lambda r: (engine_of(r), int(r["threads"])), "p50_ms")
        p99 = mean_by(lat, lambda r: (engine_of(r), int(r["threads"])), "p99_ms")
        rows = sorted({k[0] for k in p50}, key=lambda e: p50.get((e, 1), 0))
        threads = sorted({k[1] for k in p50})
        fig, axes = plt.subplots(1, len(threads), figsize=(5 * len(threads), 4.2), squeeze=False)
        for ax, t in zip(axes[0], threads):
            grouped_bars(ax, rows, ["p50", "p99"],
                         {**{(e, "p50"): p50[(e, tt)] for (e, tt) in p50 if tt == t},
                          **{(e, "p99"): p99[(e, tt)] for (e, tt) in p99 if tt == t}}, "{:.2f}")
            ax.set_ylabel("ms")
            ax.set_title(f"one {int(lat[0].get('tokens', 12))}-token query, {t} "
                         f"thread{'s' * (t > 1)}", fontsize=10)
            ax.legend(fontsize=8)
        save(fig, out, "cpu_latency.png")


def clients(c):
    return f"{c} client{'s' * (c > 1)}"


def serve_chart(lines, out):
    recs = [r for r in lines if r.get("bench") == "serve" and "who" in r and "qps" in r]
    if not recs:
        return
    endpoints = list(collections.OrderedDict.fromkeys(r["endpoint"] for r in recs))
    fig, axes = plt.subplots(2, len(endpoints), figsize=(5 * len(endpoints), 7), squeeze=False)
    for j, endpoint in enumerate(endpoints):
        mine = [r for r in recs if r["endpoint"] == endpoint]
        conc = sorted({int(r["concurrency"]) for r in mine})
        who = list(collections.OrderedDict.fromkeys(r["who"] for r in mine))
        qps = mean_by(mine, lambda r: (r["who"], int(r["concurrency"])), "qps")
        grouped_bars(axes[0][j], [clients(c) for c in conc], who,
                     {(clients(c), w): v for (w, c), v in qps.items()})
        axes[0][j].set_ylabel("requests / s")
        axes[0][j].set_title(f"{endpoint}: throughput", fontsize=10)
        axes[0][j].legend(fontsize=8)
        cells = {}
        for (w, c), v in mean_by(mine, lambda r: (r["who"], int(r["concurrency"])),
                                 "p50_ms").items():
            cells[(clients(c), f"{w} p50")] = v
        for (w, c), v in mean_by(mine, lambda r: (r["who"], int(r["concurrency"])),
                                 "p99_ms").items():
            cells[(clients(c), f"{w} p99")] = v
        grouped_bars(axes[1][j], [clients(c) for c in conc],
                     [f"{w} {p}" for w in who for p in ("p50", "p99")], cells, "{:.1f}")
        axes[1][j].set_ylabel("ms")
        axes[1][j].set_title(f"{endpoint}: latency", fontsize=10)
        axes[1][j].legend(fontsize=7)
    save(fig, out, "serve.png")


def scale_chart(lines, out):
    scale = [r for r in lines if r.get("bench") == "scale"]
    panels = [  # (records, label of a bar, value, unit, title)
        ([r for r in scale if r.get("what") == "embed"],
         lambda r: f"{int(r['ranks'])} rank(s) x {int(r['threads'])} thread(s)", "docs_per_s",
         "documents / s", "mpirun dre embed"),
        ([r for r in scale if r.get("what") == "search"],
         lambda r: f"{int(r['shards'])} shard(s)", "qps", "queries / s",
         "dre search over shards"),
        ([r for r in scale if r.get("what") == "serve"],
         lambda r: f"{int(r['ranks'])} rank(s)", "qps", "requests / s", "dre serve /search"),
    ]
    panels = [p for p in panels if p[0]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (recs, label, value, unit, title) in zip(axes[0], panels):
        speed = mean_by(recs, label, value)
        grouped_bars(ax, list(speed), [unit], {(k, unit): v for k, v in speed.items()}, "{:.1f}")
        ax.set_title(f"{title} ({recs[0].get('device', 'cpu')})", fontsize=10)
        ax.set_ylabel(unit)
    save(fig, out, "scale.png")


def gpu_charts(proof, out):
    if not proof:
        return
    emulated = any(r.get("emulated") for r in proof)
    env = next((r for r in proof if r.get("what") == "env"), {})
    where = "CUDA emulation on the CPU: no GPU timing" if emulated else str(env.get("gpu", "GPU"))
    kernels = [r for r in proof if r["stage"] == "bench_encoder" and r.get("what") == "kernel"
               and r.get("texts") == "abstracts"]
    ends = [r for r in proof if r["stage"] == "bench_encoder" and r.get("what") == "end_to_end"]
    if kernels or ends:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        if kernels:
            for r in kernels:  # a layer's kernels give their share of it, the others of a pass
                r["share"] = r.get("share_of_layer", r.get("share_of_forward", 0))
            share = mean_by(kernels, lambda r: (r["op"], r["model"]), "share")
            ops = list(collections.OrderedDict.fromkeys(k[0] for k in share))
            models = list(collections.OrderedDict.fromkeys(k[1] for k in share))
            grouped_bars(axes[0], ops, models, share, "{:.0f}")
            axes[0].set_ylabel("% of a layer (of a pass: embed, pool)")
            axes[0].set_title("where an encoder pass goes (abstracts)", fontsize=10)
            axes[0].legend(fontsize=8)
        if ends:
            tps = mean_by(ends, lambda r: (f"{r.get('model')} {r.get('texts')}",
                                           str(r.get("who", "dre"))), "texts_per_s")
            rows = list(collections.OrderedDict.fromkeys(k[0] for k in tps))
            who = list(collections.OrderedDict.fromkeys(k[1] for k in tps))
            grouped_bars(axes[1], rows, who, tps)
            axes[1].set_yscale("log")
            axes[1].set_ylabel("texts / s (log scale)")
            axes[1].set_title("encoder end to end: dre against the peer", fontsize=10)
            axes[1].legend(fontsize=8)
        fig.suptitle(where, fontsize=10)
        save(fig, out, "gpu_encoder.png")
    search = [r for r in proof if r["stage"] == "bench_search" and "queries_per_s" in r]
    if search:
        qps = mean_by(search, lambda r: (f"n={int(r['n'])} dim={int(r['dim'])}",
                                         r["what"] + (f" {r['storage']}" if "storage" in r else "")),
                      "queries_per_s")
        rows = list(collections.OrderedDict.fromkeys(k[0] for k in qps))
        cols = list(collections.OrderedDict.fromkeys(k[1] for k in qps))
        fig, ax = plt.subplots(figsize=(7, 4))
        grouped_bars(ax, rows, cols, qps)
        ax.set_ylabel("queries / s")
        ax.set_title(f"exact search: GPU against FAISS Flat on the CPU\n{where}", fontsize=10)
        ax.legend(fontsize=8)
        save(fig, out, "gpu_search.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="folder for the PNG files")
    ap.add_argument("inputs", nargs="+", help="benchmark logs and proof.jsonl files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lines, proof = read_records(args.inputs)
    if not lines and not proof:
        sys.exit(f"charts.py: no benchmark records in {', '.join(args.inputs)}")
    cpu_charts(lines, args.out)
    serve_chart(lines, args.out)
    scale_chart(lines, args.out)
    gpu_charts(proof, args.out)


if __name__ == "__main__":
    main()
