"""Shared fixtures: the repository's files, the dre command (DRE_BINARY, default build/dre),
the models (the tiny fixture always, all-MiniLM-L6-v2 when tools/setup.sh placed it)."""
import json
import os
import subprocess

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY = os.path.join(ROOT, "tests", "fixtures", "tiny-bert-cls")
MINILM = os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
PAPERS = os.path.join(ROOT, "tests", "data", "papers.jsonl")
QUERIES = os.path.join(ROOT, "tests", "data", "queries.jsonl")
MODELS = [TINY] + ([MINILM] if os.path.exists(os.path.join(MINILM, "model.safetensors")) else [])


def papers():
    with open(PAPERS, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def queries():
    with open(QUERIES, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def cli_encode(dre_cli, tmp_path, model, texts, *extra):
    """`dre encode`'s vectors of texts (one a line) through --output x.npy."""
    out = tmp_path / "cli.npy"
    dre_cli("encode", "-q", "--model", model, "--output", out, *extra,
            input="\n".join(texts) + "\n")
    return np.load(out)


@pytest.fixture(scope="session")
def dre_cli():
    """Runs the dre command: dre_cli("encode", "--model", m, input="...") -> stdout."""
    binary = os.environ.get("DRE_BINARY") or os.path.join(ROOT, "build", "dre")
    assert os.access(binary, os.X_OK), f"no dre command at {binary} (build it, or set DRE_BINARY)"

    def run(*args, input=None):
        return subprocess.run([binary, *map(str, args)], input=input, capture_output=True,
                              check=True, text=input is None or isinstance(input, str)).stdout
    return run


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory, dre_cli):
    """The demo corpus embedded by `dre embed` with the largest model at hand: (path, model)."""
    path = tmp_path_factory.mktemp("demo") / "index"
    model = MODELS[-1]
    dre_cli("embed", "-q", "--model", model, "--corpus", PAPERS, "--index", path)
    return str(path), model
