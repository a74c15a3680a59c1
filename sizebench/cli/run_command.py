"""A command that runs models (compare, eval, bench): its options made from the run plan, then plan -> run ->
report. `register` makes one; the commands' own files each call it once."""

from __future__ import annotations

import inspect
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path

import typer

from sizebench import stages
from sizebench.cli import options
from sizebench.cli.app import app, err, out
from sizebench.errors import SizebenchError


def register(command: str, help: str) -> None:
    chosen = options.options(command)
    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
    params += [
        inspect.Parameter(
            o.flag.param,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=o.annotation,
            default=options.typer_option(o, command),
        )
        for o in chosen
    ]

    def run_command(ctx: typer.Context, **values) -> None:
        run(command, ctx, values)

    run_command.__signature__ = inspect.Signature(params)
    run_command.__annotations__ = {p.name: p.annotation for p in params}
    app.command(command, help=help)(run_command)


def run(command: str, ctx: typer.Context, values: dict) -> None:
    from sizebench.launch import runner
    from sizebench.system import supervise
    from sizebench.planning.plan import RunPlan
    from sizebench.runstore.store import RunStore

    results, report_name = Path(values["results"]), options.report_name(values["report"])
    if values["resume"]:
        options.refuse_changes(ctx, command)
        store = RunStore.open(results, values["resume"])
        try:
            plan = RunPlan.from_dict(store.meta()["plan"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a foreign or damaged run.json
            raise SizebenchError(
                f"{store.dir / 'run.json'} holds no plan this sizebench reads: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        plan = checked(options.resumed(plan, ctx, values, command))  # run.json may come from anywhere
        err.print(
            f"resuming run {store.run_id}; its run.json decides what runs:\n{plan.describe()}",
            highlight=False,
            markup=False,
            emoji=False,
            soft_wrap=True,
        )
    else:
        plan = options.plan_of(command, values, stages.of_command(command))
        plan = checked(replace(plan, stages=tuple(s.name for s in stages.chosen(plan.stages) if s.wanted(plan))))
        store = runner.new_run(plan, results, "sizebench " + shlex.join(sys.argv[1:]))
        err.print(f"run {store.run_id}: {len(plan.models)} model(s), stages: {', '.join(plan.stages)}", highlight=False)
    with supervise.stop_signals():  # SIGTERM and SIGHUP stop the sweep as Ctrl-C does, worker included
        outcome = runner.execute(plan, store, err)
        published = publish(plan, store, results, report_name)
    if outcome.unavailable:
        err.print(
            f"unavailable here: {', '.join(outcome.unavailable)} (not an error; reason and remedy above)",
            highlight=False,
            soft_wrap=True,
        )
    if outcome.interrupted:
        err.print(
            f"interrupted by {signal.Signals(outcome.signum).name}: resume with "
            f"`sizebench {command} --resume {store.run_id}`",
            highlight=False,
        )
    elif outcome.failed:
        where = "the report" if published else "the lines above"
        err.print(
            f"failed: {', '.join(outcome.failed)} (reasons in {where}); "
            f"retry them with `sizebench {command} --resume {store.run_id}`",
            highlight=False,
        )
    raise typer.Exit(outcome.exit_code)


def publish(plan, store, results: Path, report_name: str) -> bool:
    from sizebench import report

    if not any(r["kind"] == "load" for r in store.records()):  # a report of nothing would replace a good one
        err.print(
            f"no model ran in run {store.run_id} (each was unavailable or failed before loading, reasons "
            f"above); {results / report_name} was left as it was",
            highlight=False,
            soft_wrap=True,
        )
        return False
    report.publish([store.dir], results, out, margin=plan.eval.margin, name=report_name, baseline=plan.eval.baseline)
    return True


def checked(plan):
    """A new plan or a resumed run's stored one, checked the same way: every bad setting one line, before any load."""
    from sizebench import engines
    from sizebench.measurement.measure import resolve_device

    chosen = stages.chosen(plan.stages)
    plan = plan.validate()
    where = resolve_device(plan.device) if plan.executor == "local" else plan.device  # Ray: nodes decide
    for spec in plan.models:  # a rung its engine cannot run here (a backend missing, a device unfit)
        engines.get(spec.engine).check(spec, where)
    for stage in chosen:
        stage.check(plan)
    return plan
