"""`sizebench-llama-cpp`: lm-eval's model API scored in process by llama-cpp-python, on the GGUF as shipped.

The same requests as lm-eval's HFLM, tokenized the same way: TemplateLM's context/continuation split (the
pair encoded together, then cut), BOS added as the GGUF's tokenizer says (what HFLM's tokenizer does by
default, `add_bos_token` overriding it both ways), special-token text parsed as HF parses it.

Scoring (`_loglikelihood_tokens`) asks llama.cpp for logits only where a continuation token is predicted:
a `llama_batch` whose `logits[i]` flag is set at the context's last token and at each continuation token but
the last. A context shared by several continuations (the choices of a multiple-choice item) is decoded once:
its tokens carry one sequence id per continuation, each continuation its own, so one `llama_decode` scores
every choice, and several items share a decode up to `batch_tokens`. That needs a context with several
sequences over one KV buffer (`n_seq_max`, `kv_unified`), which `llama_cpp.Llama` does not open, so this
class opens its own on the Llama's weights (its KV cache costs what the Llama's own does for the same
n_ctx). Measured on the geography tasks (SmolLM2-135M, 2 threads), one decode per ~16 items took 0.4x the
time of decoding each context once and each choice after it with the KV cache trimmed between choices.

llama.cpp's numbers depend on where a token sits in a batch (its CPU kernels differ by batch shape): the
same SmolLM2 Q4_1 sequence scores up to ~0.4 nats apart decoded alone or beside another one. So a request's
log-likelihood can move a little with the requests batched with it; HFLM's float32 numbers do not.

Use from sizebench (pass the Llama the worker loaded: `LlamaCppLM(llm=llm)`), from Python
(`simple_evaluate(model="sizebench-llama-cpp", model_args={"pretrained": "m.gguf"}, ...)` once this module
is imported), or from lm-eval's own CLI with this class registered:
    python -m sizebench.engines.llamacpp.lm run --model sizebench-llama-cpp \
        --model_args pretrained=PATH.gguf,n_ctx=2048,n_threads=2 --tasks ...
"""

from __future__ import annotations

import ctypes
import logging
import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from tqdm import tqdm

log = logging.getLogger(__name__)


@dataclass
class Unit:
    """One prefix and the continuations scored after it, decoded together: the prefix's tokens belong to
    every continuation's sequence, each continuation's tokens (all but its last) to its own."""

    prefix: tuple[int, ...]
    conts: list[tuple[int, ...]] = field(default_factory=list)
    requests: list[list[int]] = field(default_factory=list)  # per continuation, the requests it answers

    def size(self) -> int:
        return len(self.prefix) + sum(len(c) - 1 for c in self.conts)


def window(context: list[int], continuation: list[int], max_length: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """HFLM's input row, (context + continuation) cut to the window from the left and its last token
    dropped, split into the prefix (up to the token that predicts the continuation's first) and the rest."""
    tokens = (context + continuation)[-(max_length + 1) :][:-1]
    prefix_len = len(tokens) - len(continuation) + 1
    return tuple(tokens[:prefix_len]), tuple(continuation)


def plan(requests: list[tuple], max_length: int, max_tokens: int, max_seqs: int) -> list[Unit]:
    """Units answering every request once: identical pairs share a score, identical prefixes a unit; a
    prefix's continuations split over several units where one would pass `max_tokens` or `max_seqs`."""
    by_prefix: dict[tuple, dict[tuple, list[int]]] = {}
    for index, (_, context, continuation) in enumerate(requests):
        if not context or not 0 < len(continuation) <= max_length:
            raise ValueError(
                f"request {index}: {len(context)} context and {len(continuation)} continuation "
                f"tokens (needs a context, and 1 to {max_length} continuation tokens)"
            )
        prefix, cont = window(list(context), list(continuation), max_length)
        by_prefix.setdefault(prefix, {}).setdefault(cont, []).append(index)
    units = []
    for prefix, conts in by_prefix.items():
        unit = Unit(prefix)
        for cont, ids in conts.items():
            grown = unit.size() + len(cont) - 1
            if unit.conts and (grown > max_tokens or len(unit.conts) == max_seqs):
                units.append(unit)
                unit = Unit(prefix)
            unit.conts.append(cont)
            unit.requests.append(ids)
        units.append(unit)
    return units


def fills(units: list[Unit], max_tokens: int, max_seqs: int) -> list[list[Unit]]:
    """Units grouped into KV fills of at most `max_tokens` tokens and `max_seqs` sequences (a unit larger
    than `max_tokens` fills one alone), in order."""
    out, current, tokens, seqs = [], [], 0, 0
    for unit in units:
        if current and (tokens + unit.size() > max_tokens or seqs + len(unit.conts) > max_seqs):
            out.append(current)
            current, tokens, seqs = [], 0, 0
        current.append(unit)
        tokens += unit.size()
        seqs += len(unit.conts)
    return out + ([current] if current else [])


class Entry(NamedTuple):
    """One token of a decode: its sequence ids, and the tokens whose logits are read from its row (None:
    no logits computed at all; () the argmax only)."""

    token: int
    pos: int
    seqs: tuple[int, ...]
    targets: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Read:
    """What is kept of one row of logits: its log-sum-exp (float64), its argmax and the targets' logits."""

    lse: float
    argmax: int
    logits: dict[int, float]

    @classmethod
    def of(cls, row: np.ndarray, targets: tuple[int, ...]) -> "Read":
        if not targets:  # greedy decoding: the argmax alone
            return cls(float("nan"), int(row.argmax()), {})
        peak = float(row.max())
        lse = peak + float(np.log(np.exp(row - peak).sum(dtype=np.float64)))  # float32 exp: 2.4x faster, 1e-8 apart
        return cls(lse, int(row.argmax()), {t: float(row[t]) for t in targets})


@register_model("sizebench-llama-cpp")
class LlamaCppLM(TemplateLM):
    """lm-eval's loglikelihood, loglikelihood_rolling and generate_until on a llama.cpp model, in process."""

    def __init__(
        self,
        pretrained: str | None = None,
        *,
        llm=None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        add_bos_token: bool | None = None,
        prefix_token_id: int | None = None,
        max_gen_toks: int = 256,
        batch_tokens: int = 512,
        max_seqs: int = 64,
        batch_size=None,
        max_batch_size=None,
        device=None,
        verbose: bool = False,
    ):
        """Either `llm`, a loaded `llama_cpp.Llama` (its n_ctx, threads and offload are used as loaded), or
        `pretrained`, a .gguf path loaded here with n_ctx, n_threads and n_gpu_layers.

        add_bos_token: None prepends BOS where the GGUF's tokenizer does (HFLM's default, its tokenizer's
          own choice); True/False force it, as HFLM's argument of that name does.
        batch_tokens, max_seqs: how many tokens and sequences one llama_decode takes (several items).
        batch_size, max_batch_size, device: what lm-eval's CLI passes every model; unused here.
        """
        super().__init__()
        import llama_cpp

        if (llm is None) == (pretrained is None):
            raise ValueError("pass either llm (a loaded llama_cpp.Llama) or pretrained (a .gguf path)")
        if llm is None:
            llm = llama_cpp.Llama(
                model_path=str(pretrained),
                n_ctx=int(n_ctx),
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=int(n_gpu_layers),
                verbose=verbose,
            )
        self.llm = llm
        self.pretrained = str(pretrained) if pretrained is not None else getattr(llm, "model_path", None)
        self.add_bos_token = add_bos_token
        self.custom_prefix_token_id = prefix_token_id
        self._max_gen_toks = int(max_gen_toks)
        self._warned_sampling = False
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.vocab_adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        n_ctx_here = llm.n_ctx()
        self.batch_tokens = max(1, min(int(batch_tokens), n_ctx_here))
        # llama.cpp aborts the process opening a context with more sequences than batch tokens
        self.max_seqs = max(1, min(int(max_seqs), llama_cpp.llama_max_parallel_sequences(), self.batch_tokens))
        self._open_context(llama_cpp, n_ctx_here)
        self._prefix_text = self.tok_decode([self.prefix_token_id], skip_special_tokens=False)

    def _open_context(self, llama_cpp, n_ctx: int) -> None:
        """A context on the Llama's weights with several sequences over one KV buffer, and a batch for it."""
        params = llama_cpp.llama_context_params.from_buffer_copy(self.llm.context_params)  # threads, offload, ...
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = self.batch_tokens
        params.n_seq_max = self.max_seqs
        params.kv_unified = True  # a context's tokens sit in several sequences at once
        params.embeddings = False
        ctx = llama_cpp.llama_init_from_model(self.llm._model.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not open a scoring context on this model")
        batch = llama_cpp.llama_batch_init(self.batch_tokens, 0, self.max_seqs)
        self.ctx, self.batch, self.memory = ctx, batch, llama_cpp.llama_get_memory(ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)  # llama.cpp pads the n_ctx asked for to a multiple of 256
        self._lib = llama_cpp
        self._close = weakref.finalize(self, _free, llama_cpp, ctx, batch, self.llm)

    def close(self) -> None:
        """Frees the scoring context now (the Llama itself is the caller's, or freed with it)."""
        self._close()

    # ---- tokens ---------------------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.llm.token_eos()

    @property
    def prefix_token_id(self) -> int:
        if self.custom_prefix_token_id is not None:
            return self.custom_prefix_token_id
        bos = self.llm.token_bos()
        return bos if bos >= 0 else self.eot_token_id

    @property
    def max_length(self) -> int:
        """The window requests are cut to: the context's, or the model's trained one where that is shorter
        (HFLM's max_length is the trained one)."""
        trained = self._lib.llama_model_n_ctx_train(self.llm._model.model)
        return min(self.n_ctx, trained) if trained > 0 else self.n_ctx

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def tokenizer_name(self) -> str:
        return f"llama.cpp:{self.pretrained}"

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kwargs
    ) -> list[int]:
        """HFLM's tok_encode on llama.cpp's tokenizer: special tokens as the tokenizer adds them unless told,
        none when the text already starts with the prefix token; special-token text parsed (HF does)."""
        special = True if add_special_tokens is None else add_special_tokens
        if add_special_tokens is None and string.startswith(self._prefix_text):
            special = False
        tokens = self.llm.tokenize(string.encode("utf-8"), add_bos=special, special=True)
        if special and self.add_bos_token is not None and self.add_bos_token != self.vocab_adds_bos:
            bos = self.llm.token_bos()
            if self.add_bos_token:
                tokens = [bos] + tokens
            elif tokens[:1] == [bos]:
                tokens = tokens[1:]
        return tokens[-left_truncate_len:] if left_truncate_len else tokens

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        tokens = [tokens] if isinstance(tokens, int) else list(tokens)
        array = (self._lib.llama_token * max(1, len(tokens)))(*tokens)
        size = 64 + 16 * len(tokens)
        for _ in range(2):
            text = ctypes.create_string_buffer(size)
            n = self._lib.llama_detokenize(self.vocab, array, len(tokens), text, size, False, not skip_special_tokens)
            if n >= 0:
                return text.raw[:n].decode("utf-8", errors="replace")
            size = -n
        raise RuntimeError("llama.cpp could not detokenize")

    # ---- log-likelihood -------------------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        units = plan(requests, self.max_length, self.max_length, self.max_seqs)
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        pbar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Running loglikelihood requests")
        for fill in fills(units, self.batch_tokens, self.max_seqs):
            for unit, scores in zip(fill, self._score(fill), strict=True):
                for ids, score in zip(unit.requests, scores, strict=True):
                    for index in ids:
                        answers[index] = score
                        if requests[index][0] is not None:
                            self.cache_hook.add_partial("loglikelihood", requests[index][0], score)
                    pbar.update(len(ids))
        pbar.close()
        return answers

    def _score(self, fill: list[Unit]) -> list[list[tuple[float, bool]]]:
        """(log-likelihood, greedy) of each continuation of these units, from one KV fill."""
        entries: list[Entry] = []
        slots = []  # per unit, per continuation: (entry index, token) for each of its tokens
        seq = 0
        for unit in fill:
            seqs = tuple(range(seq, seq + len(unit.conts)))
            seq += len(unit.conts)
            entries += [Entry(t, p, seqs) for p, t in enumerate(unit.prefix[:-1])]
            last = Entry(unit.prefix[-1], len(unit.prefix) - 1, seqs, tuple({c[0] for c in unit.conts}))
            entries.append(last)
            unit_slots = [[(len(entries) - 1, cont[0])] for cont in unit.conts]
            for s, cont, cont_slots in zip(seqs, unit.conts, unit_slots, strict=True):
                for p, target in enumerate(cont[1:]):
                    cont_slots.append((len(entries), target))
                    entries.append(Entry(cont[p], len(unit.prefix) + p, (s,), (target,)))
            slots.append(unit_slots)
        read = self._decode(entries, clear=True)
        out = []
        for unit_slots in slots:
            scores = []
            for cont_slots in unit_slots:
                logprob = sum(read[i].logits[t] - read[i].lse for i, t in cont_slots)
                scores.append((float(logprob), all(read[i].argmax == t for i, t in cont_slots)))
            out.append(scores)
        return out

    def _decode(self, entries: list[Entry], clear: bool) -> dict[int, Read]:
        """Run the entries through llama_decode in order, batch_tokens at a time (after emptying the KV cache
        if `clear`); what was read from each row of logits asked for, by entry index. Rows are reduced as they
        come: a decode overwrites the previous one's logits, and 262k-wide rows (Gemma) are not kept."""
        lib, batch = self._lib, self.batch
        if clear:
            lib.llama_memory_clear(self.memory, True)
        read = {}
        for start in range(0, len(entries), self.batch_tokens):
            chunk = entries[start : start + self.batch_tokens]
            batch.n_tokens = len(chunk)
            for i, entry in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = entry.token, entry.pos, len(entry.seqs)
                batch.logits[i] = entry.targets is not None
                for j, s in enumerate(entry.seqs):
                    batch.seq_id[i][j] = s
            status = lib.llama_decode(self.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} on {len(chunk)} tokens")
            for i, entry in enumerate(chunk):
                if entry.targets is not None:
                    row = np.ctypeslib.as_array(lib.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))
                    read[start + i] = Read.of(row, entry.targets)
        return read

    def logit_rows(self, tokens: list[int], first: int) -> np.ndarray:
        """Raw logits at positions first .. len(tokens) - 2 of one sequence, in an emptied KV cache."""
        lib, batch = self._lib, self.batch
        lib.llama_memory_clear(self.memory, True)
        fed = tokens[:-1]
        rows = np.empty((len(fed) - first, self.n_vocab), dtype=np.float32)
        for start in range(0, len(fed), self.batch_tokens):
            chunk = fed[start : start + self.batch_tokens]
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                pos = start + i
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = pos >= first
            status = lib.llama_decode(self.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status} on {len(chunk)} tokens")
            for i in range(len(chunk)):
                if start + i >= first:
                    rows[start + i - first] = np.ctypeslib.as_array(
                        lib.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)
                    )
        return rows

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """HFLM's rolling windows (disjoint, max_length each, the prefix token first), summed per text."""
        from lm_eval import utils

        windows, owners = [], []
        for index, (string,) in enumerate(tqdm([r.args for r in requests], disable=disable_tqdm or self.rank != 0)):
            for context, continuation in map(
                utils.make_disjoint_window,
                utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append((None, context, continuation))
                owners.append(index)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows, disable_tqdm=True), strict=True):
            totals[owner] += logprob
        for request, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    # ---- generation -----------------------------------------------------------------------------

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding, one request at a time, until a stop string, an end-of-generation token or
        max_gen_toks; the text is cut at the first stop string, as HFLM cuts it."""
        from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

        eos = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        out = []
        for request in tqdm(requests, disable=disable_tqdm or self.rank != 0, desc="Running generate_until requests"):
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen = kwargs.pop("max_gen_toks")
            if kwargs.get("do_sample") and not self._warned_sampling:
                log.warning("sizebench-llama-cpp decodes greedily; do_sample=True is ignored")
                self._warned_sampling = True
            if max_gen >= self.max_length:
                raise ValueError(f"max_gen_toks {max_gen} leaves no room for a context in n_ctx {self.max_length}")
            tokens = self.tok_encode(context, left_truncate_len=self.max_length - max_gen) or [self.prefix_token_id]
            text = postprocess_generated_text(self.tok_decode(self._greedy(tokens, max_gen, until)), until, None)
            self.cache_hook.add_partial("generate_until", request.args, text)
            out.append(text)
        return out

    def _greedy(self, tokens: list[int], max_new: int, until: list[str]) -> list[int]:
        """Greedy continuation of `tokens`: at most max_new tokens, stopping after the one that completes a
        stop string and before an end-of-generation token."""
        entries = [Entry(t, p, (0,), () if p == len(tokens) - 1 else None) for p, t in enumerate(tokens)]
        new: list[int] = []
        clear = True
        while len(new) < max_new:
            token = self._decode(entries, clear=clear)[len(entries) - 1].argmax
            if self._lib.llama_vocab_is_eog(self.vocab, token):
                break
            new.append(token)
            if any(stop and stop in self.tok_decode(new) for stop in until):
                break
            entries, clear = [Entry(token, len(tokens) + len(new) - 1, (0,), ())], False
        return new


def _free(lib, ctx, batch, llm) -> None:
    """Frees the scoring context before the Llama it reads from (`llm` is held here until then)."""
    lib.llama_batch_free(batch)
    lib.llama_free(ctx)


if __name__ == "__main__":  # lm-eval's own CLI, with this model class registered
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
