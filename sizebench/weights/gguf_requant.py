"""llama.cpp types of a GGUF source (q8_0, q4_k_m, ...), made by llama.cpp's own quantizer.

llama.cpp quantizes best from float weights: requantizing a quantized tensor is refused unless asked for,
and compounds the two errors. So a source is dequantized once into an F32 GGUF of the same weights and
metadata (gguf's own `dequantize`, the one transformers' GGUF loading uses), and every type is made from
that F32 file by `llama_model_quantize`, as `llama-quantize` does. Files are cached per source file:

    <cache>/llama.cpp/<sha256 of the source>/f32.gguf, q8_0.gguf, ..., meta.json

Each file is written under a temporary name and renamed into place while its lock is held, so two sweeps
asking for the same type never both write it: the second waits and then finds the file. meta.json
records the source and, per type, the file's bytes and the seconds it took (for `sizebench cache`).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sizebench.errors import ConversionFailed, SizebenchError
from sizebench.system import atomic
from sizebench.weights import sources

F32 = "f32"
# Canonical name -> llama_ftype (llama.h; a test checks each against llama_cpp.LLAMA_FTYPE_*). Written out
# so that listing types or the cache imports neither llama_cpp nor its shared library.
TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "bf16": 32,
    "q8_0": 7,
    "q6_k": 18,
    "q5_k_m": 17,
    "q5_k_s": 16,
    "q5_1": 9,
    "q5_0": 8,
    "q4_k_m": 15,
    "q4_k_s": 14,
    "q4_1": 3,
    "q4_0": 2,
    "q3_k_l": 13,
    "q3_k_m": 12,
    "q3_k_s": 11,
    "q2_k": 10,
}


def canonical(name: str) -> str | None:
    """The canonical name of a llama.cpp type in any case (Q8_0, q4_K_M, ...), or None when it is not one."""
    key = name.strip().lower()
    return key if key in TYPES else None


@dataclass(frozen=True)
class Prepared:
    path: Path
    convert_s: float | None  # seconds spent now (F32 and quantizing); None when the file was cached


def source_dir(gguf_path: Path) -> Path:
    return sources.cache_root() / "llama.cpp" / sources.gguf_sha256(Path(gguf_path))


def prepare(gguf_path: Path, type: str) -> Prepared:
    """The cached file of `type` for a GGUF source, made now (F32 first, if needed) when it is not there."""
    gguf_path = Path(gguf_path)
    name = canonical(type)
    if name is None:
        raise SizebenchError(f"unknown llama.cpp type '{type}'; known: {', '.join(TYPES)}")
    if not gguf_path.exists():
        raise SizebenchError(f"GGUF file {gguf_path} does not exist")
    folder = source_dir(gguf_path)
    f32 = folder / f"{F32}.gguf"
    spent = _make(f32, gguf_path, lambda tmp: dequantize_to_f32(gguf_path, tmp))
    if name == F32:
        return Prepared(f32, spent)
    spent_q = _make(folder / f"{name}.gguf", gguf_path, lambda tmp: quantize(f32, tmp, name))
    total = None if spent is None and spent_q is None else (spent or 0.0) + (spent_q or 0.0)
    return Prepared(folder / f"{name}.gguf", total)


def f32_gguf(gguf_path: Path) -> Path:
    """An F32 GGUF of the same weights, metadata and tokenizer as `gguf_path` (cached)."""
    return prepare(gguf_path, F32).path


def quantized(gguf_path: Path, type: str) -> Path:
    """`gguf_path` as llama.cpp's `type` (cached), quantized from its F32 version."""
    return prepare(gguf_path, type).path


# ---- the cache entries: made once, under their lock ------------------------------------------------


@contextmanager
def locked(target: Path, wait: bool = True) -> Iterator[Path]:
    """Hold `target`'s lock (`<target>.lock`), yielding the lock's path. BlockingIOError when not `wait`
    and another process holds it. The holder may delete the lock file: a waiter then finds that the file it
    locked is no longer the one at the path, and locks the new one."""
    path = target.with_name(target.name + ".lock")
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(path, "a")
        except FileNotFoundError:  # the folder went between mkdir and open (`sizebench cache --remove`)
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            current = os.stat(path).st_ino if path.exists() else None
        except BaseException:
            handle.close()
            raise
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        yield path
    finally:
        handle.close()  # releases the lock


def staging_name(target: Path) -> Path:
    """A temporary name beside `target`, with this process's id (`cache` tells a dead writer's leftovers)."""
    return target.with_name(f"{target.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _make(target: Path, source: Path, build: Callable[[Path], None]) -> float | None:
    """Build `target` unless it exists; the seconds it took, or None when it was there (or made meanwhile)."""
    if target.exists():
        return None
    with locked(target):
        if target.exists():  # made by another process while this one waited
            return None
        tmp = staging_name(target)
        started = time.perf_counter()
        try:
            build(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        update_meta(
            target.parent, source, {target.stem: {"bytes": target.stat().st_size, "seconds": round(seconds, 3)}}
        )
    return seconds


def read_meta(folder: Path) -> dict:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def update_meta(folder: Path, source: Path | None, types: dict) -> None:
    """Merge per-type records into meta.json (a value None drops the type), under meta.json's lock."""
    meta_file = folder / "meta.json"
    with locked(meta_file):
        meta = read_meta(folder)
        if source is not None:
            meta["source"] = {"path": str(source), "name": Path(source).name}
        merged = {**meta.get("types", {}), **types}
        meta["types"] = {k: v for k, v in sorted(merged.items()) if v is not None}
        atomic.write_text(meta_file, json.dumps(meta, indent=1))


# ---- the two conversions -----------------------------------------------------------------------------


def dequantize_to_f32(src: Path, dst: Path) -> None:
    """Write an F32 GGUF of `src` to `dst`: every tensor dequantized (F32 and integer tensors copied),
    every key/value copied as it is typed (arrays with their element type), general.file_type ALL_F32.

    GGUFReader gives a tensor's `shape` in GGUF order (ne0, the contiguous dimension, first) and its
    `data` as numpy rows in the reverse order (bytes per row last, for a quantized type); `dequantize`
    returns the numpy shape, reversed(shape), which GGUFWriter reverses again into the file's dims.
    """
    import gguf
    import numpy as np
    from sizebench.weights.gguf_convert import _plain_reader_class

    reader = _plain_reader_class()(str(src))
    arch = _string(reader.fields["general.architecture"]).decode()
    writer = _writer_class()(str(dst), arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue  # the header's own fields; the writer adds the architecture itself
        value, vtype, sub_type = _field_value(field)
        if field.name == "general.file_type":
            value = 0  # LLAMA_FTYPE_ALL_F32
        if field.name == "general.alignment":
            writer.data_alignment = value
        writer.add_key_value(field.name, value, vtype, sub_type)
    if "general.file_type" not in reader.fields:
        writer.add_file_type(0)
    keep = {gguf.GGMLQuantizationType[n] for n in ("F32", "F64", "I8", "I16", "I32", "I64")}
    plan = []
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        dtype = tensor.data.dtype if tensor.tensor_type in keep else np.dtype(np.float32)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        writer.add_tensor_info(
            tensor.name, shape, dtype, nbytes, raw_dtype=tensor.tensor_type if tensor.tensor_type in keep else None
        )
        plan.append((tensor, shape))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor, shape in plan:  # one tensor in memory at a time
            if tensor.tensor_type in keep:
                data = np.asarray(tensor.data)
            else:
                try:
                    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                except NotImplementedError as exc:
                    raise ConversionFailed(
                        f"{src.name}: tensor {tensor.name} of type {tensor.tensor_type.name} "
                        f"cannot be dequantized by gguf ({exc})"
                    ) from exc
            if data.shape != shape:
                raise ConversionFailed(
                    f"{src.name}: tensor {tensor.name} dequantized to shape {data.shape}, expected {shape}"
                )
            writer.write_tensor_data(np.ascontiguousarray(data))
    finally:
        writer.close()


def quantize(f32: Path, dst: Path, type: str) -> None:
    """llama.cpp's quantizer on an F32 GGUF; ConversionFailed with llama.cpp's own reason when it fails."""
    import llama_cpp
    import llama_cpp._logger  # noqa: F401 - installs llama_cpp's log callback, restored below

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[type]
    params.nthread = os.cpu_count() or 1
    errors: list[str] = []

    @llama_cpp.llama_log_callback
    def keep_errors(level, text, user_data):  # quiet, but keep what llama.cpp says went wrong
        if level == 3 and text:
            errors.append(text.decode(errors="replace").strip())

    llama_cpp.llama_log_set(keep_errors, ctypes.c_void_p(0))
    try:
        status = llama_cpp.llama_model_quantize(str(f32).encode(), str(dst).encode(), ctypes.byref(params))
    finally:
        llama_cpp.llama_log_set(llama_cpp._logger.llama_log_callback, ctypes.c_void_p(0))
    if status != 0:
        reason = next((e for e in reversed(errors) if e), f"status {status}")
        raise ConversionFailed(
            f"llama.cpp could not quantize {f32.parent.name[:16]}/{f32.name} to {type}: {reason.splitlines()[0][:300]}"
        )


def _string(field) -> bytes:
    return bytes(field.parts[-1])


def _field_value(field):
    """(value, type, element type) of a reader field, as the writer takes it; strings as their raw bytes."""
    from gguf import GGUFValueType

    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        if len(field.types) != 2:
            raise ConversionFailed(f"metadata {field.name}: nested arrays are not copied")
        sub_type = field.types[1]
        if sub_type == GGUFValueType.STRING:
            return [bytes(field.parts[i]) for i in field.data], kind, sub_type
        return [field.parts[i].tolist()[0] for i in field.data], kind, sub_type
    if kind == GGUFValueType.STRING:
        return _string(field), kind, None
    return field.parts[-1].tolist()[0], kind, None


def _writer_class():
    import gguf

    class Writer(gguf.GGUFWriter):
        """GGUFWriter that also writes an empty array (the format allows one; the writer refuses it)."""

        def _pack_val(self, val, vtype, add_vtype, sub_type=None):
            if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
                return (self._pack("I", vtype) if add_vtype else b"") + self._pack("I", sub_type) + self._pack("Q", 0)
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    return Writer
