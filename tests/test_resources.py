"""pakd.resources in a checkout (the editable install): no package data, the checkout's own
folders, so an edit to targets/ or csrc/ counts without reinstalling. The installed wheel's side
is tests/deploy/test_wheel.py."""

from __future__ import annotations

from pathlib import Path

from pakd import resources
from pakd.targets import default_targets_dir

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_reads_its_own_folders():
    assert resources.data_dir() is None
    assert resources.targets_dir() == REPO / "targets" == default_targets_dir()
    assert resources.toolchains_dir() == REPO / "targets" / "toolchains"
    assert resources.runtime_sources() == REPO


def test_every_board_names_a_toolchain_file_that_is_there():
    import tomllib

    for board in resources.targets_dir().glob("*.toml"):
        name = tomllib.loads(board.read_text()).get("toolchain", {}).get("cmake_toolchain")
        if name:
            assert (resources.targets_dir() / name).parent == resources.toolchains_dir()
            assert (resources.targets_dir() / name).is_file(), f"{board.name}: {name}"
