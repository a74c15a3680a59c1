"""A run plan field's command-line flag, carried in the field's metadata: its names, help, the stage whose
commands offer it and whether `--resume` may change it. sizebench.cli.options builds the run commands' options
from these, so a new flag is the one line of its field."""

from __future__ import annotations

from dataclasses import Field, dataclass
from typing import Any, Callable

FLAG = "flag"  # the metadata key
UNSET = object()  # no command-line default of its own: the field's default is the flag's


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]  # the long name first: --max-new-tokens, then any short one (-m)
    help: str
    stage: str | None = None  # offered by the commands running this stage (sizebench.stages); None: every run command
    resume: bool = False  # `--resume` takes it, replacing the stored plan's value (how to finish a run, not what it is)
    parse: Callable[[str, str], Any] | None = None  # (text, flag) -> the field's value, for a value given as text
    default: Any = UNSET  # the command line's default where the field's is not (a stage's input: the prompt suite)
    metavar: str | None = None
    envvar: str | None = None
    invert: bool = False  # the flag turns the field off: --no-offload sets offload=False

    @property
    def name(self) -> str:
        return self.names[0]

    @property
    def param(self) -> str:
        """The Python name of the option: --max-new-tokens -> max_new_tokens."""
        return self.name.lstrip("-").replace("-", "_")


def flag(*names: str, help: str, **options) -> dict:
    """A field's metadata carrying its flag: `field(default=128, metadata=flag("--max-new-tokens", help=...))`."""
    return {FLAG: Flag(names, help, **options)}


def flag_of(field: Field) -> Flag | None:
    return field.metadata.get(FLAG)
