"""The results store: one SQLite file (``results.db``) with a row per timed configuration.

A row is one (bundle, device, threads, run) of one *session* — a ``pakd bench`` plan. The
session id is derived from the plan (bundles, devices, threads, repeats), so running the same
command again finds the rows that already finished and measures only what is missing: a
benchmark that died halfway keeps its rows and a rerun completes it. ``--new-session`` measures
everything again under a fresh id. Ratios (teacher vs student) are only ever taken between rows
of one session: same machine, same plan.

Rows are written one at a time as they finish, each in its own ``BEGIN IMMEDIATE`` transaction
(WAL journal, a busy timeout, and a retry while another process holds the write lock), so several
device workers, several ``pakd bench`` processes and a ``pakd results`` reader can share one store
without a lost row or a "database is locked". A write the disk refuses rolls back (the rows
already stored are kept) and is one line (:class:`pakd.errors.StorageError`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PakdError, StorageError
from ..storage import disk_error, is_disk_error

DEFAULT_DB = Path("results.db")
SCHEMA_VERSION = 2  # 2: instructions and cpu (emulated rows, `pakd bench --device qemu:BOARD`)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    session TEXT NOT NULL,
    started_at TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    bundle TEXT,
    source TEXT,
    role TEXT,
    model TEXT,
    engine TEXT NOT NULL,
    target TEXT,
    device TEXT NOT NULL,
    threads INTEGER NOT NULL,
    run INTEGER NOT NULL,
    median_us REAL,
    p90_us REAL,
    min_us REAL,
    max_us REAL,
    mean_us REAL,
    stdev_us REAL,
    iterations INTEGER,
    peak_rss_kb INTEGER,
    model_bytes INTEGER,
    bundle_bytes INTEGER,
    golden_ok INTEGER,
    golden_max_abs_diff REAL,
    facts TEXT,
    instructions INTEGER,
    cpu TEXT,
    UNIQUE (bundle_sha256, device, threads, run, session)
);
CREATE INDEX IF NOT EXISTS results_session ON results (session);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

COLUMNS = (
    "session",
    "started_at",
    "bundle_sha256",
    "bundle",
    "source",
    "role",
    "model",
    "engine",
    "target",
    "device",
    "threads",
    "run",
    "median_us",
    "p90_us",
    "min_us",
    "max_us",
    "mean_us",
    "stdev_us",
    "iterations",
    "peak_rss_kb",
    "model_bytes",
    "bundle_bytes",
    "golden_ok",
    "golden_max_abs_diff",
    "facts",
    "instructions",  # emulated rows: guest instructions of one inference (never time)
    "cpu",  # emulated rows: the qemu CPU model the instructions were counted on
)
# Columns added after version 1, with their types: a store written by an older PaKD gets them
# when opened (ALTER TABLE; its rows read NULL there).
_ADDED = {"instructions": "INTEGER", "cpu": "TEXT"}
_REQUIRED = ("session", "bundle_sha256", "engine", "device", "threads", "run")


class ResultsError(PakdError):
    """A results store that cannot be opened or a row that cannot be stored."""


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def session_id(plan: dict[str, Any], fresh: bool = False) -> str:
    """A short id for a benchmark plan: the same plan gives the same id (so a rerun resumes);
    ``fresh`` adds the current time (a new measurement of the same plan)."""
    text = json.dumps(plan, sort_keys=True, default=str)
    if fresh:
        text += utc_now() + str(_dt.datetime.now().microsecond)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ResultsStore:
    """``results.db``: open (creating it and its table when missing), add rows, query rows."""

    path: Path
    _conn: sqlite3.Connection = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.path.exists() and not self.path.is_file():
            raise ResultsError(f"{self.path}: not a file (the results store is one SQLite file)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path)
            _retry(self.path, lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
            _retry(self.path, self._create)
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc) from None
        except OSError as exc:
            raise _store_error(self.path, exc) from None

    def _create(self) -> None:
        with _transaction(self._conn):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            have = {r[1] for r in self._conn.execute("PRAGMA table_info(results)")}
            for col, kind in _ADDED.items():
                if col not in have:
                    self._conn.execute(f"ALTER TABLE results ADD COLUMN {col} {kind}")
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, session: str, bundle_sha256: str, device: str, threads: int, run: int) -> bool:
        with self._lock:
            return _retry(
                self.path,
                lambda: (
                    self._conn.execute(
                        "SELECT 1 FROM results WHERE session=? AND bundle_sha256=? AND device=? AND threads=? AND run=?",
                        (session, bundle_sha256, device, int(threads), int(run)),
                    ).fetchone()
                    is not None
                ),
            )

    def add(self, row: dict[str, Any]) -> None:
        """Store one finished row (committed at once: a crash later keeps it)."""
        missing = [k for k in _REQUIRED if row.get(k) is None]
        if missing:
            raise ResultsError(f"a result row needs {', '.join(missing)}")
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ResultsError(f"unknown result fields: {', '.join(sorted(unknown))}")
        values = dict(row)
        values.setdefault("started_at", utc_now())
        if isinstance(values.get("facts"), dict):
            values["facts"] = json.dumps(values["facts"], sort_keys=True)
        if isinstance(values.get("golden_ok"), bool):
            values["golden_ok"] = int(values["golden_ok"])
        cols = [c for c in COLUMNS if c in values]
        sql = f"INSERT OR REPLACE INTO results ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"

        def insert() -> None:
            with _transaction(self._conn):
                self._conn.execute(sql, [values[c] for c in cols])

        with self._lock:
            _retry(self.path, insert)

    def rows(self, **filters: Any) -> list[dict[str, Any]]:
        """Rows matching every filter (see :func:`query`), oldest first."""
        with self._lock:
            return _retry(self.path, lambda: query(self._conn, **filters))


BUSY_SECONDS = 60.0  # how long a writer waits for the store's write lock before giving up
_BUSY, _LOCKED, _IOERR, _FULL = 5, 6, 10, 13  # SQLite primary result codes
T = TypeVar("T")


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see :func:`_transaction`)
    that waits up to ``BUSY_SECONDS`` for a lock held by another process."""
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    conn = sqlite3.connect(target, uri=read_only, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_SECONDS * 1000)}")
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock is taken first, so the busy timeout applies and no reader
    upgrade can deadlock) ... COMMIT, or ROLLBACK on any error: a failed write changes nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _code(exc: sqlite3.Error) -> int:
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _retry(path: Path, fn: Callable[[], T], unusable: str = "not a usable results store") -> T:
    """``fn()``, again after a short pause while the store is busy (another process's write or
    checkpoint), for up to ``BUSY_SECONDS``; a full or failing disk is one line."""
    deadline = time.monotonic() + BUSY_SECONDS
    pause = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            busy = _code(exc) in (_BUSY, _LOCKED) or "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise _store_error(path, exc, unusable) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        except sqlite3.DatabaseError as exc:
            raise _store_error(path, exc, unusable) from None


def _store_error(path: Path, exc: BaseException, unusable: str = "not a usable results store") -> PakdError:
    if isinstance(exc, OSError):
        return (
            disk_error(exc, path, "the rows stored so far are kept")
            if is_disk_error(exc)
            else ResultsError(f"{path}: cannot open the results store ({exc.strerror or exc})")
        )
    if isinstance(exc, sqlite3.Error) and _code(exc) in (_FULL, _IOERR):
        return StorageError(
            f"cannot write {path}: {exc}; the rows stored so far are kept - free space and run the same "
            "command again to resume"
        )
    return ResultsError(f"{path}: {unusable} ({exc})")


def open_store(path: str | Path | None = None) -> ResultsStore:
    return ResultsStore(Path(path) if path is not None else DEFAULT_DB)


def query(
    conn: sqlite3.Connection,
    *,
    session: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    model: str | None = None,
    role: str | None = None,
    engine: str | None = None,
    bundle_sha256: str | None = None,
    sources: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Rows matching every filter given (``model`` and ``device`` as substrings, ``bundle_sha256``
    as a prefix), oldest first (the newest ``limit`` when given); ``facts`` parsed into a dict."""
    where, args = [], []
    for col, value in (("session", session), ("threads", threads), ("role", role), ("engine", engine)):
        if value is not None:
            where.append(f"{col} = ?")
            args.append(value)
    if bundle_sha256 is not None:
        where.append("bundle_sha256 LIKE ?")
        args.append(bundle_sha256 + "%")
    for col, value in (("model", model), ("device", device)):
        if value is not None:
            where.append(f"{col} LIKE ?")
            args.append(f"%{value}%")
    if sources is not None:
        where.append(f"source IN ({', '.join('?' for _ in sources)})" if sources else "0")
        args.extend(sources)
    sql = "SELECT * FROM results" + (" WHERE " + " AND ".join(where) if where else "")
    if limit is not None:
        sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT {int(limit)})"
    conn.row_factory = sqlite3.Row
    out = [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]
    for r in out:
        try:
            r["facts"] = json.loads(r["facts"]) if r.get("facts") else {}
        except json.JSONDecodeError:
            r["facts"] = {}
    return out


def read_rows(path: str | Path, **filters: Any) -> list[dict[str, Any]]:
    """Rows of an existing store opened read-only (reports); [] when the file does not exist."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        conn = connect(p, read_only=True)
        try:
            return _retry(p, lambda: query(conn, **filters))
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise _store_error(p, exc) from None


def norm_path(path: str | Path) -> Path:
    """An absolute path with symlinks resolved where they exist (runs/ is often a link)."""
    return Path(path).expanduser().resolve() if str(path) else Path()


def rows_of_run(path: str | Path, teacher_dir: str | Path, run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows that belong to compress run ``run_dir``: role 'student' with ``source`` inside the
    run folder, role 'teacher' with ``source`` = its teacher folder (or a file in it); oldest first
    (by start time), ``facts`` as stored (JSON text). The store (which must exist) is opened
    read-only; a file that is not a store raises :class:`ResultsError`."""
    p = Path(path)
    try:
        con = connect(p, read_only=True)
    except sqlite3.Error as exc:
        raise ResultsError(f"{p}: cannot open the results store ({exc})") from None
    try:
        sql = "SELECT * FROM results WHERE role IN ('teacher', 'student') ORDER BY started_at, id"
        rows = _retry(p, lambda: [dict(r) for r in con.execute(sql)], "not a readable PaKD results store")
    finally:
        con.close()
    teacher, run = norm_path(teacher_dir), norm_path(run_dir)
    out = []
    for r in rows:
        source = norm_path(r.get("source") or "")
        if r["role"] == "teacher" and (source == teacher or teacher in source.parents):
            out.append(r)
        elif r["role"] == "student" and (source == run or run in source.parents):
            out.append(r)
    return out


def summarize(values: Iterable[float]) -> float | None:
    """The median of several runs' medians (the figure a ratio uses)."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


@dataclass(frozen=True)
class RowSummary:
    """The runs of one (device, bundle, role, engine, threads), summarised (median of medians)."""

    device: str
    bundle: str
    role: str
    engine: str
    threads: int
    median_us: float | None
    p90_us: float | None
    peak_rss_kb: float | None
    model_bytes: int | None


def summarize_rows(rows: Iterable[dict[str, Any]]) -> list[RowSummary]:
    """One summary per (device, bundle, role, engine, threads): by device, teachers first, then
    bundle and threads."""
    groups: dict[tuple[str, str, str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["device"], r["bundle"], r["role"] or "-", r["engine"], r["threads"]), []).append(r)

    def order(key: tuple[str, str, str, str, int]) -> tuple[str, bool, str, int]:
        dev, bundle, role, _engine, thr = key
        return dev, role != "teacher", bundle, thr

    out = []
    for key in sorted(groups, key=order):
        rs = groups[key]
        med, p90, rss = (summarize(x[k] for x in rs) for k in ("median_us", "p90_us", "peak_rss_kb"))
        out.append(RowSummary(*key, med, p90, rss, rs[0]["model_bytes"]))
    return out
