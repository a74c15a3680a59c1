"""The llama.cpp engine, through llama-cpp-python in the worker process: GGUF files in their own types.

A rung without `@TYPE` runs the GGUF as distributed; `@q8_0` and the other types are made by
llama.cpp's own quantizer from an F32 GGUF of the same weights (sizebench.weights.gguf_requant).
Importing this module is cheap: llama_cpp loads with the model.
"""

from __future__ import annotations

import importlib.util
import os

from sizebench.engines.base import Engine, ray_request
from sizebench.errors import SizebenchError

INSTALL = (
    "the llama.cpp engine needs llama-cpp-python: run `make llama-cpp` (it compiles llama.cpp, "
    "about 7 minutes on 2 cores), or `CMAKE_ARGS=-DLLAVA_BUILD=OFF pip install 'sizebench[llama]'`"
)
# Bits per weight of the types llama.cpp's quantizer makes (sizebench.weights.gguf_requant.TYPES), as
# llama-quantize states them for a 7B Llama: the words `sizebench models` shows, and Ray's memory estimate.
TYPE_BITS = {
    "f32": 32,
    "f16": 16,
    "bf16": 16,
    "q8_0": 8.5,
    "q6_k": 6.56,
    "q5_k_m": 5.69,
    "q5_k_s": 5.54,
    "q5_1": 6.0,
    "q5_0": 5.5,
    "q4_k_m": 4.89,
    "q4_k_s": 4.58,
    "q4_1": 5.0,
    "q4_0": 4.5,
    "q3_k_l": 4.27,
    "q3_k_m": 3.91,
    "q3_k_s": 3.5,
    "q2_k": 2.96,
}


class LlamaCppEngine(Engine):
    name = "llama.cpp"
    runs_gguf = True

    def types(self) -> dict[str, str]:
        from sizebench.weights import gguf_requant

        return {name: f"{TYPE_BITS[name]:g} bits/weight" for name in gguf_requant.TYPES}

    def canonical_type(self, text: str) -> str | None:
        from sizebench.weights import gguf_requant

        return gguf_requant.canonical(text)

    def check(self, spec, device: str) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise SizebenchError(f"{spec.name}: {INSTALL}")
        from sizebench.specs.models import GGUF_FILE, GGUF_PACKAGE

        if spec.source not in (GGUF_FILE, GGUF_PACKAGE):
            from sizebench.weights import hf_to_gguf

            try:
                hf_to_gguf.converter()  # a folder or hub model is converted to GGUF by llama.cpp's own script
            except SizebenchError as exc:
                raise SizebenchError(f"{spec.name}: {exc}") from None
        if device == "cuda":
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                raise SizebenchError(
                    f"{spec.name}: this llama-cpp-python was built without a GPU backend; "
                    "rebuild with CMAKE_ARGS=-DGGML_CUDA=on (README, 'llama.cpp')"
                )

    def resources(self, spec, device: str, dtype: str, cluster_gpus: float, gpu_bytes: float) -> dict:
        """One GPU for the offloaded layers when on GPU; else the weights' bytes of RAM, with the guard's margin."""
        from sizebench.measurement import memory

        bits = TYPE_BITS.get(spec.precision or "", 5.0)  # a shipped GGUF: about Q4_1's 5 bits a weight
        needed = memory.required_bytes(spec.params, bits / 8) if spec.params else 0
        return ray_request(needed, device, cluster_gpus, gpu_bytes)

    def nominal_bits(self, spec, dtype: str) -> float | None:
        shipped = (spec.quantization or "").removeprefix("GGUF ").lower()
        return TYPE_BITS.get(spec.precision or shipped)

    def load(self, spec, settings):
        from sizebench.engines.llamacpp import session

        threads = settings.threads or len(os.sched_getaffinity(0))
        return session.load(spec, settings.device, threads)


ENGINE = LlamaCppEngine()
