"""sizebench-hf (sizebench.engines.hf.fast_lm): the same log-likelihoods and choices as lm-eval's own HFLM."""

import subprocess
import sys

import pytest

from conftest import REPO

TASKS = ["sizebench_geo"]


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def scores(lm, limit=12) -> dict:
    import lm_eval

    from sizebench.stages import evaluation

    manager = evaluation.task_manager(tasks=TASKS)  # the bundled tasks only, as the tasks stage indexes them
    out = lm_eval.simple_evaluate(
        model=lm, tasks=TASKS, task_manager=manager, limit=limit, log_samples=True, bootstrap_iters=0
    )
    return {(task, s["doc_id"]): [r[0] for r in s["resps"]] for task, rows in out["samples"].items() for s in rows}


def assert_same(plain: dict, fast: dict, tolerance: float = 1e-4) -> None:
    assert plain.keys() == fast.keys()
    for key in plain:
        a, b = [ll for ll, _ in plain[key]], [ll for ll, _ in fast[key]]
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tolerance, key
        assert a.index(max(a)) == b.index(max(b)), key  # the same choice
        assert [g for _, g in plain[key]] == [g for _, g in fast[key]], key  # the same greedy flags


@pytest.fixture(scope="module")
def plain_scores(tiny):
    from lm_eval.models.huggingface import HFLM

    model, tok = tiny
    return scores(HFLM(pretrained=model, tokenizer=tok, batch_size=4))


@pytest.mark.parametrize("pack, keeps_logits", [(True, None), (False, None), (True, False)])
def test_same_loglikelihoods_and_choices_as_hflm(tiny, plain_scores, pack, keeps_logits):
    from sizebench.engines.hf.fast_lm import SizebenchLM

    model, tok = tiny
    lm = SizebenchLM(pretrained=model, tokenizer=tok, batch_size=4, pack_contexts=pack)
    lm.keeps_logits = keeps_logits  # False: as for a model class without logits_to_keep
    fast = scores(lm)
    assert_same(plain_scores, fast)
    if pack:  # the geography items have multi-token choices here, so packing was checked and kept
        assert lm.pack_check["packing"] is True and lm.pack_check["max_abs_diff"] <= 1e-4
    else:
        assert lm.pack_check is None


def test_eager_attention_gets_an_additive_mask_and_the_same_choices(tiny_model, plain_scores):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sizebench.engines.hf.fast_lm import SizebenchLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="eager")
    lm = SizebenchLM(pretrained=model, tokenizer=AutoTokenizer.from_pretrained(tiny_model), batch_size=4)
    assert_same(plain_scores, scores(lm))
    assert lm.pack_check["packing"] is True


def test_a_model_that_ignores_the_packing_mask_falls_back_to_one_row_per_choice(tiny, plain_scores, monkeypatch):
    import torch

    from sizebench.engines.hf import fast_lm

    def causal_only(rows, width, dtype, device):  # what a model that ignores the 4D mask would compute
        return torch.ones(width, width, dtype=torch.bool).tril()[None, None].expand(len(rows), 1, width, width)

    monkeypatch.setattr(fast_lm, "pack_mask", causal_only)
    model, tok = tiny
    lm = fast_lm.SizebenchLM(pretrained=model, tokenizer=tok, batch_size=4)
    fast = scores(lm)
    assert lm.pack_check["packing"] is False and lm.pack_check["max_abs_diff"] > 1e-3
    assert_same(plain_scores, fast)


def test_rolling_loglikelihood_matches_hflm(tiny):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from sizebench.engines.hf.fast_lm import SizebenchLM

    model, tok = tiny
    texts = ["What is the capital of France? The capital of France is Paris.", "Rome Berlin Madrid Tokyo"]

    def rolling(lm):
        requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
        return lm.loglikelihood_rolling(requests, disable_tqdm=True)

    plain = rolling(HFLM(pretrained=model, tokenizer=tok, batch_size=2, max_length=16))  # several windows each
    fast = rolling(SizebenchLM(pretrained=model, tokenizer=tok, batch_size=2, max_length=16))
    assert fast == pytest.approx(plain, abs=1e-4)


def test_registered_for_simple_evaluate_by_name(tiny_model):
    import lm_eval

    import sizebench.engines.hf.fast_lm  # noqa: F401  (registers "sizebench-hf")
    from sizebench.stages import evaluation

    out = lm_eval.simple_evaluate(
        model="sizebench-hf",
        model_args={"pretrained": str(tiny_model), "batch_size": 4, "device": "cpu"},
        tasks=["sizebench_geo_capitals"],
        task_manager=evaluation.task_manager(tasks=TASKS),
        limit=4,
        bootstrap_iters=0,
    )
    assert out["results"]["sizebench_geo_capitals"]["sample_len"] == 4
    assert out["config"]["model"] == "sizebench-hf"


def test_lm_eval_cli_runs_the_registered_class(tiny_model, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sizebench.engines.hf.fast_lm",
            "run",
            "--model",
            "sizebench-hf",
            "--model_args",
            f"pretrained={tiny_model}",
            "--tasks",
            "sizebench_geo_capitals",
            "--include_path",
            str(REPO / "sizebench" / "stages" / "tasks"),
            "--limit",
            "3",
            "--batch_size",
            "2",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sizebench_geo_capitals" in done.stdout and "acc" in done.stdout


@pytest.mark.slow
def test_real_model_same_choices_as_hflm():
    from lm_eval.models.huggingface import HFLM

    from sizebench.engines.hf import loader
    from sizebench.engines.hf.fast_lm import SizebenchLM
    from sizebench.planning.registry import builtin

    loaded = loader.load(builtin("smollm2-135m"))
    plain = scores(HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=8), limit=15)
    lm = SizebenchLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=8)
    assert_same(plain, scores(lm, limit=15))
    assert lm.pack_check["packing"] is True
