"""`pakd build` into a bundle folder that holds a bundle, with the disk filling up halfway: the
build is refused in one line, the previous bundle is still there byte for byte (and still
verifies), no staging folder is left, and the same build with room finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pakd.deploy.build import BuildConfig, build
from pakd.deploy.bundle import open_bundle
from pakd.errors import StorageError
from pakd.modelio import save_model
from pakd.models import build_model
from tests.deploy.conftest import require_target, shared_build_cache
from tests.diskfull import FullDisk, assert_one_line

pytestmark = pytest.mark.slow  # native builds for the host


def _model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    net = build_model("lenet5", num_classes=10, in_channels=1)
    spec = {
        "model": {"name": "lenet5", "args": {"num_classes": 10, "in_channels": 1}},
        "data": {"input_shape": [1, 28, 28]},
    }
    return save_model(folder, net, spec)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_mid_bundle_failure_keeps_the_previous_bundle(tmp_path, tmp_path_factory, monkeypatch):
    cfg = BuildConfig(
        target=require_target("host"), out_dir=tmp_path / "bundle", cache_dir=shared_build_cache(tmp_path_factory)
    )
    first = build(_model(tmp_path / "a", 0), cfg)
    old = _files(cfg.out_dir)

    disk = FullDisk(monkeypatch, "libpakd.a", snapshot=lambda: [cfg.out_dir / rel for rel in old])
    with pytest.raises(StorageError) as exc:
        build(_model(tmp_path / "b", 1), cfg)  # another model: a rebuild, which fails halfway
    disk.assert_unchanged()
    assert_one_line(str(exc.value))
    assert "previous bundle" in str(exc.value)
    assert _files(cfg.out_dir) == old and open_bundle(cfg.out_dir).manifest == first.bundle.manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "bundle"]  # no staging folder, no lock

    monkeypatch.undo()
    again = build(tmp_path / "b", cfg)
    assert not again.up_to_date and again.bundle.manifest["source"]["path"] == str((tmp_path / "b").resolve())
    open_bundle(cfg.out_dir)
