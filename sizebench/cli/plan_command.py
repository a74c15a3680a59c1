"""`sizebench plan`: where each rung would go and what it needs, from configs alone."""

from __future__ import annotations

from typing import Optional

import typer

from sizebench.cli import options
from sizebench.cli.app import app, out
from sizebench.errors import SizebenchError

MODELS, ENGINES = (
    options.typer_option(options.option_of("--models")),
    options.typer_option(options.option_of("--engines")),
)
DTYPE = options.typer_option(options.option_of("--dtype"))
NO_OFFLOAD = options.typer_option(options.option_of("--no-offload"))


@app.command("plan")
def plan_(
    models: str = MODELS,
    engines: str = ENGINES,
    gpu: Optional[str] = typer.Option(
        None,
        "--gpu",
        help="Card sizes, one per GPU: 16GiB,16GiB (or T4, which "
        "has no bf16); the plan subtracts the CUDA context. Default: this machine.",
    ),
    ram: Optional[str] = typer.Option(
        None, "--ram", help="RAM for offloaded layers and CPU runs, e.g. 110GiB (default: free RAM here)."
    ),
    dtype: str = DTYPE,
    context: Optional[int] = typer.Option(
        None, "--context", help="Tokens of KV cache per sequence (default 2048, or a shorter window)."
    ),
    batch_size: int = typer.Option(1, "--batch-size", help="Sequences at once."),
    no_offload: bool = NO_OFFLOAD,
    json_out: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Where each rung would go (one GPU, sharded, offloaded, refused) and what it needs, from configs alone."""
    import json

    from rich.table import Table

    from sizebench.planning import fit
    from sizebench.planning.plan import DTYPES
    from sizebench.planning.registry import resolve

    if dtype not in DTYPES:
        raise SizebenchError(f"--dtype must be one of {', '.join(DTYPES)}, not '{dtype}'")
    if (context is not None and context <= 0) or batch_size <= 0:
        raise SizebenchError("--context and --batch-size must be positive")
    where = fit.machine(gpu, ram)
    rows = fit.plan_rows(
        resolve(models, options.parse_engines(engines)), where, dtype, context, batch_size, not no_offload
    )
    if json_out:
        print(
            json.dumps(
                {
                    "machine": where.described,
                    "context": context,
                    "batch_size": batch_size,
                    "cuda_context_bytes": fit.CUDA_CONTEXT_BYTES,
                    "rungs": [r.to_dict() for r in rows],
                },
                indent=1,
            )
        )  # not rich's print_json: it wraps long strings at the console's width
        return

    def gib(value) -> str:
        return "-" if value is None else f"{value / 2**30:.2f}"

    table = Table(
        title=f"sizebench plan: {where.described}; KV cache for {context or 'up to 2048'} tokens x "
        f"batch {batch_size}; total = weights + KV cache + activations + 5% allocator slack"
    )
    for column in (
        "model",
        "dtype",
        "where",
        "weights GiB",
        "KV cache GiB",
        "activations GiB",
        "total GiB",
        "budget GiB",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.model,
            r.dtype,
            "; ".join([r.where, *r.notes]),
            gib(r.weights_bytes),
            gib(r.kv_bytes),
            gib(r.activation_bytes),
            gib(r.total_bytes),
            gib(r.budget_bytes),
        )
    out.print(table)
