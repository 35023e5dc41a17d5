#!/usr/bin/env python3
"""make_pipeline_fixtures.py — the reference for tests/pipeline_test.cc and cli_test.cc:
the demo corpus embedded and searched by sentence-transformers (fp32, CPU) the way BEIR
evaluates a SentenceTransformer model.

Writes, under tests/fixtures/:
  papers_minilm.f32   corpus embeddings, float32 little-endian, [80, dim] row-major, in
                      file order; each document embedded as BEIR's SentenceBERT.encode_corpus
                      builds it: (title + " " + text).strip() if it has a title, else
                      text.strip()
  papers_minilm.json  {"model", "weights_sha256", "dim", "doc_ids": [file order],
                      "queries": [{"_id", "text", "top": [{"id", "score"} x 10]}]}: the
                      exact top 10 by inner product (the model normalises, so cosine) for
                      each demo query, as BEIR's exact search ranks them

Run from the repository root: python3 tools/make_pipeline_fixtures.py
"""
import hashlib
import json
import os

import numpy as np
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
DATA = os.path.join(ROOT, "tests", "data")
QUERIES = os.path.join(ROOT, "tests", "data", "queries.jsonl")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TOP_K = 10


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def beir_text(doc):
    # beir/retrieval/models/sentence_bert.py, SentenceBERT.encode_corpus
    return (doc["title"] + " " + doc["text"]).strip() if "title" in doc else doc["text"].strip()


def main():
    model = SentenceTransformer(MODEL, device="cpu")
    corpus = read_jsonl(os.path.join(DATA, "papers.jsonl"))
    queries = read_jsonl(QUERIES)
    docs = model.encode([beir_text(d) for d in corpus], batch_size=16, convert_to_numpy=True)
    qs = model.encode([q["text"] for q in queries], batch_size=16, convert_to_numpy=True)
    docs = docs.astype(np.float32)
    qs = qs.astype(np.float32)
    scores = qs @ docs.T
    with open(os.path.join(MODEL, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    out_queries = []
    for i, q in enumerate(queries):
        order = np.argsort(-scores[i], kind="stable")[:TOP_K]
        out_queries.append({"_id": q["_id"], "text": q["text"],
                            "top": [{"id": corpus[j]["_id"], "score": float(scores[i, j])}
                                    for j in order]})
    docs.tofile(os.path.join(FIXTURES, "papers_minilm.f32"))
    meta = {"model": "all-MiniLM-L6-v2", "weights_sha256": sha, "dim": int(docs.shape[1]),
            "doc_ids": [d["_id"] for d in corpus], "queries": out_queries}
    with open(os.path.join(FIXTURES, "papers_minilm.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(corpus)} documents, {len(queries)} queries -> tests/fixtures/papers_minilm.*")


if __name__ == "__main__":
    main()
