"""sizebench's answers are what transformers' text-generation pipeline returns for the same prompt text
and generation settings: the pipeline stops on its own (`stop_sequence`, which it hands to generate with
the tokenizer), its text is cut at the format's stop strings and stripped, and that equals sizebench's
answer byte for byte (the three-line equivalent is in the README). Nothing of sizebench's stop handling
(formats.stop_token_ids, formats.cut_at_stop, generation's stopping criteria) builds the reference."""

from dataclasses import replace

import pytest

from sizebench.engines import formats
from sizebench.stages import generation
from sizebench.engines.hf import loader
from sizebench.planning.registry import builtin, resolve
from sizebench.stages.suites import load_suite

DOLLY_END_KEY = "### End"  # databrickslabs/dolly, training/consts.py: END_KEY


def pipeline_answer(pipe, rendered, settings: generation.GenSettings) -> str:
    """What a user writes with the pipeline: the prompt text, the format's stop strings, the same sampler."""
    import torch

    tok = pipe.tokenizer
    stops = dict(stop_sequence=list(rendered.stop_strings)) if rendered.stop_strings else {}
    if not settings.stop_at_eos:
        # Databricks' InstructionTextGenerationPipeline (databrickslabs/dolly, training/generate.py,
        # _sanitize_parameters): "Ensure generation stops once it generates '### End'" by making the id of
        # END_KEY, from tokenizer.encode (get_special_token_id), the only eos_token_id.
        (end_key_id,) = tok.encode(DOLLY_END_KEY)
        stops["eos_token_id"] = end_key_id
    sampler = (
        dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        if settings.do_sample
        else dict(do_sample=False)
    )
    torch.manual_seed(settings.seed)
    out = pipe(
        rendered.text,
        return_full_text=False,
        max_new_tokens=settings.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        **stops,
        **sampler,
    )
    text = out[0]["generated_text"]
    for stop in rendered.stop_strings:  # generation ends on a stop string; the answer is what precedes it
        text = text.split(stop)[0]
    return text.strip()


def assert_parity(spec, folder, prompts, settings, answers: dict[str, str] | None = None):
    """answers: sizebench's answers by prompt text, as a run stored them; else generated here."""
    from transformers import pipeline

    loaded = loader.load(spec, "cpu", "float32")
    pipe = pipeline("text-generation", model=str(folder), tokenizer=str(folder), device="cpu")
    checked = 0
    for prompt in prompts:
        rendered = loaded.render(prompt)
        ours = answers[prompt.text] if answers is not None else loaded.generate(rendered, settings).answer
        assert pipeline_answer(pipe, rendered, settings) == ours, prompt.text
        checked += bool(ours)
    assert checked, "every answer was empty: the comparison proved nothing"
    return loaded


@pytest.mark.parametrize(
    "settings",
    [
        generation.GenSettings(max_new_tokens=24),
        # the preset's sampler and stop rule; 48 tokens, not 256, to keep it quick
        replace(generation.GenSettings().with_preset("databricks"), max_new_tokens=48),
    ],
    ids=["greedy", "databricks-preset"],
)
def test_tiny_dolly_matches_the_pipeline(tiny_model, suite_file, settings):
    spec = resolve(str(tiny_model))[0]
    loaded = assert_parity(spec, tiny_model, load_suite(str(suite_file)).prompts, settings)
    assert loaded.prompt_format == "dolly"


def test_a_stop_string_the_model_reaches_ends_both_answers_alike(tiny_model):
    """The random tiny model never writes `### End`; two printable tokens from its own unstopped answer make a
    stop string it does reach, across a token boundary (generate's StopStringCriteria, then the cut)."""
    from transformers import pipeline

    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", "float32")
    pipe = pipeline("text-generation", model=str(tiny_model), tokenizer=str(tiny_model), device="cpu")
    tok, settings = pipe.tokenizer, generation.GenSettings(max_new_tokens=24)
    for question in ("What is the capital of France?", "Name a mountain in Japan.", "What is the highest mountain?"):
        text = formats.dolly(question).text
        free = pipe(text, return_tensors=True, do_sample=False, max_new_tokens=24, pad_token_id=tok.pad_token_id)
        new_ids = free[0]["generated_token_ids"][len(tok(text)["input_ids"]) :]
        pieces = [tok.decode([i]) for i in new_ids]
        printable = [
            p.isascii() and p.isprintable() and bool(p.strip()) and i not in tok.all_special_ids
            for p, i in zip(pieces, new_ids)
        ]
        at = next((k for k in range(1, len(pieces) - 1) if printable[k] and printable[k + 1]), None)
        if at is not None:
            break
    assert at is not None, "no two printable tokens in a row in any answer: nothing to stop at"
    stop = pieces[at] + pieces[at + 1]
    assert stop not in tok.get_vocab()  # two tokens: the stopping criteria's case, not an extra EOS id
    rendered = formats.Rendered(text, (stop,), True)
    ours = loaded.generate(rendered, settings)
    assert ours.answer == pipeline_answer(pipe, rendered, settings)
    assert stop not in ours.answer and ours.token_ids == tuple(new_ids[: at + 2])  # stopped right after it


@pytest.mark.slow
def test_smollm2_geography_matches_the_pipeline(offline_ladder_compare):
    """smollm2-135m's answers over the geography suite as `sizebench compare` stored them (the offline ladder's
    run, shared with test_real_models), at the run's own settings (16 new tokens, greedy)."""
    import json

    from conftest import REPO, records
    from sizebench.weights import sources

    run = next((offline_ladder_compare / "runs").iterdir())
    settings = generation.GenSettings(**json.loads((run / "run.json").read_text())["plan"]["gen"])
    assert settings.max_new_tokens == 16 and not settings.do_sample
    answers = {
        r["prompt"]: r["answer"]
        for r in records(offline_ladder_compare)
        if r["kind"] == "prompt" and r["model"] == "smollm2-135m"
    }
    prompts = load_suite(str(REPO / "prompts" / "geography.txt")).prompts
    assert len(answers) == len(prompts)  # none skipped: every answer is compared
    spec = builtin("smollm2-135m")
    folder = sources.locate(spec).path  # the safetensors folder the GGUF was converted into
    assert_parity(spec, folder, prompts, settings, answers)
