"""libdre through cffi in ABI mode: the declarations are dre.h itself (installed beside
libdre.so), its preprocessor lines dropped, so the two never drift apart; errors become
exceptions carrying dre_last_error()'s message."""
from __future__ import annotations

import os
import re

import cffi

_here = os.path.dirname(os.path.abspath(__file__))


def _find(env: str, names: list[str]) -> str:
    if os.environ.get(env):
        return os.environ[env]
    for path in names:
        if os.path.exists(path):
            return path
    raise ImportError(f"dre: none of {names} exists (set {env})")


def _cdef(header: str) -> str:
    """dre.h's public part as cffi reads it: integer #defines kept, every other preprocessor
    line, the C++ guards and DRE_API dropped."""
    text = open(header, encoding="utf-8").read().split("#endif /* DRE_H */")[0]
    text = re.sub(r"#ifdef __cplusplus.*?#endif", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            m = re.match(r"\s*#define\s+(DRE_\w+)\s+(\d+)\s*$", line)
            line = f"#define {m[1]} {m[2]}" if m else ""
        lines.append(line.replace("DRE_API ", ""))
    return "\n".join(lines)


ffi = cffi.FFI()
ffi.cdef(_cdef(_find("DRE_HEADER", [os.path.join(_here, "dre.h"),
                                    os.path.join(_here, "..", "..", "include", "dre.h")])))
lib = ffi.dlopen(_find("DRE_LIBRARY", [os.path.join(_here, "libdre.so")]))


class Error(Exception):
    """A failed libdre call: .status is the dre_status name, the message dre_last_error()'s."""

    status = "DRE_ERR"


class InvalidArgument(Error, ValueError):
    """A meaningless argument (k < 1, an unknown mode...)."""


class FileError(Error, OSError):
    """A file could not be opened, read, written or renamed (a missing model or index)."""


class FormatError(Error, ValueError):
    """A malformed input file: JSON, safetensors, JSONL, TSV."""


class Unsupported(Error):
    """Valid input dre does not handle (bf16 on a CPU without AVX-512 BF16, BM25 without a table)."""


class OutOfMemory(Error, MemoryError):
    """A host allocation failed."""


class NoGPU(Error):
    """A GPU was required and none is usable (or the library was built without CUDA)."""


class CudaError(Error):
    """A CUDA or cuBLAS call failed."""


class BackendError(Error):
    """FAISS or SQLite reported an error."""


class Mismatch(Error, ValueError):
    """Model and index disagree (dimension, weights hash)."""


class Locked(Error):
    """Another process holds the index."""


_errors = {
    lib.DRE_ERR_INVALID_ARG: InvalidArgument,
    lib.DRE_ERR_IO: FileError,
    lib.DRE_ERR_FORMAT: FormatError,
    lib.DRE_ERR_UNSUPPORTED: Unsupported,
    lib.DRE_ERR_NOMEM: OutOfMemory,
    lib.DRE_ERR_NO_GPU: NoGPU,
    lib.DRE_ERR_CUDA: CudaError,
    lib.DRE_ERR_INDEX: BackendError,
    lib.DRE_ERR_MISMATCH: Mismatch,
    lib.DRE_ERR_LOCKED: Locked,
}
for _status, _cls in _errors.items():
    _cls.status = ffi.string(lib.dre_status_str(_status)).decode()


def check(status: int) -> None:
    """Raises the status's exception; call it right after the failing call, on its thread
    (dre_last_error is per thread)."""
    if status != lib.DRE_OK:
        message = ffi.string(lib.dre_last_error()).decode("utf-8", "replace")
        cls = _errors.get(status, Error)
        raise cls(message or ffi.string(lib.dre_status_str(status)).decode())


def cstr(s: str | os.PathLike | None):
    """A str or path as a NUL-terminated char[] (None: NULL)."""
    return ffi.NULL if s is None else ffi.new("char[]", os.fsencode(s))


def cstrs(texts: list[str]):
    """Texts as a char *[] and the buffers it points to (keep both alive for the call)."""
    keep = [ffi.new("char[]", t.encode("utf-8")) for t in texts]
    return ffi.new("char *[]", keep), keep
