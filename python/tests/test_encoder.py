"""dre.Encoder gives `dre encode`'s vectors bit for bit, and `dre tokenize`'s ids."""
import numpy as np
import pytest

import dre
from conftest import MODELS, TINY, cli_encode, papers

# paper texts (most past MiniLM's 256 tokens, so cut), and edge cases: empty, accents, CJK
TEXTS = [p["text"] for p in papers()[:24]] + [p["title"] for p in papers()[:24]] + [
    "", "x", "Café naïve résumé", "深度学习 検索 エンジン", "[SEP] spelled out [MASK]"]


@pytest.mark.parametrize("model", MODELS)
def test_encode_equals_cli_bit_for_bit(dre_cli, tmp_path, model):
    want = cli_encode(dre_cli, tmp_path, model, TEXTS)
    with dre.Encoder(model) as enc:
        got = enc.encode(TEXTS)
        assert got.dtype == np.float32 and got.shape == (len(TEXTS), enc.dim)
        assert got.tobytes() == want.tobytes()
        # another batch budget, as --batch-tokens gives it
        small = cli_encode(dre_cli, tmp_path, model, TEXTS, "--batch-tokens", 600)
        assert enc.encode(TEXTS, batch_tokens=600).tobytes() == small.tobytes()


def test_prompt_is_put_before_each_text():
    with dre.Encoder(TINY) as enc:
        texts = TEXTS[:8]
        assert np.array_equal(enc.encode(texts, prompt="query: "),
                              enc.encode(["query: " + t for t in texts]))


@pytest.mark.parametrize("model", MODELS)
def test_tokenize_equals_cli(dre_cli, model):
    want = [[int(i) for i in line.split()]
            for line in dre_cli("tokenize", "--model", model, input="\n".join(TEXTS) + "\n")
            .splitlines()]
    with dre.Encoder(model) as enc:
        got = enc.tokenize(TEXTS)
        assert got == want
        assert max(map(len, got)) <= enc.max_length


def test_properties_and_close():
    enc = dre.Encoder(TINY, device="cpu")
    assert (enc.dim, enc.device) == (32, "cpu")
    assert enc.max_length == enc.info["max_length"] and enc.info["hidden"] == 32
    assert enc.encode([]).shape == (0, 32)
    assert enc.encode("one text").shape == (1, 32)
    enc.close()
    enc.close()  # twice is fine
    with pytest.raises(dre.InvalidArgument, match="closed"):
        enc.encode(["after close"])
