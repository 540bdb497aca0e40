"""One exception family for every error a user can cause, and the one place where the
exceptions of libraries become user errors.

The CLI (``pakd.cli.main``) reports every error as one line on stderr: a :class:`PakdError`
(exit code 2), or a library exception that :func:`user_error` recognises as caused by the user's
files or machine (a missing path, a folder given for a file, JSON / TOML / safetensors / SQLite
that does not parse, a full disk, ...). Anything else is a bug in PaKD: one line from
:func:`bug_line` naming the exception and where it was raised, exit code :data:`BUG_EXIT`, and
the full traceback with ``PAKD_DEBUG=1``. docs/errors.md describes it for users.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tomllib
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEBUG_ENV = "PAKD_DEBUG"
"""Set (to anything but "" or "0") to see the full traceback of every error."""

BUG_EXIT = 70
"""The exit code of an internal error (sysexits' EX_SOFTWARE): not the user's fault."""


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


class FileError(PakdError):
    """A file or folder that cannot be read or written (missing, of the wrong kind, not
    permitted, a full disk), or whose content does not parse."""


def debug_enabled() -> bool:
    """Whether ``PAKD_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(text: object, limit: int = 400) -> str:
    """``text`` with its whitespace (newlines included) collapsed, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


_OS_ERRORS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "no such file or folder"),
    (IsADirectoryError, "is a folder, where a file is expected"),
    (NotADirectoryError, "is not a folder (a file is in the way)"),
    (PermissionError, "permission denied"),
    (FileExistsError, "already exists (and is in the way)"),
)
_ERRNO = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}

# exceptions that parsing a user's file raises on bad content: with the file known (reading()),
# they are the file's fault; anywhere else they are a bug
_CONTENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, EOFError, OverflowError)


def _library_error(exc: BaseException, module: str, name: str) -> bool:
    """Whether ``exc`` is an instance of ``module.name``, without importing ``module`` (an
    exception of a library that is not imported cannot have been raised)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return isinstance(cls, type) and isinstance(exc, cls)


def user_error(exc: BaseException, path: str | Path | None = None, what: str = "file") -> PakdError | None:
    """The one-line :class:`PakdError` that ``exc`` becomes when bad input or the machine caused
    it, or None when it is a bug in PaKD.

    ``path`` is the user's file being read when ``exc`` was raised (see :func:`reading`): named
    in the message, and then any content error (ValueError, TypeError, KeyError, ...) is the
    file's fault, reported as not being a valid ``what``.
    """
    if isinstance(exc, PakdError):
        return exc
    at = f"{path}: " if path is not None else ""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = exc.filename if exc.filename is not None else path
        where = f"{os.fsdecode(name)}: " if name is not None else ""
        text = next((t for cls, t in _OS_ERRORS if isinstance(exc, cls)), None)
        text = text or _ERRNO.get(exc.errno) or (exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno)))
        return FileError(where + text)
    if isinstance(exc, json.JSONDecodeError):
        return FileError(f"{at}not valid JSON ({exc})")
    if isinstance(exc, tomllib.TOMLDecodeError):
        return FileError(f"{at}not valid TOML ({exc})")
    if isinstance(exc, UnicodeDecodeError):
        return FileError(f"{at}not UTF-8 text ({exc.reason} at byte {exc.start})")
    if _library_error(exc, "safetensors", "SafetensorError"):
        return FileError(f"{at}not a readable safetensors file ({exc})")
    if _library_error(exc, "sqlite3", "DatabaseError"):
        return FileError(f"{at}not a readable SQLite database ({exc})")
    if _library_error(exc, "zipfile", "BadZipFile"):
        return FileError(f"{at}not a readable zip (.npz) file ({exc})")
    if _library_error(exc, "PIL", "UnidentifiedImageError"):
        return FileError(f"{at}not a readable image ({exc})")
    if path is not None and isinstance(exc, (*_CONTENT_ERRORS, OSError)):
        text = str(exc) if not isinstance(exc, KeyError) else f"no {exc}"
        return FileError(f"{at}not a valid {what} ({type(exc).__name__}: {text})")
    return None


@contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Parse the user's file ``path``: what a library raises on its content (or on the file
    itself) leaves as one :class:`PakdError` naming the file (``what`` says what it should be)."""
    try:
        yield
    except PakdError:
        raise
    except Exception as exc:
        err = user_error(exc, path, what)
        if err is None:
            raise
        raise err from exc


def bug_line(exc: BaseException) -> str:
    """The one line that reports an internal error: the exception, where in PaKD it was raised,
    and how to see the traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:  # the innermost frame: where it was raised (a path inside PaKD relative to the package)
        package = Path(__file__).resolve().parent
        file = frames[-1].filename
        if Path(file).resolve().is_relative_to(package):
            file = str(Path(file).resolve().relative_to(package.parent))
        where = f" at {file}:{frames[-1].lineno}"
    return (
        f"internal error: {type(exc).__name__}: {one_line(exc, 300)}{where} "
        f"(a bug in PaKD, please report it; {DEBUG_ENV}=1 shows the traceback)"
    )


class StorageError(PakdError):
    """A write that the disk refused (full, over quota, I/O error, read-only): the file it would
    have replaced is left as it was, and a rerun continues from there."""


class BusyError(PakdError):
    """A run folder or bundle folder that another live process is writing (its lock is held)."""
