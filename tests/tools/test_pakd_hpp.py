"""The C++ RAII header pakd/pakd.hpp (tests/c/test_pakd_hpp.cc): on its own (errors as
pakd::Error, move-only ownership) and on a real exported model against pakd._core.Session."""

from __future__ import annotations

import pytest

from tests.tools.conftest import Model, run

pytestmark = pytest.mark.slow  # a CMake build of the tools


def test_header_checks_without_a_model(tools_build):
    r = run([tools_build / "test_pakd_hpp"])
    assert "all checks passed" in r.stdout


def test_header_runs_a_real_model_like_session_run(tools_build, lenet: Model):
    r = run([tools_build / "test_pakd_hpp", lenet.path, lenet.input_file, lenet.output_file])
    assert "all checks passed (with model)" in r.stdout
