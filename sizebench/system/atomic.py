"""Files written whole or not at all: a temporary file in the same folder, then os.replace.

A reader, or a second sweep rendering the same report at the same moment, sees the old file or the
new one, never half of one; a crash mid-write leaves the old file in place. The new file's data is
fsynced before the rename and the folder after it, so a power loss cannot leave an empty `run.json`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A fresh temporary path beside `path` (same suffix) to write; renamed over `path` if the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _fsync(path: Path) -> None:
    """Data (a file) or entries (a folder) on disk before going on."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
