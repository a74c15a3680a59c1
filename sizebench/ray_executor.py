"""Each model's worker as a Ray task on a cluster; records come back to the driver's run store.

The task runs the same worker process as the local executor (`python -m sizebench.worker`) on
whichever node Ray picks, writing to a scratch store there; when it ends, its record lines and
progress events return to the driver, which appends them. Resume and failure handling are the
runner's, unchanged: a lost node or a task that raises comes back as a non-zero exit and a reason.
A stop signal to the driver cancels the task (ray.cancel), which stops its worker as the local
executor does; --timeout is enforced on the node, by the same code.
Install with `pip install 'sizebench[ray]'`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

from sizebench import loader, memory, precision, supervise
from sizebench.errors import SizebenchError
from sizebench.store import RunStore
from sizebench.supervise import Interrupted, TimedOut

GPU_BYTES = float(os.environ.get("SIZEBENCH_RAY_GPU_GB", "80")) * 2**30  # memory of one GPU on the cluster


def run_job_on_node(job: dict) -> dict:
    """Body of the Ray task: one worker process in a scratch folder; returns its records and events."""
    with tempfile.TemporaryDirectory(prefix="sizebench-") as scratch:
        job = {**job, "run_dir": scratch}
        job_path = Path(scratch) / "job.json"
        job_path.write_text(json.dumps(job))
        events: list[dict] = []
        with (Path(scratch) / "worker.log").open("w+") as log:
            proc = supervise.start_worker([sys.executable, "-m", "sizebench.worker", str(job_path)], stderr=log)
            try:
                ran_out = supervise.follow(proc, events.append, job.get("timeout"))
                proc.wait()
            except KeyboardInterrupt:  # ray.cancel: stop the worker before the task ends
                supervise.stop(proc)
                raise
            log.seek(0)
            tail = [line for line in log.read().splitlines() if line.strip()]
        records_path = Path(scratch) / "records.jsonl"
        lines = records_path.read_text().splitlines() if records_path.exists() else []
    return {"returncode": proc.returncode, "lines": lines, "events": events, "log_tail": tail[-1][:300] if tail else "",
            "node": os.uname().nodename, "timed_out": ran_out}


def resources(job: dict, cluster_gpus: float) -> dict:
    """What to ask Ray for: GPUs (enough to shard the model) when the run is on GPU, else RAM."""
    params = job["model"].get("params") or 0
    wants_gpu = job["device"] == "cuda" or (job["device"] == "auto" and cluster_gpus > 0)
    # bf16 and fp16 weigh the same: no need to ask this (maybe GPU-less) driver which one the node picks
    dtype = loader.resolve_dtype(job["dtype"], "cuda" if wants_gpu else "cpu", bf16_supported=True)
    variant = job["model"].get("precision")  # name@int8: the variant's own bytes per parameter
    dtype = precision.run_dtype(variant, dtype)
    per_param = precision.bytes_per_param(variant, dtype) if variant else dtype
    needed = memory.required_bytes(params, per_param) if params else 0
    if wants_gpu:
        return {"num_cpus": 1, "num_gpus": max(1, math.ceil(needed / GPU_BYTES))}
    return {"num_cpus": 1, **({"memory": needed} if needed else {})}


class RayExecutor:
    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError as exc:
            raise SizebenchError("--executor ray needs Ray: pip install 'sizebench[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                         include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": _package_root()}})
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise SizebenchError(f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {exc}") from exc
        self.task = ray.remote(run_job_on_node)

    def run(self, job: dict, store: RunStore, on_event) -> tuple[int, str]:
        options = resources(job, self.ray.cluster_resources().get("GPU", 0))
        ref = self.task.options(**options).remote(job)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the task raised, its node died, or it was cancelled
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            return 1, f"Ray task failed: {type(exc).__name__}: {first[:250]}"
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP through supervise.stop_signals
            self.cancel(ref)
            raise Interrupted(supervise.signum_of(exc)) from None
        for line in result["lines"]:
            store.append_line(line)
        for event in result["events"]:
            on_event(event)
        if result.get("timed_out"):  # what it finished is kept above
            raise TimedOut(result["timed_out"], job["timeout"])
        return result["returncode"], result["log_tail"]

    def cancel(self, ref) -> None:
        """KeyboardInterrupt in the task (it stops its worker: SIGTERM, then SIGKILL); if the task is still
        there after the grace period, its process is killed, and the worker follows it (die_with_parent)."""
        self.ray.cancel(ref)
        done, _ = self.ray.wait([ref], timeout=supervise.GRACE_S + 5)
        if not done:
            self.ray.cancel(ref, force=True)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[1])
