"""The agreement stage: a reference rung's next-token distributions, and each variant's against them.

Both are fed the same token ids (teacher forcing), as `llama-perplexity --kl-divergence` does: the
bundled corpus cut into CHUNK-token chunks (BOS first where the tokenizer adds one), the second half
of each chunk scored; then, where a prompt suite ran, each of the reference's own answers after its
rendered prompt, every answer token scored. The reference writes its distributions to the run folder
once; a variant reads them, checks that its tokenizer maps the same ids to the same tokens, and
records how far its own distributions are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sizebench.engines.base import NextTokens
from sizebench.measurement import divergence
from sizebench.planning.references import references
from sizebench.planning.plan import RunPlan
from sizebench.system import atomic
from sizebench.runstore.records import AgreementRecord, AgreementSkipRecord, DistributionsRecord
from sizebench.runstore.store import current
from sizebench.stages.stage import Context, Stage, scored
from sizebench.stages.suites import load_suite

CORPUS = Path(__file__).parent / "corpus" / "python-reference.txt"
CHUNK = 512  # llama-perplexity's default context; its second half is scored
MAX_CHUNKS = 8  # as llama-perplexity's --chunks: 4,096 tokens fed, 2,040 scored (the corpus holds about 14 chunks)
TEXTS = ("corpus", "answers")
BLOCK = 64  # rows reduced at a time: float64 log-probabilities of 64 x 262k ids are 128 MiB


@dataclass(frozen=True)
class Sequence:
    text: str  # which text set
    ids: list[int]
    first: int  # the first position whose next token is scored


def sequences(session: NextTokens, answers: list[tuple[object, str]], corpus: str | None = None) -> list[Sequence]:
    """The corpus chunks, then each (prompt, answer) of the reference, in the reference's tokens."""
    ids = session.text_ids(CORPUS.read_text(encoding="utf-8") if corpus is None else corpus)
    begin = session.begin_ids()
    chunk = min(CHUNK, session.context_window() or CHUNK)  # a model trained on shorter texts: its window
    body = chunk - len(begin)
    out = [Sequence("corpus", begin + ids[i : i + body], chunk // 2) for i in range(0, len(ids) - body + 1, body)][
        :MAX_CHUNKS
    ]
    for prompt, answer in answers:
        prompt_ids, answer_ids = session.prompt_ids(session.render(prompt)), session.text_ids(answer)
        if prompt_ids and answer_ids:
            out.append(Sequence("answers", prompt_ids + answer_ids, len(prompt_ids) - 1))
    return out


def vocab_sha256(vocab: list[str], size: int) -> str:
    """Of the id -> token map, SentencePiece's space mark read as a space: Gemma's GGUF spells its
    whitespace-run tokens with spaces where transformers' tokenizer has "▁" (30 ids, the same tokens)."""
    tokens = [t.replace("\u2581", " ") for t in vocab[:size]]
    return hashlib.sha256(json.dumps(tokens, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Stored:
    """A reference's file: the sequences it was fed and its compact distributions, row per scored token."""

    sequences: list[Sequence]
    compact: divergence.Compact
    vocab: int
    vocab_sha256: str
    top_k: int

    def save(self, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(s.ids) for s in self.sequences], dtype=np.int64)
        arrays = {f: getattr(self.compact, f) for f in divergence.Compact.__dataclass_fields__}
        with atomic.replacing(path) as tmp:
            with tmp.open("wb") as handle:
                np.savez_compressed(
                    handle,
                    ids=np.concatenate([s.ids for s in self.sequences]).astype(np.int32),
                    lengths=lengths,
                    firsts=np.array([s.first for s in self.sequences], dtype=np.int64),
                    texts=np.array([TEXTS.index(s.text) for s in self.sequences], dtype=np.int8),
                    meta=np.array(
                        json.dumps({"vocab": self.vocab, "vocab_sha256": self.vocab_sha256, "top_k": self.top_k})
                    ),
                    **arrays,
                )
        return path.stat().st_size

    @classmethod
    def load(cls, path: Path) -> "Stored":
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            bounds = np.cumsum(np.concatenate([[0], z["lengths"]]))
            ids = z["ids"].tolist()
            seqs = [
                Sequence(TEXTS[t], ids[a:b], int(f))
                for a, b, f, t in zip(bounds[:-1], bounds[1:], z["firsts"], z["texts"], strict=True)
            ]
            compact = divergence.Compact(*(z[f] for f in divergence.Compact.__dataclass_fields__))
        return cls(seqs, compact, meta["vocab"], meta["vocab_sha256"], meta["top_k"])

    def rows_of(self, text: str) -> np.ndarray:
        """Which rows of `compact` belong to the text set."""
        mask = [np.full(len(s.ids) - 1 - s.first, s.text == text) for s in self.sequences]
        return np.concatenate(mask) if mask else np.zeros(0, bool)

    def sequence_of_rows(self) -> np.ndarray:
        """The sequence (corpus chunk or answer) each row of `compact` was scored in."""
        parts = [np.full(len(s.ids) - 1 - s.first, i) for i, s in enumerate(self.sequences)]
        return np.concatenate(parts) if parts else np.zeros(0, int)


def reference_distributions(session: NextTokens, seqs: list[Sequence], vocab_map: list[str] | None = None) -> Stored:
    vocab_map = session.vocabulary() if vocab_map is None else vocab_map
    parts, size = [], None
    for s in seqs:
        logits = session.next_token_logits(s.ids, s.first)
        size = min(len(vocab_map), logits.shape[1]) if size is None else size
        nexts = np.asarray(s.ids[s.first + 1 :])
        parts += [
            divergence.compact(logits[lo : lo + BLOCK], nexts[lo : lo + BLOCK], size, divergence.TOP_K)
            for lo in range(0, len(logits), BLOCK)
        ]
    return Stored(
        seqs, divergence.Compact.concat(parts), size, vocab_sha256(vocab_map, size), min(divergence.TOP_K, size)
    )


def mismatch(stored: Stored, vocab_map: list[str] | None) -> str | None:
    """Why a variant with this vocabulary (None: a session without NextTokens) cannot be compared, or None."""
    if vocab_map is None:
        return "its engine gives no next-token distributions"
    if len(vocab_map) < stored.vocab or vocab_sha256(vocab_map, stored.vocab) != stored.vocab_sha256:
        return (
            f"its tokenizer ({len(vocab_map):,} tokens) does not map the reference's {stored.vocab:,} ids "
            "to the same tokens"
        )
    return None


def variant_figures(session: NextTokens, stored: Stored) -> dict[str, divergence.Summary]:
    """Per text set, the variant's distributions on the stored sequences against the reference's; one
    sequence's rows at a time (262k-wide rows, as Gemma's, do not all fit in memory)."""
    per, start = [], 0
    for s in stored.sequences:
        logits = session.next_token_logits(s.ids, s.first)
        if logits.shape[1] < stored.vocab:
            raise ValueError(f"{logits.shape[1]:,} logit rows, fewer than the reference's {stored.vocab:,} ids")
        for lo in range(0, len(logits), BLOCK):
            block = logits[lo : lo + BLOCK]
            rows = slice(start, start + len(block))
            start = rows.stop
            part = divergence.Compact(
                *(getattr(stored.compact, f)[rows] for f in divergence.Compact.__dataclass_fields__)
            )
            per.append(divergence.per_token(part, block, stored.vocab))
    fields = divergence.PerToken.__dataclass_fields__
    tokens = divergence.PerToken(*(np.concatenate([getattr(p, f) for p in per]) for f in fields))
    out = {}
    for text in TEXTS:
        rows = stored.rows_of(text)
        if rows.any():
            out[text] = divergence.summarise(
                divergence.PerToken(*(getattr(tokens, f)[rows] for f in fields)), stored.sequence_of_rows()[rows]
            )
    return out


def run(session, plan: dict, run_dir: Path, answers: list[tuple[object, str]], emit: Callable, attempt: str) -> None:
    """plan: {"reference": NAME, "file": path in the run folder}; this rung is the reference when it is NAME."""
    name, reference = session.spec.name, plan["reference"]
    path = run_dir / plan["file"]
    vocab_map = session.vocabulary() if isinstance(session, NextTokens) else None
    if name == reference:
        if vocab_map is None:
            emit(
                AgreementSkipRecord(
                    name,
                    attempt,
                    reference,
                    "the reference's engine gives no next-token distributions: no agreement figures in this run",
                )
            )
            return
        stored = reference_distributions(session, sequences(session, answers), vocab_map)
        size = stored.save(path)
        counts = {t: n for t in TEXTS if (n := int(stored.rows_of(t).sum()))}
        emit(
            DistributionsRecord(
                name,
                attempt,
                plan["file"],
                counts,
                stored.top_k,
                stored.vocab,
                stored.vocab_sha256,
                size,
                CHUNK,
                MAX_CHUNKS,
                divergence.TOP_K,
            )
        )
        return
    if not path.exists():
        emit(
            AgreementSkipRecord(
                name,
                attempt,
                reference,
                f"the reference {reference} stored no distributions (it failed, was unavailable or was not run)",
            )
        )
        return
    stored = Stored.load(path)
    reason = mismatch(stored, vocab_map)
    if reason:
        emit(AgreementSkipRecord(name, attempt, reference, f"not compared with {reference}: {reason}"))
        return
    for text, s in variant_figures(session, stored).items():
        emit(
            AgreementRecord(
                name,
                attempt,
                reference,
                text,
                s.tokens,
                s.kld_mean,
                s.kld_stderr,
                s.kld_median,
                s.kld_p90,
                s.kld_p99,
                s.kld_max,
                s.same_top,
                s.ppl_ratio,
                s.ln_ppl_ratio_stderr,
                s.rms_dp,
                s.mean_dp,
                stored.top_k,
                s.units,
            )
        )


def own_answers(ctx: Context) -> list:
    """(prompt, answer) of this model's finished prompt stage, in suite order; none without a suite."""
    if not ctx.job.prompts_path:
        return []
    answers = {r["prompt_id"]: r["answer"] for r in current(ctx.store.records(), "prompt", ctx.model)}
    return [(p, answers[p.id]) for p in load_suite(ctx.job.prompts_path).prompts if answers.get(p.id)]


def _run(ctx: Context) -> None:
    run(ctx.loaded, ctx.job.agreement, Path(ctx.job.run_dir), own_answers(ctx), ctx.store.append, ctx.attempt)


def _wanted(plan: RunPlan) -> bool:
    """Two rungs that share a tokenizer (or a --reference), with real weights."""
    return scored(plan) and (plan.reference is not None or bool(references(plan.models, plan.dtype)))


def _check(plan: RunPlan) -> None:
    references(plan.models, plan.dtype, plan.reference)  # a --reference outside the run: one line


STAGE = Stage("agreement", _run, wanted=_wanted, check=_check)
