"""The run plan: every choice of a run in one validated dataclass, stored in run.json for resume."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.specs.flags import flag
from sizebench.specs.models import ModelSpec
from sizebench.specs.settings import (
    AGREEMENT,
    PROMPTS,
    EvalSettings,
    GenSettings,
    ServeSettings,
    check_margin,
    parse_server_args,
)

EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")  # every engine places a model on one of these
DTYPES = ("auto", "float32", "bfloat16", "float16")
DECODES = ("auto", "eager", "static")  # sizebench.engines.hf.decoding's modes, or the device's default


@dataclass(frozen=True)
class RunPlan:
    models: tuple[ModelSpec, ...] = field(
        metadata=flag(  # the CLI resolves the text with --engines and --weights
            "--models",
            "-m",
            default="offline",
            help="Group (offline, all), comma list of names, hub id, model folder or "
            ".gguf path; NAME@PRECISION (fp32, bf16, fp16, int8, int4, nf4), a ladder: offline@fp32,bf16,int8; "
            "ENGINE:NAME[@TYPE] on another engine: llama.cpp:offline@q8_0,q2_k (`sizebench models`).",
        )
    )
    stages: tuple[str, ...]
    prompts_path: str | None = field(
        default=None,
        metadata=flag(
            "--prompts", "-p", stage=PROMPTS, default="prompts/geography.txt", help="Prompt suite (.txt or .jsonl)."
        ),
    )
    gen: GenSettings = field(default_factory=GenSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    device: str = field(
        default="auto", metadata=flag("--device", help="auto | cpu | cuda (auto: cuda when available).")
    )
    dtype: str = field(
        default="auto",
        metadata=flag(
            "--dtype",
            help="auto | float32 | bfloat16 | float16 (auto: fp32 "
            "on CPU; on GPU bf16, or fp16 where the GPU has no bf16).",
        ),
    )
    force: bool = field(
        default=False, metadata=flag("--force", help="Load even when the memory guard says it will not fit.")
    )
    offload: bool = field(
        default=True,
        metadata=flag(  # layers that do not fit the GPUs may go to CPU RAM
            "--no-offload",
            invert=True,
            help="On GPU, refuse a model that does not fit the GPUs instead of putting some of its layers in CPU RAM.",
        ),
    )
    hub_kernels: bool = field(
        default=False,
        metadata=flag(  # code fetched from the Hub at load: only when asked
            "--hub-kernels",
            help="Let transformers replace layers by kernels it fetches from the Hugging Face Hub at "
            "load (binary code; needs the network). Off by default.",
        ),
    )
    threads: int | None = field(
        default=None, metadata=flag("--threads", help="torch threads in each worker (default: torch's choice).")
    )
    executor: str = field(default="local", metadata=flag("--executor", resume=True, help="local | ray."))
    ray_address: str | None = field(
        default=None,
        metadata=flag(
            "--ray-address", resume=True, envvar="RAY_ADDRESS", help="Ray cluster address; auto for an existing one."
        ),
    )
    timeout: float | None = field(
        default=None,
        metadata=flag(  # seconds per model and stage; None: no limit
            "--timeout",
            resume=True,
            metavar="SECONDS",
            help="Time limit per model and stage (load, prompts, tasks); past "
            "it the model is recorded as failed, what it finished is kept, and the sweep goes on. Default: none.",
        ),
    )
    serve: ServeSettings = field(default_factory=ServeSettings)  # the load sweep (stage "sweep") and launched servers
    reference: str | None = field(
        default=None,
        metadata=flag(  # None: one reference per tokenizer group
            "--reference",
            stage=AGREEMENT,
            metavar="MODEL",
            help="The rung every other rung's next-token agreement is "
            "measured against (default: per group sharing a tokenizer, its largest, most precise rung).",
        ),
    )

    def validate(self) -> "RunPlan":
        _one_of("--device", self.device, DEVICES)
        _one_of("--dtype", self.dtype, DTYPES)
        _one_of("--executor", self.executor, EXECUTORS)
        _one_of("--decode", self.gen.decode, DECODES)
        positive("--max-new-tokens", self.gen.max_new_tokens)
        positive("--repeat", self.gen.repeat)
        positive("--batch-size", self.gen.batch_size)
        if self.threads is not None:
            positive("--threads", self.threads)
        if self.timeout is not None and not self.timeout > 0:
            raise SizebenchError(f"--timeout must be a positive number of seconds, got {self.timeout:g}")
        if self.gen.temperature <= 0 or not 0 < self.gen.top_p <= 1:
            raise SizebenchError("--temperature must be > 0 and --top-p in (0, 1]")
        if self.gen.top_k < 0:
            raise SizebenchError(f"--top-k must be 0 (off) or more, got {self.gen.top_k}")
        if self.eval.limit is not None and self.eval.limit <= 0:
            raise SizebenchError(f"--limit must be a positive number, got {self.eval.limit:g}")
        if self.eval.num_fewshot is not None and self.eval.num_fewshot < 0:
            raise SizebenchError(f"--num-fewshot must be 0 or more, got {self.eval.num_fewshot}")
        if self.eval.batch_size != "auto" and not (self.eval.batch_size.isdigit() and int(self.eval.batch_size) > 0):
            raise SizebenchError(
                f"--eval-batch-size must be 'auto' or a positive integer, got '{self.eval.batch_size}'"
            )
        positive("--chunk", self.eval.chunk)
        if self.eval.max_items is not None:
            positive("--max-items", self.eval.max_items)
        if self.eval.max_seconds is not None and not self.eval.max_seconds > 0:
            raise SizebenchError(f"--max-seconds must be a positive number of seconds, got {self.eval.max_seconds:g}")
        if self.eval.until_decided and "tasks" not in self.stages:
            raise SizebenchError("--until-decided needs the tasks stage (a weights-only run has none)")
        if not self.eval.until_decided and (self.eval.chunk != 32 or self.eval.max_items or self.eval.max_seconds):
            raise SizebenchError("--chunk, --max-items and --max-seconds go with --until-decided")
        check_margin(self.eval.margin)
        if self.eval.baseline is not None and self.eval.baseline not in [s.name for s in self.models]:
            raise SizebenchError(
                f"--baseline {self.eval.baseline}: not one of --models ({', '.join(s.name for s in self.models)})"
            )
        parse_server_args(self.serve.server_args)  # a stored plan too (--resume): no --host or --port of its own
        return self  # each stage checks its own settings (sizebench.stages.stage.Stage.check)

    def describe(self) -> str:
        """What the plan runs, in lines: each model and where it comes from, the stages and their inputs."""
        lines = [f"  {m.name}: {m.engine} from {m.location}" for m in self.models]
        lines.append(
            f"  stages: {', '.join(self.stages)}" + (f"; prompts: {self.prompts_path}" if self.prompts_path else "")
        )
        if "tasks" in self.stages:
            lines.append(
                f"  tasks: {', '.join(self.eval.tasks)}"
                + (
                    f" (task folder {self.eval.task_path}: its YAML may run Python code through !function)"
                    if self.eval.task_path
                    else ""
                )
            )
        if self.serve.server_args:
            lines.append(f"  server arguments: {self.serve.server_args}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["models"] = [m.to_dict() for m in self.models]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunPlan":
        data = dict(data)
        data["models"] = tuple(ModelSpec.from_dict(m) for m in data["models"])
        data["stages"] = tuple(data["stages"])
        data["gen"] = GenSettings.from_dict(data["gen"])
        data["eval"] = EvalSettings.from_dict(data["eval"])
        if "serve" in data:  # runs before the load sweep have none
            data["serve"] = ServeSettings.from_dict(data["serve"])
        return cls(**data)


def _one_of(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SizebenchError(f"invalid {flag} '{value}'; choose one of: {', '.join(allowed)}")


def positive(flag: str, value: int) -> None:
    if value < 1:
        raise SizebenchError(f"{flag} must be a positive integer, got {value}")


def environment() -> dict:
    """What a reader needs to reproduce or compare a run, read without importing torch."""
    versions = {}
    for package in ("sizebench", "torch", "transformers", "accelerate", "lm_eval", "datasets", "pandas"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu_names(),
        "git_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu_names() -> list[str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
        return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        return []


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
