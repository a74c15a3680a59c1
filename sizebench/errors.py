"""Errors the user can act on. The CLI prints them as one line and exits 2."""


class SizebenchError(Exception):
    """Bad input or an unusable environment: shown as one line, never a traceback."""


class ModelUnavailable(SizebenchError):
    """The model's weights are not here and cannot be fetched now."""


class MemoryGuardError(SizebenchError):
    """The model would not fit in the memory of this machine."""
