"""Runs the real clients against a running `dre serve` and prints what each got, as JSON:
{"client": [[float, ...], ...], ...}. Run by test_tei_clients.py with the clients' own Python
(tools/setup.sh makes it: .venv-clients, since LangChain's Hugging Face package wants another
huggingface_hub than transformers does), so it imports nothing of dre.

usage: tei_clients.py URL MODEL_NAME TEXTS.json LONG_TEXT.json"""
import json
import sys

import numpy as np
from huggingface_hub import InferenceClient
from langchain_huggingface import HuggingFaceEndpointEmbeddings
from openai import OpenAI


def rows(vectors):
    return np.asarray(vectors, dtype=np.float32).tolist()


def main():
    url, model, texts_path, long_path = sys.argv[1:5]
    texts = json.load(open(texts_path, encoding="utf-8"))
    long_text = json.load(open(long_path, encoding="utf-8"))
    hub = InferenceClient(url)
    got = {
        # one text a call, as a notebook would; each answer is [[...]]
        "huggingface_hub": [rows(hub.feature_extraction(t))[0] for t in texts],
        "huggingface_hub_truncated": rows(hub.feature_extraction(long_text, truncate=True)),
        "langchain_documents": rows(HuggingFaceEndpointEmbeddings(model=url)
                                    .embed_documents(texts)),
        "langchain_query": [rows(HuggingFaceEndpointEmbeddings(model=url)
                                 .embed_query(texts[0]))],
        "openai": rows([d.embedding for d in OpenAI(base_url=url + "/v1", api_key="unused")
                        .embeddings.create(model=model, input=texts).data]),
    }
    try:
        hub.feature_extraction(long_text)  # not truncated: TEI's 413
        got["untruncated_error"] = None
    except Exception as e:  # the client's own HTTP error type, whatever its version calls it
        got["untruncated_error"] = str(e)
    json.dump(got, sys.stdout)


if __name__ == "__main__":
    main()
