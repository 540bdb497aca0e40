"""``pakd bench BUNDLES --device qemu:BOARD``: the board's verdict without the board.

Each bundle built for BOARD runs under qemu-user with the board's CPU model (``-cpu cortex-a72``
for rpi4), its golden output checked, and its guest instructions of one inference counted
(:mod:`pakd.deploy.emulate`: one thread, an empty environment, ``(count(N) - count(0)) / N``).
Instructions are not time; they are the stand-in until a board is attached, and every row says
which CPU model they were counted on.

With ``peers`` a teacher bundle is also run on every ARM engine a user of that board could pick
instead of PaKD (:mod:`pakd.deploy.peers`: ExecuTorch + XNNPACK and ONNX Runtime, from their aarch64
wheels), from the teacher folder the bundle was built from, on
the bundle's golden input, so the verdict compares the student with the best of them, not only
with PaKD's own teacher. An engine that cannot run is a row with the reason.

Rows go to the results store like every ``pakd bench`` row (device ``qemu:BOARD``, the
``instructions`` and ``cpu`` columns; times empty); a rerun of the same command reuses them
(``fresh`` measures again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PakdError
from .remote import describe_bundle
from .results import ResultsStore, session_id

PREFIX = "qemu:"


def is_emulated(device: str) -> bool:
    return device.startswith(PREFIX)


def board_of(device: str) -> str:
    board = device[len(PREFIX) :]
    if not board:
        raise PakdError(f"--device {device}: name the board after qemu:, e.g. qemu:rpi4 (see pakd targets)")
    return board


@dataclass(frozen=True)
class CountRow:
    """One engine's count of one model (what ``pakd bench`` prints and stores)."""

    bundle: str
    role: str | None
    model: str
    engine: str
    cpu: str
    instructions: int | None
    golden_ok: bool | None
    max_abs_diff: float | None
    reason: str | None = None  # why there is no count (an engine that cannot run here)


@dataclass
class EmulatedOutcome:
    session: str
    board: str
    cpu: str
    rows: list[CountRow] = field(default_factory=list)
    measured: int = 0
    reused: int = 0


@dataclass(frozen=True)
class BoardVerdict:
    """The student on PaKD against the teacher on the best engine of the board (fewest
    instructions), with the same-engine (PaKD teacher) ratio beside it."""

    board: str
    cpu: str
    student_instructions: int
    best_engine: str
    best_instructions: int
    pakd_teacher_instructions: int | None

    @property
    def ratio(self) -> float:
        return self.best_instructions / self.student_instructions

    @property
    def same_engine_ratio(self) -> float | None:
        if self.pakd_teacher_instructions:
            return self.pakd_teacher_instructions / self.student_instructions
        return None


def board_verdict(rows: Sequence[dict[str, Any]] | Sequence[CountRow], board: str = "") -> BoardVerdict | None:
    """From one session's rows of one board (store rows, whose device names the board, or
    :class:`CountRow` with ``board``), or None when the student or every teacher count is missing."""

    def get(r: Any, key: str) -> Any:
        return r.get(key) if isinstance(r, dict) else getattr(r, key)

    counted = [r for r in rows if get(r, "instructions")]
    teachers = [r for r in counted if get(r, "role") == "teacher"]
    students = [r for r in counted if get(r, "role") == "student" and get(r, "engine") == "pakd"]
    if not teachers or not students:
        return None
    best = min(teachers, key=lambda r: get(r, "instructions"))
    student = min(students, key=lambda r: get(r, "instructions"))
    pakd_teacher = next((get(r, "instructions") for r in teachers if get(r, "engine") == "pakd"), None)
    device = get(rows[0], "device") if isinstance(rows[0], dict) else None
    if not board and device and is_emulated(device):
        board = board_of(device)
    return BoardVerdict(
        board,
        str(get(student, "cpu") or ""),
        int(get(student, "instructions")),
        str(get(best, "engine")),
        int(get(best, "instructions")),
        int(pakd_teacher) if pakd_teacher else None,
    )


def _stored(store: ResultsStore, session: str, sha: str, device: str) -> dict[str, Any] | None:
    for r in store.rows(session=session, bundle_sha256=sha):  # a prefix match: keep the exact one
        if r["device"] == device and r["bundle_sha256"] == sha:
            return r
    return None


def _as_count(r: dict[str, Any]) -> CountRow:
    facts = r.get("facts") or {}
    ok = r.get("golden_ok")
    return CountRow(
        r["bundle"],
        r.get("role"),
        r.get("model") or "",
        r["engine"],
        r.get("cpu") or "",
        r.get("instructions"),
        None if ok is None else bool(ok),
        r.get("golden_max_abs_diff"),
        facts.get("reason"),
    )


def bench_emulated(
    bundles: Sequence[str | Path],
    board: str,
    store: ResultsStore,
    *,
    fresh: bool = False,
    peers: bool = True,
    work_dir: str | Path | None = None,
    note: Callable[[str], None] | None = None,
) -> EmulatedOutcome:
    """Counts every bundle (built for ``board``) under qemu with the board's CPU model and, with
    ``peers``, each teacher bundle's model on the board's peer engines (lowered into
    ``work_dir``, a temporary folder by default); stores a row per count. ``note`` gets a line
    before each (slow) count."""
    from ..deploy.verify import verify
    from ..targets import load_target

    target = load_target(board)
    if target.is_host or not target.emulator:
        raise PakdError(f"--device qemu:{board}: {board} has no [emulator] in its target file (pakd targets)")
    target.check_emulator()
    cpu = target.emulator_cpu or "max"
    device = PREFIX + board
    infos = [describe_bundle(b) for b in bundles]
    for info in infos:
        if info.bundle.target != board:
            raise PakdError(
                f"{info.name} is built for {info.bundle.target}, not {board}: pakd build ... --target {board}"
            )
    session = session_id(
        {"kind": "emulated", "board": board, "cpu": cpu, "bundles": sorted(i.sha256 for i in infos)}, fresh
    )
    out = EmulatedOutcome(session, board, cpu)

    def base_row(info: Any, engine: str, sha: str) -> dict[str, Any]:
        return {
            "session": session,
            "bundle_sha256": sha,
            "bundle": info.name,
            "source": info.source,
            "role": info.role,
            "model": info.model,
            "engine": engine,
            "target": board,
            "device": device,
            "threads": 1,
            "run": 0,
            "model_bytes": info.model_bytes,
            "bundle_bytes": info.bundle_bytes,
            "cpu": cpu,
        }

    for info in infos:
        engine = "pakd" if info.bundle.backend == "native" else info.bundle.backend
        done = None if fresh else _stored(store, session, info.sha256, device)
        if done is None:
            if note:
                note(f"{info.model} ({info.role or 'model'}) on {engine} under qemu -cpu {cpu}")
            rep = verify(info.bundle.root, emulate=True, count=True)
            row = base_row(info, engine, info.sha256) | {
                "instructions": rep.instructions,
                "golden_ok": rep.ok,
                "golden_max_abs_diff": rep.max_abs_diff,
                "facts": {"emulator": target.emulator[0]},
            }
            store.add(row)
            out.measured += 1
            done = _stored(store, session, info.sha256, device)
        else:
            out.reused += 1
        assert done is not None
        out.rows.append(_as_count(done))
        if peers and info.role == "teacher":
            out.rows.extend(_peer_rows(info, target, store, session, base_row, fresh, work_dir, note, out))
    return out


def _peer_rows(
    info: Any,
    target: Any,
    store: ResultsStore,
    session: str,
    base_row: Callable[[Any, str, str], dict[str, Any]],
    fresh: bool,
    work_dir: str | Path | None,
    note: Callable[[str], None] | None,
    out: EmulatedOutcome,
) -> list[CountRow]:
    """The teacher of bundle ``info`` on every peer engine of the board, a stored row each (the
    reason, for an engine that cannot run it)."""
    import tempfile

    import numpy as np
    import torch

    from ..deploy.peers import PEERS, measure_peers
    from ..modelio import load_model

    device = PREFIX + out.board
    todo = [e for e in PEERS if fresh or _stored(store, session, f"{info.sha256}:{e}", device) is None]
    if todo:
        if not info.source or not Path(info.source).is_dir():
            raise PakdError(
                f"{info.name}: the teacher folder it was built from ({info.source}) is gone, so the peer engines "
                "cannot run it; rebuild the bundle or pass --no-peers"
            )
        model, _ = load_model(info.source)
        shape = tuple(info.bundle.manifest["golden"]["shape"])
        x = torch.from_numpy(np.fromfile(info.bundle.file("golden-input"), dtype="<f4").reshape(shape).copy())
        if note:
            note(f"{info.model} (teacher) on {', '.join(todo)} under qemu -cpu {out.cpu}")
        with tempfile.TemporaryDirectory(prefix="pakd-peers-") as tmp:
            counts = measure_peers(model, x, target, Path(work_dir) if work_dir else Path(tmp), engines=tuple(todo))
        for count in counts:
            sha = f"{info.sha256}:{count.engine}"  # one row per (teacher bundle, engine)
            facts: dict[str, Any] = {"version": count.version, **count.info}
            if count.reason:
                facts["reason"] = count.reason
            store.add(
                base_row(info, count.engine, sha)
                | {
                    "instructions": count.instructions if count.ok else None,
                    "golden_ok": None if count.max_abs_diff is None else count.ok,
                    "golden_max_abs_diff": count.max_abs_diff,
                    "model_bytes": count.info.get("pte_bytes"),
                    "facts": facts,
                }
            )
            out.measured += 1
    rows = []
    for engine in PEERS:
        done = _stored(store, session, f"{info.sha256}:{engine}", device)
        if done is not None:
            if engine not in todo:
                out.reused += 1
            rows.append(_as_count(done))
    return rows


__all__ = ["BoardVerdict", "CountRow", "EmulatedOutcome", "bench_emulated", "board_of", "board_verdict", "is_emulated"]
