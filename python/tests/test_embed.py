"""dre.embed from an iterable of dicts gives the index `dre embed` gives from the same file,
and reports progress through the library's callback."""
import numpy as np

import dre
from conftest import PAPERS, TINY, papers


def test_embed_iterable_equals_cli(dre_cli, tmp_path):
    dre_cli("embed", "-q", "--model", TINY, "--corpus", PAPERS, "--index", tmp_path / "cli")
    docs = ({"id": p["_id"], "title": p["title"], "text": p["text"]} for p in papers())
    reports = []
    summary = dre.embed(docs, tmp_path / "py", model=TINY, progress=reports.append)
    assert summary["n_docs"] == summary["n_total"] == 80 and summary["n_skipped"] == 0
    assert reports and reports[-1]["done"] and reports[-1]["n_docs"] == 80
    with dre.Index.open(tmp_path / "cli", model=TINY) as want, \
            dre.Index.open(tmp_path / "py", model=TINY) as got:
        assert len(got) == len(want) == 80
        assert got.vectors().tobytes() == want.vectors().tobytes()
        assert [got.doc(r) for r in range(80)] == [want.doc(r) for r in range(80)]
        info_got, info_want = got.info, want.info
        assert info_got == info_want
        q = ["diffusion transformers", "retrieval with BM25"]
        assert [[h.id for h in hits] for hits in got.search(q)] == \
               [[h.id for h in hits] for hits in want.search(q)]


def test_embed_file_with_options_and_tqdm(tmp_path, capsys):
    summary = dre.embed(PAPERS, str(tmp_path / "ix"), TINY, bm25=False, factory="HNSW32",
                        progress=True)
    assert summary["n_vectors"] == 80 and summary["device"] in ("cpu", "gpu")
    with dre.Index.open(tmp_path / "ix", model=TINY) as ix:
        assert ix.info["bm25"] == 0 and ix.info["factory"] == "HNSW32"
        scores, ids = ix.search_vectors(ix.vectors(5, 1), k=1)
        assert ids.tolist() == [[5]] and np.isclose(scores[0, 0], 1.0, atol=1e-5)
        with __import__("pytest").raises(dre.Unsupported):
            ix.search("q", mode="bm25")
