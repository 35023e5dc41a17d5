#!/usr/bin/env python3
"""make_eval_fixtures.py — synthetic runs + qrels scored by pytrec_eval, the reference
for tests/eval_test.cc.

For each case it writes, under tests/fixtures/:
  eval_<case>.qrels.tsv  BEIR qrels (header, then query-id, corpus-id, score); the
                         'trec' case writes TREC qrels (query-id 0 doc-id score)
  eval_<case>.run.tsv    query-id <tab> doc-id <tab> score, shuffled (the evaluator
                         must sort), scores as Python repr so doubles round-trip
  eval_<case>.ref.tsv    per query scored by pytrec_eval: query-id, ndcg_cut_10,
                         recall_10, recall_100, mrr_10; then '#mean' with the count and
                         the means; '#skip' lines list run queries without judgements
                         and '#empty' lines queries scored with an empty ranking

Metrics are pytrec_eval's (trec_eval 9): ndcg_cut_10, recall_10, recall_100, and
recip_rank, kept as MRR@10 when the first relevant doc is in the top 10 (rr >= 0.1)
and 0 otherwise. The qrels are loaded the way BEIR's GenericDataLoader loads them (a
repeated pair keeps its last line). Means are over the queries pytrec_eval returns:
those in the run that have judgements, as BEIR's EvaluateRetrieval averages.

Run from the repository root: python3 tools/make_eval_fixtures.py
"""
import os
import random
import sys

import numpy as np
import pytrec_eval

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
MEASURES = {"ndcg_cut.10", "recall.10,100", "recip_rank"}


def doc_name(rng, i):
    """Doc ids whose strcmp order differs from numeric order, some non-ASCII."""
    style = i % 7
    if style == 0:
        return f"d{i}"
    if style == 1:
        return f"doc{i:05d}"
    if style == 2:
        return f"D{i}"
    if style == 3:
        return f"d{i}a"
    if style == 4:
        return f"p\u00e9{i}"  # UTF-8 bytes above 0x7f sort after ASCII under strcmp
    if style == 5:
        return f"{i}"
    return f"x-{i}"


def make_case(rng, name, n_queries, n_docs_pool, run_len, tie_mode, extra):
    pool = [doc_name(rng, i) for i in range(n_docs_pool)]
    qrels_lines = []  # (qid, doc, grade) in file order
    run = {}
    for q in range(n_queries):
        qid = f"q{q}"
        n_judged = rng.choice([1, 2, 3, 5, 8, 12, 20])
        judged = rng.sample(pool, n_judged)
        for d in judged:
            qrels_lines.append((qid, d, rng.choice([0, 1, 1, 2])))
        length = run_len(q)
        # draw the ranking mostly from the judged docs and neighbours so hits happen
        candidates = set(rng.sample(judged, max(0, len(judged) - rng.randint(0, 2))))
        while len(candidates) < length and len(candidates) < len(pool):
            candidates.add(rng.choice(pool))
        docs = rng.sample(sorted(candidates), min(length, len(candidates)))
        run[qid] = {d: score(rng, tie_mode) for d in docs}
    extra(rng, pool, qrels_lines, run)
    return qrels_lines, run


def score(rng, tie_mode):
    if tie_mode == "none":
        return rng.uniform(-1.0, 1.0)
    if tie_mode == "coarse":
        # many exact ties: scores on a grid of 6 values
        return rng.choice([0.1, 0.2, 0.25, 0.5, 0.75, 1.0])
    # 'float': doubles that differ but collapse to one float32, as trec_eval keeps them
    base = float(np.float32(rng.choice([0.3, 0.6, 0.9, 1.2])))
    return base * (1.0 + rng.choice([0.0, 1e-12, -1e-12, 3e-13, 1e-9]))


def no_extra(rng, pool, qrels_lines, run):
    pass


def short_extra(rng, pool, qrels_lines, run):
    # a query with an empty ranking, one whose judgements are all grade 0, one with
    # more than 100 relevant docs (recall@100 < 1 even when all are retrieved), a run
    # query without judgements and a judged query missing from the run
    run["q-empty"] = {}
    qrels_lines.append(("q-empty", pool[0], 1))
    qrels_lines.append(("q-zero", pool[1], 0))
    qrels_lines.append(("q-zero", pool[2], 0))
    run["q-zero"] = {pool[1]: 0.9, pool[3]: 0.8}
    many = rng.sample(pool, 130)
    for d in many[:120]:
        qrels_lines.append(("q-many", d, rng.choice([1, 2])))
    run["q-many"] = {d: rng.random() for d in many}
    run["q-nojudge"] = {pool[4]: 1.0, pool[5]: 0.5}
    qrels_lines.append(("q-notrun", pool[6], 2))


def dup_extra(rng, pool, qrels_lines, run):
    # a repeated (query, doc) pair: the later grade wins, as BEIR's loader does
    qid = "q0"
    d = next(iter(run[qid]))
    qrels_lines.append((qid, d, 0))
    qrels_lines.append((qid, d, 2))


def load_like_beir(qrels_lines):
    qrels = {}
    for qid, d, g in qrels_lines:
        qrels.setdefault(qid, {})[d] = g
    return qrels


def write_case(name, qrels_lines, run, rng, trec_qrels=False):
    qrels = load_like_beir(qrels_lines)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, MEASURES)
    result = evaluator.evaluate(run)
    with open(os.path.join(OUT, f"eval_{name}.qrels.tsv"), "w", encoding="utf-8") as f:
        if trec_qrels:
            for qid, d, g in qrels_lines:
                f.write(f"{qid} 0 {d} {g}\n")
        else:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, d, g in qrels_lines:
                f.write(f"{qid}\t{d}\t{g}\n")
    lines = [(qid, d, s) for qid, docs in run.items() for d, s in docs.items()]
    rng.shuffle(lines)
    with open(os.path.join(OUT, f"eval_{name}.run.tsv"), "w", encoding="utf-8") as f:
        for qid, d, s in lines:
            f.write(f"{qid}\t{d}\t{s!r}\n")
    sums = [0.0, 0.0, 0.0, 0.0]
    with open(os.path.join(OUT, f"eval_{name}.ref.tsv"), "w", encoding="utf-8") as f:
        for qid in sorted(result):
            m = result[qid]
            rr = m["recip_rank"]
            vals = [m["ndcg_cut_10"], m["recall_10"], m["recall_100"], rr if rr >= 0.1 else 0.0]
            sums = [a + b for a, b in zip(sums, vals)]
            f.write(qid + "".join(f"\t{v!r}" for v in vals) + "\n")
        n = len(result)
        f.write(f"#mean\t{n}" + "".join(f"\t{s / n!r}" for s in sums) + "\n")
        for qid in sorted(run):
            if qid not in qrels:
                f.write(f"#skip\t{qid}\n")
            elif not run[qid]:
                f.write(f"#empty\t{qid}\n")
    return len(result), len(lines)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20240611)
    cases = [
        ("random", dict(n_queries=25, n_docs_pool=400, run_len=lambda q: 110,
                        tie_mode="none", extra=dup_extra), False),
        ("ties", dict(n_queries=25, n_docs_pool=60, run_len=lambda q: 30 + q,
                      tie_mode="coarse", extra=no_extra), False),
        ("float_ties", dict(n_queries=20, n_docs_pool=50, run_len=lambda q: 25,
                            tie_mode="float", extra=no_extra), False),
        ("short", dict(n_queries=20, n_docs_pool=300, run_len=lambda q: q % 10,
                       tie_mode="coarse", extra=short_extra), False),
        ("trec", dict(n_queries=10, n_docs_pool=80, run_len=lambda q: 15,
                      tie_mode="none", extra=no_extra), True),
    ]
    for name, kw, trec in cases:
        qrels_lines, run = make_case(rng, name, **kw)
        n_scored, n_lines = write_case(name, qrels_lines, run, rng, trec_qrels=trec)
        print(f"eval_{name}: {n_scored} scored queries, {n_lines} run lines, "
              f"{len(qrels_lines)} qrels lines", file=sys.stderr)


if __name__ == "__main__":
    main()
