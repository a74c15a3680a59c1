"""The settings of the two stages, as the run plan stores them: decoding for prompts, lm-eval for tasks; and what an
engine loads a rung with (LoadSettings, part of a worker's job)."""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.specs.flags import flag

DEFAULT_TASKS = ("sizebench_geo",)
DEFAULT_MARGIN = 0.05  # accuracy a smaller rung may lose to the baseline and still be recommended (--margin)
# The stages whose commands offer a setting's flag (sizebench.stages registers them under these names).
PROMPTS, TASKS, SWEEP, AGREEMENT = "prompts", "tasks", "sweep", "agreement"
WARMUP_TOKENS = 8  # new tokens of an untimed warm-up generation: the prompt stage's, and each batch shape's


@dataclass(frozen=True)
class GenSettings:
    max_new_tokens: int = field(
        default=128, metadata=flag("--max-new-tokens", stage=PROMPTS, help="Generation length limit per answer.")
    )
    repeat: int = field(
        default=1,
        metadata=flag(  # one timed run per prompt; why: benchmarks/RESULTS.md
            "--repeat", stage=PROMPTS, help="Timed runs per prompt; figures are medians, the answer is the first run's."
        ),
    )
    seed: int = field(default=0, metadata=flag("--seed", stage=PROMPTS, help="Seed set before every generation."))
    do_sample: bool = field(
        default=False, metadata=flag("--sample", stage=PROMPTS, help="Sample instead of greedy decoding.")
    )
    temperature: float = field(
        default=1.0, metadata=flag("--temperature", stage=PROMPTS, help="Sampling temperature (with --sample).")
    )
    top_p: float = field(
        default=1.0, metadata=flag("--top-p", stage=PROMPTS, help="Nucleus sampling mass (with --sample).")
    )
    batch_size: int = field(
        default=1,
        metadata=flag("--batch-size", stage=PROMPTS, help="Also measure aggregate tokens/s with batches of this size."),
    )
    top_k: int = field(
        default=50,
        metadata=flag(
            "--top-k",
            stage=PROMPTS,
            help="Top-k sampling (with --sample); 0 turns it off. 50 is transformers' default.",
        ),
    )
    stop_at_eos: bool = True  # False: a format with its own stop token (Dolly's `### End`) stops only there
    preset: str | None = field(
        default=None,
        metadata=flag(  # the named preset these settings came from, if any
            "--decoding",
            stage=PROMPTS,
            help="A named preset: greedy, or databricks (Databricks' Dolly pipeline: "
            "sampling, top-p 0.92, top-k off, 256 new tokens, stop at `### End` only). Sets the flags above.",
        ),
    )
    decode: str = field(
        default="auto",
        metadata=flag(
            "--decode",
            stage=PROMPTS,
            help="transformers rungs' decode loop: static (a KV cache preallocated for the "
            "suite and a compiled forward, CUDA graphs on a GPU), eager (generate's default loop), or auto: static on "
            "CUDA, eager on CPU (measured: benchmarks/RESULTS.md).",
        ),
    )

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
            text = (
                f"sampling (temperature {self.temperature:g}, top-p {self.top_p:g}, {top_k}, "
                f"seed {self.seed} set before every generation)"
            )
        text += f", at most {self.max_new_tokens} new tokens"
        if not self.stop_at_eos:
            text += ", stopping at the format's own stop token only (`### End` for Dolly)"
        return f"`{self.preset}` preset: {text}" if self.preset else text


# Databricks' own InstructionTextGenerationPipeline (dolly repo, instruct_pipeline.py): do_sample=True,
# top_p=0.92, top_k=0, max_new_tokens=256, eos_token_id = the `### End` token only.
PRESETS: dict[str, dict] = {
    "greedy": {"do_sample": False, "stop_at_eos": True},
    "databricks": {
        "do_sample": True,
        "temperature": 1.0,
        "top_p": 0.92,
        "top_k": 0,
        "max_new_tokens": 256,
        "stop_at_eos": False,
    },
}


@dataclass(frozen=True)
class EvalSettings:
    tasks: tuple[str, ...] = field(
        default=DEFAULT_TASKS,
        metadata=flag(
            "--tasks",
            stage=TASKS,
            parse=lambda text, name: tuple(t.strip() for t in text.split(",") if t.strip()),
            default=",".join(DEFAULT_TASKS),
            help="Comma list of lm-eval tasks or groups; dolly-card for the Dolly card suite.",
        ),
    )
    task_path: str | None = field(
        default=None, metadata=flag("--task-path", stage=TASKS, help="Folder of your own lm-eval YAML tasks.")
    )
    limit: float | None = field(
        default=None, metadata=flag("--limit", stage=TASKS, help="Items per task (a fraction if < 1).")
    )
    num_fewshot: int | None = field(
        default=None,
        metadata=flag("--num-fewshot", stage=TASKS, help="Few-shot examples per item (default: the task's own)."),
    )
    batch_size: str = field(
        default="auto", metadata=flag("--eval-batch-size", stage=TASKS, help="lm-eval batch size, or auto.")
    )
    until_decided: bool = field(
        default=False,
        metadata=flag(
            "--until-decided",
            stage=TASKS,
            help="Each task's items in a seeded random order: every other rung answers "
            "them all, then the baseline rung chunk by chunk until every comparison with it is decided against --margin "
            "(an anytime-valid confidence sequence) or the items run out.",
        ),
    )
    chunk: int = field(
        default=32,
        metadata=flag(
            "--chunk", stage=TASKS, help="Items per chunk with --until-decided (larger keeps a GPU's batches full)."
        ),
    )
    max_items: int | None = field(
        default=None,
        metadata=flag("--max-items", stage=TASKS, help="With --until-decided: the baseline's items per task at most."),
    )
    max_seconds: float | None = field(
        default=None,
        metadata=flag(
            "--max-seconds",
            stage=TASKS,
            metavar="SECONDS",
            help="With --until-decided: no new chunk of a task once the baseline has spent this long on it.",
        ),
    )
    order_seed: int = 0  # the items' random order
    margin: float = field(
        default=DEFAULT_MARGIN,
        metadata=flag(  # also the margin the runner decides against
            "--margin",
            resume=True,
            help="Accuracy a smaller model may lose to the best and still be recommended "
            "(upper 95% bound of best - model below it).",
        ),
    )
    baseline: str | None = field(
        default=None,
        metadata=flag(  # also the rung run chunk by chunk
            "--baseline",
            resume=True,
            metavar="MODEL",
            help="The rung every other rung is compared with in the verdicts "
            "(default: the largest, the most bits per weight among equals).",
        ),
    )

    @classmethod
    def from_dict(cls, data: dict) -> "EvalSettings":
        return cls(**{**data, "tasks": tuple(data["tasks"])})


def check_margin(margin: float) -> float:
    if not 0 < margin < 1:
        raise SizebenchError(f"--margin must be between 0 and 1 (an accuracy difference), not {margin:g}")
    return margin


SLO_METRICS = ("ttft", "tpot", "e2e")  # per request, as `vllm bench serve --goodput` (e2e: its e2el)


@dataclass(frozen=True)
class ServeSettings:
    """The load sweep of served rungs (`--concurrency` or `--request-rate`) and the launched servers' flags."""

    concurrency: tuple[int, ...] = field(
        default=(),
        metadata=flag(  # closed loop: this many requests in flight
            "--concurrency",
            stage=SWEEP,
            parse=lambda text, name: parse_levels(text, name, True),
            help="Load sweep of "
            "served rungs (llama.cpp-server:, vllm:, openai:): closed loop at each of these requests in flight, e.g. "
            "1,2,4,8.",
        ),
    )
    request_rates: tuple[float, ...] = field(
        default=(),
        metadata=flag(
            "--request-rate",
            stage=SWEEP,
            parse=lambda text, name: parse_levels(text, name, False),
            help="Load sweep with Poisson arrivals at each of these rates (requests/s).",
        ),
    )
    requests: int = field(
        default=32, metadata=flag("--sweep-requests", stage=SWEEP, help="Requests per load level, at most.")
    )
    seconds: float = field(
        default=60.0,
        metadata=flag("--sweep-seconds", stage=SWEEP, help="Seconds per load level, at most (no request sent after)."),
    )
    output_tokens: int = field(
        default=32,
        metadata=flag(  # fixed where the server allows (min_tokens, ignore_eos)
            "--sweep-output-tokens",
            stage=SWEEP,
            help="Output tokens per sweep request (fixed where the server allows).",
        ),
    )
    slo: tuple[tuple[str, float], ...] = field(
        default=(),
        metadata=flag(  # goodput counts requests meeting all
            "--slo",
            stage=SWEEP,
            parse=lambda text, name: parse_slo(text),
            help="Latency goal for goodput, seconds per request: ttft=0.5,tpot=0.05,e2e=5.",
        ),
    )
    seed: int = field(
        default=0,
        metadata=flag(  # Poisson arrivals and the prompt order
            "--seed", stage=SWEEP, help="Seed set before every generation."
        ),
    )
    server_args: str = field(
        default="",
        metadata=flag(
            "--server-args",
            stage=SWEEP,
            help="Extra flags for launched servers (vllm serve, llama-cpp-python), one string.",
        ),
    )

    @classmethod
    def from_dict(cls, data: dict) -> "ServeSettings":
        return cls(
            **{
                **data,
                "concurrency": tuple(data["concurrency"]),
                "request_rates": tuple(data["request_rates"]),
                "slo": tuple(tuple(pair) for pair in data["slo"]),
            }
        )

    @property
    def levels(self) -> list[tuple[str, float]]:
        return [("concurrency", float(c)) for c in self.concurrency] + [("rate", r) for r in self.request_rates]


OWN_SERVER_FLAGS = (
    "--host",
    "--port",
    "--model_alias",
    "--served-model-name",
)  # what sizebench sets on launched servers


def parse_server_args(text: str) -> str:
    """--server-args as given, refused where it would move the server (an open --host, a --port the health check
    never reaches) or rename the model the health check looks for."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SizebenchError(f"--server-args cannot be split as a shell would: {exc}") from None
    taken = [w for w in words if w.split("=", 1)[0] in OWN_SERVER_FLAGS]
    if taken:
        raise SizebenchError(
            f"--server-args may not set {taken[0].split('=', 1)[0]}: sizebench launches each server "
            "on 127.0.0.1, on a port and under a model name of its own"
        )
    return text


def parse_levels(text: str | None, flag: str, integer: bool) -> tuple:
    if not text:
        return ()
    try:
        values = tuple((int if integer else float)(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SizebenchError(
            f"{flag} takes a comma list of {'integers' if integer else 'numbers'}, got '{text}'"
        ) from None
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
            raise SizebenchError(
                f"--slo takes METRIC=SECONDS pairs ({', '.join(SLO_METRICS)}), e.g. ttft=0.5,tpot=0.05; "
                f"got '{part.strip()}'"
            )
        pairs.append((name, seconds))
    return tuple(pairs)


@dataclass(frozen=True)
class LoadSettings:
    """What an engine loads a rung with (sizebench.engines.base.Engine.load)."""

    device: str = "auto"
    dtype: str = "auto"
    force: bool = False  # past the memory guard
    offload: bool = True  # CPU offload where the GPUs cannot hold the model (--no-offload: refused instead)
    hub_kernels: bool = False  # transformers' Hub kernels (--hub-kernels)
    threads: int | None = None  # CPU threads (None: the engine's default)
    server_args: str = ""  # a launched server's extra flags (--server-args)
    server_log: str | None = None  # a launched server's log file (None: a new temporary file)

    def server_log_path(self) -> Path:
        if self.server_log is not None:
            return Path(self.server_log)
        handle, path = tempfile.mkstemp(prefix="sizebench-server-", suffix=".log")
        os.close(handle)
        return Path(path)
