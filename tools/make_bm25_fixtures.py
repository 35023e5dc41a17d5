#!/usr/bin/env python3
"""make_bm25_fixtures.py — the reference for tests/bm25_test.cc: BM25 over title + text
computed by Python's sqlite3 with SQLite's own FTS5, independently of dre's C code.

For each corpus, the documents go into a table docs(row, id, title, text) in file order
(row = line number among documents, as dre numbers them) and an FTS5 table over title and
text with dre's tokenizer ("porter unicode61", external content, rowid = row). Each query
is cut into terms by FTS5 itself: it is inserted into a scratch FTS5 table with the
unicode61 tokenizer and its terms read back, in order, from an fts5vocab 'instance' table;
the terms are then OR-ed as quoted phrases. The top 10 by FTS5's bm25() (ties by row),
with -bm25() as the score, are written for each query.

Writes tests/fixtures/bm25_reference.json:
  {"tokenizer", "k", "sets": [{"corpus", "queries": [{"text", "terms", "top": [{"id",
   "score"}]}]}]}
with the corpus paths relative to the repository root. Queries: the demo queries and a
list of hostile ones (quotes, operators, column filters, NEAR, prefixes, control
characters, accents) on the demo corpus; the 200 SciFact train queries of tests/data/scifact
(tools/make_test_data.py) on its corpus.

Run from the repository root: python3 tools/make_bm25_fixtures.py (the standard library
only)
"""
import json
import os
import sqlite3

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENIZER = "porter unicode61"
K = 10

HOSTILE = [
    'diffusion "transformer',
    'title:diffusion text:models',
    '{title text}: retrieval',
    'NEAR(sparse attention, 2)',
    'retrieval AND NOT dense OR reranking',
    'trans* quant*',
    '^graph neural -networks +pruning',
    '(((speculative decoding)))',
    'a""b ""c"" "" "',
    'low\x01rank\tadaptation\x7f of \x1b[0mlarge models',
    'Café naïve RÉSUMÉ über Ångström',
    'state-of-the-art_results in C++/CUDA kernels @ 2x speed!!!',
    '   ',
    '*:^"(){}-+',
    'AND OR NOT',
    'mixture-of-experts MoE routing',
]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def query_terms(db, text):
    """The terms FTS5's unicode61 tokenizer finds in text, in order."""
    db.execute("DELETE FROM scratch")
    db.execute("INSERT INTO scratch (rowid, q) VALUES (1, ?)", (text,))
    rows = db.execute("SELECT term FROM scratch_terms ORDER BY offset").fetchall()
    return [r[0] for r in rows]


def search(db, terms):
    if not terms:
        return []
    expr = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
    rows = db.execute(
        "SELECT docs.id, bm25(docs_fts) FROM docs_fts JOIN docs ON docs.row = docs_fts.rowid "
        "WHERE docs_fts MATCH ? ORDER BY bm25(docs_fts), docs_fts.rowid LIMIT ?",
        (expr, K),
    ).fetchall()
    return [{"id": i, "score": -s} for i, s in rows]


def run_set(corpus_rel, queries):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE docs (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT, "
               "text TEXT NOT NULL)")
    docs = read_jsonl(os.path.join(ROOT, corpus_rel))
    db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)",
                   [(i, str(d["_id"]), d.get("title"), d["text"]) for i, d in enumerate(docs)])
    db.execute("CREATE VIRTUAL TABLE docs_fts USING fts5(title, text, content='docs', "
               f"content_rowid='row', tokenize='{TOKENIZER}')")
    db.execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')")
    db.execute("CREATE VIRTUAL TABLE scratch USING fts5(q, tokenize='unicode61')")
    db.execute("CREATE VIRTUAL TABLE scratch_terms USING fts5vocab(scratch, 'instance')")
    out = []
    for q in queries:
        terms = query_terms(db, q)
        out.append({"text": q, "terms": terms, "top": search(db, terms)})
    return {"corpus": corpus_rel, "queries": out}


def main():
    demo_queries = [q["text"] for q in read_jsonl(os.path.join(ROOT, "tests", "data",
                                                               "queries.jsonl"))]
    scifact = os.path.join("tests", "data", "scifact")
    scifact_queries = [q["text"] for q in read_jsonl(os.path.join(ROOT, scifact,
                                                                  "queries.jsonl"))][:200]
    sets = [run_set(os.path.join("tests", "data", "papers.jsonl"), demo_queries + HOSTILE),
            run_set(os.path.join(scifact, "corpus.jsonl"), scifact_queries)]
    path = os.path.join(ROOT, "tests", "fixtures", "bm25_reference.json")
    with open(path, "w", encoding="utf-8") as f:
        # one query a line
        f.write(json.dumps({"tokenizer": TOKENIZER, "k": K})[:-1] + ', "sets": [\n')
        for i, s in enumerate(sets):
            f.write(' {"corpus": ' + json.dumps(s["corpus"]) + ', "queries": [\n')
            f.write(",\n".join("  " + json.dumps(q, ensure_ascii=False) for q in s["queries"]))
            f.write("]}" + (",\n" if i + 1 < len(sets) else "\n"))
        f.write("]}\n")
    n = sum(len(s["queries"]) for s in sets)
    print(f"wrote {path}: {n} queries")


if __name__ == "__main__":
    main()
