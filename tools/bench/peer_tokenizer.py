#!/usr/bin/env python3
"""peer_tokenizer.py — Hugging Face tokenizers' throughput on the corpus `dre bench tokenizer`
uses, printed in its line format so the two can be compared:
  tokenizer threads=T texts=... bytes=... tokens=... seconds=... MB/s=... texts/s=...

Texts: title + " " + text of every JSONL line, the corpus repeated to about 20 MB (or
--repeat times). One Tokenizer.encode_batch call over all texts, truncated to the model's
max length (sentence_bert_config.json's max_seq_length, else 512), no padding. The one-
thread run is a child process with RAYON_NUM_THREADS=1 (tokenizers sizes its thread pool
once, at first use); the all-threads run another with RAYON_NUM_THREADS=N.

Run from the repository root:
  python3 tools/bench/peer_tokenizer.py --corpus tests/data/papers.jsonl [--model DIR]
      [--repeat N] [--threads N] [--max-length N]
"""
import argparse
import json
import os
import subprocess
import sys
import time

TARGET_BYTES = 20 << 20


def load_texts(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            row = json.loads(line)
            title = row.get("title") or ""
            texts.append(title + " " + row["text"] if title else row["text"])
    return texts


def load_tokenizer(model_dir, max_length):
    from tokenizers import Tokenizer
    path = os.path.join(model_dir, "tokenizer.json")
    if os.path.exists(path):
        tok = Tokenizer.from_file(path)
    else:
        from transformers import BertTokenizerFast
        tok = BertTokenizerFast.from_pretrained(model_dir).backend_tokenizer
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def model_max_length(model_dir):
    try:
        with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
            return int(json.load(f)["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 512


def measure(args, threads):
    """Runs in the child: RAYON_NUM_THREADS is already set."""
    corpus = load_texts(args.corpus)
    corpus_bytes = sum(len(t.encode("utf-8")) for t in corpus)
    repeat = args.repeat or -(-TARGET_BYTES // corpus_bytes)
    texts = corpus * repeat
    tok = load_tokenizer(args.model, args.max_length)
    tok.encode_batch(texts[:1000])  # warm-up: thread pool, caches
    t0 = time.perf_counter()
    encs = tok.encode_batch(texts)
    seconds = time.perf_counter() - t0
    n_tokens = sum(len(e.ids) for e in encs)
    n_bytes = corpus_bytes * repeat
    print("tokenizer threads=%d texts=%d bytes=%d tokens=%d seconds=%.4f MB/s=%.1f texts/s=%.0f"
          % (threads, len(texts), n_bytes, n_tokens, seconds, n_bytes / 1e6 / seconds,
             len(texts) / seconds), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--repeat", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-length", type=int, default=0)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.max_length:
        args.max_length = model_max_length(args.model)
    if args.child:
        measure(args, args.child)
        return
    import tokenizers
    print("# peer: tokenizers %s encode_batch, corpus %s, model %s, max length %d"
          % (tokenizers.__version__, args.corpus, args.model, args.max_length), flush=True)
    for threads in sorted({1, args.threads}):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads),
                   TOKENIZERS_PARALLELISM="true" if threads > 1 else "false")
        cmd = [sys.executable, os.path.abspath(__file__), "--model", args.model, "--corpus",
               args.corpus, "--repeat", str(args.repeat), "--max-length", str(args.max_length),
               "--child", str(threads)]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
