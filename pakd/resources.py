"""Where PaKD's data files are: the board files (``targets/*.toml``), their CMake toolchain files
(``targets/toolchains/*.cmake``) and the native runtime's sources (``csrc/`` with the
``CMakeLists.txt`` that builds them), which ``pakd build`` cross-compiles for a board and
``pakd verify --emulate`` takes its qemu plugin from.

A wheel (or a wheel built from the sdist) carries them as package data, put there by the
``install()`` rules at the end of ``CMakeLists.txt``::

    pakd/_data/targets/            *.toml, toolchains/*.cmake
    pakd/_data/runtime/            CMakeLists.txt, VERSION, csrc/ (include/, src/, tools/, ...)

An editable install or a bare checkout has no ``pakd/_data``: the files are read from the checkout
itself (``targets/``, ``csrc/``, ``CMakeLists.txt`` beside the package), so an edit there counts at
once. The functions only say where; a caller that finds nothing there says what is missing.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["data_dir", "recipes_dir", "runtime_sources", "targets_dir", "toolchains_dir"]

_CHECKOUT = Path(__file__).resolve().parents[1]  # the folder above the package: a checkout's root


def data_dir() -> Path | None:
    """The installed package data (``pakd/_data``), or None (an editable install, a checkout)."""
    data = files(__package__ or "pakd").joinpath("_data")
    if isinstance(data, Path) and data.is_dir():  # a plain folder, not a zip: CMake needs real files
        return data
    return None


def targets_dir() -> Path:
    """The folder of the project's board files (``<name>.toml``)."""
    data = data_dir()
    return data / "targets" if data is not None else _CHECKOUT / "targets"


def toolchains_dir() -> Path:
    """The CMake toolchain files the board files name (``toolchains/`` inside the targets folder)."""
    return targets_dir() / "toolchains"


def recipes_dir() -> Path:
    """The recipes PaKD ships (``recipes/*.toml``: the zoo's, and ``pakd demo``'s default)."""
    data = data_dir()
    return data / "recipes" if data is not None else _CHECKOUT / "recipes"


def runtime_sources() -> Path:
    """The folder holding the runtime's ``CMakeLists.txt`` and ``csrc/``: what a cross build adds
    with ``add_subdirectory``."""
    data = data_dir()
    return data / "runtime" if data is not None else _CHECKOUT
