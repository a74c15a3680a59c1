"""The GGUF structure check: sound files pass, every kind of damage is named in one line."""

import struct

import pytest

from conftest import tiny_gguf, tiny_llama_gguf
from sizebench.weights.gguf_check import BadGGUF, check


def test_sound_files_pass(tmp_path):
    check(tiny_gguf(tmp_path / "one.gguf"))
    check(tiny_llama_gguf(tmp_path / "llama.gguf"))


def damaged(path, edit):
    data = bytearray(tiny_llama_gguf(path).read_bytes())
    path.write_bytes(edit(data))
    return path


CASES = [
    (lambda d: d[:10], "is truncated: 10 bytes, not even a GGUF header"),
    (lambda d: d[:300], "is truncated: its header ends past the file's 300 bytes"),
    (lambda d: d[:-1], "is truncated: its tensors need"),
    (lambda d: b"\x00" * len(d), "is not a GGUF file (it starts with b'\\x00\\x00\\x00\\x00'"),
    (lambda d: d[:4] + struct.pack("<I", 7) + d[8:], "has version 7; supported: 2, 3"),
    (lambda d: d[:8] + struct.pack("<Q", 2**40) + d[16:], "is corrupt: 1,099,511,627,776 tensors"),
]


@pytest.mark.parametrize("edit, message", CASES, ids=[m for _, m in CASES])
def test_damage_is_named_in_one_line(tmp_path, edit, message):
    path = damaged(tmp_path / "m.gguf", edit)
    with pytest.raises(BadGGUF) as info:
        check(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_tensor_of_an_unknown_type_is_corrupt(tmp_path):
    path = tiny_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    name = b"token_embd.weight"
    at = data.index(name) + len(name) + 4 + 2 * 8  # past the name, its dimension count and two dimensions
    path.write_bytes(data[:at] + struct.pack("<I", 999) + data[at + 4 :])
    with pytest.raises(BadGGUF, match="is corrupt: tensor 'token_embd.weight' has unknown type 999"):
        check(path)


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(BadGGUF, match="cannot be read"):
        check(tmp_path / "absent.gguf")


def _nested_arrays(path, depth: int):
    """A GGUF of no tensors and one metadata field: an array of an array of ... `depth` deep (60 KB at 5,000)."""
    field = struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 4, 0)
    key = b"general.nested"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + field
    path.write_bytes(data + b"\0" * (-len(data) % 32))  # the (empty) data section starts aligned
    return path


def test_arrays_nested_thousands_deep_are_corrupt_in_one_line_not_a_crash(tmp_path):
    from conftest import sizebench

    check(_nested_arrays(tmp_path / "shallow.gguf", 3))  # arrays of arrays are legal GGUF
    deep = _nested_arrays(tmp_path / "deep.gguf", 5000)
    with pytest.raises(BadGGUF, match="is corrupt: arrays nested more than 16 deep"):
        check(deep)
    done = sizebench("compare", "--models", str(deep), "--results", str(tmp_path / "results"), timeout=120)
    assert done.returncode == 2 and "is corrupt: arrays nested" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
