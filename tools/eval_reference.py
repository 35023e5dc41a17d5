#!/usr/bin/env python3
"""eval_reference.py — the end-to-end retrieval reference that `dre eval` must match.

sentence-transformers (fp32, CPU) embeds the corpus and the queries, FAISS IndexFlatIP
searches exactly (k = 100), pytrec_eval scores the run. Corpus texts are joined as
sentence-transformers' InformationRetrievalEvaluator (and BEIR's SentenceBERT model)
join them: (title + " " + text).strip(). Queries are encoded as they are.

Metrics, as BEIR's EvaluateRetrieval takes them from pytrec_eval: ndcg_cut_10,
recall_10, recall_100; MRR@10 is pytrec_eval's recip_rank when the first relevant doc
is in the top 10 (rr >= 0.1), else 0. Means are over the queries pytrec_eval returns:
those that have judgements (and, here, all are in the run). Qrels are loaded as BEIR's
GenericDataLoader loads them (header skipped, a repeated pair keeps its last line).

Writes tests/fixtures/eval_reference_<model>.json: the metrics and the top-k run of
each query set. Run from the repository root:
    python3 tools/eval_reference.py [--model models/all-MiniLM-L6-v2] [--data tests/data]
"""
import argparse
import csv
import hashlib
import json
import os
import sys

import faiss
import numpy as np
import pytrec_eval
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

QUERY_SETS = [("queries", "queries.jsonl", "qrels.tsv"),
              ("title-queries", "title-queries.jsonl", "title-qrels.tsv")]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        next(reader)
        for row in reader:
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--data", default="tests/data")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    model_name = os.path.basename(os.path.normpath(args.model))
    out = args.out or os.path.join("tests", "fixtures", f"eval_reference_{model_name}.json")
    model = SentenceTransformer(args.model, device="cpu")
    model.float()

    corpus = read_jsonl(os.path.join(args.data, "papers.jsonl"))
    doc_ids = [d["_id"] for d in corpus]
    doc_texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    doc_emb = model.encode(doc_texts, batch_size=32, convert_to_numpy=True,
                           show_progress_bar=False).astype(np.float32)
    index = faiss.IndexFlatIP(doc_emb.shape[1])
    index.add(doc_emb)

    result = {
        "model": model_name,
        "weights_sha256": sha256(os.path.join(args.model, "model.safetensors")),
        "corpus": "papers.jsonl",
        "corpus_text": '(title + " " + text).strip()',
        "n_docs": len(corpus),
        "k": args.k,
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "torch": torch.__version__, "faiss": faiss.__version__,
                     "pytrec_eval": "pytrec-eval-terrier"},
        "sets": {},
    }
    for name, queries_file, qrels_file in QUERY_SETS:
        queries = read_jsonl(os.path.join(args.data, queries_file))
        qrels = read_qrels(os.path.join(args.data, qrels_file))
        q_emb = model.encode([q["text"] for q in queries], batch_size=32, convert_to_numpy=True,
                             show_progress_bar=False).astype(np.float32)
        scores, rows = index.search(q_emb, args.k)
        run = {}
        for i, q in enumerate(queries):
            # FAISS scores are float32; the shortest decimal that reads back as the same
            # float32 keeps the file small and the value exact
            run[q["_id"]] = {doc_ids[r]: float(np.format_float_positional(s, unique=True))
                             for s, r in zip(scores[i], rows[i]) if r >= 0}
        evaluator = pytrec_eval.RelevanceEvaluator(
            qrels, {"ndcg_cut.10", "recall.10,100", "recip_rank"})
        per_query = {}
        for qid, m in evaluator.evaluate(run).items():
            rr = m["recip_rank"]
            per_query[qid] = {"ndcg_10": m["ndcg_cut_10"], "recall_10": m["recall_10"],
                              "recall_100": m["recall_100"], "mrr_10": rr if rr >= 0.1 else 0.0}
        n = len(per_query)
        metrics = {key: sum(v[key] for v in per_query.values()) / n
                   for key in ("ndcg_10", "recall_10", "recall_100", "mrr_10")}
        metrics["n_queries"] = n
        metrics["n_skipped"] = sum(1 for q in queries if q["_id"] not in qrels)
        result["sets"][name] = {
            "queries": queries_file, "qrels": qrels_file, "metrics": metrics,
            "per_query": dict(sorted(per_query.items())),
            # the run, best first as FAISS returned it: [doc id, score] pairs
            "run": {qid: [[d, s] for d, s in docs.items()] for qid, docs in run.items()},
        }
        print(f"{model_name} {name}: nDCG@10 {metrics['ndcg_10']:.4f}  "
              f"Recall@10 {metrics['recall_10']:.4f}  Recall@100 {metrics['recall_100']:.4f}  "
              f"MRR@10 {metrics['mrr_10']:.4f}  queries {n} (skipped {metrics['n_skipped']})",
              file=sys.stderr)
    # one line per query's metrics or run, so the file diffs well and stays small:
    # placeholders in the indented dump are replaced by the compact values
    compact = []
    for name in result["sets"]:
        for part in ("per_query", "run"):
            entries = result["sets"][name][part]
            for qid in entries:
                compact.append(json.dumps(entries[qid]))
                entries[qid] = f"@compact{len(compact) - 1}@"
    text = json.dumps(result, indent=1)
    for i, value in enumerate(compact):
        text = text.replace(f'"@compact{i}@"', value, 1)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
