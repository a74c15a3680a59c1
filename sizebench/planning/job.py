"""The job: everything one worker process is told, one typed value built in one place (make_job) for the local
and the Ray executor, and by the judge for its own worker; written to the run folder as JSON and read back by
the worker (Job.from_dict). An engine sees only its load settings (LoadSettings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from sizebench.planning.plan import RunPlan
from sizebench.planning.registry import file_key
from sizebench.specs.models import ModelSpec
from sizebench.specs.settings import EvalSettings, GenSettings, LoadSettings, ServeSettings


@dataclass(frozen=True)
class Job:
    run_dir: str
    model: ModelSpec
    attempt: str
    load: LoadSettings = field(default_factory=LoadSettings)  # its server fields come from serve and the run folder
    stages: tuple[str, ...] = ()
    prompts_path: str | None = None
    gen: GenSettings = field(default_factory=GenSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    timeout: float | None = None  # seconds per stage (--timeout)
    texts_done: tuple[str, ...] = ()  # tasks whose item texts the run holds (a worker on Ray sees only its scratch)
    agreement: dict | None = None  # the agreement stage's reference and file (sizebench.planning.references.job)
    chunked: bool = False  # this rung's tasks chunk by chunk (--until-decided's baseline)
    judge: dict | None = None  # the LLM judge's worker: {"source": ..., "judgements": [...]}

    @property
    def stem(self) -> str:
        """The job's and its logs' file name: the model (hub ids carry a slash) and the attempt."""
        return f"{file_key(self.model.name)}-{self.attempt}"

    def load_settings(self) -> LoadSettings:
        return replace(
            self.load,
            server_args=self.serve.server_args,
            server_log=str(Path(self.run_dir) / "logs" / f"{self.stem}-server.log"),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Job":
        return cls(
            **{
                **data,
                "model": ModelSpec.from_dict(data["model"]),
                "load": LoadSettings(**data["load"]),
                "stages": tuple(data["stages"]),
                "gen": GenSettings.from_dict(data["gen"]),
                "eval": EvalSettings.from_dict(data["eval"]),
                "serve": ServeSettings.from_dict(data["serve"]),
                "texts_done": tuple(data["texts_done"]),
            }
        )


def make_job(
    plan: RunPlan,
    spec: ModelSpec,
    run_dir: Path,
    attempt: str,
    stages,
    texts_done=(),
    agreement: dict | None = None,
    chunked: bool = False,
) -> Job:
    """A rung's job under the plan: its stages, the run's settings, and what the runner knows of the run so far."""
    load = LoadSettings(plan.device, plan.dtype, plan.force, plan.offload, plan.hub_kernels, plan.threads)
    return Job(
        str(run_dir),
        spec,
        attempt,
        load,
        tuple(stages),
        plan.prompts_path,
        plan.gen,
        plan.eval,
        plan.serve,
        plan.timeout,
        tuple(sorted(texts_done)),
        agreement,
        chunked,
    )
