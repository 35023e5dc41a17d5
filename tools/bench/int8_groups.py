#!/usr/bin/env python3
"""How close int8 weights alone can bring a model to its fp32 embeddings, per group size.

sentence-transformers runs the model in fp32 with every encoder Linear weight replaced by
what dre's --precision int8 multiplies by: each group of G weights along k of an output
column quantised symmetrically (scale = max |w| / 127, codes rounded to nearest even), and
the code times its scale rounded to bf16. Activations stay fp32, so this isolates the weights'
share of int8's error. Prints, per G, the worst and mean cosine to the fp32 embeddings over a
fixture's texts.

  python3 tools/bench/int8_groups.py tests/fixtures/tiny-bert-cls tests/fixtures/embeddings_tiny.jsonl
"""
import argparse
import json

import numpy as np
import torch
from sentence_transformers import SentenceTransformer


def quantised(w, group):
    out = torch.empty_like(w)
    for j0 in range(0, w.shape[1], group):
        block = w[:, j0:j0 + group]
        scale = block.abs().amax(1, keepdim=True) / 127
        codes = torch.round(block / torch.where(scale > 0, scale, torch.ones_like(scale)))
        out[:, j0:j0 + group] = (codes.clamp(-127, 127) * scale).to(torch.bfloat16).float()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a sentence-transformers folder")
    ap.add_argument("texts", help="a JSONL file with a text field a line")
    ap.add_argument("--groups", default="8,16,32,64,128", help="group sizes to try")
    args = ap.parse_args()
    texts = [json.loads(line)["text"] for line in open(args.texts, encoding="utf-8")]
    model = SentenceTransformer(args.model, device="cpu")
    ref = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    linears = {n: p.detach().clone() for n, p in model.named_parameters()
               if n.endswith("weight") and p.dim() == 2 and "embeddings" not in n}
    params = dict(model.named_parameters())
    for group in (int(g) for g in args.groups.split(",")):
        with torch.no_grad():
            for name, w in linears.items():
                params[name].copy_(quantised(w, group))
        emb = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        cos = (emb * ref).sum(1)
        print(f"group={group} texts={len(texts)} worst_cosine={cos.min():.6f} "
              f"mean_cosine={cos.mean():.6f}")
        with torch.no_grad():
            for name, w in linears.items():
                params[name].copy_(w)


if __name__ == "__main__":
    main()
