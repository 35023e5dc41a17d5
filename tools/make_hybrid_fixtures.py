#!/usr/bin/env python3
"""make_hybrid_fixtures.py — the reference for `dre eval --mode bm25|hybrid`
(tests/eval_e2e_test.cc): BM25, and BM25 fused with sentence-transformers' dense run,
scored by pytrec_eval, independently of dre's C code.

Dense: the sentence-transformers + FAISS Flat run of tools/eval_reference.py, read from
tests/fixtures/eval_reference_all-MiniLM-L6-v2.json (top 100, so every demo document).
BM25: SQLite FTS5 from Python, as tools/make_bm25_fixtures.py runs it (porter unicode61
over title and text, the query's terms as FTS5 finds them OR-ed), top 100. Fusion, over
the top DEPTH of each list:
  rrf:    sum over the lists holding the document of 1 / (RRF_K + rank)
  convex: ALPHA * dense + (1 - ALPHA) * bm25, each score min-max normalised over its list
          (1 if all equal), 0 for a list without the document
best first by fused score, equal scores by corpus row, cut to 100. Metrics as in
tools/eval_reference.py (pytrec_eval: ndcg_cut_10, recall_10, recall_100, recip_rank cut at
rank 10).

Writes tests/fixtures/hybrid_reference.json: {"depth", "rrf_k", "alpha", "sets": {set:
{"bm25" | "rrf" | "convex": metrics}}}. Run from the repository root:
    python3 tools/make_hybrid_fixtures.py [--data tests/data]
"""
import argparse
import csv
import json
import os
import sqlite3
import sys

import pytrec_eval

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_bm25_fixtures import TOKENIZER, query_terms, read_jsonl  # noqa: E402

DEPTH = 100
RRF_K = 60.0
ALPHA = 0.5
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DENSE = os.path.join(ROOT, "tests", "fixtures", "eval_reference_all-MiniLM-L6-v2.json")
QUERY_SETS = [("queries", "queries.jsonl", "qrels.tsv"),
              ("title-queries", "title-queries.jsonl", "title-qrels.tsv")]


def read_qrels(path):
    """BEIR qrels as tools/eval_reference.py reads them: header skipped, last line wins."""
    qrels = {}
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        next(reader)
        for row in reader:
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def open_bm25(corpus):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, "
               "text TEXT NOT NULL)")
    db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)",
                   [(i, str(d["_id"]), d.get("title"), d["text"]) for i, d in enumerate(corpus)])
    db.execute("CREATE VIRTUAL TABLE docs_fts USING fts5(title, text, content='docs', "
               f"content_rowid='row', tokenize='{TOKENIZER}')")
    db.execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')")
    db.execute("CREATE VIRTUAL TABLE scratch USING fts5(q, tokenize='unicode61')")
    db.execute("CREATE VIRTUAL TABLE scratch_terms USING fts5vocab(scratch, 'instance')")
    return db


def bm25_list(db, text):
    terms = query_terms(db, text)
    if not terms:
        return []
    expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    rows = db.execute("SELECT docs.id, bm25(docs_fts) FROM docs_fts JOIN docs ON docs.row = "
                      "docs_fts.rowid WHERE docs_fts MATCH ? ORDER BY bm25(docs_fts), "
                      "docs_fts.rowid LIMIT ?", (expr, DEPTH)).fetchall()
    return [(i, -s) for i, s in rows]


def normalised(lst):
    if not lst:
        return {}
    lo, hi = min(s for _, s in lst), max(s for _, s in lst)
    return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in lst}


def fuse(dense, bm25, how, row_of):
    dense, bm25 = dense[:DEPTH], bm25[:DEPTH]
    scores = {}
    if how == "rrf":
        for lst in (dense, bm25):
            for rank, (d, _) in enumerate(lst, 1):
                scores[d] = scores.get(d, 0.0) + 1.0 / (RRF_K + rank)
    else:
        for weight, lst in ((ALPHA, dense), (1 - ALPHA, bm25)):
            for d, s in normalised(lst).items():
                scores[d] = scores.get(d, 0.0) + weight * s
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], row_of[kv[0]]))[:100]
    return dict(ranked)


def metrics_of(qrels, run):
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10,100",
                                                       "recip_rank"})
    per_query = evaluator.evaluate(run)
    n = len(per_query)
    out = {"ndcg_10": 0.0, "recall_10": 0.0, "recall_100": 0.0, "mrr_10": 0.0}
    for m in per_query.values():
        out["ndcg_10"] += m["ndcg_cut_10"] / n
        out["recall_10"] += m["recall_10"] / n
        out["recall_100"] += m["recall_100"] / n
        rr = m["recip_rank"]
        out["mrr_10"] += (rr if rr >= 0.1 else 0.0) / n
    out["n_queries"] = n
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "tests", "data"))
    args = ap.parse_args()
    with open(DENSE, encoding="utf-8") as f:
        dense_ref = json.load(f)
    corpus = read_jsonl(os.path.join(args.data, dense_ref["corpus"]))
    row_of = {str(d["_id"]): i for i, d in enumerate(corpus)}
    db = open_bm25(corpus)
    result = {"depth": DEPTH, "rrf_k": RRF_K, "alpha": ALPHA, "sets": {}}
    for name, queries_file, qrels_file in QUERY_SETS:
        queries = read_jsonl(os.path.join(args.data, queries_file))
        qrels = read_qrels(os.path.join(args.data, qrels_file))
        dense_runs = dense_ref["sets"][name]["run"]
        runs = {"bm25": {}, "rrf": {}, "convex": {}}
        for q in queries:
            dense = [(d, s) for d, s in dense_runs[q["_id"]]]
            bm25 = bm25_list(db, q["text"])
            runs["bm25"][q["_id"]] = dict(bm25) or {}
            runs["rrf"][q["_id"]] = fuse(dense, bm25, "rrf", row_of)
            runs["convex"][q["_id"]] = fuse(dense, bm25, "convex", row_of)
        result["sets"][name] = {how: metrics_of(qrels, run) for how, run in runs.items()}
        for how, m in result["sets"][name].items():
            print(f"{name} {how}: nDCG@10 {m['ndcg_10']:.4f}  Recall@100 {m['recall_100']:.4f}  "
                  f"MRR@10 {m['mrr_10']:.4f}", file=sys.stderr)
    path = os.path.join(ROOT, "tests", "fixtures", "hybrid_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
