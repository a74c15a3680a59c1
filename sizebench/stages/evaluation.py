"""The lm-eval stage: lm-evaluation-harness tasks run on the model the worker already loaded.

Bundled tasks (group `sizebench_geo`) live in sizebench/tasks and need no network. `dolly-card`
names the tasks of the Dolly v2 model card; a task whose hub data set cannot be fetched here (offline,
not in the cache) is skipped with one line, and the others run; any other task that cannot be built
fails the stage.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.specs.settings import DEFAULT_TASKS, EvalSettings  # noqa: F401 (EvalSettings: stage API)
from sizebench.runstore.records import SkipRecord, TaskRecord

BUNDLED_TASKS = Path(__file__).parent / "tasks"
DOLLY_CARD = ("openbookqa", "arc_easy", "winogrande", "hellaswag", "arc_challenge", "piqa", "boolq")
ALIASES = {"dolly-card": DOLLY_CARD}
NOT_METRICS = {"alias", "sample_len", "sample_count"}  # lm-eval bookkeeping in the results table


def expand(names: tuple[str, ...] | list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for task in ALIASES.get(name, (name,)):
            if task not in out:
                out.append(task)
    return out


def task_manager(task_path: str | None = None, tasks: tuple[str, ...] | list[str] | None = None):
    """lm-eval's TaskManager over the bundled tasks, the user's folder and lm-eval's own tasks. Indexing lm-eval's
    ~14,000 task files takes ~9 CPU-seconds in every process that asks (the CLI, then each worker), so where every
    task in `tasks` resolves in the bundled and user folders alone, only those are indexed: the same tasks, since
    these folders take precedence over lm-eval's own anyway."""
    from lm_eval.tasks import TaskManager

    include = [str(BUNDLED_TASKS)] + ([str(task_path)] if task_path else [])
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # per-task chatter would bury the progress lines
    if tasks:
        own = TaskManager(include_path=include, include_defaults=False)
        if all(_self_contained(own.task_index, task) for task in expand(tasks)):
            return own
    return TaskManager(include_path=include)


def _self_contained(index: dict, name: str, within: frozenset[str] = frozenset()) -> bool:
    """A task, or a group whose members all are, found in `index`. Not a tag: lm-eval's own tasks may carry it
    too; nor a member given as a dict (it may override a task of lm-eval's)."""
    from lm_eval.tasks._index import Kind

    entry = index.get(name)
    if entry is None or name in within or entry.kind not in (Kind.TASK, Kind.PY_TASK, Kind.GROUP):
        return False
    if entry.kind is not Kind.GROUP:
        return True
    members = (entry.cfg or {}).get("task", [])
    members = [members] if isinstance(members, str) else members
    return all(isinstance(m, str) and _self_contained(index, m, within | {name}) for m in members)


def check_task_path(task_path: str | None) -> None:
    if task_path is None:
        return
    path = Path(task_path)
    if not path.is_dir():
        raise SizebenchError(f"task folder '{task_path}' does not exist or is not a folder")
    try:
        yamls = list(path.rglob("*.yaml"))
    except OSError as exc:
        raise SizebenchError(f"task folder '{task_path}' cannot be read: {exc.strerror}") from exc
    if not yamls:
        raise SizebenchError(f"task folder '{task_path}' has no .yaml task files")
    for yaml in yamls:
        try:
            yaml.read_bytes()
        except OSError as exc:
            raise SizebenchError(f"task file '{yaml}' cannot be read: {exc.strerror}") from exc


def validate(names: tuple[str, ...], task_path: str | None = None) -> list[str]:
    """The expanded task list; an unknown name is a one-line error with a suggestion."""
    check_task_path(task_path)
    tasks = expand(names)
    if not tasks:
        raise SizebenchError("no task given")
    known = set(task_manager(task_path, tasks).all_tasks)
    for task in tasks:
        if task not in known:
            close = difflib.get_close_matches(task, sorted(known) + list(ALIASES), n=1, cutoff=0.8)
            hint = f"; did you mean '{close[0]}'?" if close else _unparsed_yaml(task_path)
            raise SizebenchError(f"unknown task '{task}'{hint}")
    return tasks


def _unparsed_yaml(task_path: str | None) -> str:
    """'; task file X is not valid YAML (...)' for the first such file: lm-eval's index skips it silently."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, tag, node: None)  # !function and lm-eval's other tags
    for path in sorted(Path(task_path).rglob("*.yaml")) if task_path else []:
        try:
            yaml.load(path.read_text(encoding="utf-8", errors="replace"), Loader=Loader)
        except yaml.YAMLError as exc:
            where = f" line {exc.problem_mark.line + 1}" if getattr(exc, "problem_mark", None) else ""
            return f"; task file '{path}' is not valid YAML ({getattr(exc, 'problem', None) or exc}{where})"
    return ""


def run_tasks(
    session,
    model_name: str,
    settings: EvalSettings,
    attempt: str,
    emit: Callable,
    texts_done: frozenset[str] = frozenset(),
) -> list[TaskRecord]:
    """The tasks on the session's lm-eval model (sizebench.engines.base.Session.lm)."""
    import lm_eval

    manager, runnable = built_tasks(settings, model_name, attempt, emit)
    if not runnable:
        return []
    started = time.perf_counter()
    lm, batch_size = session.lm(settings.batch_size)
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=list(runnable.values()),
        task_manager=manager,
        limit=settings.limit,
        num_fewshot=settings.num_fewshot,
        log_samples=True,
        bootstrap_iters=100000,
    )
    wall = time.perf_counter() - started
    records = task_records(results, model_name, attempt, settings.limit, wall, batch_size)
    for record in records:
        emit(record)
    emit_items(results, runnable, model_name, attempt, emit, texts_done)
    return records


def built_tasks(settings: EvalSettings, model_name: str, attempt: str, emit: Callable) -> tuple[object, dict]:
    """lm-eval's task manager and the leaf tasks to run, name -> built Task (handed to lm-eval as it is, so each data
    set is prepared once), each pinned (sizebench.stages.chunks: an item's few-shot context from its own index);
    a task whose data set is not here gets a skip record."""
    from sizebench.stages import chunks

    manager = task_manager(settings.task_path, settings.tasks)
    runnable = {}
    for task in expand(settings.tasks):
        built, reason = _build(task, manager)
        if reason:
            emit(SkipRecord(model_name, attempt, task, reason))
        for leaf in built:
            chunks.pin(leaf)
            runnable.setdefault(leaf.config.task, leaf)
    return manager, runnable


def emit_items(
    results: dict, runnable: dict, model_name: str, attempt: str, emit: Callable, texts_done: frozenset[str]
) -> None:
    """Per-item outcomes from lm-eval's samples; item texts only for tasks no model of the run wrote yet."""
    from sizebench.stages import items

    for record in items.records(results.get("samples", {}), runnable, model_name, attempt, texts_done):
        emit(record)


class TaskBuildFailed(SizebenchError):
    """A task that cannot be built for a reason other than an offline data set: a failure of the tasks stage."""


def _build(task: str, manager) -> tuple[list, str | None]:
    """The task's leaf Task objects (a group's members) and None, or no tasks and the one-line reason its
    hub data set cannot be fetched here; any other error (a YAML mistake, a `!function` that raises, a
    TypeError in lm-eval) raises TaskBuildFailed."""
    try:
        return list(manager.load([task])["tasks"].values()), None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
        if _offline_data_set(exc):
            return [], f"data set not available ({reason})"
        raise TaskBuildFailed(f"task '{task}' cannot be built: {reason}") from exc


def _offline_data_set(exc: BaseException | None) -> bool:
    """datasets' ConnectionError ("Couldn't reach 'allenai/ai2_arc' on the Hub (OfflineModeIsEnabled)") or
    the hub's file-not-in-cache error, as the exception or among its causes."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (ConnectionError, LocalEntryNotFoundError)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def task_records(results: dict, model_name: str, attempt: str, limit, wall: float, batch_size: str) -> list[TaskRecord]:
    groups = set(results.get("groups", {}))
    records = []
    for task, metrics in sorted(results["results"].items()):
        if task in groups:
            continue
        n = results.get("n-samples", {}).get(task, {}).get("effective", 0)
        for key, value in metrics.items():
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr") or metric in NOT_METRICS or not isinstance(value, (int, float)):
                continue
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            records.append(
                TaskRecord(
                    model=model_name,
                    attempt=attempt,
                    task=task,
                    metric=metric,
                    value=float(value),
                    stderr=float(stderr) if isinstance(stderr, (int, float)) else None,
                    n=int(n),
                    version=str(results.get("versions", {}).get(task)),
                    num_fewshot=results.get("n-shot", {}).get(task),
                    limit=limit,
                    wall_s=wall,
                    batch_size=batch_size,
                )
            )
    return records
