"""What a served rung records at load, and the tokenizer that renders its prompts: shared by endpoints and launches."""

from __future__ import annotations

from pathlib import Path

from sizebench.engines import formats
from sizebench.specs.models import GGUF_FILE, GGUF_PACKAGE, ModelSpec
from sizebench.runstore.records import LoadRecord


def gguf_path(spec: ModelSpec) -> Path | None:
    from sizebench.weights import sources

    if spec.source == GGUF_PACKAGE:
        return sources.package_gguf(spec)
    return Path(spec.location) if spec.source == GGUF_FILE else None


def gguf_context(path: Path) -> int:
    """The context llama.cpp's server opens for this GGUF: the llama.cpp engine's."""
    from sizebench.engines.llamacpp.session import context_tokens
    from sizebench.weights import gguf_check

    metadata, _ = gguf_check.tables(path)
    return context_tokens(metadata)


def tokenizer_of(spec: ModelSpec):
    """(transformers' tokenizer of the model, its context window or None): the GGUF's as the llama.cpp engine
    reads it, else the checkpoint's."""
    path = gguf_path(spec)
    if path is not None:
        from sizebench.engines.llamacpp.session import hf_tokenizer

        return hf_tokenizer(path), gguf_context(path)
    from transformers import AutoTokenizer

    from sizebench.weights import sources

    located = sources.locate(spec)  # a hub model not cached and offline: unavailable, as everywhere
    tokenizer = AutoTokenizer.from_pretrained(located.path)
    limit = getattr(tokenizer, "model_max_length", None)
    return tokenizer, int(limit) if limit and limit < 1_000_000 else None


def prompt_format(spec: ModelSpec, tokenizer) -> str:
    if tokenizer is None:
        return "chat"  # chat completions of the bare prompt: the server's own template
    return formats.pick(spec, tokenizer)


def endpoint_load_record(session, attempt: str, load_s: float) -> LoadRecord:
    """An endpoint not launched here: its size is the tokenizer model's published one (0: unknown), its memory not seen."""
    spec = session.spec
    known = "published size of the tokenizer's model" if spec.params else "size unknown (no ?tokenizer=MODEL)"
    return LoadRecord(
        model=spec.name,
        attempt=attempt,
        family=spec.family,
        source=spec.source,
        params=spec.params or 0,
        weights_mb=0.0,
        weights_mem_mb=0.0,
        quantization=None,
        convert_s=None,
        load_s=load_s,
        load_kind="endpoint",
        dtype="served",
        device="server",
        n_devices=1,
        threads=0,
        prompt_format=session.prompt_format,
        peak_rss_mb=session.peak_rss_mb(),
        cuda_peak_mb=None,
        params_non_embedding=spec.params_non_embedding,
        precision=None,
        precision_label=f"{session.serving}; {known}",
        engine=spec.engine,
    )


def launched_gguf_load_record(
    session, attempt: str, path: Path, distributed: int, type_name: str, requantized: bool
) -> LoadRecord:
    """A GGUF served by a server launched for the rung: sizes from the file, memory from the server's process tree."""
    from sizebench.weights import gguf_check

    spec = session.spec
    _, tensors = gguf_check.tables(path)
    params = sum(t.elements for t in tensors)
    embedding = sum(t.elements for t in tensors if t.name in ("token_embd.weight", "output.weight"))
    held = sum(t.nbytes for t in tensors)
    return LoadRecord(
        model=spec.name,
        attempt=attempt,
        family=spec.family,
        source=spec.source,
        params=params,
        weights_mb=distributed / 2**20,
        weights_mem_mb=held / 2**20,
        quantization=spec.quantization,
        convert_s=None,
        load_s=session.server.started_s,
        load_kind="server start",
        dtype=type_name,
        device="cpu",
        n_devices=1,
        threads=session.threads,
        prompt_format=session.prompt_format,
        peak_rss_mb=session.peak_rss_mb(),
        cuda_peak_mb=None,
        params_non_embedding=params - embedding,
        precision=spec.precision,
        precision_label=f"GGUF {type_name.upper()}, {session.serving}",
        bytes_per_param=held / params if params else None,
        engine=spec.engine,
        requantized=requantized,
    )
