"""Concurrent result writers: two processes storing rows into one results.db at once through
ResultsStore (what two `pakd bench` processes do), while a third keeps reading it with the real
`pakd results` command. No row is lost, none is doubled, and nobody sees "database is locked"."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pakd.bench.results import ResultsStore, read_rows
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
ROWS = 300
WRITER = textwrap.dedent(
    """
    import sys
    from pakd.bench.results import open_store
    db, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(n):
        with open_store(db) as store:  # a store opened per row too: opening writes the schema
            store.add({"session": who, "bundle_sha256": f"{i:064x}", "engine": "pakd", "device": who,
                       "threads": 1, "run": i, "median_us": float(i), "facts": {"writer": who}})
    """
)


def test_two_writers_and_a_reader_lose_nothing(tmp_path):
    db = tmp_path / "results.db"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), who, str(ROWS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )  # fmt: skip
        for who in ("bench-a", "bench-b")
    ]
    for w in writers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for w in writers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    reads = []
    while any(w.poll() is None for w in writers) or not reads:
        r = run_cli("results", "--db", str(db), "--json", cwd=tmp_path)
        assert r.returncode == 0 and "locked" not in r.stderr, r.stderr
        reads.append(len([ln for ln in r.stdout.splitlines() if ln.startswith("{")]))
        time.sleep(0.05)
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0 and "locked" not in err, err
    rows = read_rows(db)
    for who in ("bench-a", "bench-b"):
        assert sorted(r["run"] for r in rows if r["session"] == who) == list(range(ROWS))
    assert len(rows) == 2 * ROWS
    assert reads == sorted(reads)  # each read saw a consistent, growing store
    final = run_cli("results", "--db", str(db), "--json", cwd=tmp_path)
    assert len([json.loads(ln) for ln in final.stdout.splitlines() if ln.startswith("{")]) == 2 * ROWS


def test_a_store_in_wal_mode_with_a_busy_timeout(tmp_path):
    with ResultsStore(tmp_path / "results.db") as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
