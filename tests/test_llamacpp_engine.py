"""The llama.cpp engine: its model syntax, and real runs through llama-cpp-python on a tiny GGUF."""

import pytest

from conftest import records, sizebench, tiny_llama_gguf
from sizebench.errors import SizebenchError
from sizebench.planning.registry import resolve

pytest.importorskip("llama_cpp")  # installed by `make test`'s set-up (make llama-cpp)
pytestmark = pytest.mark.llamacpp


def test_an_engine_prefix_applies_to_every_model_of_a_group_and_every_type_after_it():
    rungs = [(s.name, s.engine, s.precision) for s in resolve("llama.cpp:offline@q8_0,Q2_K,smollm2-135m@int8")]
    assert rungs == [
        ("llama.cpp:smollm2-135m@q8_0", "llama.cpp", "q8_0"),
        ("llama.cpp:smollm2-135m@q2_k", "llama.cpp", "q2_k"),
        ("llama.cpp:gemma3-270m@q8_0", "llama.cpp", "q8_0"),
        ("llama.cpp:gemma3-270m@q2_k", "llama.cpp", "q2_k"),
        ("smollm2-135m@int8", "transformers", "int8"),
    ]
    assert [s.name for s in resolve("llama.cpp:smollm2-135m")] == ["llama.cpp:smollm2-135m"]  # as distributed


def test_engines_runs_each_unprefixed_model_on_each_engine_and_a_type_where_offered():
    names = [s.name for s in resolve("offline,gemma3-270m@int8", ("transformers", "llama.cpp"))]
    assert names == [
        "smollm2-135m",
        "llama.cpp:smollm2-135m",
        "gemma3-270m",
        "llama.cpp:gemma3-270m",
        "gemma3-270m@int8",
    ]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("llama.cpp:offline@int8", "llama.cpp has no type 'int8' (in 'llama.cpp:offline@int8'); types: llama.cpp: f32"),
        ("offline@fp32,q8_0", "transformers has no type 'q8_0' (in 'q8_0'); types: transformers: fp32"),
    ],
)
def test_a_type_the_engine_lacks_is_one_line(expression, message):
    with pytest.raises(SizebenchError) as raised:
        resolve(expression)
    assert str(raised.value).startswith(message)


def test_the_cli_refuses_an_unknown_type_or_engine_in_one_line(cli):
    code, out, err = cli("compare", "--models", "llama.cpp:smollm2-135m@q9_9")
    assert code == 2 and "llama.cpp has no type 'q9_9'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = cli("compare", "--engines", "transformers,tgi")
    assert code == 2 and "unknown engine 'tgi'; choose one of: transformers, llama.cpp" in err


def test_models_lists_the_engines_and_their_types(cli):
    code, out, err = cli("models", "--models", "offline")
    assert code == 0
    assert "llama.cpp" in out and "q8_0" in out and "q2_k" in out and "int8" in out


def test_a_folder_needs_llama_cpp_s_converter_before_any_load(cli, tiny_model, suite_file, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_LLAMA_CONVERTER", "/nonexistent/convert_hf_to_gguf.py")
    code, out, err = cli("compare", "--models", f"llama.cpp:{tiny_model}", "--prompts", str(suite_file))
    assert code == 2 and "llama.cpp's converter is not at /nonexistent" in err


def test_a_prompt_run_on_llama_cpp_records_the_gguf_weights_and_what_stays_resident(tmp_path, suite_file):
    from sizebench.weights import gguf_check

    gguf = tiny_llama_gguf(tmp_path / "tiny.gguf")
    results = tmp_path / "r"
    done = sizebench(
        "compare",
        "--models",
        f"llama.cpp:{gguf}",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "4",
        "--results",
        str(results),
        "--threads",
        "1",
    )
    assert done.returncode == 0, done.stderr
    rows = records(results)
    load = next(r for r in rows if r["kind"] == "load")
    assert load["engine"] == "llama.cpp" and load["model"] == "llama.cpp:tiny"
    _, tensors = gguf_check.tables(gguf)
    assert load["weights_mem_mb"] == sum(t.nbytes for t in tensors) / 2**20  # the GGUF's tensor bytes
    assert load["params"] == sum(t.elements for t in tensors) and load["dtype"] == "f32"
    prompts = [r for r in rows if r["kind"] == "prompt"]
    assert len(prompts) == 2 and all(1 <= p["new_tokens"] <= 4 and p["ttft_s"] <= p["latency_s"] for p in prompts)
    stage = next(r for r in rows if r["kind"] == "stage")
    assert stage["weights_resident_mb"] is not None and stage["weights_resident_mb"] > 0
    assert "llama.cpp:tiny" in (results / "report.md").read_text()


def test_greedy_tokens_are_llama_cpp_python_s_own(tmp_path):
    """The session's token stream equals plain llama-cpp-python's greedy completion on the same file."""
    import llama_cpp

    from sizebench.engines.llamacpp import session as llama_session
    from sizebench.specs.settings import GenSettings
    from sizebench.specs.prompts import Prompt

    gguf = tiny_llama_gguf(tmp_path / "tiny.gguf")
    spec = resolve(f"llama.cpp:{gguf}")[0]
    loaded = llama_session.load(spec, "cpu", 1)
    rendered = loaded.render(Prompt("p", "abc"))
    ours = loaded.generate(rendered, GenSettings(max_new_tokens=6, stop_at_eos=False))
    plain = llama_cpp.Llama(str(gguf), n_ctx=64, n_threads=1, verbose=False)
    tokens = plain.tokenize(rendered.text.encode(), add_bos=True, special=True)
    expected = []
    for token in plain.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        expected.append(token)
        if len(expected) == 6:
            break
    assert list(ours.token_ids) == expected[: len(ours.token_ids)] and ours.prompt_tokens == len(tokens)


def test_a_folder_whose_tokenizer_llama_cpp_does_not_know_fails_its_rung_with_the_converter_s_reason(
    tmp_path, tiny_model, suite_file
):
    """llama.cpp's converter cannot convert the tiny GPT-NeoX fixture (saved by transformers 5, whose config has
    no `rotary_pct`; its tokenizer, trained here, has a hash the converter does not know either)."""
    results = tmp_path / "r"
    done = sizebench(
        "compare",
        "--models",
        f"llama.cpp:{tiny_model},{tiny_model}",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "2",
        "--results",
        str(results),
    )
    assert done.returncode == 1, done.stderr
    failed = next(r for r in records(results) if r["kind"] == "failed")
    assert failed["model"] == "llama.cpp:tiny-neox" and failed["stage"] == "load"
    assert "convert_hf_to_gguf.py failed: KeyError: 'rotary_pct'" in failed["reason"]  # the converter's own error
    assert any(r["kind"] == "prompt" and r["model"] == "tiny-neox" for r in records(results))  # the run went on


@pytest.mark.slow
def test_a_model_folder_runs_on_llama_cpp_through_llama_cpp_s_converter(tmp_path, suite_file):
    """smollm2's safetensors folder (sizebench's conversion of the GGUF; a Llama with a tokenizer llama.cpp
    knows) converted by convert_hf_to_gguf.py: the same greedy answers as the F32 GGUF of the same weights."""
    from sizebench.weights import sources

    folder = sources.locate(resolve("smollm2-135m")[0]).path
    results = tmp_path / "r"
    done = sizebench(
        "compare",
        "--models",
        f"llama.cpp:{folder},llama.cpp:smollm2-135m@f32",
        "--prompts",
        str(suite_file),
        "--max-new-tokens",
        "16",
        "--results",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    rows = records(results)
    load = next(r for r in rows if r["kind"] == "load" and r["model"].startswith(f"llama.cpp:{folder.name}"))
    assert "convert_hf_to_gguf.py" in load["precision_label"] and load["params"] == 134_515_008
    answers = {}
    for r in rows:
        if r["kind"] == "prompt":
            answers.setdefault(r["prompt_id"], set()).add(r["answer"])
    assert len(answers) == 2 and all(len(a) == 1 for a in answers.values())  # identical on both
