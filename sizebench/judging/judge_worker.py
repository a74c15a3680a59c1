"""The LLM judge's process: load the judge as any rung is loaded, judge each pair in both orders.

Run as `python -m sizebench.judging.judge_worker JOB.json`. One VoteRecord per order, appended and
flushed as it comes; judgements already stored (a judge stopped and started again) are not redone.
Progress events go to stdout as JSON lines. Exit 0 when done, 3 for a failure it can name, 130 when
stopped (SIGTERM from the parent, or the parent's death).
"""

from __future__ import annotations

import json
import sys
import traceback

from sizebench.errors import SizebenchError
from sizebench.judging import judge_prompt
from sizebench.judging.pairs import VOTES
from sizebench.launch.worker import event, start
from sizebench.planning.job import Job
from sizebench.specs.models import ModelSpec
from sizebench.runstore.records import VoteRecord
from sizebench.runstore.store import RunStore
from sizebench.stages.events import Event
from sizebench.specs.prompts import Prompt


def run(job: Job) -> int:
    store, spec = start(job)
    try:
        judge(spec, job, store)
        return 0
    except KeyboardInterrupt:
        event(Event("interrupted"))
        return 130
    except SizebenchError as exc:
        event(Event("failed", reason=str(exc)))
        return 3
    except Exception as exc:
        traceback.print_exc()
        event(Event("failed", reason=f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"))
        return 1


def judge(spec: ModelSpec, job: Job, store: RunStore) -> None:
    from lm_eval.api.instance import Instance

    from sizebench import engines

    source, judgements = job.judge["source"], job.judge["judgements"]
    done = {r["screen"] for r in store.records() if r["kind"] == "vote" and r["model"] == source}
    todo = [j for j in judgements if j["screen"] not in done]
    event(Event("loading"))
    session = engines.get(spec.engine).load(spec, job.load_settings())
    try:
        lm, _ = session.lm("auto")
        window = session.context_window()
        event(Event("judging", done=len(judgements) - len(todo), total=len(judgements)))
        for number, j in enumerate(todo, start=1):
            rendered = session.render(Prompt(j["screen"], judge_prompt.text(j["prompt"], j["context"], j["a"], j["b"])))
            if window and session.prompt_tokens(rendered) + 8 > window:
                event(Event("too_long", screen=j["screen"], tokens=session.prompt_tokens(rendered), window=window))
                continue
            replies = judge_prompt.continuations(rendered.text)
            requests = [
                Instance("loglikelihood", {}, (rendered.text, reply), i) for i, reply in enumerate(replies.values())
            ]
            lls = {
                choice: round(float(ll), 4)
                for choice, (ll, _) in zip(replies, lm.loglikelihood(requests, disable_tqdm=True))
            }
            store.append(
                VoteRecord(
                    source,
                    VOTES,
                    j["screen"],
                    j["prompt_id"],
                    j["left"],
                    j["right"],
                    judge_prompt.choose(lls),
                    spec.name,
                    raw={"loglikelihood": lls},
                )
            )
            event(Event("judging", done=len(judgements) - len(todo) + number, total=len(judgements)))
    finally:
        session.close()  # a launched judge server stops on every way out


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        sys.exit(run(Job.from_dict(json.load(handle))))
