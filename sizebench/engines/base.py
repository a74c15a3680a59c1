"""The engine seam: all that the worker, the stages and the Ray executor ask of whatever runs a model.

An `Engine` knows its types (the `@TYPE` suffixes it offers), checks a rung cheaply before anything
loads, says what a rung needs from Ray, and loads a model into a `Session`.

Required of every session (`Session`'s abstract methods): its load record, render a prompt, count its tokens,
its context window, one timed generation and an lm-eval model. `Session`'s other methods have defaults that
fit an engine without the feature (one decode loop, no CUDA peak, nothing to close).

Optional, as capabilities a session class inherits only where it has them (ABC mixins, every method abstract):
`NextTokens` (teacher-forced next-token distributions: the agreement stage), `Batching` (batched throughput:
the prompt stage's --batch-size) and `Served` (a rung behind an OpenAI-compatible HTTP server: the load
sweep). A stage asks `isinstance(session, NextTokens)`, never the engine's name, and a session without the
capability gets the stage's skip (or its one-line refusal), as before.

Outside the engines' folders, code asks an engine what it declares before loading (served, runs_gguf,
reference_implementation, builds_random_weights, names_models, model_of) instead of its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sizebench.engines.serving.client import Streamed
    from sizebench.measurement.energy import Meter
    from sizebench.specs.settings import LoadSettings
    from sizebench.specs.models import ModelSpec
    from sizebench.runstore.records import DecodeRecord, LoadRecord, PromptRecord, ThroughputRecord
    from sizebench.engines.formats import Rendered
    from sizebench.specs.settings import GenSettings
    from sizebench.specs.prompts import Prompt


@dataclass(frozen=True)
class Generation:
    answer: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    ttft_s: float
    latency_s: float

    @property
    def new_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def decode_tok_per_s(self) -> float | None:
        decode_s = self.latency_s - self.ttft_s
        return (self.new_tokens - 1) / decode_s if self.new_tokens > 1 and decode_s > 0 else None


class Session(ABC):
    """A model loaded by an engine, in the worker process."""

    spec: "ModelSpec"
    device: str
    prompt_format: str

    @abstractmethod
    def load_record(self, attempt: str) -> "LoadRecord":
        """What the load cost and what is held: written once, before any stage."""

    @abstractmethod
    def render(self, prompt: "Prompt") -> "Rendered":
        """The prompt in the model's format (chat template, Dolly's, or the base frame)."""

    @abstractmethod
    def prompt_tokens(self, rendered: "Rendered") -> int:
        """Tokens of the rendered prompt as generation feeds it (0 where the engine has no tokenizer to count)."""

    @abstractmethod
    def context_window(self) -> int | None:
        """Tokens the model attends to, where it says."""

    @abstractmethod
    def generate(
        self,
        rendered: "Rendered",
        settings: "GenSettings",
        max_new_tokens: int | None = None,
        meter: "Meter | None" = None,
    ) -> Generation:
        """One timed generation; `meter` counts the energy of the generation itself only."""

    @abstractmethod
    def lm(self, batch_size: str) -> tuple[Any, str]:
        """An lm-eval model scoring this loaded model, and the batch size it runs with."""

    def prepare_decode(self, rendered: list["Rendered"], settings: "GenSettings") -> None:
        """Set up the decode loop for these prompts (transformers: eager or a static cache sized for them), before
        the warm-up; an engine with one loop has nothing to set."""

    def decode_record(self, attempt: str, warmup_s: float) -> "DecodeRecord | None":
        """How this rung decoded, with the warm-up's time (a compile, where it compiles); None: one loop only."""
        return None

    def resident_weights_mb(self) -> float | None:
        """MiB of the weights resident in memory now, where that differs from what was loaded (mmap)."""
        return None

    def peak_rss_mb(self) -> float:
        """MiB, the peak resident memory of what runs the model: this process (a server's own process tree)."""
        from sizebench.measurement import measure

        return measure.peak_rss_mb()

    def sync(self) -> None:
        """Wait for the work queued on the device, so that a clock read next has timed it (CUDA kernels run
        asynchronously); an engine whose calls return with their work done has nothing to wait for."""

    def reset_cuda_peak(self) -> None:
        """Start the peak that cuda_peak_mb reads (each stage's)."""

    def cuda_peak_mb(self) -> float | None:
        """MiB of GPU memory this process held for the model at peak since reset_cuda_peak, summed over the GPUs;
        None where the engine does not measure it (on the CPU, in another process, outside torch's allocator)."""
        return None

    def tasks_unavailable(self) -> str | None:
        """Why lm-eval cannot score this model (one line), or None when it can."""
        return None

    def close(self) -> None:
        """Free what the session started (a launched server); the worker calls it on every exit path."""


# ---- optional capabilities: a session class inherits those it has; stages check with isinstance ----------


class NextTokens(ABC):
    """Next-token distributions of a sequence fed whole (teacher forcing), in the model's own token ids: what the
    agreement stage compares. A session without it: no agreement figures for its rung (the stage says why)."""

    @abstractmethod
    def vocabulary(self) -> list[str]:
        """The id -> token map (token strings as the tokenizer stores them)."""

    @abstractmethod
    def text_ids(self, text: str) -> list[int]:
        """`text` as token ids, no special tokens added."""

    @abstractmethod
    def begin_ids(self) -> list[int]:
        """What the tokenizer puts before a text (BOS where it adds one)."""

    @abstractmethod
    def prompt_ids(self, rendered: "Rendered") -> list[int]:
        """A rendered prompt's ids, as generation feeds them."""

    @abstractmethod
    def next_token_logits(self, ids: list[int], first: int) -> Any:
        """Raw logits (numpy, float32) at positions first .. len(ids) - 2 of one sequence fed whole: the
        rows predicting ids[first + 1:]."""


class Batching(ABC):
    """Generation of several prompts at once in this process: the prompt stage's aggregate tokens/s where
    --batch-size asks. A session without it measures single streams only."""

    @abstractmethod
    def batched_throughput(
        self, prompts: tuple["Prompt", ...], settings: "GenSettings", attempt: str, single: list["PromptRecord"]
    ) -> "ThroughputRecord":
        """Aggregate tokens/s of `prompts` in batches of settings.batch_size, beside the single-stream
        records `single` of the same prompts."""


class Served(ABC):
    """A rung behind an OpenAI-compatible HTTP server, which the load sweep drives with many requests at once.
    The sweep refuses, in one line, a session without it."""

    spec: "ModelSpec"
    base_url: str  # the server's API root (http://HOST:PORT/v1), named in the sweep's errors
    serving: str  # how it is served, parallelism included, for the report

    @abstractmethod
    def payload(self, rendered: "Rendered", settings: "GenSettings", limit: int) -> dict:
        """The request body generating at most `limit` tokens for `rendered` with `settings` (its stop strings
        as `stop`; the sweep drops them and fixes the output length)."""

    @abstractmethod
    def stream(self, body: dict, started: float | None = None) -> "Streamed":
        """One streamed request of `body`, timed from `started` (a perf_counter reading; None: when sent)."""

    @abstractmethod
    def failed_server(self) -> str | None:
        """Why the server launched for this rung has died (one line), or None while it lives or where none
        was launched here."""

    @abstractmethod
    def output_tokens(self, text: str) -> int | None:
        """Tokens in an answer's text by the rung's tokenizer; None without one (the sweep then counts the
        stream's chunks)."""


def ray_request(needed: int, device: str, cluster_gpus: float, gpu_bytes: float) -> dict:
    """What a rung needing `needed` bytes asks Ray for: enough GPUs to hold it when it runs on GPU
    (`--device cuda`, or auto on a cluster with GPUs), else that much RAM."""
    import math

    if device == "cuda" or (device == "auto" and cluster_gpus > 0):
        return {"num_cpus": 1, "num_gpus": max(1, math.ceil(needed / gpu_bytes))}
    return {"num_cpus": 1, **({"memory": needed} if needed else {})}


class Engine(ABC):
    name: str
    default_type: str | None = None  # what a rung without `@TYPE` runs (None: as distributed)
    served: bool = False  # a rung behind an HTTP server (the load sweep's; nothing for the fit plan to place)
    reference_implementation: bool = False  # runs the model's own published code: the agreement reference among equals
    runs_gguf: bool = False  # runs GGUF files in their own types (the fit plan sizes them from the file's tensors)
    builds_random_weights: bool = False  # can build a model of random weights from its config (--weights random)
    names_models: bool = False  # its prefix names a whole model (an endpoint): a model expression, no --engines choice

    @abstractmethod
    def types(self) -> dict[str, str]:
        """The `@TYPE` suffixes this engine offers, each with a few words."""

    def canonical_type(self, text: str) -> str | None:
        """The type `text` names (case and aliases folded), or None when this engine has no such type."""
        return text.lower() if text.lower() in self.types() else None

    def model_of(self, expression: str, resolve_one) -> "ModelSpec | None":
        """The model that `ENGINE:...` names by itself, parsed whole (an endpoint: `openai:URL#NAME`), with the
        registry's `resolve_one` for any model it names inside; None: the prefix only picks this engine for the
        models the registry resolves."""
        return None

    @abstractmethod
    def check(self, spec: "ModelSpec", device: str) -> None:
        """Refuse, in one line, a rung this machine cannot run (backend missing, device unsupported),
        before any model loads; cheap (no model, no heavy import)."""

    @abstractmethod
    def resources(self, spec: "ModelSpec", device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        """What to ask Ray for (num_cpus, num_gpus or memory) from the rung, the cluster's GPU count and
        the memory of one of its GPUs."""

    def nominal_bits(self, spec: "ModelSpec", dtype: str) -> float | None:
        """Bits a weight of this rung holds, before loading: which variant of a model is the most precise
        (the agreement stage's reference). None: unknown."""
        return None

    @abstractmethod
    def load(self, spec: "ModelSpec", settings: "LoadSettings") -> Session:
        """The model loaded in this process, with the job's device, dtype, threads and force."""
