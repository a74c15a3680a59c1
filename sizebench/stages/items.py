"""Per-item outcomes from lm-eval's own per-sample output (`simple_evaluate(log_samples=True)`).

lm-eval 0.4.13 gives, per task, one dict per document: `doc_id`, `doc`, `target`, `filtered_resps`
(for multiple choice: one `(loglikelihood, is_greedy)` pair per choice, after the task's filter) and
the per-item metric values (`acc`, `acc_norm`, ...). From these sizebench keeps, per model and task,
the log-likelihoods, the choice each metric scores and lm-eval's correctness; the question, the
choices and the right answer go once per run into an ItemTextRecord (the first model writes them).
"""

from __future__ import annotations

import numpy as np

from sizebench.runstore.records import ItemsRecord, ItemTextRecord

LL_DECIMALS = 4  # 1e-4 nats: far below any gap that decides a choice, and half the bytes of full floats
ANSWER_CHARS = 200


def records(samples: dict, tasks: dict, model: str, attempt: str, texts_done: frozenset[str] = frozenset()) -> list:
    """ItemsRecord per task, and an ItemTextRecord for each task not in texts_done."""
    out = []
    for name in sorted(samples):
        task = tasks.get(name)
        rows = sorted(samples[name], key=lambda s: s["doc_id"])
        if task is None or not rows:
            continue
        seen, unique = set(), []
        for row in rows:  # one row per filter; the first filter is the one the results table reports first
            if row["doc_id"] not in seen:
                seen.add(row["doc_id"])
                unique.append(row)
        out.append(_items(task, name, unique, model, attempt))
        if name not in texts_done:
            out.append(_texts(task, name, unique, model, attempt))
    return out


def _is_choice(task) -> bool:
    return getattr(task, "OUTPUT_TYPE", None) == "multiple_choice"


def _choices(task, doc) -> list[str]:
    return [str(c) for c in task.doc_to_choice(doc)]


def _gold(task, doc, choices: list[str]):
    """The right choice's index as lm-eval's process_results derives it (a list where several are right)."""
    gold = task.doc_to_text(doc) if getattr(task, "multiple_input", False) else task.doc_to_target(doc)
    if isinstance(gold, str):
        return choices.index(gold) if gold in choices else None
    if isinstance(gold, (list, tuple)):
        return [int(g) for g in gold]
    return int(gold)


def _scores(rows: list[dict]) -> dict[str, list[float]]:
    names = [m for m in rows[0].get("metrics", []) if all(isinstance(r.get(m), (int, float)) for r in rows)]
    return {m: [_compact(r[m]) for r in rows] for m in names}


def _compact(value: float):
    value = float(value)
    return int(value) if value.is_integer() else value


def _items(task, name: str, rows: list[dict], model: str, attempt: str) -> ItemsRecord:
    doc_ids = [int(r["doc_id"]) for r in rows]
    if not _is_choice(task):
        answers = [" ".join(str(_first(r["filtered_resps"])).split())[:ANSWER_CHARS] for r in rows]
        return ItemsRecord(model, attempt, name, doc_ids, [None] * len(rows), scores=_scores(rows), answers=answers)
    gold, lls, chosen, chosen_norm = [], [], [], []
    for row in rows:
        choices = _choices(task, row["doc"])
        # filtered_resps: one (loglikelihood, is_greedy) per request; mutual-info tasks append unconditional ones
        values = np.array([float(resp[0]) for resp in row["filtered_resps"]][: len(choices)])
        lengths = np.array([float(len(c)) for c in choices])
        gold.append(_gold(task, row["doc"], choices))
        lls.append([round(float(v), LL_DECIMALS) for v in values])
        chosen.append(int(np.argmax(values)))
        chosen_norm.append(int(np.argmax(values / lengths)))
    return ItemsRecord(model, attempt, name, doc_ids, gold, lls, chosen, chosen_norm, _scores(rows))


def _texts(task, name: str, rows: list[dict], model: str, attempt: str) -> ItemTextRecord:
    questions, choices, targets = [], [], []
    for row in rows:
        doc = row["doc"]
        if _is_choice(task):
            options = _choices(task, doc)
            gold = _gold(task, doc, options)
            first = gold[0] if isinstance(gold, list) and gold else gold
            multiple_input = getattr(task, "multiple_input", False)
            # winogrande-style tasks put the varying part in the choices and the fixed one in the target
            questions.append(str(task.doc_to_target(doc)) if multiple_input else str(task.doc_to_text(doc)))
            choices.append(options)
            targets.append(
                options[first] if isinstance(first, int) and 0 <= first < len(options) else str(row["target"])
            )
        else:
            questions.append(str(task.doc_to_text(doc)))
            choices.append([])
            targets.append(str(row["target"]))
    return ItemTextRecord(model, attempt, name, [int(r["doc_id"]) for r in rows], questions, choices, targets)


def _first(resp):
    return resp[0] if isinstance(resp, (list, tuple)) and resp else resp
