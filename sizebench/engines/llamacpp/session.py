"""A GGUF loaded in llama.cpp: prompts rendered as on transformers, generated token by token, timed from the stream.

Prompts get the same text as on transformers (the chat template and special tokens come from the
Hugging Face tokenizer of the same GGUF), llama.cpp's own tokenizer encodes them, and the same stop
strings and decoding settings apply. TTFT is the time to the first streamed token (prefill and its
sampling), decode tok/s the tokens after it over the time after it. Each generation starts from an
empty KV cache, so a repeated prompt is prefilled again, as on transformers.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sizebench.engines import formats
from sizebench.engines.base import Generation, NextTokens, Session
from sizebench.errors import SizebenchError
from sizebench.measurement import measure
from sizebench.specs.models import GGUF_FILE, GGUF_PACKAGE, ModelSpec
from sizebench.runstore.records import LoadRecord
from sizebench.weights import gguf_check, sources

MAX_CONTEXT = 4096  # KV cache allocated: the model's training context or this, whichever is less


def context_tokens(metadata: dict) -> int:
    """The context llama.cpp opens for a GGUF with this metadata, in process or served (llama.cpp-server)."""
    trained = metadata.get(f"{metadata.get('general.architecture')}.context_length") or MAX_CONTEXT
    return min(int(trained), MAX_CONTEXT)


@dataclass
class LlamaCppSession(Session, NextTokens):
    llm: Any
    tokenizer: Any  # transformers' tokenizer of the same GGUF: chat template and special tokens for rendering
    spec: ModelSpec
    device: str
    gguf_path: Path  # the file llama.cpp runs
    source_gguf: Path  # the file as distributed
    type_name: str  # e.g. q8_0, or the shipped file's type
    load_s: float
    convert_s: float | None
    prompt_format: str
    threads: int
    n_gpu_layers: int
    folder: Path | None = None  # the model folder the GGUF was converted from, if it was
    distributed_bytes: int = 0  # the weights as distributed: the GGUF file, or the checkpoint a GGUF was made from
    tensors: list = field(default_factory=list)
    reusable: dict = field(default_factory=dict)

    # ---- what is loaded -------------------------------------------------------------------------

    def load_record(self, attempt: str) -> LoadRecord:
        spec = self.spec
        params = sum(t.elements for t in self.tensors)
        embedding = sum(t.elements for t in self.tensors if t.name in ("token_embd.weight", "output.weight"))
        held = sum(t.nbytes for t in self.tensors)
        kind = f"GGUF {self.type_name.upper()}"
        origin = (
            "the checkpoint converted by convert_hf_to_gguf.py"
            if self.folder
            else f"the distributed {spec.quantization or 'GGUF'} weights"
        )
        if self.gguf_path != self.source_gguf:
            label = f"{kind} (llama.cpp's quantizer, from an F32 GGUF of {origin})"
        else:
            label = f"{kind} ({origin})" if self.folder else f"{kind} as distributed"
        return LoadRecord(
            model=spec.name,
            attempt=attempt,
            family=spec.family,
            source=spec.source,
            params=params,
            weights_mb=self.distributed_bytes / 2**20,
            weights_mem_mb=held / 2**20,
            precision=spec.precision,
            precision_label=label,
            bytes_per_param=held / params if params else None,
            quantization=spec.quantization,
            convert_s=self.convert_s,
            load_s=self.load_s,
            load_kind="cold" if self.convert_s is not None else "cached",
            dtype=self.type_name,
            device=self.device,
            n_devices=1,
            threads=self.threads,
            prompt_format=self.prompt_format,
            peak_rss_mb=measure.peak_rss_mb(),
            cuda_peak_mb=None,
            import_s=None,
            params_non_embedding=params - embedding,
            engine=spec.engine,
            requantized=self.gguf_path != self.source_gguf,
        )

    def resident_weights_mb(self) -> float | None:
        """Resident pages of the memory-mapped GGUF, from /proc/self/smaps (None where it cannot be read)."""
        try:
            text = Path("/proc/self/smaps").read_text()
        except OSError:
            return None
        target, resident, inside = str(self.gguf_path.resolve()), 0, False
        for line in text.splitlines():
            head = line.split(maxsplit=5)
            if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
                inside = len(head) == 6 and head[5] == target
            elif inside and line.startswith("Rss:"):
                resident += int(line.split()[1]) * 1024
        return resident / 2**20 if resident else None

    # ---- prompts ----------------------------------------------------------------------------------

    def render(self, prompt) -> formats.Rendered:
        return formats.render(self.prompt_format, prompt.text, prompt.context, self.tokenizer)

    def encode(self, rendered: formats.Rendered) -> list[int]:
        # special=True: the chat template's special tokens in the text are parsed, as transformers does
        return self.llm.tokenize(rendered.text.encode("utf-8"), add_bos=rendered.add_special_tokens, special=True)

    def prompt_tokens(self, rendered: formats.Rendered) -> int:
        return len(self.encode(rendered))

    def context_window(self) -> int | None:
        return self.llm.n_ctx()

    def stop_ids(self, rendered: formats.Rendered, settings) -> set[int]:
        """End-of-generation tokens, plus stop strings that are one token; without stop_at_eos only the latter."""
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        key = ("eog",)
        if key not in self.reusable:
            self.reusable[key] = {i for i in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)}
        singles = {
            ids[0]
            for s in rendered.stop_strings
            if len(ids := self.llm.tokenize(s.encode(), add_bos=False, special=True)) == 1
        }
        if not settings.stop_at_eos and singles:
            return singles
        return self.reusable[key] | singles

    def generate(self, rendered, settings, max_new_tokens=None, meter=None) -> Generation:
        llm = self.llm
        tokens = self.encode(rendered)
        limit = max_new_tokens or settings.max_new_tokens
        stops = self.stop_ids(rendered, settings)
        sampling = (
            dict(temp=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
            if settings.do_sample
            else dict(temp=0.0, top_p=1.0, top_k=1)
        )
        llm.set_seed(settings.seed)
        llm.reset()  # no KV-cache prefix reuse: every run prefills the whole prompt
        new: list[int] = []
        text = b""
        first = None
        with meter.counting() if meter else contextlib.nullcontext():
            started = time.perf_counter()
            for token in llm.generate(tokens, min_p=0.0, typical_p=1.0, repeat_penalty=1.0, reset=False, **sampling):
                if first is None:
                    first = time.perf_counter() - started
                new.append(token)
                if token in stops or len(new) >= limit:
                    break
                if rendered.stop_strings:
                    text += llm.detokenize([token], prev_tokens=tokens + new[:-1])
                    if any(s.encode() in text for s in rendered.stop_strings):
                        break
            latency = time.perf_counter() - started
        answer = llm.detokenize([t for t in new if t not in stops], prev_tokens=tokens).decode("utf-8", "replace")
        return Generation(
            formats.cut_at_stop(answer, rendered.stop_strings),
            tuple(new),
            len(tokens),
            min(first or latency, latency),
            latency,
        )

    # ---- next-token distributions -----------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        return [llama_cpp.llama_vocab_get_text(vocab, i).decode("utf-8", "replace") for i in range(self.llm.n_vocab())]

    def text_ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def begin_ids(self) -> list[int]:
        return self.llm.tokenize(b"", add_bos=True, special=False)

    def prompt_ids(self, rendered: formats.Rendered) -> list[int]:
        return self.encode(rendered)

    def next_token_logits(self, ids: list[int], first: int):
        from sizebench.engines.llamacpp.lm import LlamaCppLM

        if "scorer" not in self.reusable:
            self.reusable["scorer"] = LlamaCppLM(llm=self.llm)
        return self.reusable["scorer"].logit_rows(ids, first)

    # ---- tasks ------------------------------------------------------------------------------------

    def lm(self, batch_size: str):
        from sizebench.engines.llamacpp.lm import LlamaCppLM

        lm = LlamaCppLM(llm=self.llm)  # several items per llama_decode, up to its batch_tokens
        return lm, f"{lm.batch_tokens} tokens per decode"


def load(spec: ModelSpec, device: str, threads: int) -> LlamaCppSession:
    import llama_cpp

    source, folder, convert_s, distributed = _gguf_of(spec)
    shipped = shipped_type(source)
    path = source
    if spec.precision and spec.precision != shipped:
        from sizebench.weights import gguf_requant

        prepared = gguf_requant.prepare(source, spec.precision)
        path = prepared.path
        convert_s = (convert_s or 0.0) + prepared.convert_s if prepared.convert_s is not None else convert_s
    if device == "auto":
        device = "cuda" if llama_cpp.llama_supports_gpu_offload() and measure.cuda_available() else "cpu"
    n_gpu_layers = -1 if device == "cuda" else 0
    tokenizer = hf_tokenizer(source) if folder is None else _folder_tokenizer(folder)
    metadata, tensors = gguf_check.tables(path)
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        str(path),
        n_ctx=context_tokens(metadata),
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=n_gpu_layers,
        verbose=False,
        logits_all=False,
        n_batch=512,
    )
    load_s = time.perf_counter() - started
    prompt_format = formats.pick(spec, tokenizer)
    return LlamaCppSession(
        llm=llm,
        tokenizer=tokenizer,
        spec=spec,
        device=device,
        gguf_path=path,
        source_gguf=source,
        type_name=spec.precision or shipped,
        distributed_bytes=distributed,
        folder=folder,
        load_s=load_s,
        convert_s=convert_s,
        prompt_format=prompt_format,
        threads=threads,
        n_gpu_layers=n_gpu_layers,
        tensors=tensors,
    )


def _gguf_of(spec: ModelSpec) -> tuple[Path, Path | None, float | None, int]:
    """(the GGUF to start from, the model folder it was converted from or None, seconds converting now,
    bytes distributed). GGUF sources as they are; folders and hub models through llama.cpp's converter."""
    if spec.source in (GGUF_PACKAGE, GGUF_FILE):
        source = sources.package_gguf(spec) if spec.source == GGUF_PACKAGE else Path(spec.location)
        if not source.exists():
            raise SizebenchError(f"{spec.name}: GGUF file {source} does not exist")
        gguf_check.check(source)
        return source, None, None, source.stat().st_size
    from sizebench.weights import hf_to_gguf

    located = sources.locate(spec)  # a hub model not in the cache and offline: unavailable, as on transformers
    converted = hf_to_gguf.convert(located.path, spec.name)
    return converted.path, located.path, converted.convert_s, located.weights_bytes


def _folder_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def shipped_type(path: Path) -> str:
    """The distributed file's type in llama.cpp's spelling (q4_1, q4_k_m): its `general.file_type`, else
    the type most of its weight bytes have."""
    import gguf

    metadata, tensors = gguf_check.tables(path)
    if "general.file_type" in metadata:
        try:
            return (
                gguf.LlamaFileType(metadata["general.file_type"])
                .name.removeprefix("MOSTLY_")
                .removeprefix("ALL_")
                .lower()
            )
        except ValueError:
            pass
    weight = {}
    for t in tensors:
        weight[t.kind] = weight.get(t.kind, 0) + t.nbytes
    return gguf.GGMLQuantizationType(max(weight, key=weight.get)).name.lower() if weight else "gguf"


def hf_tokenizer(gguf: Path):
    """transformers' tokenizer of the GGUF, saved once beside the llama.cpp cache entries (23 s for Gemma's
    262k vocabulary when read from the GGUF, 3 s saved); the safetensors conversion's copy when there is one."""
    from transformers import AutoTokenizer

    converted = sources.gguf_cache_dir(gguf)
    if (converted / "COMPLETE").exists():
        return AutoTokenizer.from_pretrained(converted)
    from sizebench.weights import gguf_requant

    saved = gguf_requant.source_dir(gguf) / "tokenizer"
    saved.parent.mkdir(parents=True, exist_ok=True)
    if (saved / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(saved)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    staging = gguf_requant.staging_name(saved)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(saved)
    except OSError:  # another worker saved it first: theirs is the same tokenizer
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer
