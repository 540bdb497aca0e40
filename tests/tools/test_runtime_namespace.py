"""The internal runtime lives in pakd::runtime: a program may include both the public C++
wrapper (pakd/pakd.hpp) and the internal headers (tests/c/test_runtime_namespace.cc)."""

from __future__ import annotations

import shutil

import pytest

from tests.tools.conftest import REPO, run


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_public_and_internal_session_compile_together(tmp_path):
    src = REPO / "tests" / "c" / "test_runtime_namespace.cc"
    inc = ["-I", REPO / "csrc" / "include", "-I", REPO / "csrc" / "src"]
    run(["g++", "-std=c++17", "-Wall", "-Werror", "-fsyntax-only", *inc, src])
