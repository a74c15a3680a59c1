"""GGUF -> safetensors, once per file: transformers' own GGUF loading, without its repeated work.

`from_pretrained(gguf_file=...)` of a tokenizer and a model parses the same file again and again:
the legacy GGUF loader builds a `gguf.GGUFReader` (a numpy view per metadata element, each view of
an `np.memmap`, which costs a Python-level `__array_finalize__`) for the tokenizer's config, for the
model's config and for the weights, parses all metadata into Python values each time, and looks up
the tensor-name table once per module (hundreds of rebuilds). Measured on gemma3-270m (262k-token
vocabulary) that repetition, not the dequantization, was most of the two-minute conversion.

Here the conversion still runs transformers' code, with five memos installed for its duration:
one reader per file, over a plain ndarray of the same mapped bytes (same values, cheap views); the
metadata-only parse once per file (a deep copy to each caller); each metadata value parsed once (the
weights' load parses them all again); transformers' fast metadata reader once per file; and the
tensor-name table once per (architecture, layers). The tensors come from the
same `gguf.dequantize` of the same bytes, so the saved weights are bit-identical; a slow test checks
the converted model's logits against the GGUF-loaded model's.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import sys
import uuid
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from sizebench.system import atomic


def _plain_reader_class():
    import gguf
    import numpy as np

    class PlainReader(gguf.GGUFReader):
        """GGUFReader over a plain ndarray view of its memory map: the same bytes, no memmap subclass."""

        @property
        def data(self):
            return self._plain

        @data.setter
        def data(self, value):
            self._plain = np.asarray(value)  # a base-class view of the mapping; keeps it alive, copies nothing

    return PlainReader


def _parse_once(parse):
    """transformers' value parser, once per metadata part (the weights' load parses all metadata again),
    with strings decoded straight from their bytes instead of through a list of ints."""
    import numpy as np

    seen: dict = {}  # id(part) -> (part, value); holding the part keeps its id from being reused

    def parse_value(part, types):
        hit = seen.get(id(part))
        if hit is not None and hit[0] is part:
            return hit[1]
        kind = types[-1] if isinstance(types, list) and len(types) in (1, 2) else types
        if (
            kind == 8
            and isinstance(part, np.ndarray)
            and part.dtype == np.uint8
            and (not isinstance(types, list) or types[0] in (8, 9))
        ):
            value = part.tobytes().decode()
        else:
            value = parse(part, types)
        seen[id(part)] = (part, value)
        return value

    return parse_value


@contextmanager
def parse_once():
    """Memoise transformers' GGUF parsing for the duration (one process converting one file)."""
    import gguf
    import transformers.modeling_gguf_pytorch_utils as legacy

    try:  # imported now, so that it does not keep a memo past this block
        import transformers.quantizers.quantizer_gguf  # noqa: F401
    except ImportError:
        pass

    patches = []  # (owner, attribute, original)

    def patch(owner, name, replacement):
        patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    reader_class = _plain_reader_class()
    patch(gguf, "GGUFReader", functools.cache(lambda path, mode="r": reader_class(path, mode)))
    patch(gguf, "get_tensor_name_map", functools.cache(gguf.get_tensor_name_map))

    patch(legacy, "_gguf_parse_value", _parse_once(legacy._gguf_parse_value))
    load = legacy.load_gguf_checkpoint
    metadata: dict = {}

    def load_checkpoint(path, return_tensors=False, model_to_load=None, torch_dtype=None):
        if return_tensors:
            return load(path, return_tensors=True, model_to_load=model_to_load, torch_dtype=torch_dtype)
        if str(path) not in metadata:
            metadata[str(path)] = load(path, return_tensors=False)
        return copy.deepcopy(metadata[str(path)])  # callers pop and edit what they get

    patch(legacy, "load_gguf_checkpoint", load_checkpoint)
    try:  # transformers' fast metadata reader: imported from the package and from its module
        import transformers.integrations.gguf as fast_package
        import transformers.integrations.gguf.reader as fast_module

        read = fast_module.read_gguf_metadata
    except (ImportError, AttributeError):  # older transformers: only the legacy loader exists
        read = None
    if read is not None:
        seen: dict = {}

        def read_metadata(path, string_arrays=()):
            key = (str(path), tuple(string_arrays))
            if key not in seen:
                seen[key] = read(path, string_arrays)
            return copy.deepcopy(seen[key])

        # The package first: it is a lazy module whose first lookup reads the attribute from the module,
        # so after patching the module it would record (and later restore) the memo as its original.
        patch(fast_package, "read_gguf_metadata", read_metadata)
        patch(fast_module, "read_gguf_metadata", read_metadata)
    try:
        yield
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF with transformers and save it as safetensors into `target`, whole or not at all.

    The folder is written under a name of its own and renamed into place; another sweep converting the
    same file at the same time may finish first, and then its entry is kept and this one dropped.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with parse_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, use_kernels=False
        )  # no code from the Hub
    # The dequantized weights are plain tensors; transformers refuses to save while the model still
    # claims to be GGUF-quantized, so drop that claim.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f"{target.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        atomic.write_text(staging / "COMPLETE", json.dumps({"gguf": str(gguf_path)}))
        install(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when it was installed


def install(staging: Path, target: Path) -> None:
    """Rename a complete folder to `target` unless another process's complete entry is there already.

    Under a lock beside the entry, so that a complete entry, which some sweep may be loading, is never
    replaced; a folder without COMPLETE (no sweep is handed one) is removed first.
    """
    import fcntl

    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        if (target / "COMPLETE").exists():
            return  # another conversion won; ours is removed by the caller
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


def convert_in_fork(gguf_path: Path, target: Path) -> None:
    """convert_gguf in a fork of this process, which raises RuntimeError with the child's reason on failure.

    A fork comes with torch and transformers imported (a fresh interpreter imports them again: most of a
    small model's conversion), and what the conversion allocates leaves with it: converted in the worker
    itself, gemma3-270m's left the heap about 350 MiB larger for every stage measured after it.
    """
    if not hasattr(os, "fork"):  # no fork here: convert in this process
        with redirect_stdout(sys.stderr):
            convert_gguf(gguf_path, target)
        return
    # What the worker's own load imports anyway (torchao included, through the quantizer registry): once,
    # here, rather than in the fork and again after it.
    import transformers.modeling_utils  # noqa: F401
    import transformers.quantizers.auto  # noqa: F401

    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns, never runs the parent's exit handlers
        status = 1
        try:
            os.close(read)  # in the worker's process group: stopped with it (sizebench.system.supervise.Owned)
            with redirect_stdout(sys.stderr):  # a worker's stdout carries its progress events
                convert_gguf(gguf_path, target)
            status = 0
        except BaseException as exc:  # noqa: BLE001 - every failure becomes the parent's one-line reason
            os.write(write, f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}".encode())
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        reason = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        code = os.waitstatus_to_exitcode(status)
        raise RuntimeError(reason or (f"killed by signal {-code}" if code < 0 else f"exit status {code}"))


if __name__ == "__main__":
    convert_gguf(Path(sys.argv[1]), Path(sys.argv[2]))
