"""transformers' generation: timed generate calls, stop criteria, context window, batched throughput."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from sizebench.engines import formats
from sizebench.engines.base import Generation
from sizebench.engines.hf import decoding
from sizebench.measurement import energy, measure, memory
from sizebench.specs.models import RANDOM, ModelSpec
from sizebench.specs.settings import WARMUP_TOKENS, GenSettings
from sizebench.runstore.records import DecodeRecord, PromptRecord, ThroughputRecord

if TYPE_CHECKING:
    from sizebench.specs.prompts import Prompt


class LoadedModel(Protocol):
    """What these functions read and set on the transformers session (sizebench.engines.hf.loader.Loaded, which
    calls them: it imports this module, not the other way)."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    device: str
    dtype: str
    decoder: decoding.Decoder
    reusable: dict

    def render(self, prompt: "Prompt") -> formats.Rendered: ...


UNKNOWN_LENGTH = 10**9  # transformers' model_max_length when a tokenizer names none is int(1e30)
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def generate_kwargs(
    loaded: LoadedModel, rendered: formats.Rendered, settings: GenSettings, max_new_tokens: int
) -> dict:
    tok = loaded.tokenizer
    stop_ids = formats.stop_token_ids(tok, rendered.stop_strings)
    if not settings.stop_at_eos:  # only the format's own stop tokens, where it has any
        stop_ids = [i for i in stop_ids if i != tok.eos_token_id] or stop_ids
    if loaded.spec.weights == RANDOM:  # a cost-only rung: every answer runs to max_new_tokens
        stop_ids, rendered = [], replace(rendered, stop_strings=())
    kwargs = {
        "max_new_tokens": max_new_tokens,
        "do_sample": settings.do_sample,
        "eos_token_id": stop_ids or None,
        "pad_token_id": tok.pad_token_id,
    }
    vocab = tok.get_vocab()
    multi_token_stops = tuple(s for s in rendered.stop_strings if s not in vocab)
    if multi_token_stops:
        kwargs["stopping_criteria"] = stop_criteria(loaded, multi_token_stops)
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)  # silence sampling defaults under greedy
    return {**kwargs, **loaded.decoder.generate_kwargs()}


def prepare_decode(loaded: LoadedModel, rendered: list[formats.Rendered], settings: GenSettings) -> None:
    """The rung's decode mode for this suite: static sizes its cache for the longest of `rendered` plus the
    new-token limit, one shape for every call (batches are padded to it)."""
    mode = decoding.resolve(settings.decode, loaded.device)
    cache_len = None
    if mode == "static":
        cache_len = max(prompt_tokens(loaded, r) for r in rendered) + settings.max_new_tokens
    loaded.decoder = decoding.Decoder(mode, cache_len, compile=mode == "static" and loaded.device != "cpu")


def decode_record(loaded: LoadedModel, attempt: str, warmup_s: float) -> DecodeRecord:
    decoder = loaded.decoder
    per_position = decoding.kv_bytes_per_position(
        loaded.model.config, memory.DTYPE_BYTES.get(loaded.dtype, 4), decoder.cache_len
    )
    return DecodeRecord(
        loaded.spec.name,
        attempt,
        decoder.mode,
        loaded.device,
        warmup_s,
        decoder.cache_len,
        per_position * decoder.cache_len / 2**20 if decoder.cache_len else None,
        per_position,
        compiled=getattr(loaded.model, "_compiled_call", None) is not None,
    )


def stop_criteria(loaded: LoadedModel, stops: tuple[str, ...]):
    """Built once per model: generate(stop_strings=...) rebuilds it per call, 2.3 s for Gemma's 262k vocab."""
    key = ("stop_criteria", stops)
    if key not in loaded.reusable:
        from transformers import StoppingCriteriaList
        from transformers.generation.stopping_criteria import StopStringCriteria

        loaded.reusable[key] = StoppingCriteriaList([StopStringCriteria(loaded.tokenizer, list(stops))])
    return loaded.reusable[key]


def generate_once(
    loaded: LoadedModel,
    rendered: formats.Rendered,
    settings: GenSettings,
    max_new_tokens: int | None = None,
    meter: energy.Meter | None = None,
) -> Generation:
    """One timed generation; `meter` counts the energy of the full generate only.

    TTFT is timed apart, as a one-token generate of the same prompt (prefill and the first token), as
    optimum-benchmark does: the full generate then runs without a streamer, for which transformers
    copies every new token to the CPU (on a GPU, a wait for the device after each token).
    """
    tok, model = loaded.tokenizer, loaded.model
    enc = tok(rendered.text, return_tensors="pt", add_special_tokens=rendered.add_special_tokens).to(model.device)
    kwargs = generate_kwargs(loaded, rendered, settings, max_new_tokens or settings.max_new_tokens)
    _, ttft = _timed_generate(loaded, enc, {**kwargs, "max_new_tokens": 1}, settings.seed)
    with meter.counting() if meter else contextlib.nullcontext():
        out, latency = _timed_generate(loaded, enc, kwargs, settings.seed)
    new_ids = out[0, enc["input_ids"].shape[1] :].tolist()
    text = tok.decode(new_ids, skip_special_tokens=True)
    # a one-token answer is the same work twice: the first token cannot come after the whole answer
    return Generation(
        formats.cut_at_stop(text, rendered.stop_strings),
        tuple(new_ids),
        enc["input_ids"].shape[1],
        min(ttft, latency),
        latency,
    )


def _timed_generate(loaded: LoadedModel, enc, kwargs: dict, seed: int):
    import torch

    torch.manual_seed(seed)
    measure.sync(loaded.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(**enc, **kwargs)
    measure.sync(loaded.device)
    return out, time.perf_counter() - started


def context_window(loaded: LoadedModel) -> int | None:
    """Tokens the model attends to: its config's position limit, else the tokenizer's when it names one."""
    config = loaded.model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(loaded.tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < UNKNOWN_LENGTH else None


def prompt_tokens(loaded: LoadedModel, rendered: formats.Rendered) -> int:
    return len(loaded.tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"])


def batched_throughput(
    loaded: LoadedModel, prompts: tuple["Prompt", ...], settings: GenSettings, attempt: str, single: list[PromptRecord]
) -> ThroughputRecord:
    """Aggregate tokens/s of the suite in left-padded batches; latency figures stay single-stream.

    Static decoding pads a short last batch to the batch size with copies of its last prompt (one shape, one
    compiled graph); only the real rows' tokens count."""
    import torch

    tok, model, size = loaded.tokenizer, loaded.model, settings.batch_size
    rendered = [loaded.render(p) for p in prompts]
    kwargs = generate_kwargs(loaded, rendered[0], settings, settings.max_new_tokens)
    static = loaded.decoder.mode == "static"
    side, tok.padding_side = tok.padding_side, "left"
    try:

        def run(batch: list[formats.Rendered], **override):
            real = len(batch)
            batch = batch + [batch[-1]] * (size - real) if static else batch
            enc = tok(
                [r.text for r in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=batch[0].add_special_tokens,
            ).to(model.device)
            torch.manual_seed(settings.seed)
            with torch.inference_mode():
                return model.generate(**enc, **{**kwargs, **override})[:real], enc["input_ids"].shape[1]

        measure.sync(loaded.device)
        started = time.perf_counter()
        run(rendered[:size], max_new_tokens=WARMUP_TOKENS)  # the batch shape's compile, where static
        measure.sync(loaded.device)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        outputs = [run(rendered[i : i + size]) for i in range(0, len(rendered), size)]
        measure.sync(loaded.device)
        wall = time.perf_counter() - started
    finally:
        tok.padding_side = side
    new_tokens = sum(sum(new_token_counts(out, prompt_length, kwargs)) for out, prompt_length in outputs)
    single_tps = sum(r.new_tokens for r in single) / sum(r.latency_s for r in single)
    return ThroughputRecord(
        loaded.spec.name,
        attempt,
        size,
        len(prompts),
        new_tokens,
        wall,
        new_tokens / wall,
        single_tps,
        loaded.decoder.mode,
        warmup_s,
    )


def new_token_counts(out, prompt_length: int, kwargs: dict) -> list[int]:
    """Per sequence, the new tokens up to where generate() stopped it; after that it only appends padding.

    The same checks generate() makes after each token, with the same settings: the last token is one of
    `eos_token_id`'s ids, or `stopping_criteria` (multi-token stop strings) fires on the sequence so far.
    """
    import torch

    stop_ids = torch.tensor(kwargs["eos_token_id"] or [], dtype=out.dtype, device=out.device)
    criteria = kwargs.get("stopping_criteria")
    counts = [out.shape[1] - prompt_length] * out.shape[0]
    for end in range(prompt_length + 1, out.shape[1] + 1):
        stopped = torch.isin(out[:, end - 1], stop_ids)
        if criteria:
            stopped |= criteria(out[:, :end], None)
        for row in stopped.nonzero().flatten().tolist():
            counts[row] = min(counts[row], end - prompt_length)
    return counts
