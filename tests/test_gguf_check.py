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
    path.write_bytes(data[:at] + struct.pack("<I", 999) + data[at + 4:])
    with pytest.raises(BadGGUF, match="is corrupt: tensor 'token_embd.weight' has unknown type 999"):
        check(path)


def test_an_unreadable_file_is_named(tmp_path):
    with pytest.raises(BadGGUF, match="cannot be read"):
        check(tmp_path / "absent.gguf")
