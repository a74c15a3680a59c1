"""Prompts longer than a model's context window: skipped for that model with both numbers, run elsewhere."""

import json
import shutil

import pytest

from conftest import records, sizebench
from sizebench.report.markdown import cell

LONG = " ".join(["Rome Berlin Madrid Tokyo"] * 80) + " Which of these is in Japan?"


@pytest.fixture(scope="module")
def tiny_long(tiny_model, tmp_path_factory):
    """The tiny model with a 4096-token window instead of 256 (rotary positions: the weights do not change)."""
    folder = tmp_path_factory.mktemp("models") / "tiny-long"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    return folder


def test_a_prompt_past_the_context_is_skipped_with_both_numbers_and_runs_on_a_longer_context(
    tiny_model, tiny_long, tmp_path
):
    suite = tmp_path / "long.txt"
    suite.write_text(f"{LONG} => Tokyo\nWhat is the capital of France? => Paris\n")  # the long one first
    done = sizebench(
        "compare",
        "--models",
        f"{tiny_model},{tiny_long}",
        "--prompts",
        str(suite),
        "--repeat",
        "1",
        "--max-new-tokens",
        "12",
        "--results",
        str(tmp_path / "r"),
    )
    assert done.returncode == 0, done.stderr
    rows = records(tmp_path / "r")
    skipped = [r for r in rows if r["kind"] == "prompt_skipped"]
    assert [(r["model"], r["prompt_id"]) for r in skipped] == [("tiny-neox", "long-001")]
    skip = skipped[0]
    assert skip["context_tokens"] == 256 and skip["max_new_tokens"] == 12 and skip["prompt_tokens"] + 12 > 256
    reason = f"{skip['prompt_tokens']} prompt tokens + 12 new tokens > context window of 256"
    assert skip["reason"] == reason
    ran = {(r["model"], r["prompt_id"]) for r in rows if r["kind"] == "prompt"}
    assert ran == {("tiny-neox", "long-002"), ("tiny-long", "long-001"), ("tiny-long", "long-002")}
    long_on_tiny = [r for r in rows if r["kind"] == "prompt" and r["prompt_id"] == "long-001"]
    assert long_on_tiny[0]["prompt_tokens"] == skip["prompt_tokens"]  # the same count on both sides
    assert f"prompt long-001 skipped: {reason}" in " ".join(done.stderr.split())  # the progress line
    answers = (tmp_path / "r" / "report.md").read_text().split("## Answers side by side")[1]
    assert cell(f"⏭ skipped: {reason}") in answers
    assert "skipped:" in done.stdout  # the answers table on the terminal


def test_the_warm_up_uses_a_short_fixed_prompt_and_a_long_prompt_is_never_generated(tiny_model, monkeypatch):
    from sizebench.stages import generation
    from sizebench.engines.hf import loader
    from sizebench.planning.registry import resolve
    from sizebench.specs.prompts import Prompt

    loaded = loader.load(resolve(str(tiny_model))[0], "cpu", "float32")
    assert loaded.context_window() == 256
    sent = []

    def fake_generate(loaded, rendered, settings, max_new_tokens=None, meter=None):
        sent.append(rendered.text)
        return generation.Generation("x", (1, 2), 5, 0.01, 0.02)

    from sizebench.engines.hf import prompting

    monkeypatch.setattr(prompting, "generate_once", fake_generate)  # what the session's generate calls
    prompts = (Prompt("long", LONG), Prompt("short", "What is the capital of France?"))
    emitted = []
    out = generation.run_prompts(
        loaded, prompts, generation.GenSettings(max_new_tokens=8, repeat=2), "a", emitted.append
    )
    assert generation.WARMUP_PROMPT.text in sent[0] and LONG not in sent[0]
    assert not [text for text in sent if LONG in text]
    assert [r.prompt_id for r in out] == ["short"] and len(sent) == 3  # warm-up + 2 timed runs of "short"
    assert [r.kind for r in emitted] == ["decode", "prompt_skipped", "prompt"]  # how the rung decodes, first


def test_context_window_prefers_the_config_and_ignores_the_unknown_tokenizer_length():
    from types import SimpleNamespace

    from sizebench.engines.hf.prompting import context_window

    def loaded(config, tokenizer_max):
        return SimpleNamespace(
            model=SimpleNamespace(config=SimpleNamespace(**config)),
            tokenizer=SimpleNamespace(model_max_length=tokenizer_max),
        )

    assert context_window(loaded({"max_position_embeddings": 8192}, 2048)) == 8192
    assert context_window(loaded({"n_positions": 1024}, int(1e30))) == 1024  # GPT-2's field
    assert context_window(loaded({}, 2048)) == 2048
    assert context_window(loaded({}, int(1e30))) is None  # transformers' "unknown": no check
