"""`sizebench cache`: the weights sizebench converted and cached."""

from __future__ import annotations

from typing import Optional

import typer

from sizebench.cli.app import app, out
from sizebench.errors import SizebenchError


@app.command()
def cache(
    remove: Optional[str] = typer.Option(
        None, "--remove", metavar="MODEL", help="Remove the entries whose model file name contains MODEL."
    ),
    type_: Optional[str] = typer.Option(
        None,
        "--type",
        help="Only entries of this type (f32, q8_0, q4_k_m, ...) or kind (safetensors, llama.cpp, gguf, leftover).",
    ),
    everything: bool = typer.Option(False, "--all", help="Remove every entry (of --type, if given)."),
) -> None:
    """List the weights sizebench has converted and cached (GGUF -> safetensors, llama.cpp types), or remove some."""
    from sizebench.weights import cache as weights_cache

    if remove is not None and everything:
        raise SizebenchError("give --remove MODEL or --all, not both")
    if remove is None and not everything:
        out.print(weights_cache.table(weights_cache.select(type=type_)))
        return
    out.print(weights_cache.remove(remove, type_, everything).summary(), markup=False, soft_wrap=True)
