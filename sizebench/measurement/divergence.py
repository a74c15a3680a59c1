"""How far a variant's next-token distributions are from a reference's, as `llama-perplexity --kl-divergence`.

The reference's distributions are kept compact: per scored token its TOP_K most likely ids with their
log-probabilities, the log of the remaining mass, and the log-probability of the token that came next.
KL(reference || variant) is then computed over TOP_K + 1 outcomes (the top ids, and "any other id" with
each side's remaining mass). Merging outcomes never raises a KL divergence (the log-sum inequality), so
this is a lower bound of the exact figure; tests and benchmarks/agreement.py measure the gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

TOP_K = 128  # benchmarks/agreement.py: the stored form's mean KLD is 0.90-0.95 of the exact (top 32: 0.79-0.88)


def bytes_per_token(vocab: int, k: int = TOP_K) -> int:
    """Stored per scored token: k ids (uint16 below 65,536 ids, else int32) and float32 log-probabilities,
    the rest's log-mass, the next token's id and log-probability (before the file's compression)."""
    id_bytes = 2 if vocab <= 2**16 else 4
    return k * (id_bytes + 4) + 4 + id_bytes + 4


@dataclass(frozen=True)
class Compact:
    """A reference's distributions over scored tokens, aligned by row."""

    top_ids: np.ndarray  # (n, k) ids, most likely first
    top_logp: np.ndarray  # (n, k) float32
    rest_logp: np.ndarray  # (n,) float32: log of the mass outside the top k (-inf when none)
    next_ids: np.ndarray  # (n,): the token that followed
    next_logp: np.ndarray  # (n,) float32: the reference's log-probability of it

    def __len__(self) -> int:
        return len(self.next_ids)

    @classmethod
    def concat(cls, parts: list["Compact"]) -> "Compact":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def logprobs(logits: np.ndarray, vocab: int) -> np.ndarray:
    """log-softmax over the first `vocab` ids (rows past the tokenizer's length are padding), in float64."""
    return log_softmax(np.asarray(logits[:, :vocab], dtype=np.float64), axis=1)


@dataclass(frozen=True)
class _Rows:
    """Rows of logits shifted by their maximum, with the exponentials and their float64 sums: a subset's
    mass is its share of the same sum, so the rest's mass (total - top) is exact to float64, however small."""

    z: np.ndarray  # float32, logits - row max
    exp: np.ndarray  # float32
    total: np.ndarray  # float64 sums of exp

    @classmethod
    def of(cls, logits: np.ndarray, vocab: int) -> "_Rows":
        x = np.asarray(logits[:, :vocab], dtype=np.float32)
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        return cls(z, e, e.sum(axis=1, dtype=np.float64))

    def logp(self, ids: np.ndarray) -> np.ndarray:
        """log-probabilities (float64) of ids, one column per id, or one per row for a 1-d array."""
        if ids.ndim == 1:
            return self.z[np.arange(len(ids)), ids].astype(np.float64) - np.log(self.total)
        return np.take_along_axis(self.z, ids, axis=1).astype(np.float64) - np.log(self.total)[:, None]

    def rest_logp(self, top: np.ndarray) -> np.ndarray:
        inside = np.take_along_axis(self.exp, top, axis=1).sum(axis=1, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(self.total - inside, 0.0) / self.total)


def compact(logits: np.ndarray, next_ids: np.ndarray, vocab: int, k: int = TOP_K) -> Compact:
    rows = _Rows.of(logits, vocab)
    k = min(k, vocab)
    top = np.argpartition(-rows.z, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(rows.z, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    ids = np.uint16 if vocab <= 2**16 else np.int32
    next_ids = np.asarray(next_ids, dtype=np.int64)
    return Compact(
        top.astype(ids),
        rows.logp(top).astype(np.float32),
        rows.rest_logp(top).astype(np.float32),
        next_ids.astype(ids),
        rows.logp(next_ids).astype(np.float32),
    )


@dataclass(frozen=True)
class PerToken:
    """What a variant's rows give on the reference's scored tokens, one value per token."""

    kld: np.ndarray  # nats
    same_top: np.ndarray  # bool: the variant's most likely id is the reference's
    next_logp: np.ndarray  # the variant's log-probability of the token that followed
    ref_next_logp: np.ndarray


def per_token(reference: Compact, logits: np.ndarray, vocab: int) -> PerToken:
    """The variant's raw logits (one row per scored token, reference's order) against the stored reference."""
    rows = _Rows.of(logits, vocab)
    top = reference.top_ids.astype(np.int64)
    p_top, q_top = reference.top_logp.astype(np.float64), rows.logp(top)
    kld = (np.exp(p_top) * (p_top - q_top)).sum(axis=1)
    p_rest = reference.rest_logp.astype(np.float64)
    q_rest = np.maximum(rows.rest_logp(top), np.log(np.finfo(np.float64).tiny))  # float32 exp underflow: not 0
    has_rest = np.isfinite(p_rest)
    kld[has_rest] += np.exp(p_rest[has_rest]) * (p_rest[has_rest] - q_rest[has_rest])
    return PerToken(
        np.maximum(kld, 0.0),
        rows.z.argmax(axis=1) == top[:, 0],
        rows.logp(reference.next_ids.astype(np.int64)),
        reference.next_logp.astype(np.float64),
    )


def exact_kld(ref_logits: np.ndarray, logits: np.ndarray, vocab: int) -> np.ndarray:
    """KL(reference || variant) per row over every id: what the compact form approximates."""
    logp, logq = logprobs(ref_logits, vocab), logprobs(logits, vocab)
    return (np.exp(logp) * (logp - logq)).sum(axis=1)


@dataclass(frozen=True)
class Summary:
    tokens: int
    kld_mean: float
    kld_stderr: float | None  # None: one unit, no estimate
    kld_median: float
    kld_p90: float
    kld_p99: float
    kld_max: float
    same_top: float  # share of tokens
    ppl_ratio: float  # PPL(variant) / PPL(reference) on the same tokens
    ln_ppl_ratio_stderr: float | None
    rms_dp: float  # RMS of the change in the probability of the token that followed
    mean_dp: float
    units: int  # the chunks or answers the standard errors cluster by


def clustered_stderr(values: np.ndarray, units: np.ndarray) -> float | None:
    """The standard error of the mean of `values` when the rows of one unit (a chunk, an answer) are not
    independent: statsmodels' cluster-robust variance of the intercept-only regression; None with one unit
    (no estimate; a record holds no NaN)."""
    import statsmodels.api as sm

    if len(np.unique(units)) < 2:
        return None
    fit = sm.OLS(np.asarray(values, float), np.ones(len(values))).fit(cov_type="cluster", cov_kwds={"groups": units})
    return float(fit.bse[0])


def summarise(t: PerToken, units: np.ndarray) -> Summary:
    """units: per token, the sequence (corpus chunk or answer) it was scored in."""
    n = len(t.kld)
    pct = np.percentile(t.kld, [50, 90, 99])
    ln_ratio = t.ref_next_logp - t.next_logp  # mean of it is ln PPL(variant) - ln PPL(reference)
    dp = np.exp(t.next_logp) - np.exp(t.ref_next_logp)
    return Summary(
        n,
        float(t.kld.mean()),
        clustered_stderr(t.kld, units),
        float(pct[0]),
        float(pct[1]),
        float(pct[2]),
        float(t.kld.max()),
        float(t.same_top.mean()),
        float(np.exp(ln_ratio.mean())),
        clustered_stderr(ln_ratio, units),
        float(np.sqrt(np.mean(dp**2))),
        float(dp.mean()),
        len(np.unique(units)),
    )


def choice_agreement(ref_lls: list[list[float]], lls: list[list[float]]) -> tuple[float, float]:
    """(share of items where both pick the same choice, mean KL between the choices' normalised
    probabilities), from per-item log-likelihoods of the same items."""
    same, kls = [], []
    for a, b in zip(ref_lls, lls, strict=True):
        p, q = log_softmax(np.asarray(a, float)), log_softmax(np.asarray(b, float))
        same.append(int(np.argmax(a)) == int(np.argmax(b)))
        kls.append(float((np.exp(p) * (p - q)).sum()))
    return float(np.mean(same)), float(np.mean(kls))
