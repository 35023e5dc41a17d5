"""dre.Index.search answers as `dre search --json` in every mode; search_vectors as FAISS's
index.search; info and len as meta.json says."""
import json

import numpy as np
import pytest

import dre
from conftest import QUERIES, queries


@pytest.fixture(scope="module")
def index(demo_index):
    path, model = demo_index
    with dre.Index.open(path, model=model) as ix:
        yield ix


def same_float(ours, printed, fmt):
    return float(format(ours, fmt)) == printed


@pytest.mark.parametrize("mode,options", [
    ("dense", []), ("bm25", []), ("hybrid", []), ("hybrid", ["--fusion", "rrf"]),
    ("hybrid", ["--alpha", "0.3", "--depth", "20"])])
def test_search_equals_cli(dre_cli, demo_index, index, mode, options):
    path, model = demo_index
    out = dre_cli("search", "--index", path, "--model", model, "--queries", QUERIES, "--json",
                  "-k", 7, "--mode", mode, *options)
    want = [json.loads(line)["results"] for line in out.splitlines()]
    kw = dict(zip([o.lstrip("-").replace("-", "_") for o in options[::2]], options[1::2]))
    kw = {k: (float(v) if k in ("alpha", "rrf_k") else v if k == "fusion" else int(v))
          for k, v in kw.items()}
    got = index.search(queries(), k=7, mode=mode, **kw)
    assert len(got) == len(want) == 20
    for hits, results in zip(got, want):
        assert [(h.id, h.row) for h in hits] == [(r["id"], r["row"]) for r in results]
        for h, r in zip(hits, results):
            assert same_float(h.score, r["score"], ".9g")
            assert (h.dense_rank, h.bm25_rank, h.title) == (r["dense_rank"], r["bm25_rank"], r["title"])
            assert h.dense_score is None or same_float(h.dense_score, r["dense_score"], ".6f")
            assert h.bm25_score is None or same_float(h.bm25_score, r["bm25_score"], ".6f")


def test_search_vectors_is_dense_search(demo_index, index):
    with dre.Encoder(demo_index[1]) as enc:
        q = enc.encode(queries(), prompt=index.info["query_prompt"])
    scores, ids = index.search_vectors(q, k=5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (20, 5)
    dense = index.search(queries(), k=5, mode="dense")
    assert ids.tolist() == [[h.row for h in hits] for hits in dense]
    assert np.array_equal(scores, np.array([[h.score for h in hits] for hits in dense], np.float32))
    # a view that is not C-contiguous is copied, one vector is one row, -1 past the end
    assert np.array_equal(index.search_vectors(np.asfortranarray(q), k=5)[1], ids)
    assert np.array_equal(index.search_vectors(q[3], k=5)[1], ids[3:4])
    scores, ids = index.search_vectors(q[:2], k=len(index) + 3)
    assert (ids[:, -3:] == -1).all() and (ids[:, :-3] >= 0).all()
    with pytest.raises(dre.InvalidArgument, match="dim"):
        index.search_vectors(np.zeros((1, 5), np.float32))


def test_info_len_doc_vectors(dre_cli, demo_index, index, tmp_path):
    info = index.info
    assert len(index) == info["count"] == 80 and info["bm25"] == 1
    assert info["model_name"] and info["quantize"] == "none" and info["dim"] > 0
    assert index.doc(0)["id"] == "p001"
    dre_cli("export", "--index", demo_index[0], tmp_path / "v.npy")
    assert index.vectors().tobytes() == np.load(tmp_path / "v.npy").tobytes()


def test_without_a_model_vectors_only(demo_index, monkeypatch):
    monkeypatch.setenv("DRE_MODEL", "/no/such/model")  # no default model: a bare index
    with dre.Index.open(demo_index[0]) as ix:
        assert len(ix) == 80
        assert ix.search_vectors(ix.vectors(0, 1), k=1)[1].tolist() == [[0]]
        with pytest.raises(dre.InvalidArgument, match="without a model"):
            ix.search("a query")
