"""Real clients against a real `dre serve` over loopback: huggingface_hub's InferenceClient,
LangChain's HuggingFaceEndpointEmbeddings (both through TEI's API) and the OpenAI client
(/v1/embeddings) get `dre encode`'s vectors bit for bit. The clients run in their own Python
(DRE_CLIENTS_PYTHON, default .venv-clients/bin/python, made by tools/setup.sh)."""
import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

from conftest import ROOT, cli_encode, papers

CLIENTS = os.path.join(os.path.dirname(__file__), "tei_clients.py")


@pytest.fixture(scope="module")
def server(demo_index):
    """`dre serve` on the demo index at a free port: (url, model)."""
    path, model = demo_index
    binary = os.environ.get("DRE_BINARY") or os.path.join(ROOT, "build", "dre")
    proc = subprocess.Popen([binary, "serve", "--index", path, "--model", model, "--device", "cpu",
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    port, seen = None, ""
    deadline = time.time() + 60
    while port is None and time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        elif not line and proc.poll() is not None:
            break
    assert port, f"dre serve did not start:\n{seen}"
    yield f"http://127.0.0.1:{port}", model
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_real_clients_get_dre_encodes_vectors(server, dre_cli, tmp_path):
    url, model = server
    python = os.environ.get("DRE_CLIENTS_PYTHON") or os.path.join(ROOT, ".venv-clients", "bin",
                                                                  "python")
    assert os.access(python, os.X_OK), (
        f"no clients' Python at {python}: tools/setup.sh makes it (or set DRE_CLIENTS_PYTHON)")
    texts = [p["title"] for p in papers()[:12]] + ["Café naïve résumé", "x"]
    long_text = " ".join(p["text"] for p in papers()[:3])  # past the model's max length
    (tmp_path / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    (tmp_path / "long.json").write_text(json.dumps(long_text), encoding="utf-8")
    run = subprocess.run([python, CLIENTS, url, os.path.basename(model), tmp_path / "texts.json",
                          tmp_path / "long.json"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    want = cli_encode(dre_cli, tmp_path, model, texts)
    for client in ("huggingface_hub", "langchain_documents", "openai"):
        vectors = np.asarray(got[client], dtype=np.float32)
        assert vectors.shape == want.shape, client
        assert vectors.tobytes() == want.tobytes(), f"{client}: not dre encode's vectors"
    assert np.asarray(got["langchain_query"], np.float32).tobytes() == want[:1].tobytes()
    # truncate=True cuts as dre encode cuts (its max length, the end dropped)
    truncated = np.asarray(got["huggingface_hub_truncated"], dtype=np.float32)
    assert truncated.tobytes() == cli_encode(dre_cli, tmp_path, model, [long_text]).tobytes()
    # without it, TEI's answer: 413, the input too long
    assert got["untruncated_error"] and "413" in got["untruncated_error"], got["untruncated_error"]
