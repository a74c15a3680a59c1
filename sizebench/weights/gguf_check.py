"""A GGUF file's structure checked before anything loads it: magic, version, header, tensor extents.

Only the header and the tensor table are read (through a memory map), and only the `gguf` package's
table of type sizes is imported (no torch), so the CLI runs it on every .gguf path it is given: a
truncated download fails there, naming the file, instead of deep inside a conversion.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import NamedTuple

from sizebench.errors import SizebenchError

SUPPORTED_VERSIONS = (2, 3)  # what gguf.GGUFReader reads
DEFAULT_ALIGNMENT = 32
# GGUF value types -> struct formats of the fixed-size ones; 8 is a string, 9 an array
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
MAX_NESTING = 16  # arrays in arrays; llama.cpp's own files nest one deep


class BadGGUF(SizebenchError):
    """A file that is not a GGUF this program can read: corrupt, truncated, or of an unknown version."""


class _Truncated(Exception):
    pass


class _Header:
    def __init__(self, data: mmap.mmap | bytes, order: str):
        self.data, self.order, self.pos = data, order, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise _Truncated
        (value,) = struct.unpack_from(self.order + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> bytes:
        length = self.take("Q")
        if self.pos + length > len(self.data):
            raise _Truncated
        self.pos += length
        return self.data[self.pos - length : self.pos]

    def value(self, kind: int):
        """A scalar or a string; an array is walked (not recursed into: a file may nest thousands deep) and
        skipped, None."""
        if kind in SCALARS:
            return self.take(SCALARS[kind])
        if kind == STRING:
            return self.string()
        if kind != ARRAY:
            raise BadGGUF(f"unknown value type {kind}")
        arrays = [[self.take("I"), self.take("Q")]]  # per open array: its item type, the items left
        while arrays:
            if len(arrays) > MAX_NESTING:
                raise BadGGUF(f"arrays nested more than {MAX_NESTING} deep")
            item_kind, left = arrays[-1]
            if left == 0:
                arrays.pop()
            elif item_kind in SCALARS:  # skipped whole: a vocabulary's scores are 100k+ numbers
                size = struct.calcsize(SCALARS[item_kind]) * left
                if self.pos + size > len(self.data):
                    raise _Truncated
                self.pos += size
                arrays[-1][1] = 0
            elif item_kind == STRING:
                self.string()
                arrays[-1][1] -= 1
            elif item_kind == ARRAY:
                arrays[-1][1] -= 1
                arrays.append([self.take("I"), self.take("Q")])
            else:
                raise BadGGUF(f"unknown value type {item_kind}")
        return None


def check(path: Path) -> None:
    """Raise BadGGUF (one line, naming the file) unless every tensor's data lies inside the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < 24:  # magic, version, tensor count, metadata count
                raise BadGGUF(f"GGUF file '{path}' is truncated: {size} bytes, not even a GGUF header")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _check_layout(path, data, size)
    except OSError as exc:
        raise BadGGUF(f"GGUF file '{path}' cannot be read: {exc.strerror or exc}") from exc


def _check_layout(path: Path, data, size: int) -> None:
    if data[:4] != b"GGUF":
        raise BadGGUF(f"'{path}' is not a GGUF file (it starts with {bytes(data[:4])!r}, not b'GGUF')")
    order = "<"
    version = struct.unpack_from("<I", data, 4)[0]
    if version & 0xFFFF == 0:  # a big-endian file
        order, version = ">", struct.unpack_from(">I", data, 4)[0]
    if version not in SUPPORTED_VERSIONS:
        raise BadGGUF(f"GGUF file '{path}' has version {version}; supported: {', '.join(map(str, SUPPORTED_VERSIONS))}")
    header = _Header(data, order)
    header.pos = 8
    try:
        alignment, tables = _read_tables(header, size)
    except _Truncated:
        raise BadGGUF(f"GGUF file '{path}' is truncated: its header ends past the file's {size} bytes") from None
    except (BadGGUF, UnicodeDecodeError) as exc:
        raise BadGGUF(f"GGUF file '{path}' is corrupt: {exc}") from None
    start = -(-header.pos // alignment) * alignment
    end, name = max(((start + t.end, t.name) for t in tables), default=(start, None))
    if end > size:
        raise BadGGUF(
            f"GGUF file '{path}' is truncated: its tensors need {end:,} bytes ('{name}' ends last), "
            f"the file has {size:,}"
        )


class Tensor(NamedTuple):
    name: str
    elements: int
    nbytes: int
    end: int  # end of its data, relative to the data section
    kind: int  # GGML type id


def tables(path: Path) -> tuple[dict, list[Tensor]]:
    """A checked GGUF's metadata (scalars and strings; arrays left out) and its tensors."""
    with Path(path).open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        order = ">" if struct.unpack_from("<I", data, 4)[0] & 0xFFFF == 0 else "<"
        header = _Header(data, order)
        header.pos = 8
        metadata: dict = {}
        return metadata, _read_tables(header, len(data), metadata)[1]


def _read_tables(header: _Header, size: int, metadata: dict | None = None) -> tuple[int, list[Tensor]]:
    """(alignment, the tensors); `metadata`, when given, gets every scalar and string field."""
    n_tensors, n_fields = header.take("Q"), header.take("Q")
    if n_tensors > size or n_fields > size:
        raise BadGGUF(f"{n_tensors:,} tensors and {n_fields:,} metadata entries cannot fit in {size:,} bytes")
    alignment = DEFAULT_ALIGNMENT
    for _ in range(n_fields):
        key = header.string().decode()
        value = header.value(header.take("I"))
        if metadata is not None and value is not None:
            metadata[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if key == "general.alignment":
            if not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise BadGGUF(f"general.alignment is {value!r}, not a power of two")
            alignment = value
    tables = []
    for _ in range(n_tensors):
        name = header.string().decode()
        n_dims = header.take("I")
        if n_dims > 8:
            raise BadGGUF(f"tensor '{name}' has {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= header.take("Q")
        kind, offset = header.take("I"), header.take("Q")
        nbytes = _data_bytes(name, kind, elements)
        tables.append(Tensor(name, elements, nbytes, offset + nbytes, kind))
    return alignment, tables


def _data_bytes(name: str, kind: int, elements: int) -> int:
    block, type_size = _quant_sizes().get(kind, (None, None))
    if block is None:
        raise BadGGUF(f"tensor '{name}' has unknown type {kind}")
    if elements % block:
        raise BadGGUF(f"tensor '{name}' has {elements} elements, not a multiple of its type's block of {block}")
    return elements // block * type_size


def _quant_sizes() -> dict[int, tuple[int, int]]:
    """GGML type id -> (elements per block, bytes per block)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(kind): sizes for kind, sizes in GGML_QUANT_SIZES.items()}
