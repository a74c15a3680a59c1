"""A Hugging Face model folder as a GGUF, made by llama.cpp's own converter (convert_hf_to_gguf.py), cached.

`make llama-cpp` copies the converter from the llama-cpp-python sdist that built the library (so the
converter and the library are the same llama.cpp) into `<venv>/share/sizebench/llama.cpp/`;
SIZEBENCH_LLAMA_CONVERTER names another copy. It runs in a child process with this Python. The converter
refuses a tokenizer whose pre-tokenizer hash it does not know: that is a failed rung with its reason.

    <cache>/llama.cpp/hf-<key>/auto.gguf   (key: the folder's path, and its files' names, sizes, mtimes)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from sizebench.errors import ConversionFailed, SizebenchError
from sizebench.weights import gguf_requant, sources

SHARE = Path(sys.prefix) / "share" / "sizebench" / "llama.cpp" / "convert_hf_to_gguf.py"


def converter() -> Path:
    path = Path(os.environ.get("SIZEBENCH_LLAMA_CONVERTER") or SHARE)
    if not path.is_file():
        raise SizebenchError(
            f"llama.cpp's converter is not at {path}: run `make llama-cpp` (it copies "
            "convert_hf_to_gguf.py from the llama-cpp-python sdist), or set SIZEBENCH_LLAMA_CONVERTER"
        )
    return path


def key(folder: Path) -> str:
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for f in sorted(folder.iterdir()):
        if f.is_file():
            stat = f.stat()
            digest.update(f"{f.name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def convert(folder: Path, name: str) -> gguf_requant.Prepared:
    """The folder's GGUF (the converter's `auto` type: 16-bit, or 32-bit for a float32 checkpoint), made now
    if not cached; `convert_s` is None when it was."""
    script = converter()
    target = sources.cache_root() / "llama.cpp" / f"hf-{key(folder)}" / "auto.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    with gguf_requant.locked(target):
        if target.exists():
            return gguf_requant.Prepared(target, None)
        staging = gguf_requant.staging_name(target)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(script), str(folder), "--outfile", str(staging), "--outtype", "auto"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not staging.exists():
            staging.unlink(missing_ok=True)
            raise ConversionFailed(f"{name}: llama.cpp's convert_hf_to_gguf.py failed: {_reason(done.stderr)}")
        staging.rename(target)
        seconds = time.perf_counter() - started
    gguf_requant.update_meta(target.parent, folder, {"auto": {"bytes": target.stat().st_size, "seconds": seconds}})
    return gguf_requant.Prepared(target, seconds)


def _reason(stderr: str) -> str:
    """The converter's own error: the last line that names one (its traceback's last line, usually)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "error" in line.lower()]
    return ((named or lines or ["no output"])[-1])[:300]
