"""One exception family for every error a user can cause.

The CLI turns a :class:`PakdError` into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""


class PakdError(Exception):
    """An error caused by input (files, flags, recipes), reported as one line."""

    exit_code = 2


class InvalidField(PakdError):
    """A config value out of its range. Besides the message it names the ``field``, the ``value``
    and ``what`` the value should be, so that a caller can say where the value came from (a
    recipe names the TOML key)."""

    def __init__(self, message: str, field: str, value: object, what: str) -> None:
        super().__init__(message)
        self.field, self.value, self.what = field, value, what


class DataError(PakdError):
    """A dataset file is missing, truncated or malformed."""


class ModelError(PakdError):
    """An unknown model name, a factory that cannot be imported, or weights that do not fit."""


class RunError(PakdError):
    """A run folder that is missing, incomplete or was made with other settings."""


class StorageError(PakdError):
    """A write that the disk refused (full, over quota, I/O error, read-only): the file it would
    have replaced is left as it was, and a rerun continues from there."""


class BusyError(PakdError):
    """A run folder or bundle folder that another live process is writing (its lock is held)."""
