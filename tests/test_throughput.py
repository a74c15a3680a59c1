"""Batched throughput counts the tokens each sequence generated before it stopped, as single-stream does."""

from dataclasses import replace

import pytest

from sizebench.stages import generation
from sizebench.engines.hf import loader
from sizebench.planning.registry import resolve
from sizebench.specs.prompts import Prompt

pytestmark = pytest.mark.models  # the tiny GPT-NeoX fixtures, by name (request.getfixturevalue)
PROMPTS = (
    Prompt("p1", "What is the capital of France?"),
    Prompt("p2", "Name a mountain."),
    Prompt("p3", "What is the highest mountain in Japan? Answer with one word."),
)


@pytest.mark.parametrize(
    "fixture, decoding, prompt_format",
    [
        ("tiny_model", "greedy", "auto"),
        ("tiny_model", "greedy", "plain"),
        ("tiny_ender", "greedy", "auto"),
        ("tiny_ender", "databricks", "auto"),
        ("tiny_eos", "greedy", "auto"),
        ("tiny_eos", "databricks", "auto"),
    ],
)
def test_batched_new_tokens_are_the_single_stream_new_tokens(fixture, decoding, prompt_format, request):
    spec = replace(resolve(str(request.getfixturevalue(fixture)))[0], prompt_format=prompt_format)
    loaded = loader.load(spec, "cpu", "float32")
    # the preset's 256 new tokens do not fit the fixture's 256-token window
    settings = replace(generation.GenSettings(batch_size=2).with_preset(decoding), max_new_tokens=24)
    singles = generation.run_prompts(loaded, PROMPTS, settings, "a", lambda record: None)
    assert len(singles) == len(PROMPTS)
    batched = loaded.batched_throughput(PROMPTS, settings, "a", singles)
    assert batched.new_tokens == sum(r.new_tokens for r in singles), [r.new_tokens for r in singles]
