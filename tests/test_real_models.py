"""The embedded offline ladder, loaded for real from the GGUF packages (slow: ~2-3 min in all)."""

import pytest

from conftest import records

pytestmark = pytest.mark.slow


def test_smollm2_answers_paris_and_the_safetensors_cache_matches_the_gguf(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    from sizebench.stages import generation
    from sizebench.engines.hf import loader
    from sizebench.weights import sources
    from sizebench.planning.registry import builtin
    from sizebench.specs.prompts import Prompt

    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    spec = builtin("smollm2-135m")
    cold = loader.load(spec)
    warm = loader.load(spec)
    assert cold.located.convert_s is not None and warm.located.convert_s is None  # miss, then hit
    assert warm.params == spec.params

    gguf = sources.package_gguf(spec)
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ids = warm.tokenizer("What is the capital of France?", return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(direct(**ids).logits, warm.model(**ids).logits)

    prompt = Prompt("p", "What is the capital of France?", ("Paris",))
    answer = warm.generate(warm.render(prompt), generation.GenSettings(max_new_tokens=24))
    assert "Paris" in answer.answer


def test_compare_geography_on_the_offline_ladder(offline_ladder_compare):
    rows = records(offline_ladder_compare)
    france = next(
        r
        for r in rows
        if r["kind"] == "prompt" and r["model"] == "smollm2-135m" and r["prompt"] == "What is the capital of France?"
    )
    assert "Paris" in france["answer"] and france["correct"] is True
    loads = {r["model"]: r for r in rows if r["kind"] == "load"}
    assert set(loads) == {"smollm2-135m", "gemma3-270m"}
    assert loads["gemma3-270m"]["prompt_format"] == "plain" and loads["smollm2-135m"]["prompt_format"] == "chat"
