#!/usr/bin/env python3
"""make_tiny_model.py — a second, differently shaped BERT folder for the loader and
encoder tests, with its sentence-transformers reference embeddings.

tests/fixtures/tiny-bert-cls/: a randomly initialised (seeded) transformers BertModel,
2 layers, hidden 32, 2 heads, FFN 128, 128 positions, the all-MiniLM-L6-v2 vocab.txt;
weights stored as F16 with the "bert." name prefix (MiniLM is F32 without it); CLS
pooling and Normalize, written by sentence-transformers' own save(). Then
embeddings_tiny.jsonl/.f32 (see make_embedding_fixtures.py) from sentence-transformers
loading that folder, for the demo queries and some titles.

Run from the repository root: python3 tools/make_tiny_model.py
"""
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer
from transformers import BertConfig, BertModel, BertTokenizerFast

try:  # sentence-transformers >= 6; models.* before
    from sentence_transformers.sentence_transformer import modules as models
except ImportError:
    from sentence_transformers import models

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_embedding_fixtures as fixtures  # noqa: E402

MINILM = os.path.join(fixtures.ROOT, "models", "all-MiniLM-L6-v2")
OUT = os.path.join(fixtures.FIXTURES, "tiny-bert-cls")
# the files dre and sentence-transformers read; the rest of what save() writes is dropped
KEEP = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
        "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
        "config_sentence_transformers.json", "1_Pooling/config.json", "2_Normalize/config.json"]


def build(work):
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=128,
                        max_position_embeddings=128, type_vocab_size=2, hidden_act="gelu",
                        layer_norm_eps=1e-12,
                        # wider than BERT's 0.02 so that different texts get clearly
                        # different embeddings (mean pairwise cosine ~0.8, not ~0.99)
                        # and the parity test can tell them apart
                        initializer_range=0.5)
    torch.manual_seed(1234)
    bert = BertModel(config, add_pooling_layer=False)
    hf_dir = os.path.join(work, "hf")
    bert.save_pretrained(hf_dir)
    BertTokenizerFast(os.path.join(MINILM, "vocab.txt"), do_lower_case=True,
                      model_max_length=128).save_pretrained(hf_dir)

    transformer = models.Transformer(hf_dir, max_seq_length=128)
    pooling = models.Pooling(config.hidden_size, pooling_mode="cls")
    st_dir = os.path.join(work, "st")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()],
                        device="cpu").save(st_dir)

    # F16 with the "bert." prefix, as a BertFor* checkpoint names them
    weights = load_file(os.path.join(st_dir, "model.safetensors"))
    weights = {("bert." + k): v.to(torch.float16).contiguous() for k, v in weights.items()
               if not k.startswith("pooler.")}
    save_file(weights, os.path.join(st_dir, "model.safetensors"), metadata={"format": "pt"})
    shutil.copyfile(os.path.join(MINILM, "vocab.txt"), os.path.join(st_dir, "vocab.txt"))

    shutil.rmtree(OUT, ignore_errors=True)
    for rel in KEEP:
        src = os.path.join(st_dir, rel)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(os.path.join(OUT, rel)), exist_ok=True)
            shutil.copyfile(src, os.path.join(OUT, rel))
    return {k[len("bert."):]: v.float() for k, v in weights.items()}


def check_loaded(expected):
    """sentence-transformers must load exactly the F16 weights (as fp32), prefix and all,
    or the reference would come from a half-random model."""
    model = fixtures.load(OUT)
    state = model[0].auto_model.state_dict()
    for name, value in expected.items():
        assert name in state, f"{name} not loaded"
        assert torch.equal(state[name], value), f"{name} differs after loading"
        assert state[name].dtype == torch.float32
    return model


def main():
    with tempfile.TemporaryDirectory() as work:
        expected = build(work)
    model = check_loaded(expected)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"{os.path.relpath(OUT)}: {size} bytes, max_seq_length {model.max_seq_length}",
          file=sys.stderr)

    all_texts = fixtures.demo_texts(fixtures.DATA)
    texts = [t for t in all_texts if t[0] == "query"]
    texts += [t for t in all_texts if t[0] == "title"][:20]
    texts += [t for t in all_texts if t[0] == "long"][:2]
    texts += [t for t in all_texts if t[0] == "edge"]
    fixtures.write_fixtures(OUT, "tiny", texts, min_long=128)


if __name__ == "__main__":
    main()
