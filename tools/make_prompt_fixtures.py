#!/usr/bin/env python3
"""make_prompt_fixtures.py — the reference for tests/prompts_test.cc: embeddings with
prompts, as sentence-transformers (fp32, CPU) makes them.

For each case, a model folder is assembled in a scratch folder: the model's files, with
tests/fixtures/prompts/<case>.json as its config_sentence_transformers.json (prompts and
default_prompt_name). sentence-transformers then encodes the first 16 demo documents with
encode_document and the demo queries with encode_query, which pick the prompts (in
sentence-transformers 6: the ones named "query" and "document", "" where absent), and both
once more without a prompt.

Writes, under tests/fixtures/prompts/:
  <case>.ref.json  {"model", "query_prompt", "doc_prompt" (the prompts sentence-transformers
                   applied, read back from the model), "doc_ids", "queries", "tokens":
                   [{"text", "ids"}] (its tokenizer's ids for prompt + text)}
  <case>.f32       float32 [16 documents with prompt; the same without; 20 queries with
                   prompt; the same without], row-major

Cases: minilm (models/all-MiniLM-L6-v2, mean pooling; "query", "passage" and a default
prompt, of which encode_document uses none) and tiny (tests/fixtures/tiny-bert-cls, CLS
pooling; "query" and "document" prompts beside a default).
Run from the repository root: python3 tools/make_prompt_fixtures.py
"""
import json
import os
import shutil
import tempfile

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "prompts")
CASES = {"minilm": os.path.join(ROOT, "models", "all-MiniLM-L6-v2"),
         "tiny": os.path.join(ROOT, "tests", "fixtures", "tiny-bert-cls")}
N_DOCS = 16


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def beir_text(doc):
    return (doc["title"] + " " + doc["text"]).strip() if "title" in doc else doc["text"].strip()


def model_with_prompts(src, config, scratch):
    """src's files (linked), with config as config_sentence_transformers.json."""
    dst = os.path.join(scratch, os.path.basename(src))
    os.mkdir(dst)
    for name in os.listdir(src):
        if name != "config_sentence_transformers.json":
            os.symlink(os.path.abspath(os.path.join(src, name)), os.path.join(dst, name))
    shutil.copy(config, os.path.join(dst, "config_sentence_transformers.json"))
    return dst


def main():
    torch.set_num_threads(os.cpu_count() or 1)
    docs = read_jsonl(os.path.join(ROOT, "tests", "data", "papers.jsonl"))[:N_DOCS]
    queries = [q["text"] for q in read_jsonl(os.path.join(ROOT, "tests", "data",
                                                          "queries.jsonl"))]
    doc_texts = [beir_text(d) for d in docs]
    for case, src in CASES.items():
        with tempfile.TemporaryDirectory() as scratch:
            folder = model_with_prompts(src, os.path.join(OUT, case + ".json"), scratch)
            model = SentenceTransformer(folder, device="cpu")
            model.float()
            # the prompts encode_query and encode_document apply (sentence-transformers 6:
            # "query" and "document", "" when the model has none; default_prompt_name and
            # "passage" are not consulted), checked below against what they did
            query_prompt, doc_prompt = model.prompts["query"], model.prompts["document"]
            d = model.encode_document(doc_texts, convert_to_numpy=True, batch_size=16)
            q = model.encode_query(queries, convert_to_numpy=True, batch_size=16)
            plain_d = model.encode(doc_texts, prompt="", convert_to_numpy=True, batch_size=16)
            plain = model.encode(queries, prompt="", convert_to_numpy=True, batch_size=16)
            # check that the resolved prompts are the ones encode_* applied
            assert np.allclose(q, model.encode(queries, prompt=query_prompt,
                                               convert_to_numpy=True), atol=1e-6)
            assert np.allclose(d, model.encode(doc_texts, prompt=doc_prompt,
                                               convert_to_numpy=True), atol=1e-6)
            tokens = []
            for prompt, text in [(doc_prompt, doc_texts[0]), (query_prompt, queries[0]),
                                 (query_prompt, queries[1]), (query_prompt, "")]:
                ids = model.tokenize([prompt + text])["input_ids"][0].tolist()
                tokens.append({"text": prompt + text, "ids": ids})
        ref = {"model": os.path.relpath(src, ROOT), "query_prompt": query_prompt,
               "doc_prompt": doc_prompt, "doc_ids": [d["_id"] for d in docs],
               "queries": queries, "tokens": tokens}
        with open(os.path.join(OUT, case + ".ref.json"), "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=False, indent=1)
            f.write("\n")
        np.concatenate([d, plain_d, q, plain]).astype("<f4").tofile(
            os.path.join(OUT, case + ".f32"))
        print(f"{case}: query prompt {query_prompt!r}, document prompt {doc_prompt!r}, "
              f"dim {d.shape[1]}")


if __name__ == "__main__":
    main()
