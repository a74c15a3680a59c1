"""`--until-decided` on the baseline rung: each task's items in a seeded random order, chunk by chunk.

The worker evaluates a chunk, appends its records (the items, a ChunkRecord with the order drawn), and asks
the runner whether to go on: the runner reads the stored records of every rung and answers "go" or the reason to
stop (sizebench.analysis.sequential). The worker never decides; it only stops by itself when the items run out.
The model stays loaded from the first chunk to the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sizebench.specs.settings import EvalSettings
from sizebench.runstore.records import ChunkRecord, ItemsRecord, StopRecord, TaskRecord
from sizebench.stages import chunks, evaluation, items

GO = "go"
RAN_OUT = "items ran out"


def run(
    session,
    model_name: str,
    settings: EvalSettings,
    attempt: str,
    emit: Callable,
    ask: Callable[[str, int, int], str],
    texts_done: frozenset[str] = frozenset(),
) -> None:
    """Every task of `settings`, chunk by chunk; `ask(task, items done, population)` is the runner's answer."""
    import lm_eval

    manager, runnable = evaluation.built_tasks(settings, model_name, attempt, emit)
    if not runnable:
        return
    lm, batch_size = session.lm(settings.batch_size)
    for name, task in runnable.items():
        size = chunks.population(task, settings.limit)
        drawn = chunks.order(size, settings.order_seed, name)
        done, wall, answered, reason = 0, 0.0, [], RAN_OUT
        while done < size:
            part = drawn[done : done + settings.chunk]
            chunks.pin(task, part)
            started = time.perf_counter()
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=[task],
                task_manager=manager,
                num_fewshot=settings.num_fewshot,
                log_samples=True,
                bootstrap_iters=0,
            )
            spent = time.perf_counter() - started
            wall += spent
            for record in items.records(results.get("samples", {}), {name: task}, model_name, attempt, texts_done):
                emit(record)
                if isinstance(record, ItemsRecord):
                    answered.append(record)
            texts_done = texts_done | {name}  # the first chunk's texts only, where no rung wrote them
            done += len(part)
            emit(ChunkRecord(model_name, attempt, name, size, part, spent, settings.chunk, settings.order_seed))
            if done >= size:
                break
            answer = ask(name, done, size)
            if answer != GO:
                reason = answer
                break
        emit(StopRecord(model_name, attempt, name, size, done, reason, wall, settings.margin))
        for record in task_records(answered, name, model_name, attempt, settings, wall, batch_size):
            emit(record)


def task_records(
    answered: list[ItemsRecord],
    task: str,
    model: str,
    attempt: str,
    settings: EvalSettings,
    wall: float,
    batch_size: str,
) -> list[TaskRecord]:
    """The task's accuracy on the items the baseline answered (n of them, not the task's size)."""
    if not answered:
        return []
    out = []
    for metric in answered[0].scores:
        values = np.concatenate([np.asarray(r.scores.get(metric, []), dtype=float) for r in answered])
        stderr = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        out.append(
            TaskRecord(
                model,
                attempt,
                task,
                metric,
                float(values.mean()),
                stderr,
                len(values),
                None,
                settings.num_fewshot,
                settings.limit,
                wall,
                batch_size,
            )
        )
    return out
