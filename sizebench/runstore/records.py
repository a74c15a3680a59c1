"""What a run writes: small frozen dataclasses, one JSON line each. Every figure carries its unit.

Memory fields named `_mb` hold MiB (2**20 bytes): the names predate the unit's spelling, and runs on
disk keep them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar


KINDS: dict[str, type] = {}  # every record kind -> its class, in definition order: the one registration point


@dataclass(frozen=True)
class Record:
    """A record class registers its `kind` by being defined; `written_in` names the stage whose finishing
    attempt supersedes its rows (None: kept from every attempt, as load, stage and failure records are)."""

    model: str
    attempt: str  # one id per worker process, so a resumed stage's rows replace the unfinished ones

    kind = "record"
    written_in: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        KINDS[cls.kind] = cls

    def to_row(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class LoadRecord(Record):
    family: str
    source: str
    params: int  # total, measured on the loaded model (embeddings included)
    weights_mb: float  # MiB, the weights as distributed (the GGUF file for GGUF sources)
    weights_mem_mb: float  # MiB, measured from the storage of the loaded weights (packed bytes when quantized)
    quantization: str | None
    convert_s: float | None  # one-time GGUF -> safetensors conversion; None when the cache was used
    load_s: float  # from_pretrained from local files
    load_kind: str  # "cold" (converted now), "cached", or "random" (built from the config, nothing read)
    dtype: str
    device: str
    n_devices: int
    threads: int  # torch intra-op threads
    prompt_format: str
    peak_rss_mb: float  # MiB, the load's peak (a quantized variant's full-precision transient included)
    cuda_peak_mb: float | None  # MiB, summed over the GPUs
    import_s: float | None = None  # importing the model class before the load clock starts
    params_non_embedding: int | None = None  # total minus input and untied output embeddings
    offloaded: bool = False  # some layers were placed in CPU RAM (GPU too small)
    offload_cpu_gib: float | None = None  # GiB of weights on the CPU when offloaded (older runs: offload_cpu_gb, 1e9 B)
    precision: str | None = None  # the variant's `@precision` (None: the run dtype, as before)
    precision_label: str | None = None  # e.g. "int8 weight-only (torchao)"
    bytes_per_param: float | None = None  # weights_mem_mb in bytes / params
    engine: str = "transformers"  # older runs have no such field: they all ran on transformers
    base_model: str | None = (
        None  # the model the rung is a variant of (older runs: split from its name, analysis.sizes)
    )
    hub_kernels: bool | None = (
        None  # transformers' Hub kernels asked for at load (None: older runs, or not transformers)
    )
    weights: str = "real"  # "random": built from the config, a cost-only rung (`--weights random`)
    tokenizer: str | None = None  # a random-weight rung's tokenizer: the model's own, or a stand-in (named)
    # The held GGUF was made by llama.cpp's quantizer from an F32 GGUF of the distributed weights. Older runs have
    # no such field: theirs were the llama.cpp engine's rungs whose label does not end "as distributed".
    requantized: bool = False
    kind = "load"


@dataclass(frozen=True)
class PromptRecord(Record):
    prompt_id: str
    prompt: str
    expected: list[str]
    answer: str
    correct: bool | None
    prompt_tokens: int
    new_tokens: int
    ttft_s: float  # medians over the repetitions
    latency_s: float
    decode_tok_per_s: float | None  # (new_tokens - 1) / (latency - ttft); None for a 1-token answer
    ttft_s_runs: list[float] = field(default_factory=list)
    latency_s_runs: list[float] = field(default_factory=list)
    decode_tok_per_s_runs: list[float] = field(default_factory=list)
    same_answer_every_run: bool = True
    context: str | None = None  # the passage given with the prompt (older runs: not stored)
    kind = "prompt"
    written_in = "prompts"


@dataclass(frozen=True)
class PromptSkipRecord(Record):
    """A prompt not sent to this model: its tokens plus max_new_tokens exceed the context window."""

    prompt_id: str
    prompt: str
    expected: list[str]
    prompt_tokens: int
    max_new_tokens: int
    context_tokens: int  # the model's window (config max_position_embeddings, else tokenizer's limit)
    reason: str
    kind = "prompt_skipped"
    written_in = "prompts"


@dataclass(frozen=True)
class ThroughputRecord(Record):
    batch_size: int
    prompts: int
    new_tokens: int
    wall_s: float
    tok_per_s: float  # aggregate over the batched suite
    single_stream_tok_per_s: float  # the same prompts one at a time, for the ratio
    decode: str | None = None  # the decode mode (older runs: eager, not stored)
    warmup_s: float | None = None  # the untimed first batch (8 new tokens): the batch shape's compile, where static
    kind = "throughput"
    written_in = "prompts"


@dataclass(frozen=True)
class DecodeRecord(Record):
    """How a transformers rung decoded in the prompt stage (sizebench.engines.hf.decoding); older runs have none
    (they decoded eager)."""

    mode: str  # "eager" or "static"
    device: str
    warmup_s: float  # the first generate (8 new tokens, untimed in the figures): the compile, where compiled
    cache_len: int | None  # static: positions preallocated per sequence
    cache_mb: float | None  # static: MiB of KV cache preallocated for one sequence (in the memory peaks)
    kv_bytes_per_position: int  # KV cache bytes of one sequence per position attended (a static cache: averaged)
    compiled: bool = False  # transformers compiled the forward (it does not on CPU or with CPU offload)
    kind = "decode"
    written_in = "prompts"


@dataclass(frozen=True)
class BandwidthRecord(Record):
    """The device's memory bandwidth, measured once per run and device by the first rung's worker
    (sizebench.measurement.bandwidth); `model` names that rung. Older runs have none."""

    device: str
    device_name: str
    bytes_per_s: float  # best of the runs, read plus write
    copy_bytes: int
    runs_s: list[float] = field(default_factory=list)
    kind = "bandwidth"


@dataclass(frozen=True)
class EnergyRecord(Record):
    """Energy the counters read over the prompt suite's timed generations (each full generate, not the
    warm-up, the one-token TTFT runs or the record writes); only where they are readable."""

    stage: str
    joules: float
    new_tokens: int  # tokens generated in that time: every repetition of every prompt
    source: str  # which counter: NVML (the visible GPUs, each whole) or RAPL (whole CPU package)
    kind = "energy"
    written_in = "prompts"


@dataclass(frozen=True)
class TaskRecord(Record):
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    version: str | None
    num_fewshot: int | None
    limit: float | None
    wall_s: float  # the whole lm-eval stage of this model
    batch_size: str = "auto"  # what lm-eval was given
    kind = "task"
    written_in = "tasks"


@dataclass(frozen=True)
class ItemsRecord(Record):
    """One model's per-item outcomes on one task, from lm-eval's own samples; lists are aligned by item.

    No prompt text: the questions and choices are stored once per run in an ItemTextRecord.
    """

    task: str
    doc_ids: list[int]
    gold: list  # index of the right choice (a list where several are right; None for generation tasks)
    lls: list[list[float]] = field(default_factory=list)  # each choice's log-likelihood, 4 decimals
    chosen: list[int] = field(default_factory=list)  # argmax of lls: the choice `acc` scores
    chosen_norm: list[int] = field(default_factory=list)  # argmax of lls / characters: the one `acc_norm` scores
    scores: dict[str, list[float]] = field(default_factory=dict)  # lm-eval's per-item metrics (acc, acc_norm, ...)
    answers: list[str] = field(default_factory=list)  # generation tasks: the filtered answer, trimmed
    kind = "items"
    written_in = "tasks"


@dataclass(frozen=True)
class ItemTextRecord(Record):
    """A task's item texts, written once per run by the first model that ran the task."""

    task: str
    doc_ids: list[int]
    questions: list[str]
    choices: list[list[str]]
    targets: list[str]  # the right answer as text
    kind = "item_text"


@dataclass(frozen=True)
class ChunkRecord(Record):
    """One chunk of `--until-decided` on the baseline rung: the items drawn, in the order drawn (the confidence
    sequence follows that order), and the time lm-eval took on them."""

    task: str
    population: int  # the task's items (after --limit)
    drawn: list[int]  # doc ids, in the order drawn
    wall_s: float
    chunk: int  # --chunk
    seed: int
    kind = "chunk"
    written_in = "tasks"


@dataclass(frozen=True)
class StopRecord(Record):
    """Where `--until-decided` stopped the baseline rung on a task, and why (the runner's decision, or no items left)."""

    task: str
    population: int
    items: int  # items the baseline answered
    reason: str  # "decided", "items ran out", "--max-items ...", "--max-seconds ..."
    wall_s: float  # the baseline's time in lm-eval on this task, every chunk
    margin: float  # the margin the runner decided against
    kind = "stopped"
    written_in = "tasks"


@dataclass(frozen=True)
class SkipRecord(Record):
    task: str
    reason: str
    kind = "task_skipped"
    written_in = "tasks"


@dataclass(frozen=True)
class DistributionsRecord(Record):
    """The reference rung's next-token distributions on the agreement texts, stored once per run in a file
    of the run folder (sizebench.measurement.divergence: top-k log-probabilities and the rest's mass)."""

    file: str  # relative to the run folder
    tokens: dict[str, int]  # text set -> tokens scored
    top_k: int
    vocab: int  # ids compared: the tokenizer's length, or the logit rows where fewer
    vocab_sha256: str  # of the id -> token map over those ids
    bytes: int  # the file's size
    # The protocol (None in runs recorded before it was stored: sizebench.analysis.agreement.RECORDED_BEFORE)
    chunk_tokens: int | None = None  # the corpus's chunk length asked (a shorter window shortens the reference's)
    max_chunks: int | None = None  # corpus chunks fed at most
    top_k_asked: int | None = None  # ids kept per token (top_k: fewer where the vocabulary is smaller)
    kind = "distributions"
    written_in = "agreement"


@dataclass(frozen=True)
class AgreementRecord(Record):
    """A variant's next-token distributions against the reference's, teacher-forced on the same tokens."""

    reference: str
    text: str  # "corpus" (the bundled prose) or "answers" (the reference's own answers to the prompt suite)
    tokens: int
    kld_mean: float  # KL(reference || variant), nats per token
    kld_stderr: float | None  # None: the text came in one unit (chunk or answer), no estimate
    kld_median: float
    kld_p90: float
    kld_p99: float
    kld_max: float
    same_top: float  # share of tokens whose most likely next token is the reference's
    ppl_ratio: float  # PPL(variant) / PPL(reference) on these tokens
    ln_ppl_ratio_stderr: float | None
    rms_dp: float  # RMS over tokens of p_variant(next) - p_reference(next)
    mean_dp: float
    top_k: int  # the reference's stored form (the KLD is a lower bound of the exact one over all ids)
    units: int | None = None  # the chunks or answers the two standard errors cluster by (None: tokens as independent)
    kind = "agreement"
    written_in = "agreement"


@dataclass(frozen=True)
class AgreementSkipRecord(Record):
    reference: str | None
    reason: str
    kind = "agreement_skipped"
    written_in = "agreement"


@dataclass(frozen=True)
class StageRecord(Record):
    """A stage (prompts, tasks, agreement) finished; written last, so its absence means 'redo on resume'."""

    stage: str
    wall_s: float
    peak_rss_mb: float  # MiB, of the worker process, over this stage alone (the peak is reset at its start)
    cuda_peak_mb: float | None  # MiB, summed over the GPUs, over this stage alone
    weights_resident_mb: float | None = None  # MiB of memory-mapped weights resident at the stage's end (llama.cpp)
    kind = "stage"


@dataclass(frozen=True)
class FailureRecord(Record):
    stage: str
    reason: str
    # True when the model could not be had here (not in the HF cache offline, refused by the memory
    # guard): the reason carries the remedy, and it is not a failure of the model or of sizebench.
    unavailable: bool = False
    # True when the run was stopped by a signal while this model's stage ran: what it finished is kept, and
    # `--resume` redoes the stage.
    interrupted: bool = False
    kind = "failed"


@dataclass(frozen=True)
class ServedRequestRecord(Record):
    """One request of the load sweep, written as it finishes (a server dying mid-level keeps those before)."""

    mode: str  # "concurrency" (closed loop) or "rate" (Poisson arrivals, requests/s)
    load: float  # the level: requests in flight, or the arrival rate
    index: int
    sent_s: float  # from the level's start (its first send)
    ttft_s: float | None  # from scheduled_s
    e2e_s: float  # scheduled_s to the last chunk with text
    output_tokens: int
    itl_s: list[float] = field(default_factory=list)  # gaps between streamed chunks, 5 decimals
    error: str | None = None
    scheduled_s: float | None = None  # when it was due: its Poisson arrival, or its slot freeing (None: runs before)
    kind = "served_request"
    written_in = "sweep"


@dataclass(frozen=True)
class SweepLevelRecord(Record):
    """A level of the load sweep finished: what was asked and how long the level took."""

    mode: str
    load: float
    requests: int  # sent
    errors: int
    wall_s: float  # first request sent to last answer
    output_tokens_asked: int  # max_tokens = min_tokens, ignore_eos
    serving: str  # the server and its parallelism, in words
    slo: dict = field(default_factory=dict)  # metric -> seconds, as given
    behind_s: float | None = None  # the most a request was sent after it was due (None: runs before)
    kind = "sweep_level"
    written_in = "sweep"


@dataclass(frozen=True)
class VoteRecord(Record):
    """One pairwise judgement of two answers to a prompt: a person's vote on the judging page, or an LLM
    judge's reading of one order. `model` names the source ("human", or "judge:NAME"); `attempt` is the
    constant VOTES, so every vote of a run is kept (sizebench.judging)."""

    screen: str  # the one-time id of what was judged (a screen, or an LLM judgement)
    prompt_id: str
    left: str  # the model whose answer was shown as A
    right: str  # ... as B
    choice: str  # "A", "B", "tie" or "bad" (both bad)
    rater: str  # the person's name, or the judge model's
    comment: str = ""
    identical: bool = False  # the answers were the same text: a tie recorded without being shown
    raw: dict = field(default_factory=dict)  # an LLM judge's own output: each choice's log-likelihood
    kind = "vote"


@dataclass(frozen=True)
class VoteUndoneRecord(Record):
    """A vote taken back with the page's undo: the vote of `screen` no longer counts."""

    screen: str
    rater: str
    kind = "vote_undone"
