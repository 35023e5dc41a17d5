#!/usr/bin/env python3
"""peer_encoder.py — the peer for `dre bench encoder`: Hugging Face transformers' BertModel
with random weights of a config's shapes, fp16, SDPA attention, batches of 256 length-sorted
texts padded to their longest, mean pooling (+ L2 normalisation), on the GPU. The synthetic
lengths are the same draws as dre's (splitmix64, same seed): abstracts 200-560 tokens cut at
the max length, or queries 8-32. Prints one line in dre's format:

  bench=peer_hf model=... texts=... what=end_to_end device=cuda n=... tokens=... seconds=...
  texts_per_s=... tokens_per_s=...

Usage: python3 tools/bench/peer_encoder.py --config tools/bench/configs/minilm-l6 [--texts queries]
       [--n 20000] [--batch 256] [--device cuda] [--dtype fp16]
"""
import argparse
import json
import os
import sys
import time

MASK64 = (1 << 64) - 1


def splitmix64(state):
    """One step of splitmix64, as in tools/dre/bench_encoder.c: (new state, output)."""
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def synthetic_lengths(n, queries, max_length, seed):
    lo, hi = (8, 32) if queries else (200, 560)
    state, lengths = seed, []
    for _ in range(n):
        state, r = splitmix64(state)
        lengths.append(min(lo + r % (hi - lo + 1), max_length))
    return sorted(lengths, reverse=True)  # longest first, as dre packs them


def load_config(path):
    """config.json (or its folder) -> (dict, name, max_length)."""
    config_path = path if path.endswith(".json") else os.path.join(path, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    folder = os.path.dirname(os.path.abspath(config_path))
    max_length = config.get("max_seq_length")
    st_config = os.path.join(folder, "sentence_bert_config.json")
    if max_length is None and os.path.exists(st_config):
        with open(st_config) as f:
            max_length = json.load(f).get("max_seq_length")
    if max_length is None:
        max_length = config.get("max_position_embeddings", 512)
    name = config.get("_name_or_path") or os.path.basename(folder)
    return config, name, int(max_length)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="config.json or a folder holding one")
    ap.add_argument("--texts", choices=["abstracts", "queries"], default="abstracts")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    args = ap.parse_args()

    import torch
    from transformers import AutoModel, BertConfig

    config, name, max_length = load_config(args.config)
    bert_config = BertConfig(**{k: v for k, v in config.items() if not k.startswith("_")})
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    torch.manual_seed(args.seed)
    model = AutoModel.from_config(bert_config, attn_implementation="sdpa", add_pooling_layer=False)
    model = model.to(device=args.device, dtype=dtype).eval()

    lengths = synthetic_lengths(args.n, args.texts == "queries", max_length, args.seed)
    vocab = bert_config.vocab_size
    batches = []  # (ids, mask) on the host, padded to the batch's longest
    for first in range(0, len(lengths), args.batch):
        lens = lengths[first:first + args.batch]
        longest = max(lens)
        ids = torch.randint(1000, vocab, (len(lens), longest), dtype=torch.long)
        mask = torch.zeros((len(lens), longest), dtype=torch.long)
        for i, n in enumerate(lens):
            ids[i, 0], ids[i, n - 1] = 101, 102  # [CLS], [SEP]
            ids[i, n:] = 0  # [PAD]
            mask[i, :n] = 1
        if args.device.startswith("cuda"):
            ids, mask = ids.pin_memory(), mask.pin_memory()
        batches.append((ids, mask))

    def encode(ids, mask):
        ids = ids.to(args.device, non_blocking=True)
        mask = mask.to(args.device, non_blocking=True)
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1).float() / m.sum(1).float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu()

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        for ids, mask in batches[:2]:  # warm-up: kernels chosen, memory pooled
            encode(ids, mask)
        sync()
        t0 = time.perf_counter()
        for ids, mask in batches:
            encode(ids, mask)
        sync()
        seconds = time.perf_counter() - t0

    tokens = sum(lengths)
    padded = sum(ids.numel() for ids, _ in batches)
    print(f"bench=peer_hf model={name} texts={args.texts} weights=random what=end_to_end "
          f"device={args.device} dtype={args.dtype} n={args.n} tokens={tokens} "
          f"padded_tokens={padded} batches={len(batches)} seconds={seconds:.3f} "
          f"texts_per_s={args.n / seconds:.0f} tokens_per_s={tokens / seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
