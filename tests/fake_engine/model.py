"""A fake model: its behaviour read from the folder's config.json, its words as tokens, its clock."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Behaviour:
    params: int = 1_000_000
    answers: dict[str, str] = field(default_factory=dict)  # a word of the prompt -> the answer to it
    default_answer: str = "I do not know"
    prompt_format: str = "plain"  # plain or dolly: formats that need no tokenizer
    prefill_s: float = 0.001  # the clock's seconds per prompt token
    token_s: float = 0.01  # the clock's seconds per new token
    load_s: float = 0.0  # the clock's seconds to load
    score_s: float = 0.0  # the clock's seconds per lm-eval request scored
    real_time: bool = True  # the clock's seconds also pass in the process (the supervisor's clocks see them)
    context: int = 2048  # tokens of the context window
    fail_at: str | None = None  # "load" or "generate": where the failure below happens
    failure: str = "error"  # "error" (an exception), "unavailable" (sizebench's ModelUnavailable), "crash" (SIGKILL)
    fail_after: int = 0  # generations that succeed before the failure at "generate"

    @classmethod
    def of(cls, folder: Path) -> "Behaviour":
        return cls(**json.loads((folder / "config.json").read_text())["fake"])


def make_model(folder: Path, **behaviour) -> Path:
    """A fake model folder, `fake:FOLDER` in a model expression; `behaviour`: Behaviour's fields."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "fake", "fake": asdict(Behaviour(**behaviour))}))
    return folder


def words(text: str) -> list[str]:
    return text.split()


def answer_to(behaviour: Behaviour, text: str) -> str:
    """The canned answer: the first answer whose key is a word of the text (punctuation aside)."""
    said = {w.strip("?.,!:;").lower() for w in words(text)}
    return next((a for key, a in behaviour.answers.items() if key.lower() in said), behaviour.default_answer)


class Clock:
    """The fake model's time: advanced by what it does, by the same amounts on every machine."""

    def __init__(self, real_time: bool):
        self.now, self.real_time = 0.0, real_time

    def advance(self, seconds: float) -> float:
        self.now += seconds
        if self.real_time and seconds > 0:
            time.sleep(seconds)
        return self.now


def fail(behaviour: Behaviour, where: str, done: int = 0) -> None:
    """The configured failure, when it is due here."""
    if behaviour.fail_at != where or done < behaviour.fail_after:
        return
    if behaviour.failure == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour.failure == "unavailable":
        from sizebench.errors import ModelUnavailable

        raise ModelUnavailable(f"fake model unavailable at {where}")
    raise RuntimeError(f"fake failure at {where}")
