"""The results store's schema across versions: a store written before the emulated counts
existed (version 1, no instructions/cpu columns) opens, gains the columns, keeps its rows, and
takes emulated rows."""

from __future__ import annotations

import sqlite3

from pakd.bench.results import SCHEMA, SCHEMA_VERSION, open_store, read_rows


def test_a_version_1_store_gains_the_emulated_columns(tmp_path):
    db = tmp_path / "results.db"
    old = SCHEMA.replace("    instructions INTEGER,\n    cpu TEXT,\n", "")
    assert "instructions" not in old
    con = sqlite3.connect(db)
    con.executescript(old)
    con.execute(
        "INSERT INTO results (session, started_at, bundle_sha256, engine, device, threads, run, median_us) "
        "VALUES ('s', '2026', 'abc', 'pakd', 'local', 1, 0, 12.5)"
    )
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.commit()
    con.close()
    with open_store(db) as store:
        store.add(
            {
                "session": "e",
                "bundle_sha256": "def",
                "engine": "pakd",
                "device": "qemu:rpi4",
                "threads": 1,
                "run": 0,
                "instructions": 1234,
                "cpu": "cortex-a72",
            }  # fmt: skip
        )
    rows = read_rows(db)
    assert [(r["median_us"], r["instructions"], r["cpu"]) for r in rows] == [
        (12.5, None, None),
        (None, 1234, "cortex-a72"),
    ]
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    con.close()
