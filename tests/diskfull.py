"""A disk that fills up, for the tests: ``pakd.storage._write_chunk`` (the one low-level write of
every durable file) writes part of a chunk and then raises ENOSPC, as a full disk does, for the
files whose name matches."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pakd import storage


class FullDisk:
    """Writes to files matching ``match`` (a substring of the final file's name) fail after
    ``after`` such files were written; ``snapshot`` lists files whose bytes are recorded when the first
    write fails (the state a failed write must leave; hidden files, the lock and temporaries, are
    not state)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, match: str, after: int = 0, snapshot: Callable = list):
        self.match, self.after, self.snapshot = match, after, snapshot
        self.seen: list[str] = []
        self.failed: list[str] = []
        self.before: dict[Path, bytes] = {}
        real = storage._write_chunk

        def chunk(fd: int, data: memoryview) -> int:
            name = os.readlink(f"/proc/self/fd/{fd}")
            if self.match in Path(name).name:
                if name not in self.seen:
                    self.seen.append(name)  # a new temporary file: the next write of a matching file
                if len(self.seen) > self.after:
                    if not self.failed:
                        files = [p for p in self.snapshot() if p.is_file() and not p.name.startswith(".")]
                        self.before = {p: p.read_bytes() for p in files}
                    self.failed.append(name)
                    os.write(fd, data[: len(data) // 2])  # part of it reaches the disk, then it is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
            return real(fd, data)

        monkeypatch.setattr(storage, "_write_chunk", chunk)

    def assert_unchanged(self) -> None:
        assert self.failed, "no write failed: the injection point was not reached"
        assert self.before, "nothing was recorded to compare"
        for path, data in self.before.items():
            assert path.read_bytes() == data, f"{path} changed"


def temp_files(folder: Path) -> list[Path]:
    """Temporary files atomic_write leaves only when killed (a failed write removes its own)."""
    return sorted(folder.rglob(".*.tmp"))


def assert_one_line(message: str) -> None:
    lines = message.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "run the same command" in lines[0], message
