"""Terminal output: rich progress bars for long work, tables, and one-line errors."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Logs and pipes get wide tables instead of rich's 80-column default (a terminal keeps its own width).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def step_progress(label: str, quiet: bool = False) -> Progress:
    """A transient bar for work counted in steps: LABEL | bar | done/total | what now | elapsed.
    ``label`` is a rich format string (e.g. ``"[bold]{task.fields[dev]}"`` for one bar per device)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )


class TrainProgress:
    """Progress callback for :func:`pakd.train.train`: an overall bar, an epoch bar, a line per epoch."""

    def __init__(self, title: str, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet
        self._progress: Progress | None = None
        self._overall = self._epoch = TaskID(-1)  # set on the 'start' event
        self._loss = 0.0

    def __enter__(self) -> TrainProgress:
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        p = self._progress
        if p is None:
            return
        if event == "start":
            total = info["epochs"] * info["steps_per_epoch"]
            done = info["resumed_epoch"] * info["steps_per_epoch"]
            if info["resumed_epoch"]:
                console.print(f"resuming {self.title} after epoch {info['resumed_epoch']}/{info['epochs']}")
            if info["micro_batch"] != info["batch"]:
                console.print(
                    micro_batch_note(
                        info["batch"], info["micro_batch"], info["activation_bytes"], info["activation_budget"]
                    )
                )
            self._overall = p.add_task(self.title, total=total, completed=done, loss=0.0, info="")
            self._epoch = p.add_task("epoch", total=info["steps_per_epoch"], loss=0.0, info="")
            self._epochs = info["epochs"]
        elif event == "step":
            self._loss = (
                0.9 * self._loss + 0.1 * float(info["loss"].detach()) if info["step"] else float(info["loss"].detach())
            )
            if info["step"] == 0:
                p.reset(self._epoch, description=f"epoch {info['epoch'] + 1}/{self._epochs}", loss=self._loss, info="")
            p.advance(self._epoch)
            p.advance(self._overall)
            p.update(self._epoch, loss=self._loss)
            p.update(self._overall, loss=self._loss)
        elif event == "epoch":
            r = info["result"]
            line = (
                f"val top-1 {100 * r.val_top1:.2f}%  train top-1 {100 * r.train_top1:.2f}%  "
                f"lr {r.lr:.4f}  {r.seconds:.0f}s"
            )
            p.update(self._overall, info=f"ep {r.epoch}: val {100 * r.val_top1:.2f}%")
            p.console.print(f"epoch {r.epoch:>3}/{self._epochs}  loss {r.train_loss:.4f}  {line}")


def micro_batch_note(batch: int, micro: int, per_image: int, budget: int) -> str:
    """The line that says a training batch runs in parts (gradients added up before each step)."""
    return (
        f"note: each batch of {batch} runs in parts of at most {micro} images, their gradients added up before "
        f"the step: a forward pass keeps {per_image / 2**20:.1f} MiB per image for backward, and a part keeps "
        f"at most {budget // 2**20} MiB (the 3 GB budget)"
    )


def fmt_int(n: int) -> str:
    """1234567 -> '1.23M' (SI, for tables)."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def ledger_table(rows: list[dict[str, Any]], title: str = ""):
    """Per-stage table in the spirit of Deep Compression's Table 1: each stage's accuracy, what is
    left of the network, and its serialized size without and with Huffman coding."""
    from rich.table import Table

    table = Table(title=title)
    for c in ("stage", "val", "test", "nonzero", "MACs", "bytes", "+Huffman", "ratio", "time"):
        table.add_column(c, justify="left" if c == "stage" else "right")
    dense = 4 * rows[0]["params"]
    for r in rows:
        table.add_row(
            r["stage"],
            f"{100 * r['val_top1']:.2f}%",
            f"{100 * r['test_top1']:.2f}%",
            fmt_int(r["nonzeros"]),
            fmt_int(r["macs"]),
            f"{r['bytes']:,}",
            f"{r['bytes_huffman']:,}",
            f"{dense / r['bytes_huffman']:.1f}x",
            f"{r['seconds']:.0f}s",
        )
    return table
