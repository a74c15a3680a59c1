"""`sizebench-hf`: lm-eval's HFLM with a faster log-likelihood path and the same numbers.

HFLM runs every (context, continuation) pair as its own row and projects every position onto the
vocabulary, then keeps only the continuation's positions. Two savings, both in the one method that
does that work (`_loglikelihood_tokens`, causal models only; everything else is HFLM's):

1. Logits only where they are read: the model's own `logits_to_keep` (a boolean mask per row) cuts
   the output projection to the continuation positions. On Gemma 3 (262k-token vocabulary) that
   projection is most of a short request's arithmetic.
2. One row per context: the choices of a multiple-choice item share their context, so they are packed
   into one row, context first and then each choice's tokens, with a 4D attention mask under which a
   choice sees the context and its own earlier tokens only, and position ids that restart after the
   context. The context is run once instead of once per choice.

Packing relies on the model honouring a custom 4D mask (sdpa and eager attention in transformers do).
It is checked once per model instance on the first item that packs: its choices are scored packed and
unpacked, and packing is switched off for that instance if they differ by more than float noise.

Use from sizebench (evaluation.run_tasks), from Python (`import sizebench.engines.hf.fast_lm` then
`simple_evaluate(model="sizebench-hf", ...)`), or from lm-eval's own CLI:
    python -m sizebench.engines.hf.fast_lm run --model sizebench-hf --model_args pretrained=PATH --tasks ...
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

log = logging.getLogger(__name__)
PACKABLE_ATTENTION = ("sdpa", "eager")  # implementations that take a custom 4D mask as it is


@dataclass
class Row:
    """One model input row and the requests it answers."""

    tokens: list[int]
    keep_from: int  # logits are computed for slots keep_from .. len(tokens) - 1
    segments: list[int] | None = None  # packed rows: 0 context, j+1 choice j; None: plain causal row
    positions: list[int] | None = None
    scores: list[tuple[list[int], list[int], list[int]]] = field(default_factory=list)  # (slots, tokens, requests)


def plain_row(context: list[int], continuation: list[int], max_length: int) -> Row:
    """HFLM's own layout: (context + continuation) cut to the window from the left, last token dropped."""
    tokens = (context + continuation)[-(max_length + 1) :][:-1]
    start = len(tokens) - len(continuation)
    return Row(tokens, start, scores=[(list(range(start, len(tokens))), continuation, [])])


def packed_row(context: list[int], continuations: list[list[int]]) -> Row:
    """The context once, then each continuation but its last token; choice j is scored at the context's
    last slot and then at its own slots."""
    tokens, segments, positions = list(context), [0] * len(context), list(range(len(context)))
    row = Row(tokens, len(context) - 1, segments, positions)
    for j, cont in enumerate(continuations):
        start = len(tokens)
        tokens += cont[:-1]
        segments += [j + 1] * (len(cont) - 1)
        positions += range(len(context), len(context) + len(cont) - 1)
        row.scores.append(([len(context) - 1] + list(range(start, len(tokens))), cont, []))
    return row


def pack_mask(rows: list[Row], width: int, dtype: torch.dtype | None, device) -> torch.Tensor:
    """[batch, 1, width, width] mask: causal, and a choice's slots see only the context and themselves.
    Padding slots see the context too, so no softmax row is empty (an empty one gives NaN)."""
    seg = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        seg[i, : len(row.tokens)] = torch.tensor(row.segments)
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = causal & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
    allowed = allowed[:, None].to(device)
    if dtype is None:  # sdpa: a boolean mask, True where attention is allowed
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


@register_model("sizebench-hf")
class SizebenchLM(HFLM):
    """HFLM whose log-likelihood requests compute only the logits they read, one row per shared context."""

    def __init__(self, *args, pack_contexts: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.pack_contexts = pack_contexts
        self.pack_check: dict | None = None  # the one-time packed-vs-unpacked comparison, once run
        self.keeps_logits: bool | None = None  # whether the model's forward takes logits_to_keep

    # ---- the one overridden method --------------------------------------------------------------

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        rows = self._rows(requests)
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        batch_size = self._rows_batch_size(rows, override_bs)
        pbar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="Running loglikelihood requests")
        for packed in (False, True):  # a batch is all plain rows or all packed rows (sliding windows)
            group = sorted((r for r in rows if (r.segments is not None) == packed), key=lambda r: -len(r.tokens))
            for i in range(0, len(group), batch_size):
                for (logprob, greedy), ids in self._score(group[i : i + batch_size]):
                    for index in ids:
                        answers[index] = (logprob, greedy)
                        request_str = requests[index][0]
                        if request_str is not None:
                            self.cache_hook.add_partial("loglikelihood", request_str, (logprob, greedy))
                        pbar.update(1)
        pbar.close()
        return answers

    # ---- layout ---------------------------------------------------------------------------------

    def _pack_limit(self) -> int:
        """Longest packed row: the model's window, and a sliding window's span (the mask is full-causal)."""
        config = self.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        window = getattr(text, "sliding_window", None) or self.max_length
        return min(self.max_length, window)

    def _can_pack(self) -> bool:
        impl = getattr(self.model.config, "_attn_implementation", None)
        return self.pack_contexts and impl in PACKABLE_ATTENTION and (self.pack_check or {}).get("packing", True)

    def _rows(self, requests) -> list[Row]:
        """Rows answering every request once: identical pairs share a score, shared contexts a row."""
        by_context: dict[tuple, dict[tuple, list[int]]] = {}
        plain: dict[tuple, list[int]] = {}
        limit = self._pack_limit()
        for index, (_, context, continuation) in enumerate(requests):
            assert len(context) > 0 and 0 < len(continuation) <= self.max_length
            if len(context) + len(continuation) - 1 <= limit:
                by_context.setdefault(tuple(context), {}).setdefault(tuple(continuation), []).append(index)
            else:  # longer than a packed row may be: HFLM's layout, truncation included
                plain.setdefault((tuple(context), tuple(continuation)), []).append(index)
        rows = []
        if self._can_pack() and self.pack_check is None:
            self._check_packing(by_context)
        for context, conts in by_context.items():
            if not self._can_pack():
                plain.update({(context, cont): ids for cont, ids in conts.items()})
                continue
            for chunk in self._chunks(len(context), list(conts), limit):
                row = packed_row(list(context), [list(c) for c in chunk])
                for (_, _, ids), cont in zip(row.scores, chunk, strict=True):
                    ids.extend(conts[cont])
                rows.append(row)
        for (context, cont), ids in plain.items():
            row = plain_row(list(context), list(cont), self.max_length)
            row.scores[0][2].extend(ids)
            rows.append(row)
        return rows

    @staticmethod
    def _chunks(context_len: int, conts: list[tuple], limit: int) -> list[list[tuple]]:
        """Continuations grouped so that each packed row stays within `limit` tokens."""
        chunks, current, length = [], [], context_len
        for cont in conts:
            if current and length + len(cont) - 1 > limit:
                chunks.append(current)
                current, length = [], context_len
            current.append(cont)
            length += len(cont) - 1
        return chunks + [current]

    def _check_packing(self, by_context: dict) -> None:
        """Score the first item with a multi-token choice packed and unpacked; keep packing if they agree."""
        item = next(
            ((ctx, conts) for ctx, conts in by_context.items() if len(conts) > 1 and any(len(c) > 1 for c in conts)),
            None,
        )
        if item is None:
            return  # nothing here would pack; check on a later call
        context, conts = item
        cont_list = [list(c) for c in conts][:8]
        packed = [score for score, _ in self._score([packed_row(list(context), cont_list)])]
        plain = [score for score, _ in self._score([plain_row(list(context), c, self.max_length) for c in cont_list])]
        diff = max(abs(a[0] - b[0]) for a, b in zip(packed, plain, strict=True))
        same_greedy = all(a[1] == b[1] for a, b in zip(packed, plain, strict=True))
        scale = max(1.0, *(abs(b[0]) for b in plain))
        tolerance = (1e-4 if self.model.dtype == torch.float32 else 2e-2) * scale
        ok = diff <= tolerance and same_greedy
        self.pack_check = {"packing": ok, "max_abs_diff": diff, "tolerance": tolerance, "choices": len(cont_list)}
        if not ok:
            log.warning(
                "sizebench-hf: packed contexts differ from unpacked by %.3g (> %.3g) on this model; "
                "scoring each choice in its own row",
                diff,
                tolerance,
            )

    # ---- batches --------------------------------------------------------------------------------

    def _rows_batch_size(self, rows: list[Row], override_bs: int | None) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        if override_bs:
            return override_bs
        longest = max(rows, key=lambda r: len(r.tokens), default=None)
        if longest is None:
            return 1
        # HFLM's probe of full-vocabulary logits at every position: it over-estimates what a row costs here
        return self._detect_batch_size([(None, longest.tokens, [0])])

    def _score(self, rows: list[Row]):
        """(log-likelihood, greedy) per scored continuation of these rows, with the requests it answers."""
        width = max(len(r.tokens) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        keep = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, row in enumerate(rows):
            ids[i, : len(row.tokens)] = torch.tensor(row.tokens)
            keep[i, row.keep_from : len(row.tokens)] = True
        kwargs = {}
        if rows[0].segments is not None:
            eager = self.model.config._attn_implementation == "eager"
            kwargs["attention_mask"] = pack_mask(rows, width, self.model.dtype if eager else None, self.device)
            positions = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                positions[i, : len(row.tokens)] = torch.tensor(row.positions)
            kwargs["position_ids"] = positions.to(self.device)
        logprobs = F.log_softmax(
            self._kept_logits(ids.to(self.device), keep.to(self.device), **kwargs), dim=-1, dtype=self.softmax_dtype
        )  # [kept slots of all rows, vocab]
        greedy = logprobs.argmax(dim=-1)
        flat, tokens, owner, out = [], [], [], []
        offset = 0
        for row in rows:
            for slots, cont, requests in row.scores:
                flat += [offset + s - row.keep_from for s in slots]
                tokens += cont
                owner += [len(out)] * len(cont)
                out.append(requests)
            offset += len(row.tokens) - row.keep_from
        flat_t = torch.tensor(flat, device=logprobs.device)
        tokens_t = torch.tensor(tokens, device=logprobs.device)
        owner_t = torch.tensor(owner, device=logprobs.device)
        picked = logprobs[flat_t, tokens_t]
        sums = torch.zeros(len(out), dtype=picked.dtype, device=picked.device).index_add_(0, owner_t, picked)
        misses = torch.zeros(len(out), dtype=torch.long, device=picked.device).index_add_(
            0, owner_t, (greedy[flat_t] != tokens_t).long()
        )
        return [
            ((float(s), bool(m == 0)), requests)
            for s, m, requests in zip(sums.tolist(), misses.tolist(), out, strict=True)
        ]

    def _kept_logits(self, ids: torch.Tensor, keep: torch.Tensor, **kwargs) -> torch.Tensor:
        """The model's logits at the kept slots only, flattened row by row: [kept, vocab]."""
        if self.keeps_logits is None:  # a model class without `logits_to_keep` still works, at full cost
            self.keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            if self.keeps_logits:
                return self.model(input_ids=ids, logits_to_keep=keep, use_cache=False, **kwargs).logits
            return self.model(input_ids=ids, use_cache=False, **kwargs).logits[keep]


if __name__ == "__main__":  # lm-eval's own CLI, with this model class registered
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
