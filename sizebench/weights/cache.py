"""What the sizebench cache holds, and removing some of it (`sizebench cache`).

Three kinds of entries under sources.cache_root():
  safetensors/<sha16>/    a GGUF dequantized by transformers (gguf_convert), complete once COMPLETE is written
  llama.cpp/<sha256>/T.gguf   a GGUF's llama.cpp type T (gguf_requant), meta.json naming the source
  gguf-files/NAME.gguf    a package's GGUF assembled from its chunks (sources.package_gguf)
A writer's temporary copy (`NAME.tmp<pid>-<hex>`) whose process is gone is listed as a leftover; one still
being written is not listed. An entry is removed only under its lock, so never while it is being written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.weights import gguf_requant, sources

SAFETENSORS, LLAMA_CPP, ASSEMBLED, LEFTOVER = "safetensors", "llama.cpp", "gguf", "leftover"
KINDS = (SAFETENSORS, LLAMA_CPP, ASSEMBLED, LEFTOVER)
_STAGING = re.compile(r"\.tmp(\d+)-[0-9a-f]{8}$")  # gguf_convert's and gguf_requant's temporary names
_DTYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


@dataclass(frozen=True)
class Entry:
    kind: str
    model: str  # the source GGUF's file name
    type: str  # f32, q8_0, ... ("-" where not known)
    bytes: int  # on disk now
    path: Path


def entries() -> list[Entry]:
    """Every entry of the cache, by model, then type."""
    root = sources.cache_root()
    found = [*_safetensors(root / "safetensors"), *_llama_cpp(root / "llama.cpp"), *_assembled(root / "gguf-files")]
    return sorted(found, key=lambda e: (e.model, e.kind, e.type, str(e.path)))


def select(model: str | None = None, type: str | None = None) -> list[Entry]:
    """Entries whose model name contains `model` (any case) and whose type or kind is `type`."""
    wanted = _type(type) if type else None
    return [
        e
        for e in entries()
        if (model is None or model.lower() in e.model.lower()) and (wanted is None or wanted in (e.type, e.kind))
    ]


@dataclass(frozen=True)
class Removal:
    removed: list[Entry]
    busy: list[Entry]  # being written now: left alone

    def summary(self) -> str:
        freed = sum(e.bytes for e in self.removed)
        line = (
            f"removed {len(self.removed)} cache entr{'y' if len(self.removed) == 1 else 'ies'}, "
            f"{human_size(freed)} freed: " + ", ".join(_label(e) for e in self.removed)
        )
        if self.busy:
            line += f"; left {len(self.busy)} being written: " + ", ".join(_label(e) for e in self.busy)
        return line


def remove(model: str | None = None, type: str | None = None, everything: bool = False) -> Removal:
    """Remove the entries `select(model, type)` gives (`everything`: no model filter); SizebenchError when
    none match, or when every match is being written."""
    if model is None and not everything:
        raise SizebenchError("say what to remove: a model name (part of one) or all")
    if model is not None and not model.strip():
        raise SizebenchError("the model name to remove is empty")
    matched = select(None if everything else model, type)
    if not matched:
        what = (
            " and ".join(
                x
                for x in (f"model '{model}'" if model and not everything else "", f"type '{type}'" if type else "")
                if x
            )
            or "anything"
        )
        raise SizebenchError(
            f"the sizebench cache ({sources.cache_root()}) holds nothing matching {what}; `sizebench cache` lists it"
        )
    removed, busy = [], []
    for entry in matched:
        (removed if _remove(entry) else busy).append(entry)
    if not removed:
        raise SizebenchError(f"every match is being written now ({', '.join(_label(e) for e in busy)}); try later")
    return Removal(removed, busy)


def human_size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def table(found: list[Entry]):
    """The listing as a rich table, with the total in its caption."""
    from rich.table import Table

    grid = Table(
        title=f"sizebench cache: {sources.cache_root()}",
        caption=f"total: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, "
        f"{human_size(sum(e.bytes for e in found))}",
    )
    for column in ("model", "type", "kind", "size", "path"):
        grid.add_column(column, overflow="fold", justify="right" if column == "size" else "left")
    for e in found:
        grid.add_row(e.model, e.type, e.kind, human_size(e.bytes), str(e.path))
    return grid


# ---- reading the layout ----------------------------------------------------------------------------


def _safetensors(folder: Path) -> list[Entry]:
    found = []
    for path in _children(folder):
        if path.suffix == ".lock":
            continue
        if _STAGING.search(path.name):
            found += _leftover(path)
        elif (path / "COMPLETE").exists():
            found.append(Entry(SAFETENSORS, _complete_source(path), _safetensors_dtype(path), _size(path), path))
    return found


def _llama_cpp(folder: Path) -> list[Entry]:
    found = []
    for source in _children(folder):
        if not source.is_dir():
            continue
        model = gguf_requant.read_meta(source).get("source", {}).get("name", "?")
        for path in _children(source):
            if _STAGING.search(path.name):
                found += _leftover(path, model)
            elif path.suffix == ".gguf":
                found.append(Entry(LLAMA_CPP, model, path.stem, _size(path), path))
    return found


def _assembled(folder: Path) -> list[Entry]:
    return [Entry(ASSEMBLED, p.name, "-", _size(p), p) for p in _children(folder) if p.suffix == ".gguf"]


def _leftover(path: Path, model: str = "?") -> list[Entry]:
    """A temporary copy whose writer is gone (none while it lives: it is still being written)."""
    pid = int(_STAGING.search(path.name).group(1))
    try:
        os.kill(pid, 0)
        return []
    except ProcessLookupError:
        return [Entry(LEFTOVER, model, "-", _size(path), path)]
    except PermissionError:  # alive, another user's
        return []


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _complete_source(folder: Path) -> str:
    try:
        return Path(json.loads((folder / "COMPLETE").read_text())["gguf"]).name
    except (ValueError, KeyError, TypeError, OSError):
        return "?"


def _safetensors_dtype(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (ValueError, OSError):
        return "-"
    dtype = config.get("dtype") or config.get("torch_dtype") or "-"
    return _DTYPES.get(dtype, dtype)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if not f.is_dir() or f.is_symlink())


def _type(type: str) -> str:
    name = type.strip().lower()
    if gguf_requant.canonical(name) is None and name not in KINDS and name not in _DTYPES.values():
        raise SizebenchError(
            f"unknown cache type '{type}': a llama.cpp type ({', '.join(gguf_requant.TYPES)}) "
            f"or a kind ({', '.join(KINDS)})"
        )
    return name


def _label(entry: Entry) -> str:
    return f"{entry.model} {entry.type} ({entry.kind})"


# ---- removing ------------------------------------------------------------------------------------


def _remove(entry: Entry) -> bool:
    """Delete one entry under its lock; False when its writer holds the lock now."""
    root = sources.cache_root().resolve()
    path = entry.path.parent.resolve() / entry.path.name  # the entry itself is not followed if it is a link
    if root not in path.parents:
        raise SizebenchError(f"refusing to remove {entry.path}: it is not inside the cache {root}")
    try:
        if entry.kind == LLAMA_CPP:
            with gguf_requant.locked(path, wait=False) as lock:
                path.unlink(missing_ok=True)
                gguf_requant.update_meta(path.parent, None, {path.stem: None})
                lock.unlink()  # a waiter notices and locks a fresh file (gguf_requant.locked)
            _drop_if_empty(path.parent)
        elif entry.kind == SAFETENSORS:
            # gguf_convert.install's lock: kept, since install does not look for a replaced lock file
            with gguf_requant.locked(path, wait=False):
                _delete(path)
        else:
            _delete(path)
    except BlockingIOError:
        return False
    return True


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _drop_if_empty(folder: Path) -> None:
    """A source's folder once it holds no type any more (nor one being written): locks, meta.json and all."""
    meta = folder / "meta.json"
    try:
        for lock_file in folder.glob("*.gguf.lock"):  # a lock outlives its file (a failed type leaves one too)
            with gguf_requant.locked(lock_file.with_suffix(""), wait=False) as lock:
                if lock_file.with_suffix("").exists():
                    return
                lock.unlink()
        with gguf_requant.locked(meta, wait=False) as lock:
            if any(p.suffix == ".gguf" or _STAGING.search(p.name) for p in folder.iterdir()):
                return
            meta.unlink(missing_ok=True)
            lock.unlink()
        folder.rmdir()  # fails (and the folder stays) if a writer has put its lock file in it meanwhile
    except OSError:  # BlockingIOError included: a writer holds a lock
        pass
