"""The prompt stage: each prompt generated with the model's format, timed, repeated.

Protocol: one short warm-up generation per model on a fixed prompt (not recorded); then per prompt
`repeat` timed runs (default one: the model's figure is a median over prompts, and the report shows
their spread), the answer taken from the first, the figures reported as medians with every run
kept. A timed run is a one-token generate of the prompt (TTFT: prefill and the first token), then the
full generate without a streamer (latency, new tokens, energy). Greedy decoding by default, so every
run produces the same tokens and the timings are comparable; sampled runs set the seed before every
generation, so they repeat exactly too.
A prompt whose tokens plus max_new_tokens exceed the model's context window is not sent: it is
recorded as skipped for that model, with both numbers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from sizebench.measurement import energy, measure
from sizebench.stages import formats
from sizebench.engines.hf.loader import Loaded
from sizebench.runstore.records import PromptRecord, PromptSkipRecord, ThroughputRecord
from sizebench.stages.suites import Prompt, is_correct

WARMUP_TOKENS = 8
WARMUP_PROMPT = Prompt("warm-up", "What is the capital of France?")  # short and fixed: never the suite's
UNKNOWN_LENGTH = 10**9  # transformers' model_max_length when a tokenizer names none is int(1e30)
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


@dataclass(frozen=True)
class GenSettings:
    max_new_tokens: int = 128
    repeat: int = 1  # one timed run per prompt; why: benchmarks/RESULTS.md
    seed: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 1
    top_k: int = 50  # transformers' default when sampling; 0 turns top-k off
    stop_at_eos: bool = True  # False: a format with its own stop token (Dolly's `### End`) stops only there
    preset: str | None = None  # the named decoding preset these settings came from, if any

    def with_preset(self, name: str | None) -> "GenSettings":
        if name is None:
            return self
        if name not in PRESETS:
            from sizebench.errors import SizebenchError

            raise SizebenchError(f"unknown --decoding '{name}'; choose one of: {', '.join(PRESETS)}")
        return replace(self, preset=name, **PRESETS[name])

    def describe(self) -> str:
        """How answers were decoded, in words, for the report."""
        if not self.do_sample:
            text = "greedy decoding"
        else:
            top_k = "top-k off" if self.top_k == 0 else f"top-k {self.top_k}"
            text = (f"sampling (temperature {self.temperature:g}, top-p {self.top_p:g}, {top_k}, "
                    f"seed {self.seed} set before every generation)")
        text += f", at most {self.max_new_tokens} new tokens"
        if not self.stop_at_eos:
            text += ", stopping at the format's own stop token only (`### End` for Dolly)"
        return f"`{self.preset}` preset: {text}" if self.preset else text


# Databricks' own InstructionTextGenerationPipeline (dolly repo, instruct_pipeline.py): do_sample=True,
# top_p=0.92, top_k=0, max_new_tokens=256, eos_token_id = the `### End` token only.
PRESETS: dict[str, dict] = {
    "greedy": {"do_sample": False, "stop_at_eos": True},
    "databricks": {"do_sample": True, "temperature": 1.0, "top_p": 0.92, "top_k": 0, "max_new_tokens": 256,
                   "stop_at_eos": False},
}


@dataclass(frozen=True)
class Generation:
    answer: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    ttft_s: float
    latency_s: float

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def decode_tok_per_s(self) -> float | None:
        decode_s = self.latency_s - self.ttft_s
        return (self.new_tokens - 1) / decode_s if self.new_tokens > 1 and decode_s > 0 else None


def generate_kwargs(loaded: Loaded, rendered: formats.Rendered, settings: GenSettings, max_new_tokens: int) -> dict:
    tok = loaded.tokenizer
    stop_ids = formats.stop_token_ids(tok, rendered.stop_strings)
    if not settings.stop_at_eos:  # only the format's own stop tokens, where it has any
        stop_ids = [i for i in stop_ids if i != tok.eos_token_id] or stop_ids
    kwargs = {
        "max_new_tokens": max_new_tokens, "do_sample": settings.do_sample,
        "eos_token_id": stop_ids or None, "pad_token_id": tok.pad_token_id,
    }
    vocab = tok.get_vocab()
    multi_token_stops = tuple(s for s in rendered.stop_strings if s not in vocab)
    if multi_token_stops:
        kwargs["stopping_criteria"] = stop_criteria(loaded, multi_token_stops)
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)  # silence sampling defaults under greedy
    return kwargs


def stop_criteria(loaded: Loaded, stops: tuple[str, ...]):
    """Built once per model: generate(stop_strings=...) rebuilds it per call, 2.3 s for Gemma's 262k vocab."""
    key = ("stop_criteria", stops)
    if key not in loaded.reusable:
        from transformers import StoppingCriteriaList
        from transformers.generation.stopping_criteria import StopStringCriteria

        loaded.reusable[key] = StoppingCriteriaList([StopStringCriteria(loaded.tokenizer, list(stops))])
    return loaded.reusable[key]


def generate_once(loaded: Loaded, rendered: formats.Rendered, settings: GenSettings,
                  max_new_tokens: int | None = None, meter: energy.Meter | None = None) -> Generation:
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
    new_ids = out[0, enc["input_ids"].shape[1]:].tolist()
    text = tok.decode(new_ids, skip_special_tokens=True)
    # a one-token answer is the same work twice: the first token cannot come after the whole answer
    return Generation(formats.cut_at_stop(text, rendered.stop_strings), tuple(new_ids),
                      enc["input_ids"].shape[1], min(ttft, latency), latency)


def _timed_generate(loaded: Loaded, enc, kwargs: dict, seed: int):
    import torch

    torch.manual_seed(seed)
    measure.sync(loaded.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = loaded.model.generate(**enc, **kwargs)
    measure.sync(loaded.device)
    return out, time.perf_counter() - started


def render(loaded: Loaded, prompt: Prompt) -> formats.Rendered:
    return formats.render(loaded.prompt_format, prompt.text, prompt.context, loaded.tokenizer)


def context_window(loaded: Loaded) -> int | None:
    """Tokens the model attends to: its config's position limit, else the tokenizer's when it names one."""
    config = loaded.model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(loaded.tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < UNKNOWN_LENGTH else None


def prompt_tokens(loaded: Loaded, rendered: formats.Rendered) -> int:
    return len(loaded.tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"])


def too_long(loaded: Loaded, prompt: Prompt, rendered: formats.Rendered, settings: GenSettings,
             attempt: str, context: int | None) -> PromptSkipRecord | None:
    """The skip record of a prompt that cannot fit with its answer in the context window, else None."""
    if context is None:
        return None
    tokens = prompt_tokens(loaded, rendered)
    if tokens + settings.max_new_tokens <= context:
        return None
    return PromptSkipRecord(
        model=loaded.spec.name, attempt=attempt, prompt_id=prompt.id, prompt=prompt.text, expected=list(prompt.expected),
        prompt_tokens=tokens, max_new_tokens=settings.max_new_tokens, context_tokens=context,
        reason=f"{tokens} prompt tokens + {settings.max_new_tokens} new tokens > context window of {context}",
    )


def run_prompts(loaded: Loaded, prompts: tuple[Prompt, ...], settings: GenSettings, attempt: str,
                emit: Callable, progress: Callable[[int, int], None] = lambda done, total: None,
                meter: energy.Meter | None = None) -> list[PromptRecord]:
    """Prompt records of the prompts that ran; skip records for the others go to emit too.

    `meter` counts the timed generations only: not the warm-up, the records or the progress."""
    context = context_window(loaded)
    generate_once(loaded, render(loaded, WARMUP_PROMPT), settings, WARMUP_TOKENS)
    records = []
    for index, prompt in enumerate(prompts):
        rendered = render(loaded, prompt)
        skipped = too_long(loaded, prompt, rendered, settings, attempt, context)
        if skipped:
            emit(skipped)
            progress(index + 1, len(prompts))
            continue
        runs = [generate_once(loaded, rendered, settings, meter=meter) for _ in range(settings.repeat)]
        first = runs[0]
        decode_runs = [r.decode_tok_per_s for r in runs if r.decode_tok_per_s is not None]
        record = PromptRecord(
            model=loaded.spec.name, attempt=attempt, prompt_id=prompt.id, prompt=prompt.text,
            expected=list(prompt.expected), answer=first.answer, correct=is_correct(first.answer, prompt.expected),
            prompt_tokens=first.prompt_tokens, new_tokens=first.new_tokens,
            ttft_s=measure.median([r.ttft_s for r in runs]),
            latency_s=measure.median([r.latency_s for r in runs]),
            decode_tok_per_s=measure.median(decode_runs) if decode_runs else None,
            ttft_s_runs=[r.ttft_s for r in runs], latency_s_runs=[r.latency_s for r in runs],
            decode_tok_per_s_runs=decode_runs,
            same_answer_every_run=all(r.token_ids == first.token_ids for r in runs),
        )
        emit(record)
        records.append(record)
        progress(index + 1, len(prompts))
    return records


def batched_throughput(loaded: Loaded, prompts: tuple[Prompt, ...], settings: GenSettings, attempt: str,
                       single: list[PromptRecord]) -> ThroughputRecord:
    """Aggregate tokens/s of the suite in left-padded batches; latency figures stay single-stream."""
    import torch

    tok, model, size = loaded.tokenizer, loaded.model, settings.batch_size
    rendered = [render(loaded, p) for p in prompts]
    kwargs = generate_kwargs(loaded, rendered[0], settings, settings.max_new_tokens)
    side, tok.padding_side = tok.padding_side, "left"
    try:
        def run(batch: list[formats.Rendered], **override):
            enc = tok([r.text for r in batch], return_tensors="pt", padding=True,
                      add_special_tokens=batch[0].add_special_tokens).to(model.device)
            torch.manual_seed(settings.seed)
            with torch.inference_mode():
                return model.generate(**enc, **{**kwargs, **override}), enc["input_ids"].shape[1]

        run(rendered[:size], max_new_tokens=WARMUP_TOKENS)
        measure.sync(loaded.device)
        started = time.perf_counter()
        outputs = [run(rendered[i:i + size]) for i in range(0, len(rendered), size)]
        measure.sync(loaded.device)
        wall = time.perf_counter() - started
    finally:
        tok.padding_side = side
    new_tokens = sum(sum(new_token_counts(out, prompt_length, kwargs)) for out, prompt_length in outputs)
    single_tps = sum(r.new_tokens for r in single) / sum(r.latency_s for r in single)
    return ThroughputRecord(loaded.spec.name, attempt, size, len(prompts), new_tokens, wall,
                            new_tokens / wall, single_tps)


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
