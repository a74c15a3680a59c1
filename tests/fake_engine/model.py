"""A fake model: its behaviour read from the folder's config.json, its words as tokens, its clock."""

from __future__ import annotations

import json
import os
import signal
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

VOCAB_SIZE = 256  # the fake tokenizer: id 0 begins a text, a word is 1 + its crc32 modulo the rest
VOCABULARY = ["<s>"] + [f"w{i}" for i in range(1, VOCAB_SIZE)]
BYTES_PER_PARAM = 2  # the fake weights are held as bfloat16


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
    context: int = 2048  # tokens of the context window
    fail_at: str | None = None  # "load" or "generate": where the failure below happens
    failure: str = "error"  # "error" (an exception), "unavailable" (sizebench's ModelUnavailable), "crash" (SIGKILL)
    fail_after: int = 0  # generations that succeed before the failure at "generate"
    logit_noise: float = 0.5  # how far this model's next-token logits stray from the fake ladder's shared ones

    @classmethod
    def of(cls, folder: Path) -> "Behaviour":
        return cls(**json.loads((folder / "config.json").read_text())["fake"])


def make_model(folder: Path, **behaviour) -> Path:
    """A fake model folder, `fake:FOLDER` in a model expression; `behaviour`: Behaviour's fields. Every fake
    model has the same vocab.json (one tokenizer, as sizebench.planning.references groups rungs), and a sparse
    weights file of its bytes (what the planning reads as a local model's size)."""
    folder.mkdir(parents=True, exist_ok=True)
    chosen = Behaviour(**behaviour)
    (folder / "config.json").write_text(json.dumps({"model_type": "fake", "fake": asdict(chosen)}))
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(VOCABULARY)}))
    with (folder / "weights.bin").open("wb") as weights:
        weights.truncate(chosen.params * BYTES_PER_PARAM)
    return folder


def words(text: str) -> list[str]:
    return text.split()


def ids_of(text: str) -> list[int]:
    return [1 + zlib.crc32(word.encode("utf-8")) % (VOCAB_SIZE - 1) for word in words(text)]


def answer_to(behaviour: Behaviour, text: str) -> str:
    """The canned answer: the first answer whose key is a word of the text (punctuation aside)."""
    said = {w.strip("?.,!:;").lower() for w in words(text)}
    return next((a for key, a in behaviour.answers.items() if key.lower() in said), behaviour.default_answer)


class Clock:
    """The fake model's time: advanced by what it does, by the same amounts on every machine. The seconds also
    pass in the process, so the supervisor's clocks (timeouts) and the tests' signals see them go by."""

    def __init__(self):
        self.now = 0.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        if seconds > 0:
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
