"""`sizebench cache`: what the cache holds, and removing it by model and type, never mid-write nor outside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_llama_gguf
from sizebench.errors import SizebenchError
from sizebench.weights import cache, gguf_requant as rq

pytestmark = pytest.mark.llamacpp  # the cache is filled by llama.cpp's quantizer
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture
def filled(tmp_path, monkeypatch) -> Path:
    """A cache in tmp with one entry of each kind, and two writers' temporary copies: one dead, one alive."""
    root = tmp_path / "cache"
    monkeypatch.setenv("SIZEBENCH_CACHE", str(root))
    rq.quantized(tiny_llama_gguf(tmp_path / "tiny.gguf", hidden=32, ffn=64), "q8_0")  # f32 and q8_0
    converted = root / "safetensors" / "0123456789abcdef"
    converted.mkdir(parents=True)
    (converted / "model.safetensors").write_bytes(b"\0" * 3000)
    (converted / "config.json").write_text(json.dumps({"dtype": "float32"}))
    (converted / "COMPLETE").write_text(json.dumps({"gguf": f"/somewhere/{SMOL}"}))
    (root / "safetensors" / "0123456789abcdef.lock").touch()
    (root / "gguf-files").mkdir()
    (root / "gguf-files" / "gemma-3-270m-q4_k_m.gguf").write_bytes(b"\0" * 1000)
    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    left = root / "safetensors" / f"fedcba9876543210.tmp{dead}-0badc0de"  # gguf_convert's staging name
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"1" * 500)
    (root / "safetensors" / f"fedcba9876543210.tmp{os.getpid()}-12345678").mkdir()  # being written
    return root


def _rows(entries) -> list[tuple]:
    return [(e.kind, e.model, e.type) for e in entries]


def test_lists_every_kind_with_its_size_on_disk(filled):
    found = cache.entries()
    assert _rows(found) == [
        ("leftover", "?", "-"),
        (cache.SAFETENSORS, SMOL, "f32"),
        (cache.ASSEMBLED, "gemma-3-270m-q4_k_m.gguf", "-"),
        (cache.LLAMA_CPP, "tiny.gguf", "f32"),
        (cache.LLAMA_CPP, "tiny.gguf", "q8_0"),
    ]
    sizes = {(e.kind, e.type): e.bytes for e in found}
    assert sizes[(cache.SAFETENSORS, "f32")] == 3000 + sum(
        len(p.read_bytes())
        for p in (filled / "safetensors" / "0123456789abcdef").iterdir()
        if p.suffix != ".safetensors"
    )
    assert sizes[("leftover", "-")] == 500
    for entry in found:
        if entry.kind == cache.LLAMA_CPP:
            assert entry.bytes == entry.path.stat().st_size > 0
            assert entry.path == rq.source_dir(filled.parent / "tiny.gguf") / f"{entry.type}.gguf"
    assert _rows(cache.select("TINY", "Q8_0")) == [(cache.LLAMA_CPP, "tiny.gguf", "q8_0")]
    assert _rows(cache.select(type="safetensors")) == [(cache.SAFETENSORS, SMOL, "f32")]


def test_removes_by_model_and_type_then_the_whole_source(filled):
    folder = rq.source_dir(filled.parent / "tiny.gguf")
    removal = cache.remove("tiny", "q8_0")
    assert _rows(removal.removed) == [(cache.LLAMA_CPP, "tiny.gguf", "q8_0")] and not removal.busy
    assert removal.summary().startswith("removed 1 cache entry, ") and "tiny.gguf q8_0 (llama.cpp)" in removal.summary()
    assert not (folder / "q8_0.gguf").exists() and (folder / "f32.gguf").exists()
    assert set(json.loads((folder / "meta.json").read_text())["types"]) == {"f32"}

    cache.remove("tiny")
    assert not folder.exists()  # no type left: meta.json and the locks go with it
    assert rq.prepare(filled.parent / "tiny.gguf", "f32").convert_s > 0  # and it is made again on demand
    assert _rows(cache.select("tiny")) == [(cache.LLAMA_CPP, "tiny.gguf", "f32")]


def test_all_removes_everything_but_what_is_being_written(filled):
    q8 = rq.source_dir(filled.parent / "tiny.gguf") / "q8_0.gguf"
    with rq.locked(q8):  # as a writer holds it
        removal = cache.remove(everything=True)
    assert _rows(removal.busy) == [(cache.LLAMA_CPP, "tiny.gguf", "q8_0")]
    assert len(removal.removed) == 4 and "left 1 being written" in removal.summary()
    assert _rows(cache.entries()) == [(cache.LLAMA_CPP, "tiny.gguf", "q8_0")]
    assert (filled / "safetensors").exists() and not (filled / "safetensors" / "0123456789abcdef").exists()
    assert any(p.name.endswith("-12345678") for p in (filled / "safetensors").iterdir())  # a live writer's copy

    with rq.locked(q8), pytest.raises(SizebenchError, match="being written"):
        cache.remove(everything=True)


def test_nothing_matching_or_no_selector_is_an_error(filled):
    with pytest.raises(SizebenchError, match="nothing matching model 'llama-70b'"):
        cache.remove("llama-70b")
    with pytest.raises(SizebenchError, match="nothing matching model 'tiny' and type 'q4_0'"):
        cache.remove("tiny", "q4_0")
    with pytest.raises(SizebenchError, match="unknown cache type 'q9'"):
        cache.remove("tiny", "q9")
    with pytest.raises(SizebenchError, match="say what to remove"):
        cache.remove()
    assert len(cache.entries()) == 5


def test_never_removes_outside_the_cache(filled, tmp_path):
    outside = tmp_path / "precious.gguf"
    outside.write_bytes(b"keep")
    (filled / "gguf-files" / "linked.gguf").symlink_to(outside)
    cache.remove("linked")
    assert outside.read_bytes() == b"keep" and not (filled / "gguf-files" / "linked.gguf").exists()
    stray = cache.Entry(cache.ASSEMBLED, "precious.gguf", "-", 4, outside)
    with pytest.raises(SizebenchError, match="not inside the cache"):
        cache._remove(stray)
    assert outside.exists()


def test_cli_lists_and_removes(filled, cli):
    code, out, err = cli("cache")
    assert code == 0 and not err
    assert "tiny.gguf" in out and SMOL in out and "total: 5 entries" in out
    code, out, err = cli("cache", "--remove", "smollm2")
    assert code == 0 and out.startswith("removed 1 cache entry, 3.0 KiB freed") and SMOL in out
    code, out, err = cli("cache", "--remove", "smollm2")
    assert code == 2 and not out and err.count("\n") == 1 and err.startswith("error: the sizebench cache")
    code, out, err = cli("cache", "--remove", "tiny", "--all")
    assert code == 2 and err == "error: give --remove MODEL or --all, not both\n"
    code, out, err = cli("cache", "--all", "--type", "q8_0")
    assert code == 0 and "tiny.gguf q8_0 (llama.cpp)" in out
    assert _rows(cache.entries()) == [
        ("leftover", "?", "-"),
        (cache.ASSEMBLED, "gemma-3-270m-q4_k_m.gguf", "-"),
        (cache.LLAMA_CPP, "tiny.gguf", "f32"),
    ]
