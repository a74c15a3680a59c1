"""The tasks stage: lm-eval's tasks on the loaded model, every item at once (sizebench.stages.evaluation), or, for
the baseline rung of an `--until-decided` run, chunk by chunk until the runner says the verdict is decided
(sizebench.stages.until_decided). An endpoint that cannot score prompts skips its tasks, never at chance level."""

from __future__ import annotations

from sizebench.planning.plan import RunPlan
from sizebench.runstore.records import SkipRecord
from sizebench.runstore.store import item_texts
from sizebench.stages import evaluation, until_decided
from sizebench.stages.stage import Context, Stage, scored


def _run(ctx: Context) -> None:
    settings, loaded = ctx.job.eval, ctx.loaded
    why_not = loaded.tasks_unavailable()
    if why_not:
        for task in evaluation.expand(settings.tasks):
            ctx.store.append(SkipRecord(ctx.model, ctx.attempt, task, why_not))
        return
    texts_done = frozenset(ctx.job.texts_done) | item_texts(ctx.store.records())  # once per run
    if settings.until_decided and ctx.job.chunked:
        until_decided.run(loaded, ctx.model, settings, ctx.attempt, ctx.store.append, ctx.ask, texts_done)
    else:
        evaluation.run_tasks(loaded, ctx.model, settings, ctx.attempt, ctx.store.append, texts_done)


def _check(plan: RunPlan) -> None:
    evaluation.validate(plan.eval.tasks, plan.eval.task_path)


STAGE = Stage("tasks", _run, wanted=scored, check=_check)
