"""The one reader and writer of record files (JSON lines): whatever text, whatever crash, a line is whole or skipped.

Lines are split on "\\n" only (never on U+2028, U+2029 or U+0085, which answers may hold) and each is decoded
by itself, so a line torn inside a multi-byte character loses that line alone. A line that is not UTF-8, not
JSON, or not a record of a known kind with its fields is skipped with one warning naming its line. Strings
are repaired at the edge: a lone surrogate (half of an emoji split across two streamed events, a hand-edited
`\\ud800`) becomes U+FFFD, counted in a warning, on writing and on reading. An append starts on a line of its
own even after a torn last line.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from sizebench.runstore.records import KINDS

_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}


class StoreWarning(UserWarning):
    """A record file held a line that is not a record, or text that had to be repaired."""


def repaired(value, count: list[int]):
    """`value` with every string's lone surrogates replaced by U+FFFD (a valid pair is joined); count[0] += each."""
    if isinstance(value, str):
        if value.isascii():
            return value
        fixed = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        surrogates = sum(1 for c in value if "\ud800" <= c <= "\udfff")
        count[0] += surrogates - 2 * (len(value) - len(fixed))
        return fixed
    if isinstance(value, dict):
        return {repaired(k, count): repaired(v, count) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repaired(v, count) for v in value]
    return value


def repair(value, where: str):
    """A string (or a JSON value) repaired at the edge, with a warning when something was replaced."""
    count = [0]
    fixed = repaired(value, count)
    _warn_repaired(count[0], where)
    return fixed


def _warn_repaired(count: int, where: str) -> None:
    if count:
        warnings.warn(f"{where}: {count} lone surrogate(s) replaced by U+FFFD", StoreWarning, stacklevel=3)


def encode(row: dict) -> bytes:
    """One record as its line, "\\n" included; its strings repaired already (repair)."""
    return (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def append(path: Path, rows: list[dict]) -> list[dict]:
    """Append whole lines, flushed and fsynced; after a torn last line (no "\\n"), on a line of its own.
    Returns the rows as written (strings repaired)."""
    rows = [repair(row, str(path)) for row in rows]
    data = b"".join(encode(row) for row in rows)
    with Path(path).open("ab+") as handle:
        if handle.seek(0, os.SEEK_END) > 0:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                data = b"\n" + data
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return rows


def read(path: Path, is_valid: Callable[[object], str | None] | None = None) -> list[dict]:
    """Every valid record of the file, in order; the rest skipped with one warning each."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [row for _, row in decode(data, str(path), is_valid)]


def decode(
    data: bytes, where: str, is_valid: Callable[[object], str | None] | None = None, first_line: int = 1
) -> Iterator[tuple[int, dict]]:
    """(line number, record) for each valid line of `data`; `is_valid` says why a row is not a record (None: it is)."""
    check = is_valid or record_problem
    for number, raw in enumerate(data.split(b"\n"), start=first_line):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            _skip(where, number, "not UTF-8 (torn mid-character?)")
            continue
        except ValueError:
            _skip(where, number, "not JSON (torn by a kill?)")
            continue
        problem = check(row)
        if problem:
            _skip(where, number, problem)
            continue
        count = [0]
        row = repaired(row, count)
        _warn_repaired(count[0], f"{where} line {number}")
        yield number, row


def _skip(where: str, number: int, why: str) -> None:
    warnings.warn(f"{where}: skipped line {number}: {why}", StoreWarning, stacklevel=4)


def record_problem(row: object) -> str | None:
    """Why a JSON value is not a record of a known kind with its fields (None when it is one)."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not a record"
    cls = KINDS.get(row.get("kind")) if isinstance(row.get("kind"), str) else None
    if cls is None:
        return f"no known record kind ({str(row.get('kind'))[:40]!r})"
    for name, field in cls.__dataclass_fields__.items():
        if name not in row:
            if field.default is field.default_factory:  # both MISSING: a field every record of the kind has
                return f"a {cls.kind} record without its field {name!r}"
            continue
        if not _fits(row[name], str(field.type)):
            return f"a {cls.kind} record whose {name!r} is not {field.type}"
    return None


def _fits(value, annotation: str) -> bool:
    """A light check of a JSON value against a field's annotation ("float | None", "list[str]"): enough that
    readers never meet a string where a number is or None where none may be."""
    for option in annotation.split("|"):
        option = option.strip()
        if option == "None":
            if value is None:
                return True
            continue
        expected = _TYPES.get(option.split("[")[0])
        if expected is None or (option == "bool" if isinstance(value, bool) else isinstance(value, expected)):
            return True
    return False
