"""Each model's worker as a Ray task on a cluster; each record reaches the driver's run store as it is written.

The task runs the same worker process as the local executor (`python -m sizebench.launch.worker`) on
whichever node Ray picks, writing to a scratch store there. It sends each whole record line and
each progress event, as they come (every POLL_S at most), to a queue actor on the driver's node,
which the driver drains into its own store while it waits. What the worker finished therefore
survives a lost node, a killed task and a Ctrl-C; a record is sent once (at most the records of
one interrupted send are lost, never doubled), read by the store's own reader.
Resume and failure handling are the runner's, unchanged: a lost node or a task that raises comes
back as a non-zero exit and a reason; Ray does not retry the task (max_retries=0).
A stop signal to the driver cancels the task (ray.cancel), which stops its worker as the local
executor does, sends what the worker wrote since, and says it has ended; --timeout is enforced
on the node, by the same code. Install with `pip install 'sizebench[ray]'`.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from sizebench.launch import progress
from sizebench.system import supervise
from sizebench import engines
from sizebench.errors import SizebenchError
from sizebench.planning.job import Job
from sizebench.runstore import jsonl
from sizebench.runstore.store import RunStore, hold_signals, item_texts
from sizebench.system.supervise import Interrupted, TimedOut

GPU_BYTES = float(os.environ.get("SIZEBENCH_RAY_GPU_GB", "80")) * 2**30  # memory of one GPU on the cluster
POLL_S = 0.1  # how often the task looks for new records, and the driver for what the task sent
END = ("end", None)  # the task's last message, whatever way it ends short of a kill


def run_job_on_node(job: Job, inbox, outbox=None) -> dict:
    """Body of the Ray task: one worker process in a scratch folder, its records and events sent to inbox
    as they come, the driver's answers (after a chunk of --until-decided) from outbox to its stdin; returns its
    exit status."""
    try:
        with tempfile.TemporaryDirectory(prefix="sizebench-") as scratch:
            return _run_worker(replace(job, run_dir=scratch), Path(scratch), inbox, outbox)
    finally:
        inbox.put(END)


def _run_worker(job: Job, scratch: Path, inbox, outbox=None) -> dict:
    job_path = scratch / "job.json"
    job_path.write_text(json.dumps(job.to_dict()))
    records = RecordTail(scratch / "records.jsonl")
    with (scratch / "worker.log").open("w+") as log:
        proc = supervise.start_worker(
            [sys.executable, "-m", "sizebench.launch.worker", str(job_path)], stderr=log, stdin=subprocess.PIPE
        )
        try:
            events = _followed(proc, job.timeout)
            while True:
                try:
                    kind, value = events.get(timeout=POLL_S)
                except queue.Empty:
                    kind = None
                _send(inbox, [("record", row) for row in records.new_rows()])
                if kind == "done":
                    ran_out = value
                    break
                if kind == "event":
                    _send(inbox, [(kind, value)])
                _answer(proc, outbox)
            proc.wait()
        finally:  # ray.cancel (KeyboardInterrupt): stop the worker, then send what it wrote since the last look
            if proc.poll() is None:
                supervise.stop(proc)
            _send(inbox, [("record", row) for row in records.new_rows()])
        log.seek(0)
        tail = [line for line in log.read().splitlines() if line.strip()]
    return {
        "returncode": proc.returncode,
        "log_tail": tail[-1][:300] if tail else "",
        "node": os.uname().nodename,
        "timed_out": ran_out,
    }


def _followed(proc, limit: float | None) -> queue.Queue:
    """The worker's events in a queue, then ("done", the stage that ran past limit, or None): a thread follows
    the worker, so the task's own thread stays free to look for records."""
    out: queue.Queue = queue.Queue()

    def follow() -> None:
        out.put(("done", progress.follow(proc, lambda event: out.put(("event", event)), limit)))

    threading.Thread(target=follow, daemon=True).start()
    return out


def _answer(proc, outbox) -> None:
    """The driver's answers so far, each a line to the worker's stdin."""
    if outbox is None:
        return
    for reply in outbox.get_nowait_batch(outbox.qsize()):
        try:
            proc.stdin.write(reply + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass


def _send(inbox, messages: list) -> None:
    if messages:
        inbox.put_nowait_batch(messages)


class RecordTail:
    """The whole records a worker appended to its store since the last look, through the store's own reader
    (sizebench.runstore.jsonl): a line not yet ended by its newline waits; a damaged one is skipped with a warning."""

    def __init__(self, path: Path):
        self.path, self.offset, self.lines = path, 0, 0

    def new_rows(self) -> list[dict]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        whole = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(whole)
        rows = [row for _, row in jsonl.decode(whole[:-1], str(self.path), first_line=self.lines + 1)] if whole else []
        self.lines += whole.count(b"\n")
        return rows


def resources(job: Job, cluster_gpus: float) -> dict:
    """What to ask Ray for, as the rung's engine says."""
    return engines.get(job.model.engine).resources(job.model, job.load.device, job.load.dtype, cluster_gpus, GPU_BYTES)


class RayExecutor:
    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError as exc:
            raise SizebenchError("--executor ray needs Ray: pip install 'sizebench[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    ignore_reinit_error=True,
                    log_to_driver=False,
                    include_dashboard=False,
                    runtime_env={"env_vars": {"PYTHONPATH": _package_root()}},
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise SizebenchError(
                    f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {exc}"
                ) from exc
        self.task = ray.remote(run_job_on_node)

    def run(self, job: Job, store: RunStore, on_event) -> tuple[int, str]:
        options = resources(job, self.ray.cluster_resources().get("GPU", 0))
        inbox, outbox = self._inbox(), self._inbox()
        delivery = Delivery(store, on_event, outbox)
        try:
            ref = self.task.options(max_retries=0, **options).remote(job, inbox, outbox)
            try:
                result = self._wait(ref, inbox, delivery)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP through supervise.stop_signals
                self.cancel(ref, inbox, delivery)
                raise Interrupted(supervise.signum_of(exc)) from None
        finally:
            inbox.shutdown(force=True)
            outbox.shutdown(force=True)
        if isinstance(result, str):
            return 1, result
        if result.get("timed_out"):  # what it finished is in the store already
            raise TimedOut(result["timed_out"], job.timeout)
        return result["returncode"], result["log_tail"]

    def _inbox(self):
        """A queue actor on the driver's node (if the driver is on one), so that a lost node keeps what it sent."""
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = self.ray.get_runtime_context().get_node_id()
        return Queue(
            actor_options={
                "num_cpus": 0,
                "max_restarts": 0,
                "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=True),
            }
        )

    def _wait(self, ref, inbox, delivery: Delivery):
        """Deliver what the task sends until it ends; its result, or why it failed."""
        done: list = []
        while not done:
            done, _ = self.ray.wait([ref], timeout=POLL_S)
            delivery.take(inbox)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the task raised, its node died, or it was cancelled
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            return f"Ray task failed: {type(exc).__name__}: {first[:250]}"

    def cancel(self, ref, inbox, delivery: Delivery) -> None:
        """KeyboardInterrupt in the task: it stops its worker (SIGTERM, then SIGKILL), sends the records written
        meanwhile and ends; if it has not ended after the grace period, its process is killed, and the worker
        follows it (its watchdog, supervise.Owned)."""
        self.ray.cancel(ref)
        deadline = time.monotonic() + supervise.GRACE_S + supervise.SETTLE_S
        while time.monotonic() < deadline:
            if delivery.take(inbox):
                return
            time.sleep(POLL_S)
        self.ray.cancel(ref, force=True)
        delivery.take(inbox)


class Delivery:
    """The task's messages into the driver's store and display: each record line appended as it comes,
    an item_text the run already holds (another model's task got there first) dropped."""

    def __init__(self, store: RunStore, on_event, outbox=None):
        self.store, self.on_event, self.outbox = store, on_event, outbox

    def take(self, inbox) -> bool:
        """Everything queued so far; True once the task's last message came. A stop signal meanwhile waits
        until what was taken is stored."""
        ended = False
        with hold_signals():
            for kind, value in inbox.get_nowait_batch(inbox.qsize()):
                if kind == "record":
                    self.record(value)
                elif kind == "event":
                    reply = self.on_event(value)
                    if reply is not None and self.outbox is not None:  # the worker waits for it
                        self.outbox.put(reply)
                ended = ended or kind == END[0]
        return ended

    def record(self, row: dict) -> None:
        if row["kind"] == "item_text" and row["task"] in item_texts(self.store.records()):
            return
        self.store.append_rows([row])


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])
