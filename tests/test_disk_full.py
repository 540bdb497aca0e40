"""Writes that survive a full disk: a checkpoint, a stage folder, a ledger and results.db whose
write fails (ENOSPC injected at the one low-level write of pakd.storage, SQLITE_FULL from SQLite
itself, and a real tiny tmpfs where this runs as root) leave the previous files byte-identical,
say so in one line, and the next run resumes and finishes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from pakd.bench.results import ResultsStore
from pakd.errors import StorageError
from pakd.pipeline import CompressJob, compress
from pakd.storage import atomic_write
from pakd.train import TeacherJob, TrainConfig, train_teacher
from tests.conftest import QuietProgress
from tests.diskfull import FullDisk, assert_one_line, temp_files

REPO = Path(__file__).resolve().parents[1]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ledger.json"
    path.write_bytes(b"old contents\n")
    disk = FullDisk(monkeypatch, "ledger.json", snapshot=lambda: [path])
    with pytest.raises(StorageError) as exc:
        atomic_write(path, b"x" * 3_000_000)
    disk.assert_unchanged()
    assert_one_line(str(exc.value))
    assert str(path) in str(exc.value) and not temp_files(tmp_path)


def test_other_os_errors_are_not_disk_errors(tmp_path):
    """Only a refusal of the disk becomes a StorageError; a missing folder stays what it is."""
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no-such-folder" / "f", b"x")


def _job(**train) -> TeacherJob:
    return TeacherJob(model="lenet5", data="synthetic", train=TrainConfig(batch_size=100, threads=1, **train))


@pytest.mark.slow  # trains a small teacher twice
def test_mid_checkpoint_failure_keeps_the_last_checkpoint_and_the_rerun_resumes(tmp_path, monkeypatch):
    folder = tmp_path / "teacher"
    ckpt = folder / "checkpoint.pt"
    disk = FullDisk(monkeypatch, "checkpoint.pt", after=1, snapshot=lambda: [ckpt, folder / "job.json"])
    with pytest.raises(StorageError) as exc:
        train_teacher(_job(epochs=3), folder)  # epoch 1's checkpoint is written, epoch 2's is not
    disk.assert_unchanged()
    assert_one_line(str(exc.value))
    assert not (folder / "spec.json").exists() and not temp_files(folder)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 1

    monkeypatch.undo()
    result = train_teacher(_job(epochs=3), folder)  # the disk has room again
    history = result.spec["history"]
    assert len(history) == 3 and history[0] == saved["history"][0]  # epoch 1 was not trained again
    assert not ckpt.exists()


RECIPE = """
[recipe]
name = "tiny"
batch_size = 100
[[stage]]
name = "prune"
epochs = 2
lr = 0.02
augment = "none"
[stage.prune]
method = "unstructured"
amount = 0.7
[[stage]]
name = "quantize"
epochs = 1
lr = 0.002
augment = "none"
[stage.quantize]
method = "kmeans"
bits = { conv = 6, linear = 4 }
"""


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("disk-teacher") / "teacher"
    train_teacher(_job(epochs=1), folder)
    return folder


def _run_files(run: Path) -> list[Path]:
    return [p for p in run.rglob("*") if p.is_file()]


@pytest.mark.slow  # compress runs
def test_mid_stage_folder_failure_through_the_cli_is_one_line_and_the_rerun_finishes(tmp_path, teacher):
    """The real `pakd compress` (pakd.cli.main in its own process) with the disk filling up while
    stage 1's weights are written: exit 2, one line, the run folder as it was (the last epoch's
    checkpoint included); the same command again finishes the stage without training it again."""
    (tmp_path / "tiny.toml").write_text(RECIPE)
    run = tmp_path / "runs" / "tiny"
    argv = ["compress", "--teacher", str(teacher), "--recipe", str(tmp_path / "tiny.toml")]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--threads", "1", "--quiet"]
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        import pytest
        from tests.diskfull import FullDisk
        run = Path({str(run)!r})
        with pytest.MonkeyPatch.context() as mp:
            disk = FullDisk(mp, "model.safetensors", snapshot=lambda: [p for p in run.rglob("*") if p.is_file()])
            from pakd.cli import main
            code = main({argv!r})
        Path({str(tmp_path / "before.json")!r}).write_text(json.dumps({{str(p): d.hex() for p, d in disk.before.items()}}))
        sys.exit(code)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 2, r.stdout + r.stderr
    assert_one_line(r.stderr)
    assert "Traceback" not in r.stderr and "stage-1" in r.stderr
    before = {Path(p): bytes.fromhex(d) for p, d in json.loads((tmp_path / "before.json").read_text()).items()}
    assert Path(run / "stage-1" / "checkpoint.pt") in before and Path(run / "run.json") in before
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
    assert not (run / "stage-1" / "spec.json").exists() and not temp_files(run)
    epochs_before = torch.load(run / "stage-1" / "checkpoint.pt", weights_only=True)["history"]

    r = subprocess.run([sys.executable, "-m", "pakd", *argv], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr
    spec = json.loads((run / "stage-1" / "spec.json").read_text())
    assert spec["history"] == epochs_before  # both epochs came from the checkpoint
    assert json.loads((run / "ledger.json").read_text())["rows"][-1]["stage"] == "quantize"


@pytest.mark.slow  # compress runs
def test_ledger_failure_keeps_the_previous_ledger_and_the_rerun_reuses_finished_stages(tmp_path, teacher, monkeypatch):
    (tmp_path / "tiny.toml").write_text(RECIPE)
    run = tmp_path / "run"
    job = CompressJob(recipe_path=tmp_path / "tiny.toml", teacher_dir=teacher, run_dir=run, threads=1)
    disk = FullDisk(monkeypatch, "ledger.json", after=1, snapshot=lambda: _run_files(run))
    with pytest.raises(StorageError) as exc:
        compress(job, QuietProgress)  # the ledger after stage 1 is written, the one after stage 2 is not
    disk.assert_unchanged()
    assert_one_line(str(exc.value))
    assert [r["stage"] for r in json.loads((run / "ledger.json").read_text())["rows"]] == ["teacher", "prune"]
    stage1 = (run / "stage-1" / "model.safetensors").read_bytes()

    monkeypatch.undo()
    _, rows = compress(job, QuietProgress)
    assert [r["stage"] for r in rows] == ["teacher", "prune", "quantize"]
    assert (run / "stage-1" / "model.safetensors").read_bytes() == stage1  # reused, not redone


def _row(i: int, facts: str = "") -> dict:
    return {"session": "s", "bundle_sha256": f"{i:064x}", "engine": "pakd", "device": "local", "threads": 1,
            "run": i, "median_us": float(i), "facts": {"pad": facts}}  # fmt: skip


def test_results_db_full_keeps_the_stored_rows_and_takes_more_once_there_is_room(tmp_path):
    """SQLite's own SQLITE_FULL (the page limit of the connection, what a full disk gives)."""
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        for i in range(5):
            store.add(_row(i))
        before = store.rows()
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        with pytest.raises(StorageError) as exc:
            for i in range(5, 200):
                store.add(_row(i, "x" * 4000))
        message = str(exc.value)
        assert len(message.splitlines()) == 1 and "full" in message and "rows stored so far are kept" in message
        kept = store.rows()
    assert kept[: len(before)] == before and len(kept) < 200
    with ResultsStore(db) as store:  # room again: a rerun stores the rest
        for i in range(len(kept), 200):
            store.add(_row(i, "x" * 4000))
        assert len(store.rows()) == 200


@contextlib.contextmanager
def tiny_tmpfs(tmp_path: Path, size: str):
    """A real filesystem of ``size`` (tmpfs), or a skip where mounting is not allowed (not root)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root")
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_filesystem_keeps_the_old_file_and_the_stored_rows(tmp_path):
    with tiny_tmpfs(tmp_path, "512k") as mnt:
        path = mnt / "checkpoint.pt"
        atomic_write(path, b"epoch 1" * 1000)
        old = path.read_bytes()
        with pytest.raises(StorageError) as exc:
            atomic_write(path, os.urandom(1 << 20))  # twice the filesystem
        assert_one_line(str(exc.value))
        assert path.read_bytes() == old and not temp_files(mnt)

        with ResultsStore(mnt / "results.db") as store:
            store.add(_row(0))
            with pytest.raises(StorageError) as exc:
                for i in range(1, 10_000):
                    store.add(_row(i, "y" * 8000))
            assert len(str(exc.value).splitlines()) == 1
            stored = store.rows()
        assert stored and stored[0]["run"] == 0
        assert [r["run"] for r in stored] == list(range(len(stored)))  # no row half-written or lost


def test_disk_errnos_are_the_disks(tmp_path):
    from pakd.storage import is_disk_error

    assert is_disk_error(OSError(errno.ENOSPC, "full")) and is_disk_error(OSError(errno.EIO, "io"))
    assert not is_disk_error(OSError(errno.ENOENT, "missing"))
