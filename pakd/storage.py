"""Durable writes and one writer per folder, for every file PaKD leaves behind.

- :func:`atomic_write` (and :func:`atomic_json`, :func:`atomic_copy`, :func:`atomic_file`):
  the bytes go to a temporary file in the same folder, are fsynced, then ``os.replace``
  puts them in place and the folder is fsynced. A reader sees the old file or the new one, never
  half of one; a write the disk refuses (ENOSPC, EDQUOT, EFBIG, EIO, EROFS) removes the
  temporary file, leaves the old file as it was and raises a one-line :class:`StorageError`.
- :func:`storage_errors`: the same mapping around writes this module does not do itself
  (compilers, SQLite, TVM), so that a full disk is one line wherever it strikes.
- :class:`FolderLock`: ``fcntl.flock`` on a lock file held for the life of the process, with
  the holder's pid and host written in it for the message a second writer gets. The kernel
  releases the lock when its process dies (kill -9 included), so a lock left behind is taken
  over by the next writer without any guessing; a clean release removes the file, so a file
  found unlocked names the process that died holding it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import BusyError, StorageError

# errno values that mean "the disk would not take the write" (not a bug, not bad input)
DISK_ERRNOS = frozenset(
    e for e in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS) if isinstance(e, int)
)
CHUNK = 1 << 20
LOCK_FILE = ".pakd.lock"


def disk_error(exc: BaseException, path: str | Path, kept: str = "the previous file is unchanged") -> StorageError:
    """The one-line :class:`StorageError` for an OSError the disk raised while writing ``path``."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
    error = StorageError(f"cannot write {path}: {reason}; {kept} - free space and run the same command again to resume")
    error.reason = reason  # type: ignore[attr-defined]  # for storage_errors() around it to restate
    return error


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


@contextlib.contextmanager
def storage_errors(path: str | Path, kept: str = "the previous file is unchanged") -> Iterator[None]:
    """Turn a disk's refusal (see ``DISK_ERRNOS``) raised inside into a one-line StorageError
    about ``path`` (one about a file inside it is restated: the bundle, not its staged library)."""
    try:
        yield
    except StorageError as exc:
        reason = getattr(exc, "reason", None)
        if reason is None:
            raise
        raise disk_error(OSError(0, reason), path, kept) from None
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(exc, path, kept) from None
        raise


def _write_chunk(fd: int, data: memoryview) -> int:
    """The one low-level write every durable file goes through (tests inject a full disk here)."""
    return os.write(fd, data)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a platform without directory fds: os.replace is still atomic
    try:
        os.fsync(fd)
    except OSError as exc:
        if is_disk_error(exc):
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes | bytearray | memoryview | str, mode: int | None = None) -> Path:
    """Replace ``path`` by ``data`` (str: UTF-8) all at once; ``mode`` sets its permission bits
    (default: a new file's usual 0o666 & ~umask, or the old file's mode)."""
    path = Path(path)
    blob = data.encode() if isinstance(data, str) else data
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
    with storage_errors(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            view = memoryview(blob)
            while view:
                view = view[_write_chunk(fd, view[:CHUNK]) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)
    return path


def atomic_json(path: str | Path, data: Any, sort_keys: bool = False) -> Path:
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write into (``torch.save(obj, f)``); ``path`` is replaced when the block
    ends without an exception, and left as it was otherwise."""
    buf = io.BytesIO()
    yield buf
    atomic_write(path, buf.getbuffer())


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy ``src`` to ``dst`` (its permission bits too) all at once."""
    src = Path(src)
    return atomic_write(dst, src.read_bytes(), mode=src.stat().st_mode & 0o7777)


# -- one writer per folder -----------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    cmd = f" ({info['command']})" if info.get("command") else ""
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}{cmd}"


def _note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


class FolderLock:
    """The one-writer lock of a folder (a run folder, a teacher folder, a bundle): ``path`` is the
    lock file, created if missing and kept afterwards. Use as a context manager, or
    :meth:`acquire` / :meth:`release`. A lock held by a live process raises :class:`BusyError`
    at once, naming it; ``takeover`` is the holder a dead process left, if any."""

    def __init__(self, path: str | Path, what: str, on_takeover: Callable[[str], None] | None = _note) -> None:
        self.path, self.what, self.on_takeover = Path(path), what, on_takeover
        self._fd: int | None = None
        self.takeover: dict[str, Any] | None = None

    def acquire(self) -> FolderLock:
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with storage_errors(self.path, "nothing was written"):
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue  # the folder was removed between mkdir and open (a writer that wrote nothing)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
                os.close(fd)
                raise BusyError(
                    f"{self.what} is in use by {_describe(held)} (lock {self.path}); "
                    "wait for it to finish, or stop it - a killed process's lock is taken over"
                ) from None
            except OSError:
                os.close(fd)
                raise
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # locked a file its holder removed on the way out: lock the current one
        left = _holder(os.pread(fd, 4096, 0).decode(errors="replace"))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(Path(a).name for a in sys.argv[:2])}
        if left and not (left.get("pid") == me["pid"] and left.get("host") == me["host"]):
            self.takeover = left
            if self.on_takeover is not None:
                gone = left.get("host") == me["host"] and isinstance(left.get("pid"), int) and not _alive(left["pid"])
                state = "no longer running" if gone else "its lock was released by the kernel"
                self.on_takeover(f"took over the lock of {self.what} from {_describe(left)} ({state})")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            os.fsync(fd)
        except OSError as exc:
            if not is_disk_error(exc):
                os.close(fd)
                raise  # the lock itself holds; only its note of the holder could not be written
        self._fd = fd
        return self

    def release(self, remove: bool = False) -> None:
        """Let the lock go; ``remove`` deletes the lock file first (while still holding it)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if remove:
                self.path.unlink()
            else:
                os.ftruncate(self._fd, 0)  # a clean end: the next holder finds no one to take over from
        os.close(self._fd)  # closing the only descriptor releases the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release(remove=True)


def distributed_follower() -> bool:
    """Whether this process is a non-zero rank of a torchrun job (``RANK`` set and not 0): rank 0
    holds the folder's lock and does the writing for all of them."""
    rank = os.environ.get("RANK", "0").strip()
    return rank.isdigit() and int(rank) != 0


@contextlib.contextmanager
def writer_lock(folder: str | Path, what: str | None = None) -> Iterator[FolderLock | None]:
    """Hold ``folder``'s lock (``folder/.pakd.lock``) for the block; None on torchrun's other
    ranks. The folder (and its missing parents) is made for the lock; when the block leaves
    nothing in it (bad input found before any write), it is removed again."""
    folder = Path(folder)
    if distributed_follower():
        yield None
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    lock = FolderLock(folder / LOCK_FILE, what or str(folder)).acquire()
    try:
        yield lock
    finally:
        lock.release(remove=True)  # safe: acquire() checks that the file it locked is still the lock file
        if made and not any(folder.iterdir()):
            for p in made:  # deepest first
                with contextlib.suppress(OSError):
                    p.rmdir()


def sibling_lock(folder: str | Path, what: str | None = None) -> FolderLock:
    """The lock of a folder that is replaced as a whole (a bundle): ``.<name>.lock`` beside it."""
    folder = Path(folder)
    return FolderLock(folder.parent / f".{folder.name}.lock", what or str(folder))


def replace_folder(staged: Path, dest: Path) -> None:
    """Put the fully written folder ``staged`` in the place of ``dest`` (which may exist): the old
    folder is moved aside, the new one renamed in, the old one removed."""
    old = dest.parent / f".{dest.name}.old"
    if old.exists():
        shutil.rmtree(old)
    with storage_errors(dest, f"the previous {dest} is unchanged"):
        if dest.exists():
            os.replace(dest, old)
        try:
            os.replace(staged, dest)
        except BaseException:
            if old.exists() and not dest.exists():
                os.replace(old, dest)
            raise
        _fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)
