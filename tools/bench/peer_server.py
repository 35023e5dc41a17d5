#!/usr/bin/env python3
"""peer_server.py — the service most users would write, for `tools/bench/bench_serve.sh` to hold
dre serve against: FastAPI under uvicorn, sentence-transformers for embeddings and a FAISS
exact inner-product index (IndexFlatIP) of the same corpus, answering the same two
endpoints with the same request and response shapes:

  POST /v1/embeddings   {"input": "text" or [...]} -> OpenAI's embeddings response
  POST /search          {"query": "text"} or {"queries": [...]}, "k" -> {"results": [...]}
  GET  /health

usage: peer_server.py --corpus FILE.jsonl --model DIR [--port 8090] [--device cpu]
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="BEIR JSONL corpus (_id, title, text)")
    ap.add_argument("--model", required=True, help="a sentence-transformers model folder")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import faiss
    import numpy as np
    import torch
    import uvicorn
    from fastapi import FastAPI, HTTPException, Request
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(args.model, device=args.device,
                                model_kwargs={"dtype": torch.float32})
    docs = [json.loads(line) for line in open(args.corpus) if line.strip()]
    texts = [" ".join(x for x in (d.get("title"), d.get("text")) if x) for d in docs]
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True).astype(np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await request.json()
        inp = body.get("input")
        items = [inp] if isinstance(inp, str) else inp
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise HTTPException(400, "'input' must be a string or an array of strings")
        emb = model.encode(items, batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True)
        tokens = sum(len(model.tokenizer(t)["input_ids"]) for t in items)
        return {"object": "list", "model": "all-MiniLM-L6-v2",
                "data": [{"object": "embedding", "index": i, "embedding": e.tolist()}
                         for i, e in enumerate(emb)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @app.post("/search")
    async def search(request: Request):
        body = await request.json()
        queries = [body["query"]] if "query" in body else body.get("queries")
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise HTTPException(400, "give 'query' or 'queries'")
        k = int(body.get("k", 10))
        q = model.encode(queries, normalize_embeddings=True, convert_to_numpy=True)
        scores, rows = index.search(q.astype(np.float32), k)
        return {"results": [
            {"query": queries[i],
             "hits": [{"rank": r + 1, "id": docs[rows[i][r]]["_id"],
                       "score": float(scores[i][r]), "title": docs[rows[i][r]].get("title", "")}
                      for r in range(k) if rows[i][r] >= 0]}
            for i in range(len(queries))]}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
