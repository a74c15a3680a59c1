"""llama.cpp types of a GGUF source: the F32 file is the exact dequantization, the types are llama.cpp's own."""

from __future__ import annotations

import ctypes
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_llama_gguf
from sizebench.errors import ConversionFailed, SizebenchError
from sizebench.weights import gguf_requant as rq

PROMPT = "The highest mountain in Japan is"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))  # conftest shares the GGUF cache
    return tmp_path / "cache"


@pytest.fixture
def tiny(tmp_path) -> Path:
    # rows of 256: the K-quants' block, so q4_k_m quantizes every matrix instead of falling back to q8_0 / f16
    return tiny_llama_gguf(tmp_path / "tiny.gguf", hidden=256, ffn=512)


def _fields(path: Path) -> dict:
    import gguf

    fields = gguf.GGUFReader(path).fields.values()
    return {f.name: ([t.name for t in f.types], f.contents()) for f in fields if not f.name.startswith("GGUF.")}


def _tensors(path: Path) -> dict:
    import gguf

    return {t.name: t for t in gguf.GGUFReader(path).tensors}


@pytest.mark.llamacpp
def test_types_are_llama_cpps_ftypes():
    import llama_cpp

    for name, value in rq.TYPES.items():
        enum = "ALL_F32" if name == "f32" else f"MOSTLY_{name.upper()}"
        assert getattr(llama_cpp, f"LLAMA_FTYPE_{enum}") == value, name
    assert {"f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q4_k_m", "q4_0", "q4_1", "q3_k_m", "q2_k"} <= set(
        rq.TYPES
    )
    assert rq.canonical("Q8_0") == rq.canonical(" q8_0") == "q8_0"
    assert rq.canonical("Q4_K_M") == "q4_k_m"
    assert rq.canonical("q4_k") is None and rq.canonical("int8") is None


@pytest.mark.llamacpp
def test_f32_is_the_dequantized_source_with_its_metadata(cache, tiny):
    import gguf

    source = rq.quantized(tiny, "q4_k_m")  # a quantized source, of mixed types
    kinds = {t.tensor_type.name for t in _tensors(source).values()}
    assert {"Q4_K", "Q6_K"} <= kinds, kinds
    f32 = rq.f32_gguf(source)
    assert f32.parent != source.parent  # keyed by the source's own sha256

    made = _tensors(f32)
    assert list(made) == list(_tensors(source))
    for name, tensor in _tensors(source).items():
        out = made[name]
        assert out.tensor_type == gguf.GGMLQuantizationType.F32
        assert list(out.shape) == list(tensor.shape)  # GGUF dims, ne0 first
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        assert np.array_equal(np.asarray(out.data), expected), name

    before, after = _fields(source), _fields(f32)
    assert list(after) == list(before)
    assert after.pop("general.file_type") == (["UINT32"], 0)
    assert before.pop("general.file_type") == (["UINT32"], 15)
    assert after == before  # each value with its type; arrays with their element types
    assert after["tokenizer.ggml.tokens"] == (["ARRAY", "STRING"], ["<s>", "</s>", "a", "b", "c", "ab", "bc", "abc"])
    assert after["tokenizer.ggml.token_type"][0] == ["ARRAY", "INT32"]


@pytest.mark.llamacpp
def test_q8_0_loads_and_requantizing_its_f32_gives_it_back(cache, tiny):
    import llama_cpp

    q8 = rq.quantized(tiny, "Q8_0")
    assert _fields(q8)["general.file_type"][1] == rq.TYPES["q8_0"] == 7
    kinds = {name: t.tensor_type.name for name, t in _tensors(q8).items()}
    assert {k for name, k in kinds.items() if "norm" not in name} == {"Q8_0"}
    assert {k for name, k in kinds.items() if "norm" in name} == {"F32"}  # llama.cpp keeps norms in F32
    model = llama_cpp.Llama(str(q8), n_ctx=64, n_threads=1, verbose=False)
    assert model.tokenize(b"abc", add_bos=False) == [7]
    assert all(0 <= t < 8 for t in _greedy(model, [7], 2))
    del model

    # Q8_0 of a dequantized Q8_0 is lossless: any tensor put back in another order or shape would differ.
    again = _tensors(rq.quantized(rq.f32_gguf(q8), "q8_0"))
    for name, tensor in _tensors(q8).items():
        assert np.array_equal(np.asarray(again[name].data), np.asarray(tensor.data)), name


@pytest.mark.llamacpp
def test_made_once_timed_and_recorded(cache, tiny):
    first = rq.prepare(tiny, "q8_0")
    assert first.convert_s > 0 and first.path == rq.source_dir(tiny) / "q8_0.gguf"
    again = rq.prepare(tiny, "q8_0")
    assert again == rq.Prepared(first.path, None)
    f32 = rq.prepare(tiny, "f32")
    assert f32.convert_s is None  # made on the way to q8_0
    meta = json.loads((first.path.parent / "meta.json").read_text())
    assert meta["source"] == {"path": str(tiny), "name": "tiny.gguf"}
    assert set(meta["types"]) == {"f32", "q8_0"}
    for name, record in meta["types"].items():
        assert record["bytes"] == (first.path.parent / f"{name}.gguf").stat().st_size
        assert 0 < record["seconds"] <= first.convert_s + 0.01
    assert sorted(p.name for p in first.path.parent.iterdir()) == [
        "f32.gguf",
        "f32.gguf.lock",
        "meta.json",
        "meta.json.lock",
        "q8_0.gguf",
        "q8_0.gguf.lock",
    ]


def test_two_writers_never_both_write(cache, tmp_path):
    target, writes, results = tmp_path / "out" / "x.gguf", [], []

    def build(tmp: Path) -> None:
        writes.append(tmp)
        time.sleep(0.2)
        tmp.write_bytes(b"done")

    threads = [
        threading.Thread(target=lambda: results.append(rq._make(target, tmp_path / "src.gguf", build)))
        for _ in range(2)
    ]  # flock: each open() is its own lock, so threads exclude each other too
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(writes) == 1 and target.read_bytes() == b"done"
    assert len(results) == 2 and results.count(None) == 1  # the second found it made
    assert not writes[0].exists()


def test_unknown_type_and_missing_file_are_refused(cache, tiny, tmp_path):
    with pytest.raises(SizebenchError, match="unknown llama.cpp type 'q9_9'.*q8_0"):
        rq.prepare(tiny, "q9_9")
    with pytest.raises(SizebenchError, match="does not exist"):
        rq.prepare(tmp_path / "absent.gguf", "q8_0")
    assert not (cache / "llama.cpp").exists()


@pytest.mark.llamacpp
def test_a_failed_quantization_is_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(ConversionFailed) as failed:
        rq.quantize(bad, tmp_path / "out.gguf", "q8_0")
    assert "\n" not in str(failed.value) and "to q8_0:" in str(failed.value)


@pytest.mark.slow
def test_smollm2_f32_is_the_shipped_q4_1_dequantized(tmp_path):
    """The shipped Q4_1 and its F32 agree on the answer's start, not on 16 greedy tokens: llama.cpp's Q4_1
    kernels quantize the activations to 8 bits as well. That F32 is exactly the shipped weights shows as
    quantizing it back to the shipped types (Q4_1, token_embd Q8_0): every tensor byte for byte, so the same
    16 tokens."""
    import llama_cpp
    from sizebench.planning.registry import builtin
    from sizebench.weights import sources

    shipped = sources.package_gguf(builtin("smollm2-135m"))
    f32 = rq.f32_gguf(shipped)  # the shared cache, as the other slow tests use it
    back = tmp_path / "back.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.pure, params.nthread = rq.TYPES["q4_1"], True, 2
    params.token_embedding_type = 8  # GGML_TYPE_Q8_0
    assert llama_cpp.llama_model_quantize(str(f32).encode(), str(back).encode(), ctypes.byref(params)) == 0
    made = _tensors(back)
    for name, tensor in _tensors(shipped).items():
        assert np.array_equal(np.asarray(made[name].data), np.asarray(tensor.data)), name

    answers, texts = {}, {}
    for name, path in (("shipped", shipped), ("back", back), ("f32", f32), ("q8_0", rq.quantized(shipped, "q8_0"))):
        model = llama_cpp.Llama(str(path), n_ctx=128, n_threads=2, verbose=False)
        answers[name] = _greedy(model, model.tokenize(PROMPT.encode()), 16)
        texts[name] = model.detokenize(answers[name]).decode(errors="replace")
        del model
    assert len(answers["shipped"]) == 16 and answers["back"] == answers["shipped"]
    assert texts["f32"].startswith(" Mount Fuji") and texts["shipped"].startswith(" Mount Fuji")
    assert "Fuji" in texts["q8_0"]


def _greedy(model, prompt: list[int], n: int) -> list[int]:
    tokens = []
    for token in model.generate(prompt, temp=0.0):
        tokens.append(token)
        if len(tokens) == n:
            return tokens
    return tokens
