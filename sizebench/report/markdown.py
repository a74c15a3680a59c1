"""Markdown building blocks: safe table cells, tables, and number formats shared by every section."""

from __future__ import annotations

import math


def cell(value) -> str:
    """Text safe inside a Markdown table cell: no pipe, newline, backtick or HTML can break the table."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    text = " ".join(text.split())
    for char, escaped in (
        ("\\", "\\\\"),
        ("|", "\\|"),
        ("`", "\\`"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("*", "\\*"),
        ("_", "\\_"),
        ("[", "\\["),
        ("]", "\\]"),
    ):
        text = text.replace(char, escaped)
    return text


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_num(value, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def fmt_params(value, unknown: str = "?") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return unknown
    if value >= 1e9:
        return f"{value / 1e9:.2f}B"
    return f"{value / 1e6:.0f}M" if value >= 1e7 else f"{value / 1e6:.2f}M"
