"""The conversion's parse-once memos (same values as the stock gguf reader, one parse per file, restored after),
and its cache entries under sweeps that convert the same file at once."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_gguf, tiny_llama_gguf


@pytest.mark.long
def test_parse_once_reads_the_same_values_once_and_restores_everything(tmp_path):
    import gguf
    import transformers.modeling_gguf_pytorch_utils as legacy

    from sizebench.weights.gguf_convert import parse_once

    path = tiny_gguf(tmp_path / "t.gguf")
    stock = gguf.GGUFReader(path)
    import transformers.integrations.gguf as fast_package
    import transformers.integrations.gguf.reader as fast_module

    stock_checkpoint = legacy.load_gguf_checkpoint(str(path))
    originals = (gguf.GGUFReader, gguf.get_tensor_name_map, legacy.load_gguf_checkpoint, legacy._gguf_parse_value)
    stock_read = fast_module.read_gguf_metadata
    vars(fast_package).pop("read_gguf_metadata", None)  # as in a fresh process: the lazy package has not looked it up
    with parse_once():
        reader = gguf.GGUFReader(path)
        assert gguf.GGUFReader(path) is reader  # one parse per file
        assert type(reader.data) is np.ndarray  # plain views, not np.memmap ones
        assert list(reader.fields) == list(stock.fields)
        for name, field in stock.fields.items():
            assert [bytes(p) for p in reader.fields[name].parts] == [bytes(p) for p in field.parts]
        assert np.array_equal(reader.tensors[0].data, stock.tensors[0].data)
        for field in stock.fields.values():  # the value parser: same values, strings included, twice
            for index in field.data:
                expected = originals[3](field.parts[index], field.types)
                part = reader.fields[field.name].parts[index]
                assert legacy._gguf_parse_value(part, field.types) == expected
                assert legacy._gguf_parse_value(part, field.types) == expected
        first = legacy.load_gguf_checkpoint(str(path))
        assert first == stock_checkpoint
        first["config"].clear()  # callers edit what they get: the memo hands out copies
        assert legacy.load_gguf_checkpoint(str(path))["config"]
    assert (
        gguf.GGUFReader,
        gguf.get_tensor_name_map,
        legacy.load_gguf_checkpoint,
        legacy._gguf_parse_value,
    ) == originals
    # no memo outlives the block (one kept a converted vocabulary alive in the worker: 200 MB for gemma3)
    assert fast_module.read_gguf_metadata is stock_read and fast_package.read_gguf_metadata is stock_read


LOCATE = """
import sys
from sizebench.weights import sources
from sizebench.planning.registry import resolve
located = sources.locate(resolve(sys.argv[1])[0])
print(located.path, (located.path / "model.safetensors").stat().st_ino, located.convert_s is not None)
"""


@pytest.mark.models
def test_two_sweeps_converting_one_gguf_at_once_both_end_with_one_valid_entry(tmp_path, monkeypatch):
    """Each sweep's entry is still the one it was handed when both are done, and nothing else is left."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("SIZEBENCH_CACHE", str(tmp_path / "cache"))
    gguf = tiny_llama_gguf(tmp_path / "m.gguf")
    sweeps = [
        subprocess.Popen(
            [sys.executable, "-c", LOCATE, str(gguf)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=300) for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], [err[-2000:] for _, err in outputs]
    handed = [out.split() for out, _ in outputs]  # [path, inode of its weights, converted now]
    entries = [p for p in (tmp_path / "cache" / "safetensors").iterdir() if p.suffix != ".lock"]
    assert [str(e) for e in entries] == sorted({path for path, _, _ in handed})  # one, nothing left over
    weights = entries[0] / "model.safetensors"
    assert [int(inode) for _, inode, _ in handed] == [weights.stat().st_ino] * 2
    assert (entries[0] / "COMPLETE").exists() and AutoModelForCausalLM.from_pretrained(entries[0]).num_parameters()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["gguf-hashes.json", "safetensors"]


@pytest.mark.long
def test_a_conversion_that_finishes_second_leaves_the_first_entry_in_place(tmp_path):
    """A sweep that found no entry when it started converts too; the entry another sweep is loading stays."""
    from sizebench.weights.gguf_convert import convert_gguf

    gguf, target = tiny_llama_gguf(tmp_path / "m.gguf"), tmp_path / "cache" / "entry"
    convert_gguf(gguf, target)
    first = (target / "model.safetensors").stat().st_ino
    convert_gguf(gguf, target)
    assert (target / "model.safetensors").stat().st_ino == first and (target / "COMPLETE").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry", "entry.lock"]
