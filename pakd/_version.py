"""The installed distribution's version (read from its metadata, so it needs no import of the package)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("pakd")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
