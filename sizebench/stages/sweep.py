"""The load sweep: a served rung under traffic, level by level, each request timed from its stream.

Closed loop (`--concurrency 1,2,4`): that many requests in flight, a new one due as each finishes. Open
loop (`--request-rate 1,2`): Poisson arrivals at that rate (seeded; the first at the level's start),
whatever is in flight. A level stops sending after `requests` requests or `seconds`, whichever comes
first, then waits for those in flight. Prompts are the suite's, rendered as for the prompt stage and
cycled; output length is fixed where the server allows it (max_tokens = min_tokens, ignore_eos; stop
strings dropped). Each request's record is written when it finishes; a launched server found dead after a
level fails the rung, records kept.

No coordinated omission: every request has its own thread (no pool to queue in), its latencies count from
the moment it was due (`scheduled_s`, recorded beside `sent_s`), and the level records how late the client
sent its latest request (`behind_s`), so a level where the client could not keep up is flagged.
"""

from __future__ import annotations

import queue
import threading
import time

from sizebench.engines.base import Served
from sizebench.engines.serving import client
from sizebench.errors import SizebenchError
from sizebench import engines
from sizebench.planning.plan import RunPlan, positive
from sizebench.specs.settings import GenSettings, ServeSettings
from sizebench.runstore.records import ServedRequestRecord, SweepLevelRecord
from sizebench.stages.events import Event
from sizebench.stages.generation import WARMUP_PROMPT
from sizebench.stages.stage import Context, Stage
from sizebench.stages.suites import load_suite


def payloads(session: Served, prompts_path: str | None, settings: ServeSettings) -> list[dict]:
    prompts = load_suite(prompts_path).prompts if prompts_path else (WARMUP_PROMPT,)
    greedy = GenSettings(seed=settings.seed)
    out = []
    for prompt in prompts:
        rendered = session.render(prompt)
        body = session.payload(rendered, greedy, settings.output_tokens)
        body.pop("stop", None)
        out.append({**body, "min_tokens": settings.output_tokens, "ignore_eos": True})
    return out


def run_sweep(session, settings: ServeSettings, prompts_path: str | None, attempt: str, emit, progress) -> None:
    if not isinstance(session, Served):  # the plan's check refuses such a rung first (its engine is not served)
        raise SizebenchError(
            f"the load sweep drives a server: {session.spec.name} is not served "
            f"({type(session).__name__} has no Served capability)"
        )
    bodies = payloads(session, prompts_path, settings)
    for mode, load in settings.levels:
        label = f"concurrency {load:g}" if mode == "concurrency" else f"{load:g} requests/s"
        progress(label)
        sent, errors, wall, first_error, behind = run_level(session, bodies, mode, load, settings, attempt, emit)
        dead = session.failed_server()
        if dead:
            raise SizebenchError(f"at {label}: {dead}")
        if sent and errors == sent:
            raise SizebenchError(f"at {label}: every request to {session.base_url} failed: {first_error}")
        emit(
            SweepLevelRecord(
                session.spec.name,
                attempt,
                mode,
                load,
                sent,
                errors,
                wall,
                settings.output_tokens,
                session.serving,
                dict(settings.slo),
                round(behind, 6),
            )
        )


def run_level(
    session: Served, bodies: list[dict], mode: str, load: float, settings: ServeSettings, attempt: str, emit
) -> tuple[int, int, float, str | None, float]:
    """(requests sent, errors, wall seconds from the first send to the last answer, the first error, the most
    seconds a request was sent after it was due)."""
    import numpy as np

    done: queue.Queue = queue.Queue()
    limit = settings.requests
    if mode == "rate":
        gaps = np.random.default_rng(settings.seed).exponential(1 / load, limit)
        due = np.concatenate(([0.0], np.cumsum(gaps)[:-1]))  # the first at once, as `vllm bench serve`
    started = time.perf_counter()

    def one(index: int, due_s: float) -> None:
        sent_s = time.perf_counter() - started
        try:
            out = session.stream(bodies[index % len(bodies)], started=started + due_s)
        except Exception as exc:  # noqa: BLE001 (a request's thread must report back, or the level waits forever)
            out = client.Streamed(
                error=f"{type(exc).__name__}: {exc}"[:300], e2e_s=time.perf_counter() - started - due_s
            )
        done.put((index, due_s, sent_s, out, time.perf_counter() - started))

    def send(index: int, due_s: float) -> None:
        threading.Thread(target=one, args=(index, due_s), daemon=True, name=f"sweep-{index}").start()

    sent = in_flight = errors = 0
    first_error, last_end, behind = None, 0.0, 0.0
    free_since: list[float] = [0.0] * int(load) if mode == "concurrency" else []  # when each closed-loop slot freed

    def collect(item) -> None:
        nonlocal in_flight, errors, first_error, last_end, behind
        index, due_s, sent_s, out, end_s = item
        in_flight -= 1
        last_end = max(last_end, end_s)
        behind = max(behind, sent_s - due_s)
        if mode == "concurrency":
            free_since.append(end_s)
        if out.error:
            errors += 1
            first_error = first_error or out.error
        emit(
            ServedRequestRecord(
                session.spec.name,
                attempt,
                mode,
                load,
                index,
                round(sent_s, 6),
                out.ttft_s,
                out.e2e_s,
                tokens_of(session, out),
                [round(g, 5) for g in out.itl_s],
                out.error,
                round(due_s, 6),
            )
        )

    while True:
        elapsed = time.perf_counter() - started
        open_ = sent < limit and elapsed < settings.seconds
        if mode == "concurrency":
            if open_ and free_since:
                send(sent, free_since.pop(0))
                sent, in_flight = sent + 1, in_flight + 1
                continue
        elif open_ and due[sent] < settings.seconds:
            wait = due[sent] - elapsed
            if wait <= 0:
                send(sent, float(due[sent]))
                sent, in_flight = sent + 1, in_flight + 1
                continue
            try:
                collect(done.get(timeout=wait))
            except queue.Empty:
                pass
            continue
        if in_flight == 0:
            break
        collect(done.get())
    return sent, errors, last_end, first_error, behind


def tokens_of(session: Served, out) -> int:
    """The server's usage count, else the rung's tokenizer's count of the text, else one per streamed chunk."""
    if out.usage_tokens is not None:
        return int(out.usage_tokens)
    counted = session.output_tokens(out.text) if out.text else None
    return counted if counted is not None else len(out.chunk_s)


def _run(ctx: Context) -> None:
    run_sweep(
        ctx.loaded,
        ctx.job.serve,
        ctx.job.prompts_path,
        ctx.attempt,
        ctx.store.append,
        lambda text: ctx.event(Event("sweep", level=text)),
    )


def _check(plan: RunPlan) -> None:
    local = [m.name for m in plan.models if not engines.get(m.engine).served]
    if local:
        raise SizebenchError(
            f"--concurrency and --request-rate load a server: {local[0]} is not served "
            f"(give llama.cpp-server:MODEL, vllm:MODEL or openai:URL#NAME)"
        )
    if not plan.serve.levels:
        raise SizebenchError("the load sweep needs --concurrency or --request-rate")
    positive("--sweep-requests", plan.serve.requests)
    positive("--sweep-output-tokens", plan.serve.output_tokens)
    if not plan.serve.seconds > 0:
        raise SizebenchError(f"--sweep-seconds must be positive, got {plan.serve.seconds:g}")


STAGE = Stage("sweep", _run, wanted=lambda plan: bool(plan.serve.levels), check=_check)
