"""`--until-decided` evaluates items in chunks: each item's prompt and outcome must equal a full run's, item for item.

A stand-in lm-eval model scores every (context, continuation) by a hash of its text, so equal scores mean equal
prompts; no model is loaded (seconds)."""

from __future__ import annotations

import hashlib

from lm_eval.api.model import LM

from sizebench.specs.settings import EvalSettings
from sizebench.runstore.records import ChunkRecord, ItemsRecord, StopRecord, TaskRecord
from sizebench.stages import chunks, evaluation, until_decided

TASK = "sizebench_geo_capitals"


class HashLM(LM):
    """Log-likelihood from the request's text: any change of prompt changes it."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        out = []
        for request in requests:
            context, continuation = request.args
            self.seen.append((context, continuation))
            digest = hashlib.sha256((context + "\x00" + continuation).encode()).digest()
            out.append((-int.from_bytes(digest[:4], "big") / 2**28, False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


class Session:
    def __init__(self):
        self.model = HashLM()

    def lm(self, batch_size):
        return self.model, batch_size


def _by_doc(records) -> dict[int, tuple]:
    out = {}
    for r in records:
        if isinstance(r, ItemsRecord):
            for i, doc in enumerate(r.doc_ids):
                out[doc] = (r.lls[i], r.chosen[i], r.scores["acc"][i], r.gold[i])
    return out


def test_chunked_items_equal_a_full_run_with_few_shot_examples():
    settings = EvalSettings(tasks=(TASK,), limit=45, num_fewshot=2, batch_size="1", until_decided=True, chunk=8)
    full, full_session = [], Session()
    evaluation.run_tasks(full_session, "m", settings, "a1", full.append)
    chunked, chunked_session = [], Session()
    asked = []

    def ask(task, done, size):
        asked.append((task, done, size))
        return until_decided.GO

    until_decided.run(chunked_session, "m", settings, "a2", chunked.append, ask)
    full_items, chunk_items = _by_doc(full), _by_doc(chunked)
    assert sorted(full_items) == list(range(45))
    assert chunk_items == full_items  # same prompts (the hashed scores), same choice, same outcome, same gold
    assert sorted(full_session.model.seen) == sorted(chunked_session.model.seen)
    contexts = {c for c, _ in full_session.model.seen}
    assert all(c.count("Question:") == 3 for c in contexts)  # two few-shot examples, then the item
    drawn = [d for r in chunked if isinstance(r, ChunkRecord) for d in r.drawn]
    assert drawn == chunks.order(45, 0, TASK) and sorted(drawn) == list(range(45))
    assert asked == [(TASK, n, 45) for n in range(8, 45, 8)]  # no question once the items ran out
    stop = next(r for r in chunked if isinstance(r, StopRecord))
    assert (stop.items, stop.population, stop.reason) == (45, 45, until_decided.RAN_OUT)


def test_the_runner_stops_a_task_and_its_accuracy_counts_the_items_run():
    settings = EvalSettings(tasks=(TASK,), num_fewshot=0, batch_size="1", until_decided=True, chunk=16)
    records = []
    until_decided.run(Session(), "m", settings, "a", records.append, lambda task, done, size: "decided")
    items = [r for r in records if isinstance(r, ItemsRecord)]
    assert len(items) == 1 and sorted(items[0].doc_ids) == sorted(chunks.order(196, 0, TASK)[:16])
    stop = next(r for r in records if isinstance(r, StopRecord))
    assert (stop.items, stop.population, stop.reason) == (16, 196, "decided")
    acc = next(r for r in records if isinstance(r, TaskRecord) and r.metric == "acc")
    assert acc.n == 16 and acc.value == sum(items[0].scores["acc"]) / 16
