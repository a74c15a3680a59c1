"""The run commands' options, made from the run plan's fields (each carries its Flag) and the few that are no plan
field; and the plan made back from the values given. A flag's stage decides which commands offer it."""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape  # typer renders help as rich markup: [@TYPE] is text here

from sizebench import engines
from sizebench.errors import SizebenchError
from sizebench.specs.flags import UNSET, Flag, flag_of
from sizebench.planning.plan import RunPlan
from sizebench.specs.models import DEFAULT_ENGINE
from sizebench.specs.settings import PROMPTS
from sizebench.stages import STAGES

# Options that are no plan field: they choose the models with --models, or say where a run's files go.
ENGINES = Flag(
    ("--engines",),
    default=DEFAULT_ENGINE,
    help="Comma list of engines each model without an ENGINE: "
    "prefix runs on, at its default type: transformers,llama.cpp.",
)
WEIGHTS = Flag(
    ("--weights",),
    stage=PROMPTS,
    default="real",
    help="real | random: random weights built from each "
    "model's config (no download), a cost-only rung: load, memory and speed; the prompt suite, throughput "
    "batch and load sweep run, tasks and agreement do not, and answers are never scored.",
)
RESULTS = Flag(
    ("--results",), resume=True, default="results", help="Folder of runs (results/runs/<id>) and the report."
)
REPORT = Flag(
    ("--report",),
    resume=True,
    default="report.md",
    help="File name of the report in --results (plots of "
    "another name than report.md take its stem as prefix, so two reports keep their own).",
)
RESUME = Flag(
    ("--resume",),
    resume=True,
    default=None,
    metavar="RUN",
    help="Continue this run id with its own settings; finished stages are kept.",
)
NOT_IN_PLAN = (ENGINES, WEIGHTS, RESULTS, REPORT, RESUME)
GIVEN = ("COMMANDLINE", "ENVIRONMENT")  # click's sources of a value the user gave


@dataclass(frozen=True)
class Option:
    flag: Flag
    paths: tuple[tuple[str, ...], ...]  # the plan fields it sets (--seed: gen.seed and serve.seed); () if none
    annotation: Any  # the type the command line parses
    default: Any
    stages: tuple[str | None, ...]  # its fields' flags' stages: offered where any of them runs (None: every command)

    def offered_by(self, command: str) -> bool:
        return any(stage is None or command in STAGES[stage][1] for stage in self.stages)


def run_commands() -> tuple[str, ...]:
    """The commands that run models: those the stages register under."""
    return tuple(dict.fromkeys(command for _, commands in STAGES.values() for command in commands))


def plan_fields(cls=RunPlan, prefix: tuple[str, ...] = ()):
    """(path, field, type) of every field carrying a flag, the settings' fields within the plan's."""
    hints = typing.get_type_hints(cls)
    for each in fields(cls):
        if is_dataclass(hints[each.name]):
            yield from plan_fields(hints[each.name], prefix + (each.name,))
        elif flag_of(each) is not None:
            yield prefix + (each.name,), each, hints[each.name]


@functools.cache
def all_options() -> tuple[Option, ...]:
    """Every option of every run command, in the plan's order; a flag two fields share is one option."""
    found: dict[str, Option] = {}
    for path, each, hint in plan_fields():
        flag = flag_of(each)
        if flag.param in found:
            known = found[flag.param]
            found[flag.param] = replace(known, paths=known.paths + (path,), stages=known.stages + (flag.stage,))
            continue
        if flag.default is not UNSET:
            default = flag.default
        elif flag.parse is not None:  # no text given: the field keeps its default
            default = None
        else:
            default = not each.default if flag.invert else each.default
        found[flag.param] = Option(flag, (path,), _cli_type(flag, hint, default), default, (flag.stage,))
        if path == ("models",):  # what --models is read with, next to it
            found.update(_not_in_plan(ENGINES, WEIGHTS))
    found.update(_not_in_plan(RESULTS, REPORT, RESUME))
    return tuple(found.values())


def _not_in_plan(*flags: Flag) -> dict[str, Option]:
    return {
        f.param: Option(f, (), str if f.default is not None else Optional[str], f.default, (f.stage,)) for f in flags
    }


def _cli_type(flag: Flag, hint, default):
    if flag.parse is not None or flag.name == "--models":  # text the plan's value is made from
        return str if default is not None else Optional[str]
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    return Optional[kinds[0]] if default is None else kinds[0]


def options(command: str) -> list[Option]:
    return [o for o in all_options() if o.offered_by(command)]


def resume_flags(command: str) -> str:
    """What --resume takes besides itself, in words: `--margin, --baseline, ...`."""
    return ", ".join(o.flag.name for o in options(command) if o.flag.resume and o.flag is not RESUME)


def typer_option(option: Option, command: str | None = None):
    """The typer.Option of an option; a command taking --resume says which ones it keeps taking."""
    flag = option.flag
    text = flag.help
    if command is not None and flag.resume and flag not in NOT_IN_PLAN:
        text += " With --resume: replaces the run's own."
    if flag is RESUME:
        text += f" Takes only {resume_flags(command)}."
    return typer.Option(option.default, *flag.names, help=escape(text), metavar=flag.metavar, envvar=flag.envvar)


def option_of(flag_name: str) -> Option:
    return next(o for o in all_options() if o.flag.name == flag_name)


def value(option: Option, given):
    """The plan's value of what was given; UNSET where nothing was (the field keeps its default)."""
    flag = option.flag
    if flag.parse is not None:
        return UNSET if given is None else flag.parse(given, flag.name)
    return not given if flag.invert else given


def parse_engines(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e.strip() for e in text.split(",") if e.strip()))
    if not chosen:
        raise SizebenchError("--engines names no engine; choose from: " + ", ".join(engines.names()))
    for name in chosen:  # an unknown engine: one line naming the known ones
        if engines.get(name).names_models:  # an endpoint is a model, not a way to run one
            raise SizebenchError(f"--engines cannot take {name}: give the endpoint as a model, -m {name}:URL#NAME")
    return chosen


def resolve_models(text: str, engine_names: str, weights: str) -> tuple:
    from sizebench.planning.registry import resolve, with_random_weights

    if weights not in ("real", "random"):
        raise SizebenchError(f"--weights takes real or random, not '{weights}'")
    specs = tuple(resolve(text, parse_engines(engine_names)))
    return tuple(with_random_weights(s) for s in specs) if weights == "random" else specs


def plan_of(command: str, values: dict, stages: tuple[str, ...]) -> RunPlan:
    """The plan the command's values make: fields no option of the command sets keep their defaults."""
    given: dict[tuple[str, ...], Any] = {}
    for option in options(command):
        if option.paths:
            result = value(option, values[option.flag.param])
            given.update({path: result for path in option.paths if result is not UNSET})
    given[("models",)] = resolve_models(values["models"], values["engines"], values.get("weights", WEIGHTS.default))
    given[("stages",)] = stages
    plan = _make(RunPlan, (), given)
    return replace(plan, gen=plan.gen.with_preset(plan.gen.preset))


def _make(cls, prefix: tuple[str, ...], given: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for each in fields(cls):
        path = prefix + (each.name,)
        if is_dataclass(hints[each.name]):
            kwargs[each.name] = _make(hints[each.name], path, given)
        elif path in given:
            kwargs[each.name] = given[path]
    return cls(**kwargs)


def _source(ctx: typer.Context, option: Option) -> str | None:
    return getattr(ctx.get_parameter_source(option.flag.param), "name", None)


def refuse_changes(ctx: typer.Context, command: str) -> None:
    """A resumed run keeps the settings it started with: an option that would change them is an error."""
    refused = [o.flag.name for o in options(command) if not o.flag.resume and _source(ctx, o) == "COMMANDLINE"]
    if refused:
        raise SizebenchError(
            f"--resume continues the run with the settings it started with; {', '.join(refused)} "
            f"cannot change them (with --resume: {resume_flags(command)})"
        )


def resumed(plan: RunPlan, ctx: typer.Context, values: dict, command: str) -> RunPlan:
    """A stored plan with what --resume takes, where given, replacing its own."""
    for option in options(command):
        if option.paths and _source(ctx, option) in GIVEN:
            result = value(option, values[option.flag.param])
            for path in option.paths:
                plan = _replace_at(plan, path, result)
    return plan


def _replace_at(obj, path: tuple[str, ...], new):
    if len(path) == 1:
        return replace(obj, **{path[0]: new})
    return replace(obj, **{path[0]: _replace_at(getattr(obj, path[0]), path[1:], new)})


def report_name(name: str) -> str:
    if Path(name).name != name or not name.endswith(".md"):
        raise SizebenchError(f"--report takes a file name ending in .md (it goes in --results), got '{name}'")
    return name
