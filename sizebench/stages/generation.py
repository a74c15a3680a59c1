"""The prompt stage: each prompt generated with the model's format, timed, repeated.

Protocol: one short warm-up generation per model on a fixed prompt (not recorded); then per prompt
`repeat` timed runs (default one: the model's figure is a median over prompts, and the report shows
their spread), the answer taken from the first, the figures reported as medians with every run
kept. How a timed run measures TTFT and decode is the engine's (sizebench.engines: transformers times
a one-token generate of the prompt, then the full generate; llama.cpp times its token stream). Greedy decoding by default, so every
run produces the same tokens and the timings are comparable; sampled runs set the seed before every
generation, so they repeat exactly too.
A prompt whose tokens plus max_new_tokens exceed the model's context window is not sent: it is
recorded as skipped for that model, with both numbers.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict

from sizebench.engines import formats
from sizebench.engines.base import Batching, Generation, Session  # noqa: F401 (Generation: the stage's result type)
from sizebench.measurement import bandwidth, energy, measure
from sizebench.errors import SizebenchError
from sizebench.planning.plan import RunPlan
from sizebench.specs.models import RANDOM
from sizebench.specs.settings import PRESETS, WARMUP_TOKENS, GenSettings  # noqa: F401 (the stage's settings)
from sizebench.runstore.records import BandwidthRecord, EnergyRecord, PromptRecord, PromptSkipRecord
from sizebench.stages.events import Event
from sizebench.stages.stage import Context, Stage
from sizebench.specs.prompts import Prompt
from sizebench.stages.suites import is_correct, load_suite

WARMUP_PROMPT = Prompt("warm-up", "What is the capital of France?")  # short and fixed: never the suite's


def too_long(
    loaded: Session,
    prompt: Prompt,
    rendered: formats.Rendered,
    settings: GenSettings,
    attempt: str,
    context: int | None,
) -> PromptSkipRecord | None:
    """The skip record of a prompt that cannot fit with its answer in the context window, else None."""
    if context is None:
        return None
    tokens = loaded.prompt_tokens(rendered)
    if tokens + settings.max_new_tokens <= context:
        return None
    return PromptSkipRecord(
        model=loaded.spec.name,
        attempt=attempt,
        prompt_id=prompt.id,
        prompt=prompt.text,
        expected=list(prompt.expected),
        prompt_tokens=tokens,
        max_new_tokens=settings.max_new_tokens,
        context_tokens=context,
        reason=f"{tokens} prompt tokens + {settings.max_new_tokens} new tokens > context window of {context}",
    )


def run_prompts(
    loaded: Session,
    prompts: tuple[Prompt, ...],
    settings: GenSettings,
    attempt: str,
    emit: Callable,
    progress: Callable[[int, int], None] = lambda done, total: None,
    meter: energy.Meter | None = None,
) -> list[PromptRecord]:
    """Prompt records of the prompts that ran; skip records for the others go to emit too.

    `meter` counts the timed generations only: not the warm-up, the records or the progress."""
    context = loaded.context_window()
    rendered_all = [loaded.render(p) for p in prompts]
    skips = [too_long(loaded, p, r, settings, attempt, context) for p, r in zip(prompts, rendered_all, strict=True)]
    warmup = loaded.render(WARMUP_PROMPT)
    loaded.prepare_decode([warmup, *(r for r, skip in zip(rendered_all, skips, strict=True) if skip is None)], settings)
    loaded.sync()
    started = time.perf_counter()
    loaded.generate(warmup, settings, WARMUP_TOKENS)
    loaded.sync()
    decode = loaded.decode_record(attempt, time.perf_counter() - started)
    if decode is not None:
        emit(decode)
    records = []
    for index, (prompt, rendered, skipped) in enumerate(zip(prompts, rendered_all, skips, strict=True)):
        if skipped:
            emit(skipped)
            progress(index + 1, len(prompts))
            continue
        runs = [loaded.generate(rendered, settings, meter=meter) for _ in range(settings.repeat)]
        first = runs[0]
        decode_runs = [r.decode_tok_per_s for r in runs if r.decode_tok_per_s is not None]
        record = PromptRecord(
            model=loaded.spec.name,
            attempt=attempt,
            prompt_id=prompt.id,
            prompt=prompt.text,
            context=prompt.context,
            expected=list(prompt.expected),
            answer=first.answer,
            correct=None if loaded.spec.weights == RANDOM else is_correct(first.answer, prompt.expected),
            prompt_tokens=first.prompt_tokens,
            new_tokens=first.new_tokens,
            ttft_s=measure.median([r.ttft_s for r in runs]),
            latency_s=measure.median([r.latency_s for r in runs]),
            decode_tok_per_s=measure.median(decode_runs) if decode_runs else None,
            ttft_s_runs=[r.ttft_s for r in runs],
            latency_s_runs=[r.latency_s for r in runs],
            decode_tok_per_s_runs=decode_runs,
            same_answer_every_run=all(r.token_ids == first.token_ids for r in runs),
        )
        emit(record)
        records.append(record)
        progress(index + 1, len(prompts))
    return records


# ---- the stage -------------------------------------------------------------------------------------------


def _bandwidth_once(ctx: Context) -> None:
    """The run's memory bandwidth on this rung's device (its decode's limit), where no rung before measured it."""
    device = ctx.loaded.device
    if device not in bandwidth.DEVICES or any(
        r["kind"] == "bandwidth" and r["device"] == device for r in ctx.store.records()
    ):
        return
    copy_bytes = bandwidth.fitting_copy_bytes(device)
    if copy_bytes:
        ctx.event(Event("bandwidth"))
        ctx.store.append(BandwidthRecord(ctx.model, ctx.attempt, **asdict(bandwidth.measure(device, copy_bytes))))


@functools.lru_cache(maxsize=1)
def _suite(path: str):
    """The job's suite, read once per worker: the stage's start event counts it, its run sends it."""
    return load_suite(path)


def _start(ctx: Context) -> Event:
    return Event("prompts", done=0, total=len(_suite(ctx.job.prompts_path).prompts))


def _run(ctx: Context) -> None:
    """The suite's prompts, then the batch throughput where --batch-size asks; the prompts' energy where NVML or
    RAPL can be read (else "not measured")."""
    suite, settings, loaded = _suite(ctx.job.prompts_path), ctx.job.gen, ctx.loaded

    def emit(record) -> None:
        ctx.store.append(record)
        if record.kind == "prompt_skipped":
            ctx.event(Event("prompt_skipped", prompt_id=record.prompt_id, reason=record.reason))

    meter = energy.Meter(loaded.device)
    singles = run_prompts(
        loaded,
        suite.prompts,
        settings,
        ctx.attempt,
        emit,
        lambda done, total: ctx.event(Event("prompts", done=done, total=total)),
        meter,
    )
    if meter.joules is not None and singles:
        tokens = sum(r.new_tokens * len(r.latency_s_runs) for r in singles)
        ctx.store.append(EnergyRecord(ctx.model, ctx.attempt, "prompts", meter.joules, tokens, meter.source))
    ran = {r.prompt_id for r in singles}
    if settings.batch_size > 1 and singles:
        ctx.event(Event("batched"))
        if isinstance(loaded, Batching):  # a session that does not batch in process measures single streams only
            ctx.store.append(
                loaded.batched_throughput(
                    tuple(p for p in suite.prompts if p.id in ran), settings, ctx.attempt, singles
                )
            )


def _check(plan: RunPlan) -> None:
    if not plan.prompts_path:
        raise SizebenchError("the prompt stage needs --prompts FILE")
    load_suite(plan.prompts_path)  # a bad prompt file fails here, before any model loads


STAGE = Stage("prompts", _run, start=_start, before=_bandwidth_once, check=_check)
