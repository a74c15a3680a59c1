"""Prompt suites: the fixed questions sent to every model, and how an answer is judged right.

`.txt`: one prompt a line, `#` comments and blank lines ignored, expected answers after ` => `
with `|` between accepted variants. `.jsonl`: {"prompt", "expected": [...], "id", "context"}.
Strict in both: a line the benchmark cannot use (an empty prompt, an answer with no prompt, an id or
prompt given twice) is an error naming the file and the line, never a silent drop.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from sizebench.errors import SizebenchError
from sizebench.specs.prompts import Prompt


@dataclass(frozen=True)
class Suite:
    name: str
    path: str
    prompts: tuple[Prompt, ...] = field(default_factory=tuple)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.exists():
        raise SizebenchError(f"prompts file '{path}' does not exist")
    if not path.is_file():
        raise SizebenchError(f"prompts file '{path}' is not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SizebenchError(f"prompts file '{path}' cannot be read: {exc.strerror}") from exc
    if b"\x00" in raw:
        raise SizebenchError(f"prompts file '{path}' is binary, not text")
    lines = _decode_lines(raw, path)
    parse = _parse_jsonl if path.suffix == ".jsonl" else _parse_txt
    numbered = parse(lines, path)
    if not numbered:
        raise SizebenchError(f"prompts file '{path}' has no prompts (only blank lines or comments)")
    _check_unique(numbered, path)
    return Suite(path.stem, str(path), tuple(prompt for _, prompt in numbered))


def _error(path: Path, number: int, problem: str) -> SizebenchError:
    return SizebenchError(f"prompts file '{path}' line {number}: {problem}")


def _check_unique(numbered: list[tuple[int, Prompt]], path: Path) -> None:
    """An id used twice would mix two prompts' rows; a prompt asked twice would count twice."""
    ids: dict[str, int] = {}
    texts: dict[tuple[str, str | None], int] = {}
    for number, prompt in numbered:
        if prompt.id in ids:
            raise _error(path, number, f"id '{prompt.id}' is already used on line {ids[prompt.id]}")
        if (prompt.text, prompt.context) in texts:
            raise _error(path, number, f"the same prompt as line {texts[prompt.text, prompt.context]}")
        ids[prompt.id] = number
        texts[prompt.text, prompt.context] = number


def _decode_lines(raw: bytes, path: Path) -> list[str]:
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise SizebenchError(
                f"prompts file '{path}' line {number} is not UTF-8 (byte 0x{line[exc.start]:02x}); save it as UTF-8"
            ) from exc
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    return lines


def _parse_txt(lines: list[str], path: Path) -> list[tuple[int, Prompt]]:
    prompts = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        text, separator, expected = f" {line} ".partition(" => ")  # padded: ' => Paris' and 'Q =>' split too
        text = text.strip()
        variants = tuple(v.strip() for v in expected.split("|") if v.strip())
        if not text:
            raise _error(path, number, f"an expected answer ('{expected.strip()}') with no prompt before ' => '")
        if separator and not variants:
            raise _error(path, number, "nothing after ' => ' (leave ' => ' out for a prompt with no expected answer)")
        prompts.append((number, Prompt(f"{path.stem}-{len(prompts) + 1:03d}", text, variants)))
    return prompts


def _parse_jsonl(lines: list[str], path: Path) -> list[tuple[int, Prompt]]:
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _error(path, number, f"not valid JSON ({exc.msg})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            given = isinstance(item, dict) and item.get("expected") and not item.get("prompt")
            raise _error(
                path, number, 'an expected answer with no "prompt"' if given else 'needs a non-empty "prompt" string'
            )
        expected = item.get("expected") or []
        if isinstance(expected, str):
            expected = [expected]
        prompts.append(
            (
                number,
                Prompt(
                    str(item.get("id") or f"{path.stem}-{len(prompts) + 1:03d}"),
                    item["prompt"].strip(),
                    tuple(str(e) for e in expected),
                    item.get("context") or None,
                    item.get("category"),
                ),
            )
        )
    return prompts


def normalize(text: str) -> str:
    """Case- and accent-insensitive form with collapsed whitespace."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def is_correct(answer: str, expected: tuple[str, ...]) -> bool | None:
    """True if any variant appears in the answer as whole words; None when nothing is expected."""
    if not expected:
        return None
    haystack = normalize(answer)
    return any(re.search(rf"(?<!\w){re.escape(normalize(v))}(?!\w)", haystack) for v in expected)
