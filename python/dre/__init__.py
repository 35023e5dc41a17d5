"""dre from Python: encode texts, embed a corpus into an index, search it.

    import dre
    dre.embed("tests/data/papers.jsonl", "demo-index")
    with dre.Index.open("demo-index") as index:
        for hit in index.search("speeding up diffusion transformers")[0]:
            print(hit.score, hit.id, hit.title)

A thin layer over libdre (include/dre.h) through cffi: every call runs in C with the GIL
released, and a failure raises a dre.Error subclass carrying libdre's message.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np

from ._lib import (BackendError, CudaError, Error, FileError, FormatError, InvalidArgument,
                   Locked, Mismatch, NoGPU, OutOfMemory, Unsupported, check, cstr, cstrs, ffi,
                   lib)

__version__ = "0.1.0"
__all__ = ["Encoder", "Index", "Hit", "embed", "default_model", "gpu_count", "Error",
           "InvalidArgument", "FileError", "FormatError", "Unsupported", "OutOfMemory", "NoGPU",
           "CudaError", "BackendError", "Mismatch", "Locked"]

PathLike = Union[str, "os.PathLike[str]"]


def default_model() -> str:
    """The CLI's default model folder: $DRE_MODEL, else models/all-MiniLM-L6-v2."""
    return os.environ.get("DRE_MODEL") or "models/all-MiniLM-L6-v2"


def gpu_count() -> int:
    """Usable CUDA devices (0 when libdre was built without CUDA or there is none)."""
    return lib.dre_gpu_count()


def _parse(fn, name: str, ctype: str) -> int:
    out = ffi.new(ctype + " *")
    check(fn(name.encode(), out))
    return out[0]


def _texts(texts: Union[str, Sequence[str]]) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


_C = TypeVar("_C", bound="_Closing")


class _Closing:
    """What holds libdre handles: closed by close(), at the end of a with block, and on
    garbage collection (once __init__ has made its lock)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_lock", None) is not None:
            self.close()


# ---------------------------------------------------------------- encoder


class Encoder(_Closing):
    """A model's tokenizer and encoder: what `dre encode` runs.

    model: a Hugging Face BERT-family folder; device: "auto" (the GPU if there is one),
    "cpu" or "gpu"; precision: the CPU encoder's "fp32", "bf16" or "int8"; batch_tokens:
    tokens of one packed batch (0: the library's default, 16384)."""

    def __init__(self, model: Optional[PathLike] = None, device: str = "auto",
                 precision: str = "fp32", batch_tokens: int = 0):
        self.model_dir = os.fspath(model if model is not None else default_model())
        self._device = _parse(lib.dre_device_parse, device, "dre_device")
        self._precision = _parse(lib.dre_precision_parse, precision, "dre_precision")
        self._lock = threading.Lock()  # an encoder runs one batch at a time
        self._model = self._tok = self._enc = None
        try:
            out = ffi.new("dre_model **")
            check(lib.dre_model_open(cstr(self.model_dir), out))
            self._model = out[0]
            out = ffi.new("dre_tokenizer **")
            check(lib.dre_tokenizer_open(cstr(self.model_dir), out))
            self._tok = out[0]
            self._open_encoder(batch_tokens)
        except BaseException:
            self.close()
            raise

    def _open_encoder(self, batch_tokens: int) -> None:
        out = ffi.new("dre_encoder **")
        check(lib.dre_encoder_open_with(self._model, self._device, batch_tokens,
                                        self._precision, out))
        if self._enc is not None:
            lib.dre_encoder_close(self._enc)
        self._enc = out[0]

    def _handle(self):
        if self._enc is None:
            raise InvalidArgument("dre.Encoder: closed")
        return self._enc

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return lib.dre_encoder_dim(self._handle())

    @property
    def max_length(self) -> int:
        """Tokens per text, [CLS] and [SEP] included; longer texts are cut."""
        return lib.dre_encoder_max_length(self._handle())

    @property
    def device(self) -> str:
        """"cpu" or "gpu": where it runs."""
        return ffi.string(lib.dre_device_name(lib.dre_encoder_device(self._handle()))).decode()

    @property
    def batch_tokens(self) -> int:
        return lib.dre_encoder_budget_tokens(self._handle())

    @property
    def info(self) -> dict:
        """The model's config (dre_model_info): layers, hidden, pooling, prompts..."""
        return _struct_dict(lib.dre_model_get_info(self._model)[0])

    def encode(self, texts: Union[str, Sequence[str]], batch_tokens: Optional[int] = None,
               prompt: Optional[str] = None, threads: int = 0) -> np.ndarray:
        """Embeds texts: a float32 array (n, dim), pooled and normalised as the model says,
        bit for bit `dre encode`'s. prompt is put before each text (as the model's
        "query"/"document" prompts are); threads: tokenizer threads (0: all cores)."""
        texts = _texts(texts)
        if prompt:
            texts = [prompt + t for t in texts]
        with self._lock:
            enc = self._handle()
            if batch_tokens and batch_tokens != lib.dre_encoder_budget_tokens(enc):
                self._open_encoder(batch_tokens)
                enc = self._enc
            out = np.empty((len(texts), lib.dre_encoder_dim(enc)), np.float32)
            if texts:
                ptrs, keep = cstrs(texts)
                check(lib.dre_encode_texts(enc, self._tok, ptrs, len(texts), threads,
                                           ffi.from_buffer("float[]", out)))
        return out

    def tokenize(self, texts: Union[str, Sequence[str]]) -> list[list[int]]:
        """WordPiece ids of each text, [CLS] and [SEP] included, cut at max_length."""
        if self._tok is None:
            raise InvalidArgument("dre.Encoder: closed")
        ids = ffi.new("int32_t[]", lib.dre_tokenizer_max_length(self._tok))
        n = ffi.new("int32_t *")
        result = []
        for text in _texts(texts):
            b = text.encode("utf-8")
            check(lib.dre_tokenize(self._tok, b, len(b), 0, ids, n))
            result.append(list(ffi.unpack(ids, n[0])))
        return result

    def close(self) -> None:
        """Frees the encoder, tokenizer and model (also on garbage collection)."""
        with self._lock:
            if self._enc is not None:
                lib.dre_encoder_close(self._enc)
            if self._tok is not None:
                lib.dre_tokenizer_close(self._tok)
            if self._model is not None:
                lib.dre_model_close(self._model)
            self._model = self._tok = self._enc = None



# ---------------------------------------------------------------- embed


def _progress_bar(progress) -> tuple[Optional[Callable[[dict], None]], Callable[[], None]]:
    """progress: True (a tqdm bar when tqdm is importable), False, or a callable given each
    dre_embed_progress as a dict. Returns the callable and what closes it."""
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return None, lambda: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, lambda: None
    bar = tqdm(total=0, unit="B", unit_scale=True, desc="dre embed")

    def update(p: dict) -> None:
        bar.total = p["size"] - p["start"]
        bar.n = p["offset"] - p["start"]
        bar.set_postfix(docs=p["n_docs"], refresh=not p["done"])  # close draws the last

    return update, bar.close


def _write_jsonl(docs: Iterable[Mapping[str, Any]], f) -> None:
    for d in docs:
        doc = {"_id": str(d["id"] if "id" in d else d["_id"]), "text": d.get("text") or ""}
        if d.get("title") is not None:
            doc["title"] = d["title"]
        f.write(json.dumps(doc, ensure_ascii=False) + "\n")


def embed(corpus: Union[PathLike, Iterable[Mapping[str, Any]]], index: PathLike,
          model: Optional[PathLike] = None, *, device: str = "auto", precision: str = "fp32",
          factory: Optional[str] = None, batch_tokens: int = 0, threads: int = 0,
          bm25: bool = True, chunk_tokens: int = 0, chunk_overlap: int = -1,
          doc_prompt: Optional[str] = None, query_prompt: Optional[str] = None,
          quantize: str = "none", append: bool = False, resume: bool = False,
          skip_bad_lines: bool = False, progress: Union[bool, Callable[[dict], None]] = True
          ) -> dict:
    """Embeds a corpus into the index folder `index`, as `dre embed` does (same options,
    same index). corpus: a file (BEIR JSONL, TSV or lines), or an iterable of dicts with
    "id" (or "_id"), "text" and optionally "title", streamed to a temporary JSONL file.
    progress: a tqdm bar (when tqdm is importable), False for none, or a callable given
    each progress report as a dict. Returns the summary (dre_embed_summary) as a dict."""
    if not isinstance(corpus, (str, bytes, os.PathLike)):
        with tempfile.TemporaryDirectory(prefix="dre-embed-") as tmp:
            path = os.path.join(tmp, "corpus.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                _write_jsonl(corpus, f)
            return embed(path, index, model, device=device, precision=precision,
                         factory=factory, batch_tokens=batch_tokens, threads=threads, bm25=bm25,
                         chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                         doc_prompt=doc_prompt, query_prompt=query_prompt, quantize=quantize,
                         append=append, resume=resume, skip_bad_lines=skip_bad_lines,
                         progress=progress)
    opts = ffi.new("dre_embed_options *")
    lib.dre_embed_options_init(opts)
    keep = [cstr(factory), cstr(doc_prompt), cstr(query_prompt)]
    opts.factory, opts.doc_prompt, opts.query_prompt = keep
    opts.device = _parse(lib.dre_device_parse, device, "dre_device")
    opts.precision = _parse(lib.dre_precision_parse, precision, "dre_precision")
    opts.quantize = _parse(lib.dre_quantize_parse, quantize, "dre_quantize")
    opts.budget_tokens, opts.n_threads = batch_tokens, threads
    opts.no_bm25, opts.append, opts.resume = (not bm25), append, resume
    opts.chunk_tokens, opts.chunk_overlap = chunk_tokens, chunk_overlap
    opts.skip_bad_lines = skip_bad_lines
    report, close_bar = _progress_bar(progress)
    if report is not None:
        @ffi.callback("void(const dre_embed_progress *, void *)")
        def on_progress(p, user):  # on a thread of dre_embed's; cffi takes the GIL
            try:
                report(_struct_dict(p[0]))
            except Exception:  # never raise into C
                pass
        opts.progress = on_progress
    summary = ffi.new("dre_embed_summary *")
    model_dir = os.fspath(model if model is not None else default_model())
    try:
        check(lib.dre_embed(cstr(model_dir), cstr(corpus), cstr(index), opts, summary))
    finally:
        close_bar()
    result = _struct_dict(summary[0])
    result["device"] = ffi.string(lib.dre_device_name(summary.device)).decode()
    return result


# ---------------------------------------------------------------- index


def _struct_dict(s) -> dict:
    """A C struct's fields as Python values (char arrays as str)."""
    out = {}
    for name, field in ffi.typeof(s).fields:
        v = getattr(s, name)
        if field.type.kind == "array" and field.type.item.cname == "char":
            v = ffi.string(v).decode("utf-8", "replace")
        out[name] = v
    return out


@dataclass(frozen=True)
class Hit:
    """One result of Index.search: a document and what each retriever said of it."""
    id: str
    title: Optional[str]
    text: str
    score: float                 # the mode's: inner product, BM25, or fused
    row: int                     # docstore row (Index.doc)
    dense_rank: Optional[int]    # 1-based rank in the dense list; None: not in it
    dense_score: Optional[float]
    bm25_rank: Optional[int]
    bm25_score: Optional[float]
    chunk: int                   # the chunk that gave dense_score (0 unless chunked)


class Index(_Closing):
    """An index folder, opened with Index.open: searched by text (with its model) or by
    vectors (FAISS's Python search: scores and ids)."""

    def __init__(self):
        raise TypeError("use dre.Index.open(path, ...)")

    @classmethod
    def open(cls, path: PathLike, model: Optional[PathLike] = None, device: str = "auto",
             precision: str = "fp32") -> "Index":
        """Opens the index at path. model: the folder the index was embedded with (None: the
        CLI's default when it exists; without one, only vectors are searched); device and
        precision: the query encoder's (as `dre search --device --precision`)."""
        self = object.__new__(cls)
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # a dre_index is for one thread at a time
        self._searcher = self._index = None
        if model is None and os.path.isdir(default_model()):
            model = default_model()
        if model is not None:
            out = ffi.new("dre_searcher **")
            check(lib.dre_searcher_open_with(cstr(path), cstr(model),
                                             _parse(lib.dre_device_parse, device, "dre_device"),
                                             _parse(lib.dre_precision_parse, precision,
                                                    "dre_precision"), out))
            self._searcher = out[0]
            self._index = lib.dre_searcher_index(self._searcher)
        else:
            out = ffi.new("dre_index **")
            check(lib.dre_index_open(cstr(path), out))
            self._index = out[0]
        return self

    def _handle(self):
        if self._index is None:
            raise InvalidArgument("dre.Index: closed")
        return self._index

    @property
    def info(self) -> dict:
        """meta.json as dre_index_info: model_name, dim, count, factory, bm25, prompts..."""
        info = _struct_dict(lib.dre_index_get_info(self._handle())[0])
        for key, fn in (("quantize", lib.dre_quantize_name), ("rescore", lib.dre_rescore_name)):
            info[key] = ffi.string(fn(info[key])).decode()
        info["pooling"] = "cls" if info["pooling"] == lib.DRE_POOL_CLS else "mean"
        return info

    def __len__(self) -> int:
        return lib.dre_index_get_info(self._handle()).count

    def doc(self, row: int) -> dict:
        """The document at a docstore row: {"row", "id", "title", "text"}."""
        doc = ffi.new("dre_doc *")
        with self._lock:
            check(lib.dre_index_doc(self._handle(), row, doc))
        try:
            return {"row": row, "id": ffi.string(doc.id).decode(),
                    "title": ffi.string(doc.title).decode() if doc.title else None,
                    "text": ffi.string(doc.text).decode() if doc.text else ""}
        finally:
            lib.dre_doc_clear(doc)

    def vectors(self, first: int = 0, n: Optional[int] = None) -> np.ndarray:
        """The stored vectors of rows [first, first + n) (n None: to the end), float32
        (n, dim), as `dre export` writes them."""
        info = lib.dre_index_get_info(self._handle())
        n = info.n_vectors - first if n is None else n
        out = np.empty((n, info.dim), np.float32)
        if n:
            with self._lock:
                check(lib.dre_index_vectors(self._handle(), first, n,
                                            ffi.from_buffer("float[]", out)))
        return out

    def search(self, queries: Union[str, Sequence[str]], k: int = 10, mode: str = "auto",
               fusion: str = "convex", alpha: float = 0.5, rrf_k: float = 60.0,
               depth: int = 100, prompt: Optional[str] = None,
               params: Optional[Mapping[str, float]] = None) -> list[list[Hit]]:
        """Answers queries as `dre search` does: a list of hits, best first, per query.
        mode: "auto" (hybrid when the index has BM25, else dense), "dense", "bm25" or
        "hybrid"; fusion "convex" (alpha: the dense weight) or "rrf" (rrf_k); depth: hybrid's
        documents from each list; prompt: before each query (None: the index's); params:
        FAISS search parameters for these queries ({"nprobe": 16}, {"efSearch": 128})."""
        if self._searcher is None:
            raise InvalidArgument(f"dre.Index: {self.path} was opened without a model: "
                                  "search_vectors only")
        queries = _texts(queries)
        o = ffi.new("dre_search_options *")
        lib.dre_search_options_init(o)
        o.mode = _parse(lib.dre_search_mode_parse, mode, "dre_search_mode")
        o.fusion = _parse(lib.dre_fusion_parse, fusion, "dre_fusion")
        o.k, o.alpha, o.rrf_k, o.depth = k, alpha, rrf_k, max(depth, k)
        keep = cstr(prompt)
        o.query_prompt = keep
        for i, (name, value) in enumerate((params or {}).items()):
            if i >= lib.DRE_SEARCH_MAX_PARAMS:
                raise InvalidArgument(f"at most {lib.DRE_SEARCH_MAX_PARAMS} FAISS parameters")
            o.params[i].name = name.encode()[:31]
            o.params[i].value = value
            o.n_params = i + 1
        if not queries:
            return []
        if k < 1:
            raise InvalidArgument(f"k must be at least 1, not {k}")
        hits = ffi.new("dre_hit[]", len(queries) * k)
        n_hits = ffi.new("int32_t[]", len(queries))
        ptrs, keep_texts = cstrs(queries)
        with self._lock:  # dre_index_doc on another thread would share the index
            check(lib.dre_search(self._searcher, ptrs, len(queries), o, hits, n_hits))
        result = []
        for q in range(len(queries)):
            row_hits = []
            for h in hits[q * k: q * k + n_hits[q]]:
                d = self.doc(h.row)
                row_hits.append(Hit(
                    id=d["id"], title=d["title"], text=d["text"], score=h.score, row=h.row,
                    dense_rank=h.dense_rank or None,
                    dense_score=h.dense_score if h.dense_rank else None,
                    bm25_rank=h.bm25_rank or None,
                    bm25_score=h.bm25_score if h.bm25_rank else None, chunk=h.chunk))
            result.append(row_hits)
        return result

    def search_vectors(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest vectors by inner product, as FAISS's index.search answers: scores
        float32 (n, k) and ids int64 (n, k) (vector rows: docstore rows unless chunked),
        -1 past the index's entries. A C-contiguous float32 array is read without a copy."""
        q = np.asarray(queries)
        if q.ndim == 1:
            q = q[None, :]
        q = np.ascontiguousarray(q, dtype=np.float32)
        dim = lib.dre_index_get_info(self._handle()).dim
        if q.ndim != 2 or q.shape[1] != dim:
            raise InvalidArgument(f"queries of shape {queries.shape}: the index's dim is {dim}")
        scores = np.empty((q.shape[0], k), np.float32)
        ids = np.empty((q.shape[0], k), np.int64)
        if q.shape[0]:
            with self._lock:
                check(lib.dre_index_search(self._handle(), ffi.from_buffer("float[]", q),
                                           q.shape[0], k, ffi.from_buffer("float[]", scores),
                                           ffi.from_buffer("int64_t[]", ids)))
        return scores, ids

    def close(self) -> None:
        """Closes the index (and its model and encoder); also on garbage collection."""
        with self._lock:
            if self._searcher is not None:
                lib.dre_searcher_close(self._searcher)
            elif self._index is not None:
                lib.dre_index_close(self._index)
            self._searcher = self._index = None

