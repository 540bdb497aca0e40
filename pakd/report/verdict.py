"""The verdict against PaKD's goals: at least 11x smaller and 4x faster than the teacher, with
(almost) no loss of accuracy. The thresholds and their definitions (DESIGN.md, "Honest measurement
conventions") live here once; the page and the Markdown print them from here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .data import BENCH_COMMAND, BoardComparison, Comparison

SIZE_GOAL = 11.0  # x: teacher fp32 dense bytes / student .pakd bytes
SPEED_GOAL = 4.0  # x: teacher median latency (best dense engine) / student median latency (PaKD)
MAX_DROP_PT = 1.0  # percentage points of test top-1 the student may lose ("almost no loss")

DEFINITIONS = (
    (
        "Size",
        f">= {SIZE_GOAL:g}x",
        "bytes of the student's serialized weights in the deployable format (.pakd: every index, "
        "codebook, scale and header counted) divided into the fp32 dense bytes of the teacher "
        "(4 bytes per parameter) - Deep Compression's convention; the ledger's size_ratio.",
    ),
    (
        "Speed",
        f">= {SPEED_GOAL:g}x",
        "median batch-1 latency of the teacher on the best dense engine available on the same device "
        "in the same bench session (the fastest of its engines) divided by the student's median on "
        "PaKD's deployment (engine pakd or tvm, the faster); at equal threads. The same-engine ratio "
        "is shown beside it.",
    ),
    (
        "Accuracy",
        f"drop <= {MAX_DROP_PT:g} pt",
        "top-1 on the test split of the teacher's data (named above: Fashion-MNIST's 10,000 test images "
        "by default); the drop is the teacher's top-1 minus "
        f'the student\'s, in percentage points. "Almost no loss" is our definition: at most '
        f"{MAX_DROP_PT:g} point.",
    ),
)
BOARD_RULE = (
    "On a board emulated with qemu (pakd bench BUNDLES --device qemu:BOARD) speed is measured in guest "
    "instructions of one inference on the board's CPU model, one thread: the teacher on the board's best "
    "engine (fewest instructions of PaKD, ExecuTorch + XNNPACK and ONNX Runtime for that CPU) divided by the "
    "final student on PaKD. Instructions are not time; they stand in for the board until one is attached, "
    "and do not enter the overall verdict, which is taken on measured latency."
)
OVERALL_RULE = (
    "The overall verdict uses each device's 1-thread rows: the speed criterion takes the "
    "slowest of those devices, so it is met only when every device measured at 1 thread "
    "reaches the goal."
)


class Status(str, Enum):
    MET = "met"
    NOT_MET = "not met"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Check:
    name: str  # Size | Speed | Accuracy
    value: float | None
    goal: str
    status: Status
    shown: str  # the value as printed, e.g. "80.9x" or "0.62 pt drop"
    where: str = ""  # which measurement decided it, e.g. "on rpi4, slowest of 2 devices"


@dataclass(frozen=True)
class Verdict:
    scope: str  # "overall" or "rpi4, 1 thread"
    checks: tuple[Check, ...]
    note: str = ""

    @property
    def status(self) -> Status:
        states = {c.status for c in self.checks}
        if Status.NOT_MET in states:
            return Status.NOT_MET
        return Status.NOT_MEASURED if Status.NOT_MEASURED in states else Status.MET

    @property
    def headline(self) -> str:
        return {Status.MET: "GOALS MET", Status.NOT_MET: "GOALS NOT MET", Status.NOT_MEASURED: "SPEED NOT MEASURED"}[
            self.status
        ]

    def criteria(self) -> str:
        """Each criterion with its value, goal and state."""
        return "; ".join(
            f"{c.name.lower()} {c.shown}{' ' + c.where if c.where else ''} (goal {c.goal}): {c.status.value}"
            for c in self.checks
        )

    def line(self) -> str:
        """One line: scope, headline, then each criterion."""
        return f"{self.scope}: {self.headline} - {self.criteria()}"


def size_check(size_ratio: float) -> Check:
    return Check(
        "Size",
        size_ratio,
        f">= {SIZE_GOAL:g}x",
        Status.MET if size_ratio >= SIZE_GOAL else Status.NOT_MET,
        f"{size_ratio:.1f}x",
    )


def accuracy_check(drop_pt: float) -> Check:
    shown = f"{drop_pt:.2f} pt drop" if drop_pt >= 0 else f"{-drop_pt:.2f} pt gain"
    return Check(
        "Accuracy",
        drop_pt,
        f"drop <= {MAX_DROP_PT:g} pt",
        Status.MET if drop_pt <= MAX_DROP_PT else Status.NOT_MET,
        shown,
    )


def speed_check(speedup: float | None, where: str = "") -> Check:
    if speedup is None:
        return Check("Speed", None, f">= {SPEED_GOAL:g}x", Status.NOT_MEASURED, "not measured")
    return Check(
        "Speed",
        speedup,
        f">= {SPEED_GOAL:g}x",
        Status.MET if speedup >= SPEED_GOAL else Status.NOT_MET,
        f"{speedup:.2f}x",
        where,
    )


def judge(size_ratio: float, speedup: float | None, drop_pt: float, scope: str) -> Verdict:
    """The three criteria for one measurement (``speedup`` None: speed not measured)."""
    return Verdict(scope, (size_check(size_ratio), speed_check(speedup), accuracy_check(drop_pt)))


def scope_of(c: Comparison) -> str:
    return f"{c.device}, {c.threads} thread{'s' if c.threads != 1 else ''}"


def per_device(size_ratio: float, drop_pt: float, comparisons: list[Comparison]) -> list[Verdict]:
    return [judge(size_ratio, c.speedup, drop_pt, scope_of(c)) for c in comparisons]


def board_scope(b: BoardComparison) -> str:
    return f"{b.board} (qemu -cpu {b.cpu or '?'}, instructions)"


def per_board(size_ratio: float, drop_pt: float, boards: list[BoardComparison]) -> list[Verdict]:
    """A verdict per emulated board: speed = the instruction ratio against the board's best engine."""
    out = []
    for b in boards:
        best = b.teacher_best
        where = f"vs {best[0]}" if best else ""
        out.append(
            Verdict(
                board_scope(b),
                (size_check(size_ratio), speed_check(b.ratio, where), accuracy_check(drop_pt)),
                note=BOARD_RULE,
            )
        )
    return out


def overall(size_ratio: float, drop_pt: float, comparisons: list[Comparison], no_rows: str = "") -> Verdict:
    """Size and accuracy from the ledger; speed from each device's 1-thread comparison, the slowest
    device deciding. Without 1-thread latency rows the speed is "not measured", never guessed
    (``no_rows``: why there are none, for the note)."""
    single = [c for c in comparisons if c.threads == 1 and c.speedup is not None]
    if not single:
        why = (
            (no_rows or "no latency rows for this run in the results store")
            if not comparisons
            else "no session timed both the teacher and the final student on PaKD at 1 thread"
        )
        return Verdict(
            "overall",
            (size_check(size_ratio), speed_check(None), accuracy_check(drop_pt)),
            note=f"Speed not measured: {why}. `{BENCH_COMMAND}` produces them.",
        )
    worst = min(single, key=lambda c: c.speedup or 0.0)  # every one of them has a speedup
    where = f"on {worst.device}" + (f", slowest of {len(single)} devices" if len(single) > 1 else "")
    return Verdict(
        "overall",
        (size_check(size_ratio), speed_check(worst.speedup, where), accuracy_check(drop_pt)),
        note=OVERALL_RULE,
    )
