"""A prompt of a suite: its text, the answers that count as correct, its context and category (read from a suite
file by sizebench.stages.suites, rendered and answered by an engine)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    expected: tuple[str, ...] = ()
    context: str | None = None
    category: str | None = None
