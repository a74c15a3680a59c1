"""Errors the user can act on. The CLI prints them as one line and exits 2; in a worker, each but
ModelUnavailable and MemoryGuardError makes the model failed (exit status 1, `--resume` retries it)."""


class SizebenchError(Exception):
    """Bad input or an unusable environment: shown as one line, never a traceback."""


class ModelUnavailable(SizebenchError):
    """The model's weights are not here and cannot be fetched now."""


class MemoryGuardError(SizebenchError):
    """The model would not fit in the memory of this machine."""


class ConversionFailed(SizebenchError):
    """A GGUF that passed the structure check and still could not be converted: a failure, not unavailable."""
