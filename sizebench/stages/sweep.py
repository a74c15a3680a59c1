"""The load sweep: a served rung under traffic, level by level, each request timed from its stream.

Closed loop (`--concurrency 1,2,4`): that many requests in flight, a new one sent as each finishes. Open
loop (`--request-rate 1,2`): Poisson arrivals at that rate (seeded), whatever is in flight. A level stops
sending after `requests` requests or `seconds`, whichever comes first, then waits for those in flight.
Prompts are the suite's, rendered as for the prompt stage and cycled; output length is fixed where the
server allows it (max_tokens = min_tokens, ignore_eos; stop strings dropped). Each request's record is
written when it finishes; a launched server found dead after a level fails the rung, records kept.
"""

from __future__ import annotations

import queue
import time
from concurrent.futures import ThreadPoolExecutor

from sizebench.engines.openai import client
from sizebench.errors import SizebenchError
from sizebench.planning.settings import GenSettings, ServeSettings
from sizebench.runstore.records import ServedRequestRecord, SweepLevelRecord
from sizebench.stages.generation import WARMUP_PROMPT

MAX_THREADS = 64


def settings_of(job: dict) -> ServeSettings:
    data = dict(job["serve"])
    return ServeSettings(**{**data, "concurrency": tuple(data["concurrency"]), "request_rates": tuple(data["request_rates"]),
                            "slo": tuple(tuple(p) for p in data["slo"])})


def payloads(session, job: dict, settings: ServeSettings) -> list[dict]:
    from sizebench.stages.suites import load_suite

    prompts = load_suite(job["prompts_path"]).prompts if job.get("prompts_path") else (WARMUP_PROMPT,)
    greedy = GenSettings(seed=settings.seed)
    out = []
    for prompt in prompts:
        rendered = session.render(prompt)
        body = session.payload(rendered, greedy, settings.output_tokens)
        body.pop("stop", None)
        out.append({**body, "min_tokens": settings.output_tokens, "ignore_eos": True})
    return out


def run_sweep(session, job: dict, attempt: str, emit, progress) -> None:
    settings = settings_of(job)
    bodies = payloads(session, job, settings)
    for mode, load in settings.levels:
        label = f"concurrency {load:g}" if mode == "concurrency" else f"{load:g} requests/s"
        progress(label)
        sent, errors, wall, first_error = run_level(session, bodies, mode, load, settings, attempt, emit)
        dead = session.failed_server()
        if dead:
            raise SizebenchError(f"at {label}: {dead}")
        if sent and errors == sent:
            raise SizebenchError(f"at {label}: every request to {session.base_url} failed: {first_error}")
        emit(SweepLevelRecord(session.spec.name, attempt, mode, load, sent, errors, wall, settings.output_tokens,
                              session.serving, dict(settings.slo)))


def run_level(session, bodies: list[dict], mode: str, load: float, settings: ServeSettings, attempt: str,
              emit) -> tuple[int, int, float, str | None]:
    """(requests sent, errors, wall seconds, the first error)."""
    import numpy as np

    done: queue.Queue = queue.Queue()
    started = time.perf_counter()

    def one(index: int) -> None:
        sent_s = time.perf_counter() - started
        done.put((index, sent_s, client.stream(session.base_url, bodies[index % len(bodies)],
                                               session.request_timeout_s, session.chat)))

    limit = settings.requests
    workers = int(load) if mode == "concurrency" else min(limit, MAX_THREADS)
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    arrivals = np.cumsum(np.random.default_rng(settings.seed).exponential(1 / load, limit)) if mode == "rate" else None
    sent = in_flight = errors = 0
    first_error, last_end = None, started

    def collect(item) -> None:
        nonlocal in_flight, errors, first_error, last_end
        index, sent_s, out = item
        in_flight -= 1
        last_end = time.perf_counter()
        if out.error:
            errors += 1
            first_error = first_error or out.error
        emit(ServedRequestRecord(session.spec.name, attempt, mode, load, index, round(sent_s, 6),
                                 out.ttft_s, out.e2e_s, tokens_of(session, out), [round(g, 5) for g in out.itl_s],
                                 out.error))

    try:
        while True:
            elapsed = time.perf_counter() - started
            open_ = sent < limit and elapsed < settings.seconds
            if mode == "concurrency":
                if open_ and in_flight < load:
                    pool.submit(one, sent)
                    sent, in_flight = sent + 1, in_flight + 1
                    continue
            elif open_ and arrivals[sent] < settings.seconds:
                wait = arrivals[sent] - elapsed
                if wait <= 0:
                    pool.submit(one, sent)
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
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return sent, errors, last_end - started, first_error


def tokens_of(session, out) -> int:
    if out.usage_tokens is not None:
        return int(out.usage_tokens)
    if session.tokenizer is not None and out.text:
        return len(session.encode(out.text, False))
    return len(out.chunk_s)
