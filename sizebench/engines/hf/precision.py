"""Precisions a model can be held in: torch dtypes, and 8-bit and 4-bit weights through transformers'
`quantization_config` (sizebench picks and measures backends; it does not implement kernels).

Backends, measured here on smollm2-135m's layers (README, "Precision"): torchao's int8 weight-only was
the fastest 8-bit on the CPU; bitsandbytes' nf4 the fastest 4-bit that runs under torch.inference_mode
(optimum-quanto's int4 fails there: "Cannot set version_counter for inference tensor").

`smollm2-135m@int8` names a variant; the registry parses the suffix, this module says what it means,
whether this machine can run it (checked before anything loads), how to load it, and how many bytes per
parameter to plan for. Importing this module is cheap: no torch, no backend.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.measurement.memory import DTYPE_BYTES

# bitsandbytes' packed 4-bit CPU path (0.50, taken on CPUs with AVX512-BF16) groups each quantized layer's
# scales by 64 inputs and packs its outputs 32 rows at a time; other widths crash at the first forward.
NF4_CPU_INPUTS = 64
NF4_CPU_OUTPUTS = 32


@dataclass(frozen=True)
class Precision:
    name: str
    label: str  # what the report shows
    dtype: str | None  # a torch dtype for the whole model; None: the run's dtype for what is not quantized
    backend: str | None  # import name of the quantization library; None for plain dtypes
    package: str | None  # its PyPI name, for the install hint
    weight_bits: int | None  # bits per quantized weight (scales come on top); None for plain dtypes
    devices: tuple[str, ...] = ("cpu", "cuda")


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "float32", "float32", None, None, None),
        Precision("bf16", "bfloat16", "bfloat16", None, None, None),
        Precision("fp16", "float16", "float16", None, None, None),
        Precision("int8", "int8 weight-only (torchao)", None, "torchao", "torchao", 8),
        Precision("nf4", "4-bit nf4 (bitsandbytes)", None, "bitsandbytes", "bitsandbytes", 4),
    )
}
ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "8bit": "int8", "4bit": "nf4", "int4": "nf4"}


def is_precision(text: str) -> bool:
    return text.lower() in PRECISIONS or text.lower() in ALIASES


def canonical(text: str, typed: str) -> str:
    name = ALIASES.get(text.lower(), text.lower())
    if name not in PRECISIONS:
        raise SizebenchError(f"unknown precision '{text}' in '{typed}'; choose one of: {', '.join(PRECISIONS)}")
    return name


def get(name: str | None) -> Precision | None:
    return PRECISIONS[name] if name else None


def check(model: str, precision: str | None, device: str) -> None:
    """A one-line error now for a variant that cannot run here: its backend missing, or the device unfit."""
    p = get(precision)
    if p is None:
        return
    if p.backend and not _installed(p.backend):
        raise SizebenchError(f"{model}: {p.label} needs the {p.package} package: pip install 'sizebench[quant]'")
    if device != "auto" and device not in p.devices:
        raise SizebenchError(f"{model}: {p.label} does not run on {device}; it runs on {', '.join(p.devices)}")
    if device == "cuda" and p.dtype == "bfloat16":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise SizebenchError(f"{model}: this GPU has no bfloat16 support; use @fp16")


def check_layout(model: str, precision: str | None, device: str, folder: Path) -> None:
    """nf4 on CPU: a layer whose widths bitsandbytes' packed CPU path cannot take is one line now, on every CPU,
    not a crash at the first prompt on CPUs that take that path. folder: the model's config.json."""
    if precision != "nf4" or device != "cpu" or not (folder / "config.json").is_file():
        return
    for layer, outputs, inputs in quantized_linears(folder):
        if inputs % NF4_CPU_INPUTS or outputs % NF4_CPU_OUTPUTS:
            raise SizebenchError(
                f"{model}: bitsandbytes' 4-bit CPU kernels need each quantized layer's input width to be a multiple "
                f"of {NF4_CPU_INPUTS} and its output width of {NF4_CPU_OUTPUTS}; {layer} maps {inputs} -> {outputs}. "
                "Use @int8, or a GPU"
            )


def quantized_linears(folder: Path) -> list[tuple[str, int, int]]:
    """(name, out_features, in_features) of the Linear layers a 4-bit load quantizes (all but the output
    embedding), read from the config on torch's meta device: no weights loaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    return [
        (name, m.out_features, m.in_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and m is not head
    ]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package (optimum of optimum.quanto) is missing
        return False


def run_dtype(precision: str | None, requested: str) -> str:
    """The dtype of the loaded model: the precision's own, or the run's (--dtype) for what stays unquantized."""
    p = get(precision)
    return p.dtype if p is not None and p.dtype else requested


def quantization_config(precision: str | None):
    """transformers' quantization_config for a quantized precision, None for a plain dtype."""
    p = get(precision)
    if p is None or p.backend is None:
        return None
    if p.name == "int8":
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(Int8WeightOnlyConfig())
    if p.name == "nf4":
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    raise AssertionError(p.name)


def bytes_per_param(precision: str | None, dtype: str, embedding_share: float = 0.0) -> float:
    """What to plan for before loading: quantized weights at their bits (scales on top are the guard's
    margin's business), embeddings (`embedding_share` of the params, never quantized) at the run dtype."""
    p = get(precision)
    if p is None or p.weight_bits is None:
        return float(DTYPE_BYTES[run_dtype(precision, dtype)])
    return embedding_share * DTYPE_BYTES[dtype] + (1 - embedding_share) * p.weight_bits / 8
