"""Every failure is a dre.Error subclass of its status, carrying libdre's message."""
import threading

import pytest

import dre
from conftest import TINY


def test_bad_model_path():
    with pytest.raises(dre.FileError) as e:
        dre.Encoder("/no/such/model")
    assert isinstance(e.value, OSError) and e.value.status == "i/o error"
    assert "/no/such/model/config.json" in str(e.value)


def test_bad_index(tmp_path):
    with pytest.raises(dre.Error) as e:
        dre.Index.open(tmp_path / "missing", model=TINY)
    assert "missing" in str(e.value)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "meta.json").write_text("{not json")
    with pytest.raises(dre.Error) as e:
        dre.Index.open(tmp_path / "junk", model=TINY)
    assert "meta.json" in str(e.value)


def test_bad_arguments():
    with pytest.raises(dre.InvalidArgument, match="gpu"):  # the message lists the choices
        dre.Encoder(TINY, device="tpu")
    with pytest.raises(dre.InvalidArgument):
        dre.Encoder(TINY, precision="fp8")
    if dre.gpu_count() == 0:
        with pytest.raises(dre.NoGPU) as e:
            dre.Encoder(TINY, device="gpu")
        assert str(e.value)


def test_bad_corpus_names_file_and_line(tmp_path):
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n')
    with pytest.raises(dre.FormatError, match="bad.jsonl:2"):
        dre.embed(corpus, tmp_path / "ix", TINY, progress=False)


def test_message_is_the_failing_threads():
    seen = {}

    def fail(name):
        try:
            dre.Encoder(f"/no/{name}")
        except dre.Error as e:
            seen[name] = str(e)
    threads = [threading.Thread(target=fail, args=(f"model{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(f"/no/{name}/" in msg for name, msg in seen.items()) and len(seen) == 8
