#!/usr/bin/env python3
"""make_embedding_fixtures.py — reference embeddings from sentence-transformers (fp32,
CPU), the reference for tests/encoder_cpu_test.cc.

For a model folder it writes, under tests/fixtures/:
  embeddings_<name>.jsonl  one line per text: {"kind", "text", "ids"}, ids being the
                           model's own Hugging Face tokenizer's, truncated to the model's
                           max_seq_length exactly as SentenceTransformer.encode does
  embeddings_<name>.f32    the embeddings, float32 little-endian, [n_texts, dim] row-major
  embeddings_<name>.meta.json  the model's shape, pooling and max length as
                           sentence-transformers sees them, hashlib's SHA-256 of its
                           model.safetensors, and probes: single weights as PyTorch loaded
                           them (fp32), to check the loader's conversion and q/k/v fusion

Texts: the demo titles, abstracts and queries (tests/data), 10 texts longer than the
model's max length (abstracts joined) and a few edge cases; make_tiny_model.py uses a
smaller set.

Run from the repository root:
  python3 tools/make_embedding_fixtures.py [--model models/all-MiniLM-L6-v2] [--name minilm]
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
DATA = os.path.join(ROOT, "tests", "data")

EDGE_TEXTS = [
    "",
    "a",
    "Déjà vu: naïve café résumé — über straße!",
    "BERT 模型 的 中文 分词 测试",
    "   leading and trailing spaces   ",
    "x" * 150,
]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def demo_texts(data_dir):
    """(kind, text) pairs: titles, abstracts, queries, long texts, edge cases."""
    papers = read_jsonl(os.path.join(data_dir, "papers.jsonl"))
    queries = read_jsonl(os.path.join(data_dir, "queries.jsonl"))
    texts = [("title", p["title"]) for p in papers]
    texts += [("abstract", p["text"]) for p in papers]
    texts += [("query", q["text"]) for q in queries]
    # longer than any max length we ship (256 for MiniLM): three abstracts in a row
    n = len(papers)
    texts += [("long", " ".join(papers[(3 * i + j) % n]["text"] for j in range(3)))
              for i in range(10)]
    texts += [("edge", t) for t in EDGE_TEXTS]
    return texts


def load(model_dir):
    # fp32 whatever the file's dtype, so the reference is the weights' exact fp32 value
    return SentenceTransformer(model_dir, device="cpu",
                               model_kwargs={"dtype": torch.float32})


def probes(model):
    """A few weights by (tensor, row, col) as the loaded PyTorch model holds them."""
    bert = model[0].auto_model
    c = bert.config
    state = bert.state_dict()
    h, ff, last = c.hidden_size, c.intermediate_size, c.num_hidden_layers - 1
    picks = [("embeddings.word_embeddings.weight", 1000, 7),
             ("embeddings.position_embeddings.weight", c.max_position_embeddings - 1, h - 1),
             ("embeddings.token_type_embeddings.weight", 1, 0),
             ("embeddings.LayerNorm.weight", 0, 5), ("embeddings.LayerNorm.bias", 0, 6)]
    for layer in (0, last):
        p = f"encoder.layer.{layer}."
        for qkv in ("query", "key", "value"):
            picks += [(p + f"attention.self.{qkv}.weight", 1, 2),
                      (p + f"attention.self.{qkv}.weight", h - 1, h - 2),
                      (p + f"attention.self.{qkv}.bias", 0, 3)]
        picks += [(p + "attention.output.dense.weight", 2, 5),
                  (p + "attention.output.dense.bias", 0, h - 1),
                  (p + "attention.output.LayerNorm.weight", 0, 1),
                  (p + "attention.output.LayerNorm.bias", 0, 2),
                  (p + "intermediate.dense.weight", ff - 1, 0),
                  (p + "intermediate.dense.bias", 0, ff - 1),
                  (p + "output.dense.weight", 0, ff - 1),
                  (p + "output.dense.bias", 0, 4),
                  (p + "output.LayerNorm.weight", 0, 3),
                  (p + "output.LayerNorm.bias", 0, h - 1)]
    out = []
    for name, row, col in picks:
        t = state[name].float()
        v = t[col] if t.dim() == 1 else t[row, col]
        out.append({"tensor": name, "row": row, "col": col, "value": float(v)})
    return out


def write_meta(model_dir, model, base, n_texts, dim):
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    c = model[0].auto_model.config
    pooling = model[1].get_config_dict()
    meta = {"model": os.path.basename(os.path.normpath(model_dir)), "weights_sha256": sha,
            "n_texts": n_texts, "dim": dim, "max_seq_length": model.max_seq_length,
            "n_layers": c.num_hidden_layers, "hidden": c.hidden_size,
            "n_heads": c.num_attention_heads, "intermediate": c.intermediate_size,
            "max_positions": c.max_position_embeddings, "vocab_size": c.vocab_size,
            "type_vocab_size": c.type_vocab_size, "layer_norm_eps": c.layer_norm_eps,
            "pooling": str(pooling.get("pooling_mode", "mean")),
            "normalize": any(type(m).__name__ == "Normalize" for m in model),
            "probes": probes(model)}
    with open(base + ".meta.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def write_fixtures(model_dir, name, texts, min_long=256):
    torch.manual_seed(0)
    model = load(model_dir)
    model.eval()
    max_len = model.max_seq_length
    strings = [t for _, t in texts]
    # the ids encode() feeds the model (preprocess is tokenize's newer name)
    tokenize = model.preprocess if hasattr(model, "preprocess") else model.tokenize
    ids = [tokenize([t])["input_ids"][0].tolist() for t in strings]
    # encode one text at a time: no padding, the same arithmetic per text as ours
    emb = np.stack([model.encode([t], batch_size=1, convert_to_numpy=True)[0]
                    for t in strings]).astype("<f4")
    untruncated = [len(model.tokenizer(t)["input_ids"]) for t, (k, _) in zip(strings, texts)
                   if k == "long"]
    assert all(n > min_long for n in untruncated), untruncated
    assert max(len(i) for i in ids) == max_len, (max(len(i) for i in ids), max_len)

    os.makedirs(FIXTURES, exist_ok=True)
    base = os.path.join(FIXTURES, f"embeddings_{name}")
    with open(base + ".jsonl", "w", encoding="utf-8") as f:
        for (kind, text), row in zip(texts, ids):
            f.write(json.dumps({"kind": kind, "text": text, "ids": row},
                               ensure_ascii=False) + "\n")
    emb.tofile(base + ".f32")
    write_meta(model_dir, model, base, len(texts), emb.shape[1])
    print(f"{os.path.relpath(base)}.jsonl/.f32: {len(texts)} texts, dim {emb.shape[1]}, max_len {max_len}, "
          f"longest untruncated {max(untruncated)} tokens", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--name", default="minilm")
    ap.add_argument("--data", default=DATA)
    args = ap.parse_args()
    write_fixtures(args.model, args.name, demo_texts(args.data))


if __name__ == "__main__":
    main()
