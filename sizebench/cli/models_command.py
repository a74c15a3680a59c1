"""`sizebench models`: the registry and the engines, with what is available here."""

import typer

from sizebench.cli.app import app, out


@app.command()
def models(models: str = typer.Option("offline,all", "--models", "-m", help="What to list.")) -> None:
    """List the model registry with each model's availability on this machine."""
    from sizebench.planning.registry import resolve
    from sizebench.weights.sources import availability
    from rich.table import Table

    table = Table(title="sizebench models")
    for column in ("name", "family", "params (total)", "non-emb", "source", "revision", "format", "dtype", "available"):
        table.add_column(column, overflow="fold")
    for spec in resolve(models):
        ok, where = availability(spec)
        table.add_row(
            spec.name,
            spec.family,
            f"{spec.params:,}" if spec.params else "?",
            f"{spec.params_non_embedding:,}" if spec.params_non_embedding else "-",
            f"{spec.source}: {spec.location}",
            spec.revision or "",
            spec.prompt_format,
            spec.precision or spec.dtype,
            f"[green]yes[/] ({where})" if ok else f"[red]no[/] ({where})",
        )
    out.print(table)
    from sizebench import engines

    kinds = Table(title="engines (ENGINE:MODEL@TYPE; transformers needs no prefix)")
    for column in ("engine", "types (@TYPE)", "without @TYPE"):
        kinds.add_column(column, overflow="fold")
    for name in engines.names():
        engine = engines.get(name)
        kinds.add_row(
            name,
            ", ".join(f"{t} ({words})" for t, words in engine.types().items()),
            engine.default_type or "as distributed (transformers: the run's --dtype)",
        )
    out.print(kinds)
