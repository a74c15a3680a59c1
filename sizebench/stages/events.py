"""A worker's progress events, one JSON line each on its stdout: what each kind carries, built by the producers
(the worker, the stages, the judge's worker) and parsed once by the supervisor that follows the worker.

The kinds are each registered stage's own (its start, then its progress within it: how far, or what it runs
now), the worker's (its load, its end short of success, a chunk of --until-decided), the prompt stage's
asides and the judge's. On the wire an event's kind is its "stage" field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from sizebench import stages

COUNT = ("done", "total")
WORKER = {
    "loading": (),
    "interrupted": (),
    "unavailable": ("reason",),
    "failed": ("reason",),
    "chunk": ("task", *COUNT),
}
ASIDES = {"bandwidth": (), "prompt_skipped": ("prompt_id", "reason"), "batched": ()}
JUDGE = {"judging": COUNT, "too_long": ("screen", "tokens", "window")}
# kind -> the fields it may carry besides the model
KINDS = {**WORKER, **{name: (*COUNT, "level") for name in stages.names()}, **ASIDES, **JUDGE}
# The kinds that start a stage's clock under --timeout (sizebench.launch.progress.follow), and that stage.
CLOCKS = {"loading": "load", **{name: name for name in stages.names()}}
WHOLE = {"done", "total", "tokens", "window"}


@dataclass(frozen=True)
class Event:
    kind: str
    model: str | None = None  # the rung's; the judge's events name none
    done: int | None = None
    total: int | None = None
    reason: str | None = None
    task: str | None = None  # a chunk's
    prompt_id: str | None = None
    level: str | None = None  # the sweep's level running now
    screen: str | None = None  # a judgement too long for the judge's window
    tokens: int | None = None
    window: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind '{self.kind}'")
        for name, value in self._carried().items():
            if (
                name not in ("model", *KINDS[self.kind])
                or isinstance(value, bool)
                or not isinstance(value, int if name in WHOLE else str)
            ):
                raise ValueError(f"event '{self.kind}' carries no {name} {value!r}")

    def _carried(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)[1:] if getattr(self, f.name) is not None}

    @property
    def clock(self) -> str | None:
        """The stage whose clock this event starts, if any."""
        return CLOCKS.get(self.kind)

    def to_json(self) -> str:
        carried = self._carried()
        return json.dumps(
            {**({"model": carried.pop("model")} if "model" in carried else {}), "stage": self.kind, **carried}
        )


def from_json(line: str) -> Event | None:
    """The event on a line of a worker's stdout; None for anything else (a library printing there)."""
    if not line.startswith("{"):
        return None
    try:
        raw = json.loads(line)
        return Event(raw.pop("stage"), **raw)
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None
