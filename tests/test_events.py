"""The worker's progress events: every kind crosses the wire whole, the kinds derive from the stage registry, a
producer cannot emit a kind or field the consumers do not know, and anything else on stdout is not an event."""

import io

import pytest
from rich.console import Console

from sizebench import stages
from sizebench.launch.runner import ProgressLog
from sizebench.stages import events
from sizebench.stages.events import Event

SAMPLES = {
    "done": 3,
    "total": 9,
    "reason": "why",
    "task": "geo",
    "prompt_id": "p1",
    "level": "c=2",
    "screen": "p1|a|b",
    "tokens": 700,
    "window": 512,
}


def full(kind: str) -> Event:
    return Event(kind, "m", **{name: SAMPLES[name] for name in events.KINDS[kind]})


@pytest.mark.parametrize("kind", list(events.KINDS))
def test_every_kind_round_trips_through_its_json_line(kind):
    for event in (Event(kind), full(kind)):
        assert events.from_json(event.to_json() + "\n") == event


def test_the_kinds_and_clocks_derive_from_the_stage_registry():
    for name in stages.names():
        assert name in events.KINDS and Event(name).clock == name
    assert Event("loading").clock == "load" and Event("chunk").clock is None


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Event("heard"),
        lambda: Event("loading", reason="x"),
        lambda: Event("prompts", done="3"),
        lambda: Event("prompts", done=True),
        lambda: Event("failed", model=3),
    ],
)
def test_a_producer_cannot_emit_what_consumers_do_not_know(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize(
    "line",
    [
        "Loading weights...",
        "{not json",
        "[1, 2]",
        '{"model": "m"}',
        '{"stage": 5}',
        '{"stage": "heard"}',
        '{"stage": "prompts", "child": 1}',
        '{"stage": "prompts", "done": "1"}',
    ],
)
def test_anything_else_on_a_worker_s_stdout_is_not_an_event(line):
    assert events.from_json(line) is None


@pytest.mark.parametrize("kind", [k for k in events.KINDS if k not in events.JUDGE])
def test_the_progress_display_shows_every_kind_a_rung_s_worker_emits(kind):
    out = io.StringIO()
    progress = ProgressLog(Console(file=out, width=200), 1)
    progress.event(1, full(kind))
    progress.close()
    assert out.getvalue().startswith("[1/1] m: ")
