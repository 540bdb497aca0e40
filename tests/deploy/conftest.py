"""Shared by the deployment tests."""

from __future__ import annotations

import pytest

from pakd.deploy import Target, TargetError, load_target


def require_target(name: str, emulator: bool = False) -> Target:
    """The target, or a skip that says what to install (its compiler, and its emulator if asked)."""
    target = load_target(name)
    try:
        target.check_toolchain()
        if emulator:
            target.check_emulator()
    except TargetError as exc:
        pytest.skip(str(exc))
    return target
