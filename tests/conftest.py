"""Shared fixtures: the real Fashion-MNIST files (installed by `make test` from Debian's
dataset-fashion-mnist package) loaded once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pakd.data import fashion_mnist_dir, load_fashion_mnist

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(int(os.environ.get("PAKD_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def fmnist_dir() -> Path:
    return fashion_mnist_dir()


@pytest.fixture(scope="session")
def fmnist():
    """The real data set; a missing package fails the tests loudly (CI must install it)."""
    return load_fashion_mnist()


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `pakd` command in a subprocess (what a user types)."""
    return subprocess.run(
        [sys.executable, "-m", "pakd", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


class QuietProgress:
    """A progress factory for ``pakd.pipeline.compress`` that shows nothing (tests)."""

    def __init__(self, title):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def __call__(self, event, info):
        pass
