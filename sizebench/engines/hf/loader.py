"""The transformers session: a registry entry in, a ready model and tokenizer out, with what the load cost."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sizebench.engines import formats
from sizebench.engines.base import Batching, Generation, NextTokens, Session
from sizebench.engines.hf import decoding, footprint, placement, precision, prompting, scoring
from sizebench.errors import MemoryGuardError, SizebenchError
from sizebench.measurement import measure, memory
from sizebench.measurement.measure import resolve_device
from sizebench.specs.models import RANDOM, ModelSpec, known_config
from sizebench.runstore.records import LoadRecord
from sizebench.weights import sources

# lm-eval's auto batch size picks 64 on CPU: measured on gemma3-270m (262k vocab), 1.9x slower than 8
# with 2.5x the memory, the logits of a wide batch churning the allocator. On GPU auto stays auto.
CPU_AUTO_BATCH = 8


@dataclass
class Loaded(Session, NextTokens, Batching):
    model: Any
    tokenizer: Any
    spec: ModelSpec
    device: str
    dtype: str
    params: int  # total, measured on the loaded model
    n_devices: int
    load_s: float  # from_pretrained of model and tokenizer, weights already on disk
    import_s: float  # importing the model's Python class first: a per-process cost, kept out of load_s
    located: sources.Located
    prompt_format: str
    reusable: dict = field(default_factory=dict)  # per-model helpers built once (stop criteria)
    params_non_embedding: int | None = None
    offloaded: bool = False  # some layers in CPU RAM (accelerate offload)
    offload_cpu_gib: float | None = None  # GiB of weights placed on the CPU when offloaded
    hub_kernels: bool = False  # transformers' Hub kernels were asked for (--hub-kernels)
    decoder: decoding.Decoder = field(default_factory=lambda: decoding.Decoder("eager"))  # set by prepare_decode
    tokenizer_name: str | None = None  # a random-weight rung's: the model's own, or the stand-in's name

    def load_record(self, attempt: str) -> LoadRecord:
        import torch

        spec, located = self.spec, self.located
        held = footprint.weight_bytes(self.model)
        variant = precision.get(spec.precision)
        return LoadRecord(
            model=spec.name,
            attempt=attempt,
            family=spec.family,
            source=spec.source,
            params=self.params,
            weights_mb=located.weights_bytes / 2**20,
            weights_mem_mb=held / 2**20,
            precision=spec.precision,
            precision_label=variant.label if variant else None,
            bytes_per_param=held / self.params if self.params else None,
            quantization=spec.quantization,
            convert_s=located.convert_s,
            load_s=self.load_s,
            dtype=self.dtype,
            load_kind="random" if spec.weights == RANDOM else "cold" if located.convert_s is not None else "cached",
            device=self.device,
            n_devices=self.n_devices,
            threads=torch.get_num_threads(),
            prompt_format=self.prompt_format,
            peak_rss_mb=measure.peak_rss_mb(),
            cuda_peak_mb=self.cuda_peak_mb(),
            import_s=self.import_s,
            params_non_embedding=self.params_non_embedding,
            offloaded=self.offloaded,
            offload_cpu_gib=self.offload_cpu_gib,
            engine=spec.engine,
            hub_kernels=self.hub_kernels,
            weights=spec.weights,
            tokenizer=self.tokenizer_name,
        )

    def sync(self) -> None:
        measure.sync(self.device)

    def reset_cuda_peak(self) -> None:
        measure.reset_cuda_peak(self.device)

    def cuda_peak_mb(self) -> float | None:
        return measure.cuda_peak_mb(self.device)

    def render(self, prompt) -> formats.Rendered:
        return formats.render(self.prompt_format, prompt.text, prompt.context, self.tokenizer)

    def prompt_tokens(self, rendered: formats.Rendered) -> int:
        return prompting.prompt_tokens(self, rendered)

    def context_window(self) -> int | None:
        return prompting.context_window(self)

    def generate(self, rendered, settings, max_new_tokens=None, meter=None) -> Generation:
        return prompting.generate_once(self, rendered, settings, max_new_tokens, meter)

    def prepare_decode(self, rendered, settings) -> None:
        prompting.prepare_decode(self, rendered, settings)

    def decode_record(self, attempt: str, warmup_s: float):
        return prompting.decode_record(self, attempt, warmup_s)

    def batched_throughput(self, prompts, settings, attempt, single):
        return prompting.batched_throughput(self, prompts, settings, attempt, single)

    def vocabulary(self) -> list[str]:
        return scoring.vocabulary(self.tokenizer)

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def begin_ids(self) -> list[int]:
        return scoring.begin_ids(self.tokenizer)

    def prompt_ids(self, rendered: formats.Rendered) -> list[int]:
        return self.tokenizer(rendered.text, add_special_tokens=rendered.add_special_tokens)["input_ids"]

    def next_token_logits(self, ids: list[int], first: int):
        return scoring.next_token_logits(self.model, ids, first)

    def lm(self, batch_size: str):
        from sizebench.engines.hf.fast_lm import SizebenchLM  # HFLM with a faster log-likelihood path, same numbers

        if batch_size == "auto" and self.model.device.type == "cpu":
            batch_size = str(CPU_AUTO_BATCH)
        return SizebenchLM(
            pretrained=self.model, tokenizer=self.tokenizer, batch_size=batch_size, max_batch_size=64
        ), batch_size


def resolve_dtype(requested: str, device: str, bf16_supported: bool | None = None) -> str:
    """auto: float32 on CPU; on GPU bfloat16 where the GPU supports it, else float16 (T4, V100)."""
    if requested != "auto":
        return requested
    if device != "cuda":
        return "float32"
    if bf16_supported is None:
        import torch

        bf16_supported = not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    return "bfloat16" if bf16_supported else "float16"


def count_params(model) -> tuple[int, int]:
    """(total, non-embedding) parameter counts of a loaded model.

    total counts every parameter once (a tied output embedding is the input embedding's tensor);
    non-embedding = total minus the input embedding minus the output embedding when it is not tied,
    Pythia's definition (its published 2.8b/6.9b/12b sizes are non-embedding counts).
    """
    total = footprint.parameter_count(model)  # bitsandbytes' 4-bit numel() is half the count
    inp = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embedding = inp.weight.numel() if inp is not None else 0
    if out is not None and inp is not None and out.weight is not inp.weight:
        embedding += out.weight.numel()
    return total, total - embedding


def estimate_params(spec: ModelSpec, located: sources.Located) -> int:
    """Published count if known, else weights bytes / bytes per stored value (4-bit for GGUF)."""
    if spec.params:
        return spec.params
    if located.gguf_path is not None:
        return located.weights_bytes * 2
    stored = _config(located.path).get("torch_dtype") or _config(located.path).get("dtype") or "float32"
    return located.weights_bytes // memory.DTYPE_BYTES.get(stored, 4)


def embedding_share(folder: Path, params: int) -> float:
    """Share of the parameters in the input (and untied output) embeddings, which quantizers leave alone."""
    config = _config(folder)
    config = config.get("text_config", config)
    vocab, hidden = config.get("vocab_size"), config.get("hidden_size")
    if not (vocab and hidden and params):
        return 0.0
    tables = 1 if config.get("tie_word_embeddings", True) else 2
    return min(1.0, vocab * hidden * tables / params)


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def refuse_remote_code(spec: ModelSpec, folder: Path) -> None:
    """sizebench never sets trust_remote_code: name the model whose config asks for custom code."""
    from transformers import CONFIG_MAPPING

    config = _config(folder)
    if "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING:
        raise SizebenchError(
            f"{spec.name}: needs trust_remote_code (model type '{config.get('model_type')}' is defined by "
            "code in the model repository); sizebench never runs remote code"
        )


def load(
    spec: ModelSpec,
    device: str = "auto",
    dtype: str = "auto",
    force: bool = False,
    offload: bool = True,
    hub_kernels: bool = False,
) -> Loaded:
    """hub_kernels: let transformers replace layers by kernels fetched from the Hub (its default since 5.25,
    which fails offline and runs code nobody chose); sizebench asks for them only when the user does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = precision.run_dtype(spec.precision, resolve_dtype(spec.dtype if dtype == "auto" else dtype, device))
    precision.check(spec.name, spec.precision, device)

    def guard(params: int, embedding_share: float = 0.0, config: dict | None = None) -> placement.Placement | None:
        if (
            device != "cuda"
        ):  # a variant (name@int8) plans with its own bytes per parameter; a plain run with its dtype's
            per_param = precision.bytes_per_param(spec.precision, dtype, embedding_share) if spec.precision else dtype
            memory.check_fits(spec.name, params, per_param, device, memory.available_bytes(device), force)
            return None
        if not config or "model_type" not in config:
            return None  # placed once the config is at hand
        placed = placement.place(
            config, dtype, memory.gpu_free_bytes(), memory.ram_free_bytes(), spec.precision, offload, spec.name
        )
        if placed.kind == "refuse":
            if not force:
                raise MemoryGuardError(placed.reason)
            placed = placement.Placement("shard", "auto")  # --force: accelerate places what it can
        return placed

    # With a published count or a known architecture, refuse before a download or conversion that could not
    # be used anyway (for a variant, quantized embeddings assumed: a lower bound); otherwise, and again for a
    # variant once the config tells the embeddings' share, when the weights are located. On GPU the
    # placement of every layer comes from the config as located.
    placed = guard(spec.params, config=known_config(spec)) if spec.params else None
    located = sources.locate(spec)
    refuse_remote_code(spec, located.path)
    precision.check_layout(spec.name, spec.precision, device, located.path)
    if device == "cuda":
        placed = guard(0, config=_config(located.path)) or placement.Placement("shard", "auto")
    elif not spec.params or spec.precision:
        params = estimate_params(spec, located)
        guard(params, embedding_share(located.path, params))

    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "trust_remote_code": False, "use_kernels": hub_kernels}
    if (quantization := precision.quantization_config(spec.precision)) is not None:
        kwargs["quantization_config"] = quantization
    if placed is not None:
        kwargs.update(placed.from_pretrained_kwargs())
    import_s = import_model_class(located.path)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(located.path, trust_remote_code=False)
    try:
        model = AutoModelForCausalLM.from_pretrained(located.path, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise SizebenchError(f"{spec.name}: needs trust_remote_code; sizebench never runs remote code") from exc
        raise
    model.eval()
    if device == "cuda":
        torch.cuda.synchronize()
    load_s = time.perf_counter() - started

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device_map = getattr(model, "hf_device_map", None) or {"": device}
    tensors = [*model.named_parameters(), *model.named_buffers()]
    on_cpu = (
        memory.offloaded_bytes({n: t.numel() * t.element_size() for n, t in tensors}, device_map)
        if device == "cuda"
        else 0
    )
    devices = {d for d in device_map.values() if d not in ("cpu", "disk")} if device == "cuda" else {device}
    total, non_embedding = count_params(model)
    return Loaded(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        device=device,
        dtype=dtype,
        params=total,
        n_devices=max(len(devices), 1),
        load_s=load_s,
        import_s=import_s,
        located=located,
        prompt_format=formats.pick(spec, tokenizer),
        params_non_embedding=non_embedding,
        offloaded=on_cpu > 0,
        offload_cpu_gib=on_cpu / 2**30 if on_cpu else None,
        hub_kernels=hub_kernels,
    )


def import_model_class(folder: Path) -> float:
    """Import the architecture's module (1.8 s for Llama here) so load_s times the weights, not Python."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    started = time.perf_counter()
    try:
        MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(folder, trust_remote_code=False))]
    except (KeyError, ValueError, OSError):
        pass  # from_pretrained below reports what is wrong with this folder
    return time.perf_counter() - started
