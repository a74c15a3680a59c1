"""sizebench's answers are what transformers' text-generation pipeline returns for the same prompt text
and generation settings: the pipeline's text, cut at the format's stop strings and stripped, equals
sizebench's answer byte for byte (the three-line equivalent is in the README)."""

from dataclasses import replace

import pytest

from sizebench import formats, generation, loader
from sizebench.registry import builtin, resolve
from sizebench.suites import load_suite


def pipeline_answer(pipe, loaded, rendered, settings: generation.GenSettings) -> str:
    """What a user writes with the pipeline: the prompt text, the stop token ids, the same sampler."""
    import torch

    tok = loaded.tokenizer
    stop_ids = formats.stop_token_ids(tok, rendered.stop_strings)  # EOS, plus `### End` for Dolly
    if not settings.stop_at_eos:
        stop_ids = [i for i in stop_ids if i != tok.eos_token_id] or stop_ids
    sampler = (dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
               if settings.do_sample else dict(do_sample=False))
    torch.manual_seed(settings.seed)
    out = pipe(rendered.text, return_full_text=False, max_new_tokens=settings.max_new_tokens,
               eos_token_id=stop_ids, pad_token_id=tok.pad_token_id, **sampler)
    return formats.cut_at_stop(out[0]["generated_text"], rendered.stop_strings)


def assert_parity(spec, folder, prompts, settings):
    from transformers import pipeline

    loaded = loader.load(spec, "cpu", "float32")
    pipe = pipeline("text-generation", model=str(folder), tokenizer=str(folder), device="cpu")
    checked = 0
    for prompt in prompts:
        rendered = generation.render(loaded, prompt)
        ours = generation.generate_once(loaded, rendered, settings).answer
        assert pipeline_answer(pipe, loaded, rendered, settings) == ours, prompt.text
        checked += bool(ours)
    assert checked, "every answer was empty: the comparison proved nothing"
    return loaded


@pytest.mark.parametrize("settings", [generation.GenSettings(max_new_tokens=24),
                                      # the preset's sampler and stop rule; 48 tokens, not 256, to keep it quick
                                      replace(generation.GenSettings().with_preset("databricks"), max_new_tokens=48)],
                         ids=["greedy", "databricks-preset"])
def test_tiny_dolly_matches_the_pipeline(tiny_model, suite_file, settings):
    spec = resolve(str(tiny_model))[0]
    loaded = assert_parity(spec, tiny_model, load_suite(str(suite_file)).prompts, settings)
    assert loaded.prompt_format == "dolly"


@pytest.mark.slow
def test_smollm2_geography_matches_the_pipeline():
    from pathlib import Path

    from sizebench import sources

    spec = builtin("smollm2-135m")
    folder = sources.locate(spec).path  # the safetensors folder the GGUF was converted into
    prompts = load_suite(str(Path(__file__).resolve().parents[1] / "prompts" / "geography.txt")).prompts
    assert_parity(spec, folder, prompts, generation.GenSettings(max_new_tokens=16))
