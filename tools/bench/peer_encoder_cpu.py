#!/usr/bin/env python3
"""peer_encoder_cpu.py — the CPU peers for `dre bench encoder --device cpu --corpus FILE`:
the same first N documents of a corpus (title + " " + text, as dre embed and BEIR take
them), tokenized by Hugging Face's tokenizer and cut at the model's max length, embedded by

  onnxruntime            the model exported to ONNX through torch, graph optimisations all,
                         batches of 32 length-sorted texts padded to their longest, mean
                         pooling + L2 normalisation (what fastembed runs)
  onnxruntime_int8       the same export through onnxruntime.quantization.quantize_dynamic
                         (int8 weights, QInt8, activations quantised per batch at run time:
                         VNNI or AMX where the CPU has them)
  sentence_transformers  SentenceTransformer.encode, batch 32, fp32
  st_bf16                the same with the model in bf16 (model.to(torch.bfloat16): PyTorch's
                         bf16 products through oneDNN, AMX or AVX-512 BF16 where the CPU has
                         them)

at each thread count given, and one 12-token query at a time on each (p50, p99 over 200
after 10 to warm up). Prints one line per measurement in dre's format:

  bench=peer_cpu who=onnxruntime model=... texts=... what=end_to_end threads=2 n=... tokens=...
  seconds=... texts_per_s=...
  bench=peer_cpu who=onnxruntime ... what=query_latency threads=1 tokens=12 p50_ms=... p99_ms=...

Usage: python3 tools/bench/peer_encoder_cpu.py --corpus ../shared/data/scifact-train/corpus.jsonl
       [--n 1000] [--model models/all-MiniLM-L6-v2] [--threads 1,2]
       [--who onnxruntime,onnxruntime_int8,st,st_bf16]
Needs the fixture tools (DRE_SETUP_FIXTURE_TOOLS=1 tools/setup.sh) and onnxruntime, onnx.
"""
import argparse
import json
import os
import sys
import tempfile
import time


def corpus_texts(path, n):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc = json.loads(line)
            title, text = doc.get("title") or "", doc.get("text") or ""
            texts.append((title + " " + text).strip() if title else text.strip())
            if len(texts) == n:
                break
    return texts


def export_onnx(model_dir, out_path):
    import torch
    from transformers import AutoModel
    class Hidden(torch.nn.Module):  # positional inputs, the last hidden state out
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(model_dir).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Hidden().eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    types = torch.zeros((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask, types), out_path, dynamo=False,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes,
                                        "last_hidden_state": axes})


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--who", default="onnxruntime,st")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()

    import numpy as np
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    max_length = min(tok.model_max_length, 512)
    st_config = os.path.join(args.model, "sentence_bert_config.json")
    if os.path.exists(st_config):
        max_length = json.load(open(st_config)).get("max_seq_length", max_length)
    texts = corpus_texts(args.corpus, args.n)
    enc = tok(texts, truncation=True, max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: -len(enc["input_ids"][i]))
    n_tokens = sum(len(x) for x in enc["input_ids"])
    label = (f"model={os.path.basename(os.path.normpath(args.model))} "
             f"texts={os.path.basename(args.corpus)}")
    query = tok("speeding up diffusion transformers without any retraining of the model weights",
                truncation=True, max_length=12)  # [CLS], 10 wordpieces, [SEP]
    query = {k: np.array([v], dtype=np.int64) for k, v in query.items()}

    def batches():
        for b in range(0, len(order), args.batch):
            rows = [order[i] for i in range(b, min(b + args.batch, len(order)))]
            width = max(len(enc["input_ids"][r]) for r in rows)
            feed = {}
            for key in ("input_ids", "attention_mask", "token_type_ids"):
                a = np.zeros((len(rows), width), dtype=np.int64)
                for j, r in enumerate(rows):
                    a[j, :len(enc[key][r])] = enc[key][r]
                feed[key] = a
            yield feed

    def report(who, threads, seconds, lat):
        print(f"bench=peer_cpu who={who} {label} what=end_to_end threads={threads} "
              f"n={len(texts)} tokens={n_tokens} seconds={seconds:.3f} "
              f"texts_per_s={len(texts) / seconds:.1f}")
        print(f"bench=peer_cpu who={who} {label} what=query_latency threads={threads} "
              f"tokens={query['input_ids'].shape[1]} queries={len(lat)} "
              f"p50_ms={1e3 * percentile(lat, 0.5):.3f} p99_ms={1e3 * percentile(lat, 0.99):.3f}")
        sys.stdout.flush()

    whos = args.who.split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    if "onnxruntime" in whos or "onnxruntime_int8" in whos:
        import onnxruntime as ort
        onnx_path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        export_onnx(args.model, onnx_path)
        paths = []
        if "onnxruntime" in whos:
            paths.append(("onnxruntime", onnx_path))
        if "onnxruntime_int8" in whos:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            int8_path = onnx_path.replace(".onnx", ".int8.onnx")
            quantize_dynamic(onnx_path, int8_path, weight_type=QuantType.QInt8)
            paths.append(("onnxruntime_int8", int8_path))
        for (who, path), threads in [(p, t) for p in paths for t in threads_list]:
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

            def run(feed):
                hidden = sess.run(None, feed)[0]
                mask = feed["attention_mask"][..., None].astype(np.float32)
                pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
                return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

            run(next(batches()))  # warm up
            t0 = time.perf_counter()
            for feed in batches():
                run(feed)
            seconds = time.perf_counter() - t0
            lat = []
            for i in range(210):
                s0 = time.perf_counter()
                run(query)
                if i >= 10:
                    lat.append(time.perf_counter() - s0)
            report(who, threads, seconds, lat)
    for who in ("st", "st_bf16"):
        if who not in whos:
            continue
        import torch
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer(args.model, device="cpu")
        if who == "st_bf16":
            model = model.to(torch.bfloat16)
        qtext = tok.decode(query["input_ids"][0][1:-1])
        for threads in threads_list:
            torch.set_num_threads(threads)
            model.encode(texts[:args.batch], batch_size=args.batch)  # warm up
            t0 = time.perf_counter()
            model.encode(texts, batch_size=args.batch, normalize_embeddings=True)
            seconds = time.perf_counter() - t0
            lat = []
            for i in range(210):
                s0 = time.perf_counter()
                model.encode([qtext], batch_size=1, normalize_embeddings=True)
                if i >= 10:
                    lat.append(time.perf_counter() - s0)
            report("sentence_transformers" if who == "st" else "torch_bf16", threads, seconds,
                   lat)


if __name__ == "__main__":
    main()
