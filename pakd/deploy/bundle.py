"""Bundles: the folder ``pakd build`` writes and ``pakd verify`` checks.

A bundle holds everything a board needs for one model (artifacts, runner, libraries) plus
``manifest.json``: target, backend, versions, the sha256 and size of every file, and a golden
input with its expected output (computed on the host). A bundle whose files do not match the
manifest is refused; no manifest path may leave the bundle folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PakdError
from ..storage import atomic_json

MANIFEST = "manifest.json"
FORMAT = "pakd-bundle/1"


class BundleError(PakdError):
    """A bundle that is incomplete, altered, or not a bundle."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_member(root: Path, rel: str) -> Path:
    """``root/rel`` for a manifest path, refusing absolute paths, ``..`` and symlinks that leave
    the bundle."""
    if not isinstance(rel, str) or "\x00" in rel:
        raise BundleError(f"{root}: manifest path {rel!r} is not a path")
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts or rel.startswith("~"):
        raise BundleError(f"{root}: manifest path {rel!r} escapes the bundle")
    full = root / p
    try:
        full.resolve().relative_to(root.resolve())
    except ValueError:
        raise BundleError(f"{root}: {rel!r} resolves outside the bundle") from None
    return full


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict[str, Any]

    def file(self, role: str) -> Path:
        """The bundle file with this role (e.g. "runner", "model", "golden-input")."""
        for rel, entry in self.manifest["files"].items():
            if entry["role"] == role:
                return safe_member(self.root, rel)
        raise BundleError(f"{self.root}: no file with role {role!r} in the manifest")

    @property
    def target(self) -> str:
        target = self.manifest.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("name"), str):
            raise BundleError(f"{self.root}: the manifest names no target")
        return target["name"]

    @property
    def backend(self) -> str:
        backend = self.manifest.get("backend")
        if not isinstance(backend, str):
            raise BundleError(f"{self.root}: the manifest names no backend")
        return backend


def write_manifest(root: Path, files: dict[str, str], **fields: Any) -> dict[str, Any]:
    """Hash ``files`` ({relative path: role}) and write ``manifest.json`` with ``fields``."""
    entries = {}
    for rel, role in sorted(files.items()):
        path = safe_member(root, rel)
        entries[rel] = {"role": role, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {"format": FORMAT, **fields, "files": entries}
    atomic_json(root / MANIFEST, manifest, sort_keys=True)
    return manifest


def _check_fields(path: Path, manifest: dict[str, Any]) -> None:
    """The manifest's own structure, so that no later reader meets a missing or mistyped field:
    every file entry {role, bytes, sha256}, a target with a name, a backend, and a run whose
    program is the bundle's own runner file (a manifest never names a program outside it)."""

    def bad(what: str) -> BundleError:
        return BundleError(f"{path}: {what} (the manifest was altered; rebuild with `pakd build`)")

    for rel, entry in manifest["files"].items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("role"), str)
            and type(entry.get("bytes")) is int
            and isinstance(entry.get("sha256"), str)
        ):
            raise bad(f"files[{rel!r}] must be {{role, bytes, sha256}}")
    target = manifest.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        raise bad("target must be a table with a name")
    if not isinstance(manifest.get("backend"), str):
        raise bad("backend must be a string")
    run = manifest.get("run")
    if not isinstance(run, dict):
        raise bad("run must be a table")
    argv = run.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise bad("run.argv must be a list of strings")
    if manifest["files"].get(argv[0], {}).get("role") != "runner":
        raise bad(f"run.argv[0] {argv[0]!r} is not the bundle's runner file")
    for key in ("output_option", "iters_option", "json_option"):
        if run.get(key) is not None and not isinstance(run[key], str):  # None: the runner has no such option
            raise bad(f"run.{key} must be a string")
    if "golden" in manifest and not isinstance(manifest["golden"], dict):
        raise bad("golden must be a table")


def open_bundle(root: str | Path, check_hashes: bool = True) -> Bundle:
    """Read a bundle and (by default) check every file against its manifest."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root}: not a bundle (no {MANIFEST}; make one with `pakd build`)")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        raise BundleError(f"{path}: not a PaKD bundle manifest (format {FORMAT!r} expected)")
    _check_fields(path, manifest)
    _check_types(path, manifest)
    if check_hashes:
        for rel, entry in manifest["files"].items():
            full = safe_member(root, rel)
            if not full.is_file():
                raise BundleError(f"{root}: {rel} is missing")
            if full.stat().st_size != entry.get("bytes") or sha256_file(full) != entry.get("sha256"):
                raise BundleError(
                    f"{root}: {rel} does not match its manifest hash (altered or corrupted; rebuild with `pakd build`)"
                )
    return Bundle(root, manifest)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(path: Path, m: dict[str, Any]) -> None:
    """The manifest fields the commands read have the types they are read as (a manifest that
    lies about them is refused here, in one line, not deep in a command)."""

    def bad(what: str) -> BundleError:
        return BundleError(f"{path}: {what} (not a manifest `pakd build` wrote; rebuild the bundle)")

    for rel, entry in m["files"].items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("role"), str)
            and _is_int(entry.get("bytes"))
            and isinstance(entry.get("sha256"), str)
        ):
            raise bad(f"files[{rel!r}] must be {{role, bytes, sha256}}")
    target = m.get("target")
    if "target" in m and not (isinstance(target, dict) and isinstance(target.get("name"), str)):
        raise bad('"target" must be an object with a "name"')
    if "backend" in m and not isinstance(m["backend"], str):
        raise bad('"backend" must be a string')
    run = m.get("run")
    if "run" in m:
        argv = run.get("argv") if isinstance(run, dict) else None
        if not (
            isinstance(run, dict)
            and isinstance(argv, list)
            and argv
            and all(isinstance(a, str) and "\x00" not in a for a in argv)
            and all(isinstance(run.get(k), str | None) for k in ("output_option", "iters_option", "json_option"))
        ):
            raise bad('"run" must be {argv: [runner, args...], output_option, iters_option, json_option}')
        safe_member(path.parent, argv[0])
    golden = m.get("golden")
    if "golden" in m and not (
        isinstance(golden, dict)
        and all(isinstance(golden.get(k), str) for k in ("input", "expected") if k in golden)
        and all(
            isinstance(golden.get(k), list) and all(_is_int(v) and v > 0 for v in golden[k])
            for k in ("shape", "output_shape")
            if k in golden
        )
        and isinstance(golden.get("atol", 0.0), int | float)
    ):
        raise bad('"golden" must be {input, expected, shape, output_shape, atol}')


def runner_argv(bundle: Bundle, output: Path | None = None, iters: int | None = None) -> list[str]:
    """The bundle's runner command line (absolute runner path), optionally writing its output / timing ``iters`` calls."""
    run = bundle.manifest.get("run")
    if not isinstance(run, dict):
        raise BundleError(f'{bundle.root}: the manifest has no runner command line ("run")')
    argv = list(run["argv"])
    argv[0] = str((bundle.root / argv[0]).resolve())  # absolute: the runner runs with cwd = the bundle
    for value, option in ((output, "output_option"), (iters, "iters_option")):
        if value is not None:
            if not run.get(option):
                raise BundleError(f"{bundle.root}: the manifest's runner has no {option}")
            argv += [run[option], str(value)]
    return argv
