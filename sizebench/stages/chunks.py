"""Items of a task in chunks, paired exactly as in a full run (`--until-decided`).

lm-eval 0.4.13's own way to pick items, `samples`, renumbers the picked documents 0..k-1 (its logged
`doc_id` is mapped back only when the list is sorted), cannot be combined with `limit`, and draws every
item's few-shot examples from one generator advanced item by item, so an item's context depends on which
items came before it. Here instead the task's `doc_iterator` yields the chosen documents under their own
index, and `fewshot_context` reseeds the task's sampler from (FEWSHOT_SEED, index) before each item: an
item's prompt is then the same whether it runs in a full run or in any chunk. Full runs pin their tasks the
same way (`pin(task)`), so the two are paired item for item.
"""

from __future__ import annotations

import zlib

import numpy as np

FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed, now combined with each item's index


def population(task, limit: float | None) -> int:
    """The items a run draws from: the task's evaluation documents, the first `limit` of them with --limit
    (lm-eval's own reading of a limit: a fraction of the documents below 1, rounded up)."""
    total = len(task.eval_docs)
    if limit is None:
        return total
    return min(total, int(np.ceil(total * limit)) if limit < 1 else int(limit))


def order(items: int, seed: int, task_name: str) -> list[int]:
    """The population in a random order fixed by (seed, task): the same on every machine and every resume."""
    return [int(i) for i in np.random.default_rng([seed, zlib.crc32(task_name.encode())]).permutation(items)]


def pin(task, indices: list[int] | None = None) -> None:
    """Make `task` yield the documents of `indices` under their own index (all of them, as lm-eval does, when None)
    and draw each item's few-shot examples from (FEWSHOT_SEED, index) alone."""
    original_iterator = getattr(task, "_sizebench_doc_iterator", task.doc_iterator)
    original_context = getattr(task, "_sizebench_fewshot_context", task.fewshot_context)
    task._sizebench_doc_iterator, task._sizebench_fewshot_context = original_iterator, original_context
    index_of: dict[int, tuple[int, object]] = {}  # id(doc) -> (index, doc): the doc kept so its id stays its own

    def doc_iterator(*, rank: int = 0, limit=None, world_size: int = 1, samples=None):
        if indices is None:
            pairs = list(original_iterator(rank=rank, limit=limit, world_size=world_size, samples=samples))
        else:
            docs = task.eval_docs
            pairs = [(i, docs[i]) for i in sorted(indices)]
        for i, doc in pairs:
            index_of[id(doc)] = (i, doc)
        return iter(pairs)

    def fewshot_context(doc, *args, **kwargs):
        found = index_of.get(id(doc))
        if found is not None:
            task.set_fewshot_seed(f"{FEWSHOT_SEED}:{found[0]}")
        return original_context(doc, *args, **kwargs)

    task.doc_iterator, task.fewshot_context = doc_iterator, fewshot_context
