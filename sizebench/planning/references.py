"""The agreement stage's plan: which rung is each variant's reference, and an order that runs it first.

Rungs are grouped by the tokenizer they are known to share before anything loads: every variant of
one model (its precisions and engines), model folders with the same tokenizer files, and the built-in
Dolly ladder, whose sizes share the GPT-NeoX tokenizer. A group's reference is its largest model at the most bits per weight; `--reference NAME`
makes NAME every other rung's reference instead. The worker checks the shared tokenizer for real.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sizebench import engines
from sizebench.errors import SizebenchError
from sizebench.planning.registry import file_key
from sizebench.specs.models import LOCAL_DIR, ModelSpec

SHARED_TOKENIZERS = {  # location -> a name for the tokenizer it shares with other locations
    "marouni/miniDolly": "gpt-neox-20b",
    "databricks/dolly-v2-3b": "gpt-neox-20b",
    "databricks/dolly-v2-7b": "gpt-neox-20b",
    "databricks/dolly-v2-12b": "gpt-neox-20b",
}


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model")


def tokenizer_key(spec: ModelSpec) -> str:
    """Rungs with one key are expected to share a tokenizer: a built-in ladder's, or a model folder's
    tokenizer files byte for byte, else the same weights (the variants of one model)."""
    if spec.location in SHARED_TOKENIZERS:
        return SHARED_TOKENIZERS[spec.location]
    folder = Path(spec.location)
    if spec.source == LOCAL_DIR and folder.is_dir():
        digest = hashlib.sha256()
        files = [folder / f for f in TOKENIZER_FILES if (folder / f).is_file()]
        for path in files:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        if files:
            return "tokenizer:" + digest.hexdigest()
    return f"{spec.location}#{spec.gguf_file or ''}"


def _size(spec: ModelSpec) -> float:
    """Published parameters, else the weights' bytes on disk (the larger of two folders of one ladder)."""
    if spec.params:
        return spec.params
    folder = Path(spec.location)
    if spec.source == LOCAL_DIR and folder.is_dir():
        return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))
    return 0


def _precision(spec: ModelSpec, dtype: str) -> tuple:
    engine = engines.get(spec.engine)
    return (_size(spec), engine.nominal_bits(spec, dtype) or 0, engine.reference_implementation)


def references(models: tuple[ModelSpec, ...], dtype: str, chosen: str | None = None) -> dict[str, str]:
    """Every rung that takes part -> its reference (a reference maps to itself); rungs alone in their
    group take no part."""
    names = [m.name for m in models]
    if chosen is not None:
        if chosen not in names:
            raise SizebenchError(f"--reference {chosen}: not a model of this run ({', '.join(names)})")
        return {name: chosen for name in names} if len(names) > 1 else {}
    groups: dict[str, list[ModelSpec]] = {}
    for spec in models:
        groups.setdefault(tokenizer_key(spec), []).append(spec)
    out = {}
    for members in groups.values():
        if len(members) > 1:
            best = max(members, key=lambda s: _precision(s, dtype))  # first of equals: plan order
            out.update({m.name: best.name for m in members})
    return out


def job(name: str, mapping: dict[str, str]) -> dict | None:
    """What the worker's agreement stage needs: the reference and where its distributions are."""
    if name not in mapping:
        return None
    return {"reference": mapping[name], "file": f"agreement/{file_key(mapping[name])}.npz"}


def run_order(models: tuple[ModelSpec, ...], mapping: dict[str, str]) -> list[int]:
    """Plan indexes with every reference before the rest, otherwise in plan order."""
    refs = set(mapping.values())
    return sorted(range(len(models)), key=lambda i: models[i].name not in refs)
