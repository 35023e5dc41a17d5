#!/usr/bin/env python3
"""gpu_proof.py — every GPU claim dre makes, proven in one short run on a GPU machine
(tools/gpu_proof.sh runs this). Stages, each with its own time budget, in this order:

  env            the GPU, driver and build
  tests          every real-GPU test case (kernels, encoder, exact search), one timeout each
  parity         the GPU encoder's embeddings of the demo corpus against the CPU encoder
                 and against sentence-transformers run there (worst cosine)
  bench_encoder  dre bench encoder for minilm-l6, bge-small and bert-base, abstracts and
                 queries, each beside tools/bench/peer_encoder.py on the same lengths, with the
                 GEMM-only roofline; a --batch-tokens sweep for minilm-l6; every kernel variant
  bench_search   dre bench search, 1M x 384, 1,000 queries, k = 10, fp32 and fp16 storage, and
                 fp16 with 1,000 crowds of near-duplicates each query aims at (the fp16
                 search's worst case: queries searched again, the slowest single query)
  ncu            one minilm-l6 batch under Nsight Compute (speed of light per kernel)
  sanitizers     compute-sanitizer memcheck, racecheck and synccheck over the kernel tests
  sass           the SASS gate's table (tools/gpu/sass_gate.py)

Results go to OUTDIR/proof.jsonl (one record per measurement) and OUTDIR/proof.md (a table
per stage), rewritten after every stage, so a run cut short keeps what it did. A stage that
fails is recorded and the next one runs. Without a GPU the same stages run against the CUDA
emulation (build/dre-emu, the emu_* tests) on small inputs, every record marked
"emulated": true; the peer, ncu and the sanitizers are skipped with the reason. Exit status:
0 when every stage passed or was skipped for a stated reason, 1 otherwise.

usage: gpu_proof.py [--pack DIR | --build DIR] [--budget-s S] [--only STAGE,...] OUTDIR
"""
import argparse
import glob
import gzip
import lzma
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIGS = ["minilm-l6", "bge-small", "bert-base"]
# (name, seconds on a GPU, seconds emulated)
# (the first H100 run took: tests 20 s, parity 24, ncu 37, sass 6; bench_search's fp32 half
# alone 45 s with FAISS's CPU peer; racecheck more than 32 s; bench_encoder past its 160 s
# before bert-base's query peer, the batch-token sweep and the variants)
STAGES = [("env", 10, 10), ("tests", 35, 1200), ("parity", 30, 300),
          ("bench_encoder", 190, 300), ("bench_search", 120, 180), ("ncu", 45, 5),
          ("sanitizers", 90, 5), ("sass", 10, 30), ("scale", 60, 5)]


class Proof:
    """The run's records, written out after every stage."""

    def __init__(self, out_dir, emulated):
        self.out_dir, self.emulated = out_dir, emulated
        self.records, self.stage_status = [], []
        os.makedirs(out_dir, exist_ok=True)
        self.jsonl = open(os.path.join(out_dir, "proof.jsonl"), "w")

    def add(self, stage, **fields):
        rec = {"stage": stage, "emulated": self.emulated, **fields}
        self.records.append(rec)
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()
        return rec

    def finish_stage(self, stage, status, seconds, note=""):
        self.stage_status.append((stage, status, seconds, note))
        self.add(stage, what="stage", status=status, seconds=round(seconds, 1), note=note)
        self.write_md()

    def write_md(self):
        lines = ["# dre GPU proof", ""]
        env = next((r for r in self.records if r["stage"] == "env" and r.get("what") == "env"),
                   {})
        lines.append(("**Emulated** (no GPU: the CUDA emulation; timings mean nothing). "
                      if self.emulated else "") + ", ".join(
            f"{k}: {env[k]}" for k in ("gpu", "driver", "cuda_runtime", "build", "date")
            if k in env))
        lines += ["", "| stage | status | seconds | note |", "|---|---|---|---|"]
        for stage, status, seconds, note in self.stage_status:
            lines.append(f"| {stage} | {status} | {seconds:.0f} | {note} |")
        for stage, _, _ in STAGES:
            recs = [r for r in self.records if r["stage"] == stage and r.get("what") != "stage"]
            body = TABLES[stage](recs) if stage in TABLES and recs else []
            if body:
                lines += ["", f"## {stage}", ""] + body
        with open(os.path.join(self.out_dir, "proof.md.tmp"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(os.path.join(self.out_dir, "proof.md.tmp"),
                   os.path.join(self.out_dir, "proof.md"))


# ------------------------------------------------------------------ tables for proof.md

def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def fmt(v, digits=3):
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.0f}"
    return "" if v is None else str(v)


def table_tests(recs):
    cases = [r for r in recs if r.get("what") == "case"]
    counts = {}
    for r in cases:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    rows = [(r["name"], r["status"], fmt(r.get("seconds"))) for r in cases
            if r["status"] != "passed"]
    out = [", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no cases ran"]
    out += [r.get("message", "") for r in recs if r.get("what") == "binary" and r.get("message")]
    return out + ([""] + md_table(["case", "status", "s"], rows) if rows else [])


def table_parity(recs):
    return md_table(["compared", "texts", "worst cosine", "mean cosine", "note"],
                    [(r["pair"], r.get("texts", ""), fmt(r.get("worst_cosine"), 7),
                      fmt(r.get("mean_cosine"), 7), r.get("note", ""))
                     for r in recs if r.get("what") == "cosine"])


def table_bench_encoder(recs):
    e2e = [r for r in recs if r.get("what") in ("end_to_end", "gemm_roofline")]
    rows = []
    for r in e2e:
        peer = r.get("peer_texts_per_s")
        rows.append((r.get("model"), r.get("texts"), r.get("who", "dre"),
                     r.get("batch_tokens", ""), f"{r.get('attention', '')} {r.get('gelu', '')}",
                     r.get("what"),
                     fmt(r.get("texts_per_s")), fmt(r.get("tokens_per_s")),
                     fmt(r["texts_per_s"] / peer, 3) if peer and r.get("texts_per_s") else "",
                     fmt(r.get("end_to_end_over_roofline", ""))))
    out = md_table(["model", "texts", "who", "batch tokens", "variants", "what", "texts/s",
                    "tokens/s", "x peer", "e2e / roofline"], rows)
    kern = [r for r in recs if r.get("what") == "kernel"]
    if kern:
        out += ["", "Per kernel (first batch):", ""]
        out += md_table(["model", "texts", "variants", "op", "ms", "share", "TFLOP/s", "GB/s",
                         "% H100 DRAM", "% H200 DRAM"],
                        [(r.get("model"), r.get("texts"),
                          f"{r.get('attention', '')} {r.get('gelu', '')}", r.get("op"),
                          r.get("ms_per_layer", r.get("ms")),
                          r.get("share_of_layer", r.get("share_of_forward")), r.get("tflops"),
                          r.get("gbs"), r.get("dram_pct_h100"), r.get("dram_pct_h200"))
                         for r in kern])
    return out


def table_bench_search(recs):
    return md_table(["what", "storage", "crowds", "n", "dim", "queries", "k", "queries/s",
                     "searched again", "one query: mean / max ms", "speedup", "id agreement"],
                    [(r.get("what"), r.get("storage", ""), r.get("crowds", ""), r.get("n", ""),
                      r.get("dim", ""), r.get("queries", ""), r.get("k", ""),
                      r.get("queries_per_s", ""), r.get("widened", ""),
                      f"{r['one_query_mean_ms']} / {r['one_query_max_ms']}"
                      if "one_query_max_ms" in r else "",
                      r.get("speedup", ""),
                      r.get("id_agreement") or (f"{r['ids_in_order']} in order, scores "
                                                f"{r['scores_bitwise']} bitwise"
                                                if "ids_in_order" in r else "")) for r in recs
                     if r.get("what") in ("gpu_exact", "faiss_flat_cpu", "compare",
                                          "compare_small_batches")])


def table_ncu(recs):
    return md_table(["kernel", "launches", "duration us", "DRAM % peak", "SM % peak",
                     "memory % peak"],
                    [(r["kernel"], r.get("launches"), fmt(r.get("duration_us")),
                      fmt(r.get("dram_pct")), fmt(r.get("sm_pct")), fmt(r.get("memory_pct")))
                     for r in recs if r.get("what") == "kernel"])


def table_sanitizers(recs):
    return md_table(["tool", "verdict", "errors", "seconds"],
                    [(r["tool"], r["verdict"], r.get("errors", ""), fmt(r.get("seconds")))
                     for r in recs if r.get("what") == "sanitizer"])


def table_sass(recs):
    return md_table(["kernel", "regs", "smem", "spill", "hmma", "ldg128", "stg128", "instr",
                     "loop", "verdict"],
                    [(r["kernel"], r["regs"], r["smem"], r["spill"], r["hmma"], r["ldg128"],
                      r["stg128"], r["instr"], r["loop"], r["verdict"]) for r in recs
                     if r.get("what") == "kernel"])


def table_scale(recs):
    return md_table(["what", "ranks", "docs/s", "qps", "note"],
                    [(r.get("what"), r.get("ranks", r.get("shards", "")),
                      r.get("docs_per_s", ""), r.get("qps", ""), r.get("reason", ""))
                     for r in recs])


TABLES = {"tests": table_tests, "parity": table_parity,
          "bench_encoder": table_bench_encoder, "bench_search": table_bench_search,
          "ncu": table_ncu, "sanitizers": table_sanitizers, "sass": table_sass,
          "scale": table_scale}


# ------------------------------------------------------------------ running things

class StageTimeout(Exception):
    pass


class Runner:
    def __init__(self, args, emulated, bin_dir, env):
        self.args, self.emulated, self.bin_dir, self.env = args, emulated, bin_dir, env
        self.deadline = time.monotonic() + args.budget_s
        self.stage_deadline = self.deadline

    def left(self):
        return min(self.stage_deadline, self.deadline) - time.monotonic()

    def run(self, cmd, timeout=None, env=None, check=False, stdin=None):
        """(returncode, stdout, stderr); returncode None on a timeout."""
        left = self.left()
        if left < 1:
            raise StageTimeout()
        limit = min(timeout, left) if timeout else left
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, cwd=ROOT,
                               env={**self.env, **(env or {})}, input=stdin)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            if limit == left:
                raise StageTimeout()
            return None, out, err
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-400:]}")
        return r.returncode, r.stdout, r.stderr

    def dre(self):
        return os.path.join(self.bin_dir, "dre-emu" if self.emulated else "dre")


def kv_lines(text, prefix):
    """The key=value records of a benchmark's output lines that start with prefix."""
    recs = []
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        rec = {}
        for token in line.split():
            if "=" in token:
                k, v = token.split("=", 1)
                rec[k] = number(v)
        recs.append(rec)
    return recs


def number(v):
    v = v.rstrip("%")
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


# ------------------------------------------------------------------ stages

def stage_env(proof, runner):
    info = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "build": runner.bin_dir}
    if not runner.emulated:
        rc, out, _ = runner.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                 "--format=csv,noheader"], timeout=20)
        if rc == 0 and out.strip():
            name, driver, memory = [x.strip() for x in out.splitlines()[0].split(",")]
            info.update(gpu=name, driver=driver, memory=memory)
        rc, out, _ = runner.run(["nvidia-smi"], timeout=20)
        m = re.search(r"CUDA Version:\s*([\d.]+)", out or "")
        if m:
            info["cuda_runtime"] = m.group(1)
    else:
        info["gpu"] = "none (CUDA emulation on the CPU)"
    rc, out, _ = runner.run(["ldd", runner.dre()], timeout=20)
    missing = sorted({line.split()[0] for line in (out or "").splitlines() if "not found" in line})
    if missing:  # nothing else can run: say which libraries the pack must carry
        info["missing_libraries"] = ", ".join(missing)
        proof.add("env", what="env", **info)
        return "failed", "dre cannot start here, missing " + ", ".join(missing)
    rc, out, _ = runner.run([runner.dre(), "bench", "encoder", "--variant", "list"], timeout=20)
    info["variants"] = "; ".join(f"{r['family']}: {r['variants']}"
                                 for r in kv_lines(out, "bench=encoder what=variants"))
    proof.add("env", what="env", **info)
    return "passed", ""


def gtest_cases(report_path):
    with open(report_path) as f:
        report = json.load(f)
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            status = "skipped" if case.get("result") == "SKIPPED" else (
                "failed" if case.get("failures") else "passed")
            msg = " / ".join(f.get("failure", "")[:300] for f in case.get("failures", []))
            yield (f"{suite['name']}.{case['name']}", status,
                   float(str(case.get("time", "0")).rstrip("s") or 0), msg)


def stage_tests(proof, runner):
    note = ""
    if runner.emulated:  # the stage's workings on the kernel tests; ctest runs the rest
        binaries = sorted(glob.glob(os.path.join(runner.bin_dir, "emu_kernels_*_test")))
        note = ("emulated: the kernel tests only (ctest runs emu_encoder_gpu*_test and "
                "emu_gpu_search*_test)")
    else:
        binaries = [os.path.join(runner.bin_dir, "dre_gpu_tests")]
    binaries = [b for b in binaries if os.access(b, os.X_OK)]
    if not binaries:
        return "failed", f"no GPU test binaries in {runner.bin_dir}"
    failed = 0
    for binary in binaries:
        report = os.path.join(tempfile.mkdtemp(), "report.json")
        t0 = time.monotonic()
        rc, out, err = runner.run([binary, f"--gtest_output=json:{report}"],
                                  timeout=None if runner.emulated else 80)
        seconds = time.monotonic() - t0
        if not os.path.exists(report):  # a crash or a timeout: no report
            proof.add("tests", what="binary", binary=os.path.basename(binary), status="failed",
                      seconds=round(seconds, 1),
                      message=f"{os.path.basename(binary)}: "
                              f"{'timed out' if rc is None else f'exit {rc}'}, no report; "
                              + (err or out)[-300:].replace("\n", " "))
            failed += 1
            continue
        for name, status, secs, msg in gtest_cases(report):
            proof.add("tests", what="case", binary=os.path.basename(binary), name=name,
                      status=status, seconds=secs, message=msg)
            failed += status == "failed"
    return ("failed", f"{failed} failed") if failed else ("passed", note)


def read_npy(path):
    """A float32 C-order 2-D .npy -> (rows, cols, list of floats)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != b"\x93NUMPY":
        raise RuntimeError(f"{path}: not .npy")
    hlen = struct.unpack("<H", data[8:10])[0] if data[6] == 1 else struct.unpack(
        "<I", data[8:12])[0]
    start = 10 + hlen if data[6] == 1 else 12 + hlen
    header = data[start - hlen:start].decode("latin1")
    shape = tuple(int(x) for x in re.search(r"\(([^)]*)\)", header).group(1).split(",") if x.strip())
    if "<f4" not in header:
        raise RuntimeError(f"{path}: not float32")
    values = struct.unpack(f"<{shape[0] * shape[1]}f", data[start:start + 4 * shape[0] * shape[1]])
    return shape[0], shape[1], values


def cosines(a, b, dim):
    out = []
    for i in range(len(a) // dim):
        x, y = a[i * dim:(i + 1) * dim], b[i * dim:(i + 1) * dim]
        xy = sum(p * q for p, q in zip(x, y))
        xx = sum(p * p for p in x)
        yy = sum(q * q for q in y)
        out.append(xy / math.sqrt(xx * yy) if xx > 0 and yy > 0 else float("nan"))
    return out


def demo_texts(limit=None):
    texts = []
    with open(os.path.join(ROOT, "tests", "data", "papers.jsonl")) as f:
        for line in f:
            doc = json.loads(line)
            texts.append(" ".join(x for x in (doc.get("title"), doc.get("text")) if x))
    return texts[:limit] if limit else texts


def stage_parity(proof, runner, model_dir):
    texts = demo_texts(6 if runner.emulated else None)
    stdin = "\n".join(t.replace("\n", " ") for t in texts) + "\n"
    work = tempfile.mkdtemp()
    got = {}
    for device in ("gpu", "cpu"):
        out = os.path.join(work, f"{device}.npy")
        runner.run([runner.dre(), "encode", "-q", "--model", model_dir, "--device", device,
                    "--output", out], stdin=stdin, timeout=None, check=True)
        rows, dim, values = read_npy(out)
        got[device] = values
    worst_status = "passed"
    cos = cosines(got["gpu"], got["cpu"], dim)
    worst = min(cos)
    proof.add("parity", what="cosine", pair="dre gpu vs dre cpu", texts=len(cos),
              worst_cosine=worst, mean_cosine=sum(cos) / len(cos), contract=0.999)
    if not worst >= 0.999:
        worst_status = "failed"
    note = ""
    try:
        st = sentence_transformers_embeddings(model_dir, texts, runner)
    except ImportError as e:
        if not runner.emulated:
            raise
        st, note = None, f"sentence-transformers skipped: {e}"
    if st is not None:
        for device in ("gpu", "cpu"):
            c = cosines(got[device], st, dim)
            proof.add("parity", what="cosine", pair=f"dre {device} vs sentence-transformers",
                      texts=len(c), worst_cosine=min(c), mean_cosine=sum(c) / len(c),
                      contract=0.999 if device == "gpu" else 0.9999)
            if not min(c) >= (0.999 if device == "gpu" else 0.9999):
                worst_status = "failed"
    return worst_status, note or f"{len(texts)} demo texts (title + abstract)"


def sentence_transformers_embeddings(model_dir, texts, runner):
    """sentence-transformers, fp32, on the GPU where there is one; a flat list of floats."""
    import torch  # noqa: F401  (ImportError: not installed here)
    from sentence_transformers import SentenceTransformer
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        model = SentenceTransformer(model_dir, device=device, model_kwargs={"dtype": torch.float32})
    except TypeError:
        model = SentenceTransformer(model_dir, device=device,
                                    model_kwargs={"torch_dtype": torch.float32})
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=False)
    return [float(x) for row in emb for x in row]


def bench_encoder_run(proof, runner, args, extra):
    rc, out, err = runner.run([runner.dre(), "bench", "encoder"] + args, timeout=None)
    recs, setup = [], {}
    for r in kv_lines(out, "bench=encoder"):
        r.pop("bench", None)
        if r.get("what") == "setup":
            setup = {"batch_tokens": r.get("batch_tokens")}
        recs.append(proof.add("bench_encoder", who="dre", **{**setup, **r, **extra}))
    if rc != 0:
        proof.add("bench_encoder", what="error", args=" ".join(args),
                  message=(err or "")[-400:])
    return rc == 0, recs


def peer_run(proof, runner, config, texts, n, dre_e2e):
    """tools/bench/peer_encoder.py on the same lengths; its texts/s also goes on dre's record."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", "bench", "peer_encoder.py"), "--config",
           os.path.join(ROOT, "tools", "bench", "configs", config), "--texts", texts, "--n", str(n)]
    rc, out, err = runner.run(cmd, timeout=None)
    for r in kv_lines(out, "bench=peer_hf"):
        r.pop("bench", None)
        proof.add("bench_encoder", who="peer_hf", **r)
        if dre_e2e and r.get("texts_per_s"):
            dre_e2e["peer_texts_per_s"] = r["texts_per_s"]
            proof.add("bench_encoder", what="ratio", model=config, texts=texts,
                      dre_texts_per_s=dre_e2e.get("texts_per_s"),
                      peer_texts_per_s=r["texts_per_s"],
                      ratio=dre_e2e.get("texts_per_s", 0) / r["texts_per_s"])
    if rc != 0:
        proof.add("bench_encoder", what="error", args=" ".join(cmd), message=(err or "")[-400:])
    return rc == 0


def stage_bench_encoder(proof, runner):
    emu = runner.emulated
    ok, notes = True, []
    rc, out, _ = runner.run([runner.dre(), "bench", "encoder", "--variant", "list"], timeout=20)
    families = kv_lines(out, "bench=encoder what=variants")
    for config in CONFIGS:
        for texts in ("abstracts", "queries"):
            if emu and texts == "abstracts" and config != "minilm-l6":
                continue  # 512-token abstracts through 12 emulated layers take minutes
            if emu:  # every emulated pass is slow: a few texts show the path works
                n = 2 if texts == "abstracts" else 8
            else:
                n = 20000 if config != "bert-base" else 10000
            args = ["--config", os.path.join("tools", "bench", "configs", config), "--texts", texts,
                    "--n", str(n), "--reps", "1" if emu else "5"]
            if emu:
                args += ["--batch-tokens", "2048"]
            good, recs = bench_encoder_run(proof, runner, args, {})
            ok &= good
            e2e = next((r for r in recs if r.get("what") == "end_to_end"), None)
            if emu:
                continue
            ok &= peer_run(proof, runner, config, texts, n, e2e)
    if emu:
        notes.append("peer skipped: no GPU for transformers to time; emulated: abstracts "
                     "for minilm-l6 only, a few texts each")
    sweep = [512, 1024] if emu else [8192, 16384, 32768, 65536]
    for budget in sweep:
        ok &= bench_encoder_run(proof, runner, [
            "--config", "tools/bench/configs/minilm-l6", "--n", "2" if emu else "20000",
            "--reps", "1", "--batch-tokens", str(budget)], {"sweep": "batch_tokens"})[0]
    for fam in families:
        for variant in str(fam["variants"]).split(","):
            if variant == fam["default"]:
                continue
            ok &= bench_encoder_run(proof, runner, [
                "--config", "tools/bench/configs/minilm-l6", "--n", "2" if emu else "20000",
                "--reps", "1" if emu else "5", "--variant", f"{fam['family']}={variant}"] +
                (["--batch-tokens", "2048"] if emu else []), {"sweep": "variant"})[0]
    if not any(len(str(f["variants"]).split(",")) > 1 for f in families):
        notes.append("every kernel family has one variant")
    return ("passed" if ok else "failed"), "; ".join(notes)


def stage_bench_search(proof, runner):
    ok = True
    args = ["--n", "20000", "--dim", "64", "--queries", "50", "--k", "10"] if runner.emulated \
        else ["--n", "1000000", "--dim", "384", "--queries", "1000", "--k", "10"]
    crowds = "50" if runner.emulated else "1000"
    for storage in ([], ["--fp16"], ["--fp16", "--crowds", crowds]):
        rc, out, err = runner.run([runner.dre(), "bench", "search"] + args + storage,
                                  timeout=None)
        for r in kv_lines(out, "bench=search"):
            r.pop("bench", None)
            proof.add("bench_search", **r)
        if rc != 0:
            ok = False
            proof.add("bench_search", what="error", message=(err or "")[-400:])
    return ("passed" if ok else "failed"), ""


def stage_ncu(proof, runner):
    if runner.emulated:
        return "skipped", "emulated: Nsight Compute needs a GPU"
    ncu = shutil.which("ncu")
    if not ncu:
        return "failed", "ncu not found"
    # one forward pass of a minilm-l6 batch: the profile's warm-up encode is batch 0's
    # first pass (26 of our kernels and 24 GEMMs); keep the first 60 launches
    cmd = [ncu, "--clock-control", "none", "--section", "SpeedOfLight", "--csv",
           "--page", "raw", "--launch-count", "60",
           "--metrics", "gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,"
                        "sm__throughput.avg.pct_of_peak_sustained_elapsed,"
                        "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed",
           runner.dre(), "bench", "encoder", "--config", "tools/bench/configs/minilm-l6",
           "--n", "256", "--reps", "1"]
    rc, out, err = runner.run(cmd, timeout=None)
    rows = list(csv_rows(out))
    per = {}
    for row in rows:
        name = row.get("Kernel Name") or row.get("Function Name") or "?"
        name = re.sub(r"\(.*", "", name).split("::")[-1][:60]
        d = per.setdefault(name, {"launches": 0, "duration_us": 0.0, "dram": [], "sm": [],
                                  "mem": []})
        d["launches"] += 1
        d["duration_us"] += to_float(row.get("gpu__time_duration.sum")) / 1000.0
        d["dram"].append(to_float(row.get("dram__throughput.avg.pct_of_peak_sustained_elapsed")))
        d["sm"].append(to_float(row.get("sm__throughput.avg.pct_of_peak_sustained_elapsed")))
        d["mem"].append(to_float(
            row.get("gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed")))
    for name, d in sorted(per.items(), key=lambda kv: -kv[1]["duration_us"]):
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        proof.add("ncu", what="kernel", kernel=name, launches=d["launches"],
                  duration_us=d["duration_us"], dram_pct=mean(d["dram"]), sm_pct=mean(d["sm"]),
                  memory_pct=mean(d["mem"]))
    if not per:
        return "failed", f"ncu gave no kernel rows (exit {rc}): {(err or out)[-300:]}"
    return "passed", f"{sum(d['launches'] for d in per.values())} launches profiled"


def csv_rows(text):
    import csv
    lines = [l for l in text.splitlines() if l.startswith('"')]
    if not lines:
        return
    reader = csv.DictReader(lines)
    for row in reader:
        if row.get("ID", "").isdigit() or row.get("ID") is None:
            yield row


def to_float(v):
    try:
        return float(str(v).replace(",", ""))
    except (TypeError, ValueError):
        return 0.0


def stage_sanitizers(proof, runner):
    if runner.emulated:
        return "skipped", "emulated: compute-sanitizer needs a GPU (the emulation runs the " \
                          "kernels under ASan + UBSan instead: cmake -DDRE_SANITIZE=ON)"
    tool_bin = shutil.which("compute-sanitizer")
    if not tool_bin:
        return "failed", "compute-sanitizer not found"
    ok, complete = True, True
    binary = os.path.join(runner.bin_dir, "dre_gpu_tests")
    tools = ["memcheck", "racecheck", "synccheck"]
    for i, tool in enumerate(tools):
        t0 = time.monotonic()
        share = max(10.0, runner.left() / (len(tools) - i))  # each tool its share of the rest
        rc, out, err = runner.run([tool_bin, "--tool", tool, "--error-exitcode", "99", binary,
                                   "--gtest_filter=Kernels*"], timeout=share)
        m = re.search(r"ERROR SUMMARY: (\d+) error", (out or "") + (err or ""))
        errors = int(m.group(1)) if m else None
        if rc is None:
            verdict = f"timed out after {share:.0f} s"
            complete = False
        else:
            verdict = "clean" if rc == 0 and errors == 0 else (
                f"{errors} errors" if errors else f"exit {rc}")
            ok &= verdict == "clean"
        proof.add("sanitizers", what="sanitizer", tool=tool, verdict=verdict, errors=errors,
                  seconds=time.monotonic() - t0,
                  tail="" if verdict == "clean" else ((out or "") + (err or ""))[-600:])
    status = "failed" if not ok else "passed" if complete else "incomplete"
    return status, "kernel tests (Kernels*)"


def stage_sass(proof, runner):
    lib = os.path.join(runner.bin_dir, "libdre.a")
    targets = [lib] if os.path.exists(lib) else [os.path.join(runner.bin_dir, "dre")]
    cmd = [sys.executable, os.path.join(ROOT, "tools", "gpu", "sass_gate.py")] + targets
    local = os.path.join(ROOT, "third_party", "cuda", "bin", "cuobjdump")
    if not shutil.which("cuobjdump") and os.access(local, os.X_OK):
        cmd[2:2] = ["--cuobjdump", local]
    rc, out, err = runner.run(cmd, timeout=None)
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 10 and cells[1].isdigit():
            proof.add("sass", what="kernel", kernel=cells[0], regs=int(cells[1]),
                      smem=int(cells[2]), spill=int(cells[3]), hmma=int(cells[4]),
                      ldg128=int(cells[5]), stg128=int(cells[6]), instr=int(cells[7]),
                      loop=int(cells[8]), verdict=cells[9])
    return ("passed" if rc == 0 else "failed"), (err.strip().splitlines() or [""])[-1][:200]


# ------------------------------------------------------------------ main

def stage_scale(proof, runner):
    """1 rank against one rank per GPU (tools/bench/bench_scale.sh --device gpu): a machine with
    several GPUs and Open MPI's mpirun only."""
    gpus = 0
    if not runner.emulated:
        rc, out, _ = runner.run(["nvidia-smi", "-L"])
        gpus = len([l for l in out.splitlines() if l.startswith("GPU ")]) if rc == 0 else 0
    why = "emulated: no GPUs" if runner.emulated else \
        f"{gpus} GPU here: one rank per GPU needs several" if gpus < 2 else \
        "no mpirun here (Open MPI)" if not shutil.which("mpirun") else \
        "no dre-mpi (DRE_PACK_MPI=1 tools/gpu_pack.sh packs it)" \
        if not os.access(os.path.join(runner.bin_dir, "dre-mpi"), os.X_OK) else ""
    if why:
        proof.add("scale", what="skipped", reason=why)
        return "skipped", why
    rc, out, err = runner.run(["bash", os.path.join(ROOT, "tools", "bench", "bench_scale.sh"),
                               "--device", "gpu"], timeout=None)
    for r in kv_lines(out, "bench=scale"):
        r.pop("bench", None)
        proof.add("scale", **r)
    if rc != 0:
        proof.add("scale", what="error", message=(err or "")[-400:])
        return "failed", ""
    return "passed", ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--pack", help="a folder made by tools/gpu_pack.sh (bin/, lib/, models/)")
    ap.add_argument("--build", help="a build folder (default build/, or .devpack/ where a GPU "
                                     "is and tools/gpu_pack.sh's pack was carried)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall time for the whole run (default 530 on a GPU)")
    ap.add_argument("--only", help="comma-separated stages")
    args = ap.parse_args()

    have_gpu = False
    if shutil.which("nvidia-smi"):
        have_gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
    emulated = not have_gpu
    default_pack = os.path.join(ROOT, ".devpack")
    if not args.pack and args.build is None and have_gpu and os.path.isdir(default_pack):
        args.pack = default_pack  # carried here by tools/gpu_pack.sh's default
    env = dict(os.environ)
    bin_dir = os.path.abspath(args.build or os.path.join(ROOT, "build"))
    model_dir = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
    if args.pack:
        pack = os.path.abspath(args.pack)
        bin_dir = os.path.join(pack, "bin")
        for name in ("dre", "dre-mpi", "dre_gpu_tests"):  # gpu_pack.sh gzips them to travel
            packed = os.path.join(bin_dir, name + ".gz")
            if os.path.exists(packed) and not os.path.exists(os.path.join(bin_dir, name)):
                with gzip.open(packed, "rb") as src, \
                        open(os.path.join(bin_dir, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.chmod(os.path.join(bin_dir, name), 0o755)
        lib_dir = os.path.join(pack, "lib")
        for packed in glob.glob(os.path.join(lib_dir, "*.xz")):  # libraries, xz'd to travel
            if not os.path.exists(packed[:-3]):
                with lzma.open(packed, "rb") as src, open(packed[:-3], "wb") as dst:
                    shutil.copyfileobj(src, dst)
        env["LD_LIBRARY_PATH"] = lib_dir + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        model_dir = os.path.join(pack, "models", "all-MiniLM-L6-v2")
        # the tests read models/ under the source folder: give them the pack's
        models = os.path.join(ROOT, "models")
        if not os.path.exists(os.path.join(models, "all-MiniLM-L6-v2")):
            os.makedirs(models, exist_ok=True)
            os.symlink(model_dir, os.path.join(models, "all-MiniLM-L6-v2"))
    env["DRE_SOURCE_DIR"] = ROOT
    env["DRE_BINARY_DIR"] = bin_dir  # where the CLI tests find dre and write scratch files
    env.setdefault("DRE_MODEL", model_dir)

    if emulated and not os.access(os.path.join(bin_dir, "dre-emu"), os.X_OK):
        sys.exit(f"gpu_proof: no GPU here and no {bin_dir}/dre-emu to emulate one "
                 "(build with cmake's default DRE_CUDA_EMU=ON)")
    if not emulated and not os.access(os.path.join(bin_dir, "dre"), os.X_OK):
        sys.exit(f"gpu_proof: no {bin_dir}/dre")
    budget = args.budget_s or (sum(s[2] for s in STAGES) if emulated else 530)
    runner = Runner(argparse.Namespace(budget_s=budget), emulated, bin_dir, env)
    proof = Proof(args.out_dir, emulated)
    only = set(args.only.split(",")) if args.only else None
    funcs = {"env": stage_env, "tests": stage_tests,
             "parity": lambda p, r: stage_parity(p, r, model_dir),
             "bench_encoder": stage_bench_encoder, "bench_search": stage_bench_search,
             "ncu": stage_ncu, "sanitizers": stage_sanitizers, "sass": stage_sass,
             "scale": stage_scale}
    failed = 0
    for name, gpu_s, emu_s in STAGES:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        runner.stage_deadline = t0 + (emu_s if emulated else gpu_s)
        try:
            status, note = funcs[name](proof, runner)
        except StageTimeout:
            status, note = "timed out", f"over its {emu_s if emulated else gpu_s} s budget" \
                if runner.stage_deadline <= runner.deadline else "the run's budget is spent"
        except Exception as e:  # noqa: BLE001 — a failed stage is recorded, the next runs
            status, note = "failed", f"{type(e).__name__}: {e}"[:300]
        seconds = time.monotonic() - t0
        proof.finish_stage(name, status, seconds, note)
        print(f"gpu_proof: {name}: {status} ({seconds:.0f} s){' — ' + note if note else ''}",
              file=sys.stderr, flush=True)
        failed += status not in ("passed", "skipped")
    print(f"gpu_proof: {os.path.join(args.out_dir, 'proof.md')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
