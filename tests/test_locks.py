"""One writer per folder, with real processes: a `pakd compress`, `pakd train` or `pakd build`
on a folder that another live process holds is refused at once (one line, exit 2) naming that
process; a lock left by a process killed with SIGKILL is released by the kernel and taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pakd.errors import BusyError
from pakd.storage import LOCK_FILE, FolderLock, sibling_lock, writer_lock
from pakd.train import TeacherJob, TrainConfig, train_teacher
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
HOLD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pakd.storage import sibling_lock, writer_lock
    folder = Path(sys.argv[2])
    lock = writer_lock(folder) if sys.argv[1] == "folder" else sibling_lock(folder)
    with lock:
        print("held", flush=True)
        time.sleep(120)
    """
)


class Holder:
    """A separate Python process that takes a folder's lock through pakd.storage and sleeps."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, kind, str(folder)], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill9()


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(kind: str, folder: Path) -> Holder:
        started.append(Holder(kind, folder))
        return started[-1]

    yield start
    for h in started:
        h.stop()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lock-teacher") / "teacher"
    job = TeacherJob(model="lenet5", data="synthetic", train=TrainConfig(epochs=1, batch_size=100, threads=1))
    train_teacher(job, folder)
    return folder


def _refused(r: subprocess.CompletedProcess, holder: Holder) -> str:
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"pid {holder.proc.pid} on {socket.gethostname()}" in lines[0], lines[0]
    return lines[0]


RECIPE = """
[recipe]
name = "tiny"
batch_size = 100
[[stage]]
name = "prune"
epochs = 1
lr = 0.02
augment = "none"
[stage.prune]
method = "unstructured"
amount = 0.5
"""


@pytest.mark.slow  # a real compress after the takeover
def test_a_second_compress_on_a_held_run_folder_is_refused_then_a_killed_holder_is_taken_over(
    tmp_path, teacher, holders
):
    (tmp_path / "tiny.toml").write_text(RECIPE)
    run = tmp_path / "runs" / "tiny"
    args = ("compress", "--teacher", str(teacher), "--recipe", str(tmp_path / "tiny.toml"))
    args += ("--runs-dir", str(tmp_path / "runs"), "--threads", "1", "--quiet")
    holder = holders("folder", run)
    line = _refused(run_cli(*args, cwd=tmp_path), holder)
    assert "run folder" in line and not (run / "run.json").exists()  # refused before writing anything

    holder.kill9()  # the kernel drops its flock; its pid stays written in the lock file
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of run folder {run} from pid {holder.proc.pid}" in r.stderr
    assert (run / "stage-1" / "spec.json").is_file() and not (run / LOCK_FILE).exists()


def test_a_second_train_on_a_held_teacher_folder_is_refused(tmp_path, holders):
    holder = holders("folder", tmp_path / "runs" / "t" / "teacher")
    r = run_cli(
        "train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--name", "t",
        "--runs-dir", str(tmp_path / "runs"), "--threads", "1", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert "teacher folder" in _refused(r, holder)
    assert not (tmp_path / "runs" / "t" / "teacher" / "spec.json").exists()


def test_a_second_build_into_a_held_bundle_folder_is_refused(tmp_path, teacher, holders):
    out = tmp_path / "bundle"
    holder = holders("bundle", out)
    r = run_cli("build", str(teacher), "--target", "host", "--out", str(out), cwd=tmp_path)
    assert "bundle folder" in _refused(r, holder)
    assert not out.exists()


def test_a_lock_killed_with_sigkill_is_taken_over_by_the_api(tmp_path, holders):
    """The same through the library: the takeover names the dead holder."""
    holder = holders("bundle", tmp_path / "b")
    with pytest.raises(BusyError, match=f"pid {holder.proc.pid}"):
        sibling_lock(tmp_path / "b").acquire()
    holder.kill9()
    notes: list[str] = []
    lock = FolderLock(tmp_path / ".b.lock", "bundle b", on_takeover=notes.append).acquire()
    try:
        assert lock.takeover is not None and lock.takeover["pid"] == holder.proc.pid
        assert notes == [f"took over the lock of bundle b from pid {holder.proc.pid} on {socket.gethostname()} "
                         f"({lock.takeover['command']}) (no longer running)"]  # fmt: skip
        assert json.loads((tmp_path / ".b.lock").read_text())["pid"] == os.getpid()
    finally:
        lock.release(remove=True)


def test_a_writer_that_writes_nothing_leaves_no_folder(tmp_path):
    """Bad input found under the lock (before any write): the folder made for the lock goes again."""
    with pytest.raises(RuntimeError), writer_lock(tmp_path / "runs" / "x"):
        raise RuntimeError("bad input")
    assert not (tmp_path / "runs").exists()


def test_torchrun_followers_take_no_lock(tmp_path, monkeypatch):
    """Under torchrun only rank 0 locks (and writes); the other ranks run in the same folder."""
    with writer_lock(tmp_path / "run") as lock:
        assert lock is not None and lock.held
        monkeypatch.setenv("RANK", "1")
        with writer_lock(tmp_path / "run") as follower:
            assert follower is None
