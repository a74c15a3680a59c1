"""The transformers engine: safetensors and PyTorch checkpoints (GGUF dequantized once), precisions as `@TYPE`."""

from __future__ import annotations

from pathlib import Path

from sizebench.engines.base import Engine, ray_request
from sizebench.engines.hf import precision
from sizebench.specs.models import LOCAL_DIR, RANDOM


class TransformersEngine(Engine):
    name = "transformers"
    reference_implementation = True
    builds_random_weights = True

    def types(self) -> dict[str, str]:
        return {name: p.label for name, p in precision.PRECISIONS.items()}

    def canonical_type(self, text: str) -> str | None:
        return precision.canonical(text, text) if precision.is_precision(text) else None

    def check(self, spec, device: str) -> None:
        precision.check(spec.name, spec.precision, device)
        if spec.source == LOCAL_DIR:  # a config at hand: its layers are checked now, the others' at load
            precision.check_layout(spec.name, spec.precision, device, Path(spec.location))

    def resources(self, spec, device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        """GPUs (enough to shard the model) when the run is on GPU, else RAM."""
        from sizebench.engines.hf.loader import resolve_dtype
        from sizebench.measurement import memory

        wants_gpu = device == "cuda" or (device == "auto" and cluster_gpus > 0)
        # bf16 and fp16 weigh the same: no need to ask this (maybe GPU-less) driver which one the node picks
        run_dtype = precision.run_dtype(
            spec.precision, resolve_dtype(dtype, "cuda" if wants_gpu else "cpu", bf16_supported=True)
        )
        per_param = precision.bytes_per_param(spec.precision, run_dtype) if spec.precision else run_dtype
        needed = memory.required_bytes(spec.params, per_param) if spec.params else 0
        return ray_request(needed, device, cluster_gpus, gpu_bytes)

    def nominal_bits(self, spec, dtype: str) -> float:
        """The run dtype's bits (float32 where auto: the CPU's, and a GGUF dequantized), or the quantized bits."""
        return 8 * precision.bytes_per_param(spec.precision, "float32" if dtype == "auto" else dtype)

    def load(self, spec, settings):
        import torch

        from sizebench.engines.hf import loader

        if settings.threads:
            torch.set_num_threads(settings.threads)
        if spec.weights == RANDOM:
            from sizebench.engines.hf import random_weights

            return random_weights.load(spec, settings.device, settings.dtype, settings.force, settings.offload)
        return loader.load(
            spec, settings.device, settings.dtype, settings.force, settings.offload, settings.hub_kernels
        )


ENGINE = TransformersEngine()
