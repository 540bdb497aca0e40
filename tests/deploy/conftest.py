"""Shared by the deployment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pakd.targets import Target, TargetError, load_target


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


def shared_build_cache(tmp_path_factory) -> Path:
    """The cache folder for BuildConfig.cache_dir whose native cross builds are shared by every
    deploy test module of this pytest run (tests/deploy/test_crossbuild.py uses the same folder)."""
    base = tmp_path_factory.getbasetemp()
    cache = base / "pakd-build-cache"
    cache.mkdir(exist_ok=True)
    shared = base / "pakd-native"
    shared.mkdir(exist_ok=True)
    if not (cache / "native").exists():
        (cache / "native").symlink_to(shared)
    return cache
