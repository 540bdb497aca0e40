"""Bundle manifests: hashes checked, paths confined to the bundle."""

from __future__ import annotations

import json

import pytest

from pakd.deploy.bundle import BundleError, open_bundle, safe_member, write_manifest


def _bundle(tmp_path):
    (tmp_path / "model.pakd").write_bytes(b"PAKD" + bytes(100))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pakd-run").write_bytes(b"\x7fELF")
    write_manifest(
        tmp_path,
        {"model.pakd": "model", "bin/pakd-run": "runner"},
        target={"name": "rpi4"},
        backend="native",
        run={"argv": ["bin/pakd-run", "model.pakd"]},
    )
    return tmp_path


def test_manifest_round_trip(tmp_path):
    b = open_bundle(_bundle(tmp_path))
    assert b.target == "rpi4" and b.backend == "native"
    assert b.file("runner") == tmp_path / "bin" / "pakd-run"
    assert b.manifest["files"]["model.pakd"]["bytes"] == 104


def test_altered_file_is_refused(tmp_path):
    root = _bundle(tmp_path)
    (root / "model.pakd").write_bytes(b"PAKD" + bytes(99) + b"\x01")
    with pytest.raises(BundleError, match="model.pakd does not match its manifest hash"):
        open_bundle(root)


def test_missing_file_is_refused(tmp_path):
    root = _bundle(tmp_path)
    (root / "bin" / "pakd-run").unlink()
    with pytest.raises(BundleError, match="bin/pakd-run is missing"):
        open_bundle(root)


@pytest.mark.parametrize("rel", ["../etc/passwd", "/etc/passwd", "a/../../x", "~/x"])
def test_paths_that_escape_are_refused(tmp_path, rel):
    root = _bundle(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][rel] = {"role": "x", "bytes": 0, "sha256": ""}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="escapes the bundle"):
        open_bundle(root)


def test_symlink_out_of_the_bundle_is_refused(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (tmp_path / "secret").write_text("x")
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(BundleError, match="resolves outside the bundle"):
        safe_member(root, "link")


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a bundle"):
        open_bundle(tmp_path)
