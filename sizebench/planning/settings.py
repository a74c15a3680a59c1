"""The settings of the two stages, as the run plan stores them: decoding for prompts, lm-eval for tasks."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace

from sizebench.errors import SizebenchError

DEFAULT_TASKS = ("sizebench_geo",)
DEFAULT_MARGIN = 0.05  # accuracy a smaller rung may lose to the baseline and still be recommended (--margin)
WARMUP_TOKENS = 8  # new tokens of an untimed warm-up generation: the prompt stage's, and each batch shape's


@dataclass(frozen=True)
class GenSettings:
    max_new_tokens: int = 128
    repeat: int = 1  # one timed run per prompt; why: benchmarks/RESULTS.md
    seed: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 1
    top_k: int = 50  # transformers' default when sampling; 0 turns top-k off
    stop_at_eos: bool = True  # False: a format with its own stop token (Dolly's `### End`) stops only there
    preset: str | None = None  # the named decoding preset these settings came from, if any
    decode: str = "auto"  # transformers rungs' decode loop: eager, static, or auto (the device's default)

    @classmethod
    def from_dict(cls, data: dict) -> "GenSettings":
        return cls(**data)

    def with_preset(self, name: str | None) -> "GenSettings":
        if name is None:
            return self
        if name not in PRESETS:
            raise SizebenchError(f"unknown --decoding '{name}'; choose one of: {', '.join(PRESETS)}")
        return replace(self, preset=name, **PRESETS[name])

    def describe(self) -> str:
        """How answers were decoded, in words, for the report."""
        if not self.do_sample:
            text = "greedy decoding"
        else:
            top_k = "top-k off" if self.top_k == 0 else f"top-k {self.top_k}"
            text = (f"sampling (temperature {self.temperature:g}, top-p {self.top_p:g}, {top_k}, "
                    f"seed {self.seed} set before every generation)")
        text += f", at most {self.max_new_tokens} new tokens"
        if not self.stop_at_eos:
            text += ", stopping at the format's own stop token only (`### End` for Dolly)"
        return f"`{self.preset}` preset: {text}" if self.preset else text


# Databricks' own InstructionTextGenerationPipeline (dolly repo, instruct_pipeline.py): do_sample=True,
# top_p=0.92, top_k=0, max_new_tokens=256, eos_token_id = the `### End` token only.
PRESETS: dict[str, dict] = {
    "greedy": {"do_sample": False, "stop_at_eos": True},
    "databricks": {"do_sample": True, "temperature": 1.0, "top_p": 0.92, "top_k": 0, "max_new_tokens": 256,
                   "stop_at_eos": False},
}


@dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    task_path: str | None = None
    limit: float | None = None
    num_fewshot: int | None = None
    batch_size: str = "auto"
    until_decided: bool = False  # the baseline rung chunk by chunk until the task's verdict is decided
    chunk: int = 32  # items per chunk (--chunk)
    max_items: int | None = None  # the baseline's items per task at most (--max-items), None: the task's
    max_seconds: float | None = None  # the baseline's seconds per task at most (--max-seconds): no chunk after
    order_seed: int = 0  # the items' random order
    margin: float = DEFAULT_MARGIN  # the margin the runner decides against
    baseline: str | None = None  # the rung run chunk by chunk (None: the largest)

    @classmethod
    def from_dict(cls, data: dict) -> "EvalSettings":
        return cls(**{**data, "tasks": tuple(data["tasks"])})


SLO_METRICS = ("ttft", "tpot", "e2e")  # per request, as `vllm bench serve --goodput` (e2e: its e2el)


@dataclass(frozen=True)
class ServeSettings:
    """The load sweep of served rungs (`--concurrency` or `--request-rate`) and the launched servers' flags."""

    concurrency: tuple[int, ...] = ()  # closed loop: this many requests in flight at each level
    request_rates: tuple[float, ...] = ()  # open loop: Poisson arrivals at each rate (requests/s)
    requests: int = 32  # per level, at most
    seconds: float = 60.0  # per level, at most: no new request after this
    output_tokens: int = 32  # fixed where the server allows it (min_tokens = max_tokens, ignore_eos)
    slo: tuple[tuple[str, float], ...] = ()  # (metric, seconds): goodput counts requests meeting all
    seed: int = 0  # Poisson arrivals and the prompt order
    server_args: str = ""  # extra flags for launched servers, passed through

    @classmethod
    def from_dict(cls, data: dict) -> "ServeSettings":
        return cls(**{**data, "concurrency": tuple(data["concurrency"]), "request_rates": tuple(data["request_rates"]),
                      "slo": tuple(tuple(pair) for pair in data["slo"])})

    @property
    def levels(self) -> list[tuple[str, float]]:
        return [("concurrency", float(c)) for c in self.concurrency] + [("rate", r) for r in self.request_rates]


OWN_SERVER_FLAGS = ("--host", "--port", "--model_alias", "--served-model-name")  # what sizebench sets on launched servers


def parse_server_args(text: str) -> str:
    """--server-args as given, refused where it would move the server (an open --host, a --port the health check
    never reaches) or rename the model the health check looks for."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SizebenchError(f"--server-args cannot be split as a shell would: {exc}") from None
    taken = [w for w in words if w.split("=", 1)[0] in OWN_SERVER_FLAGS]
    if taken:
        raise SizebenchError(f"--server-args may not set {taken[0].split('=', 1)[0]}: sizebench launches each server "
                             "on 127.0.0.1, on a port and under a model name of its own")
    return text


def parse_levels(text: str | None, flag: str, integer: bool) -> tuple:
    if not text:
        return ()
    try:
        values = tuple((int if integer else float)(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SizebenchError(f"{flag} takes a comma list of {'integers' if integer else 'numbers'}, got '{text}'") from None
    if not values or any(v <= 0 for v in values):
        raise SizebenchError(f"{flag} takes positive values, got '{text}'")
    return values


def parse_slo(text: str | None) -> tuple[tuple[str, float], ...]:
    """`ttft=0.5,tpot=0.05` (seconds) -> (("ttft", 0.5), ("tpot", 0.05))."""
    if not text:
        return ()
    pairs = []
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not eq or name not in SLO_METRICS or not seconds > 0:
            raise SizebenchError(f"--slo takes METRIC=SECONDS pairs ({', '.join(SLO_METRICS)}), e.g. ttft=0.5,tpot=0.05; "
                                 f"got '{part.strip()}'")
        pairs.append((name, seconds))
    return tuple(pairs)
