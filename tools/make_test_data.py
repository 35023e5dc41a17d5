#!/usr/bin/env python3
"""make_test_data.py — tests/data/scifact/: a part of BEIR SciFact's train split small enough
for the tests to embed on a CPU, and hard enough that retrieval metrics do not saturate.

Queries: the first 200 train claims (file order) and their judgements. Corpus: every document
judged relevant to one of them, then every 6th of the others in file order, up to 1,000
documents in all. Lines are copied byte for byte from BEIR's files and keep their order, so
a document's row in the sample is its place among the chosen lines.

Run from the repository root, with BEIR SciFact's train split beside the repository:
  python3 tools/make_test_data.py [--data ../shared/data/scifact-train]
(the standard library only)
"""
import argparse
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
N_QUERIES = 200
N_DOCS = 1000
EVERY = 6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "scifact-train"))
    args = ap.parse_args()
    with open(os.path.join(args.data, "queries.jsonl"), encoding="utf-8") as f:
        query_lines = [line for line in f if line.strip()][:N_QUERIES]
    query_ids = {json.loads(line)["_id"] for line in query_lines}
    with open(os.path.join(args.data, "qrels.tsv"), encoding="utf-8") as f:
        qrel_lines = f.readlines()
    header, judged = qrel_lines[0], [l for l in qrel_lines[1:] if l.split("\t")[0] in query_ids]
    relevant = {l.split("\t")[1] for l in judged}
    with open(os.path.join(args.data, "corpus.jsonl"), encoding="utf-8") as f:
        corpus_lines = [line for line in f if line.strip()]
    ids = [json.loads(line)["_id"] for line in corpus_lines]
    missing = relevant - set(ids)
    if missing:
        raise SystemExit(f"judged documents missing from the corpus: {sorted(missing)[:5]}")
    others = [i for i, d in enumerate(ids) if d not in relevant][::EVERY]
    keep = {i for i, d in enumerate(ids) if d in relevant}
    keep.update(others[: N_DOCS - len(keep)])
    out = os.path.join(ROOT, "tests", "data", "scifact")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(corpus_lines[i] for i in sorted(keep))
    with open(os.path.join(out, "queries.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(query_lines)
    with open(os.path.join(out, "qrels.tsv"), "w", encoding="utf-8") as f:
        f.writelines([header] + judged)
    print(f"wrote {out}: {len(keep)} documents ({len(relevant)} judged relevant), "
          f"{len(query_lines)} queries, {len(judged)} judgements")


if __name__ == "__main__":
    main()
