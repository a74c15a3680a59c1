"""Errors the user can act on. The CLI prints them as one line and exits 2; in a worker, ModelUnavailable and
MemoryGuardError make the model unavailable (exit status UNAVAILABLE), each other one failed (exit status 3,
`--resume` retries it); an error of any other type fails it too (exit status 1)."""

UNAVAILABLE = 4  # a worker's exit status for a model that cannot be had here: not an error by itself


class SizebenchError(Exception):
    """Bad input or an unusable environment: shown as one line, never a traceback."""


class ModelUnavailable(SizebenchError):
    """The model's weights are not here and cannot be fetched now."""


class MemoryGuardError(SizebenchError):
    """The model would not fit in the memory of this machine."""


class ConversionFailed(SizebenchError):
    """A GGUF that passed the structure check and still could not be converted: a failure, not unavailable."""
