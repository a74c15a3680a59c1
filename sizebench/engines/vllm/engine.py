"""The `vllm:` engine: `vllm serve MODEL` launched for the rung, tensor parallel over the GPUs the rung needs.

Not run in this project's tests or example reports (their machines have no GPU): the command line is built
and tested; `check` refuses the rung in one line where vLLM is not installed.
"""

from __future__ import annotations

import math
import shlex
import shutil

from sizebench.engines.base import Engine, ray_request
from sizebench.errors import SizebenchError

BYTES_PER_PARAM = 2  # vLLM serves bf16/fp16 by default
KV_SHARE = 0.9  # vLLM's --gpu-memory-utilization default: what one GPU offers to weights and KV cache


def tensor_parallel(params: int | None, gpu_bytes: float, gpus: int) -> int:
    """The smallest power of two of GPUs (vLLM splits attention heads evenly) whose memory holds the bf16 weights
    with a fifth more for the KV cache; at most `gpus`."""
    if not params or not gpu_bytes:
        return 1
    needed = math.ceil(params * BYTES_PER_PARAM * 1.2 / (gpu_bytes * KV_SHARE))
    size = 1
    while size < needed:
        size *= 2
    if size > gpus:
        raise SizebenchError(
            f"{params / 1e9:.1f}B parameters need {size} GPUs of {gpu_bytes / 2**30:.0f} GiB for vLLM; {gpus} visible"
        )
    return size


def command(model: str, served: str, port: int, tp: int, extra: str = "") -> list[str]:
    return [
        "vllm",
        "serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        served,
        "--tensor-parallel-size",
        str(tp),
        *shlex.split(extra),
    ]


def _gpus() -> tuple[int, float]:
    import torch

    if not torch.cuda.is_available():
        return 0, 0.0
    return torch.cuda.device_count(), float(torch.cuda.get_device_properties(0).total_memory)


class VllmEngine(Engine):
    name = "vllm"
    served = True

    def types(self) -> dict[str, str]:
        return {}

    def check(self, spec, device: str) -> None:
        if shutil.which("vllm") is None:
            raise SizebenchError(
                f"{spec.name}: `vllm` is not installed here (pip install vllm, on a machine with a GPU); "
                "or start `vllm serve` yourself and give openai:URL#NAME"
            )

    def resources(self, spec, device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        from sizebench.measurement import memory

        needed = memory.required_bytes(spec.params, BYTES_PER_PARAM) if spec.params else 0
        return ray_request(needed, "cuda", cluster_gpus, gpu_bytes)

    def load(self, spec, settings):
        import time

        from sizebench.engines.serving import records_of
        from sizebench.engines.serving.launch import Server, free_port, served_name
        from sizebench.engines.serving.session import EndpointSession
        from sizebench.weights import sources

        located = sources.locate(spec)
        count, memory_each = _gpus()
        tp = tensor_parallel(spec.params, memory_each, count)
        port = free_port()  # vLLM binds it before loading; another server taking it first fails the health check
        served = served_name()
        server = Server(
            command(str(located.path), served, port, tp, settings.server_args),
            port,
            settings.server_log_path(),
            "vLLM server",
            served,
        )
        started = time.perf_counter()
        server.start()
        try:
            tokenizer, context = records_of.tokenizer_of(spec)
            session = EndpointSession(
                spec=spec,
                base_url=server.base_url,
                served=served,
                tokenizer=tokenizer,
                prompt_format=records_of.prompt_format(spec, tokenizer),
                load_record_fn=None,
                context=context,
                server=server,
                device="cuda",
                serving=f"vLLM (tensor parallel {tp}, continuous batching)",
            )
            load_s = time.perf_counter() - started
            session.load_record_fn = lambda attempt: records_of.endpoint_load_record(session, attempt, load_s)
            return session
        except BaseException:
            server.stop()
            raise


ENGINE = VllmEngine()
