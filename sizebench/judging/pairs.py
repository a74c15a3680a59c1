"""Which answers are compared: each step up the ladder and each model against the largest, on every
prompt both answered, in an order balanced across pairs and prompts.

A pair is (smaller, bigger) on the report's size axis. Identical answers are not shown: they are ties
recorded as such and counted apart. The schedule interleaves pairs and rotates prompts, so that
stopping early still leaves every pair judged on about as many prompts, and different ones.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from sizebench.analysis.preference import ladder
from sizebench.runstore.frames import Frames

SEED = 0
VOTES = "votes"  # the attempt of every vote record: all of a run's votes are kept together


@dataclass(frozen=True)
class Item:
    """One prompt of one pair: what a screen (or an LLM judgement) compares."""

    prompt_id: str
    prompt: str
    context: str | None
    small: str
    big: str
    small_answer: str
    big_answer: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.prompt_id, self.small, self.big)

    @property
    def identical(self) -> bool:
        return " ".join(self.small_answer.split()) == " ".join(self.big_answer.split())

    def answer(self, model: str) -> str:
        return self.small_answer if model == self.small else self.big_answer


def ladder_pairs(order: list[str]) -> list[tuple[str, str]]:
    """Each step up (smallest first) and each model against the largest, once each."""
    pairs = [(order[i], order[i + 1]) for i in range(len(order) - 1)]
    pairs += [(m, order[-1]) for m in order[:-2]]
    return pairs


def items(fr: Frames) -> list[Item]:
    """Every (prompt, pair) both models answered, in the balanced schedule."""
    order = ladder(fr)
    if len(order) < 2:
        return []
    rows = fr["prompt"].drop_duplicates(["model", "prompt_id"], keep="last")
    by_key = {(r.model, r.prompt_id): r for r in rows.itertuples()}
    contexts = suite_contexts(fr)
    prompt_ids = list(dict.fromkeys(rows["prompt_id"]))
    per_pair = []
    for small, big in ladder_pairs(order):
        shared = [p for p in prompt_ids if (small, p) in by_key and (big, p) in by_key]
        per_pair.append(
            [
                Item(
                    p,
                    str(by_key[(small, p)].prompt),
                    _context(by_key[(small, p)], contexts.get(p)),
                    small,
                    big,
                    str(by_key[(small, p)].answer),
                    str(by_key[(big, p)].answer),
                )
                for p in shared
            ]
        )
    return schedule(per_pair)


def schedule(per_pair: list[list[Item]]) -> list[Item]:
    """Round r shows pair j on the prompt at (r + j * stride) of one shuffled prompt order: each round
    has every pair once, on different prompts, and each pair meets each of its prompts once."""
    rng = random.Random(SEED)
    prompt_ids = sorted({i.prompt_id for its in per_pair for i in its})
    rank = {p: n for n, p in enumerate(rng.sample(prompt_ids, len(prompt_ids)))}
    ordered = [sorted(its, key=lambda i: rank[i.prompt_id]) for its in per_pair]
    stride = max(1, len(prompt_ids) // max(1, len(per_pair)))
    out = []
    for r in range(max((len(its) for its in ordered), default=0)):
        for j, its in enumerate(ordered):
            if r < len(its):
                out.append(its[(r + j * stride) % len(its)])
    return out


def _context(row, from_suite: str | None) -> str | None:
    context = getattr(row, "context", None)
    return context if isinstance(context, str) and context else from_suite


def suite_contexts(fr: Frames) -> dict[str, str]:
    """Passages of runs recorded before prompt records kept them: from the suite file, where it still is."""
    contexts: dict[str, str] = {}
    for meta in fr.metas:
        path = meta.get("plan", {}).get("prompts_path")
        if not path or not Path(path).is_file() or not str(path).endswith(".jsonl"):
            continue
        for line in Path(path).read_text(encoding="utf-8", errors="replace").split("\n"):  # not on U+2028
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict) and item.get("id") and item.get("context"):
                contexts.setdefault(str(item["id"]), str(item["context"]))
    return contexts
