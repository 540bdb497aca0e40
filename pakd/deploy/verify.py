"""``pakd verify``: a bundle is checked (hashes, golden output; under qemu, with instruction counts,
when the target is not this machine)."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..targets import Target, load_target
from .build import GOLDEN_ATOL, BuildError
from .bundle import Bundle, open_bundle, runner_argv


@dataclass(frozen=True)
class VerifyReport:
    bundle: Path
    target: str
    backend: str
    emulated: bool
    max_abs_diff: float
    argmax_equal: bool
    ok: bool
    instructions: int | None = None
    baseline_instructions: int | None = None
    emulator_cpu: str | None = None  # the qemu CPU model the counts were taken on
    functions: tuple[tuple[str, int], ...] = ()  # per function of the runner, most first (functions=True)

    @property
    def instruction_ratio(self) -> float | None:
        if self.instructions and self.baseline_instructions:
            return self.baseline_instructions / self.instructions
        return None


def _execute(bundle: Bundle, target: Target, argv: list[str], emulate: bool) -> subprocess.CompletedProcess:
    if target.is_host:
        return subprocess.run(argv, cwd=bundle.root, capture_output=True, text=True, timeout=600)
    if not emulate:
        raise BuildError(
            f"{bundle.root} is built for {target.name} ({target.arch}); run it on the board "
            f"(pakd bench --device ...) or here under qemu with --emulate"
        )
    from .emulate import run_emulated

    r = run_emulated(target, argv, cwd=bundle.root, count_instructions=False, timeout=600)
    return subprocess.CompletedProcess(argv, r.returncode, r.stdout, r.stderr)


def verify(
    bundle_dir: str | Path,
    *,
    emulate: bool = False,
    count: bool = False,
    baseline: str | Path | None = None,
    targets_dir: Path | None = None,
    functions: bool = False,
) -> VerifyReport:
    bundle = open_bundle(bundle_dir)  # refuses altered files
    other = open_bundle(baseline) if baseline is not None else None  # before anything runs
    target = load_target(bundle.target, targets_dir)
    with tempfile.TemporaryDirectory(prefix="pakd-verify-") as tmp:
        out_file = Path(tmp) / "output.f32"
        r = _execute(bundle, target, runner_argv(bundle, out_file), emulate)
        if r.returncode != 0 or not out_file.is_file():
            raise BuildError(
                f"{bundle.root}: the runner failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}"
            )
        got = np.fromfile(out_file, dtype="<f4")
    expected = np.fromfile(bundle.file("golden-output"), dtype="<f4")
    if got.shape != expected.shape:
        raise BuildError(f"{bundle.root}: the runner wrote {got.size} values, {expected.size} expected")
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    argmax_ok = bool(got.argmax() == expected.argmax())
    atol = float(bundle.manifest["golden"].get("atol", GOLDEN_ATOL))
    instructions = base = None
    per_function: tuple[tuple[str, int], ...] = ()
    if functions:
        if target.is_host:
            raise BuildError("--functions counts under qemu: it needs a bundle for an ARM board and --emulate")
        from .emulate import instructions_by_function

        per_function = tuple(instructions_by_function(target, runner_argv(bundle), cwd=bundle.root))
    if count or baseline is not None:
        if target.is_host and not emulate:
            raise BuildError("instruction counts come from qemu: add --emulate (ARM targets)")
        instructions = _instructions(bundle, target)
        if other is not None:
            if other.target != bundle.target:
                raise BuildError(f"--baseline {baseline} is built for {other.target}, not {bundle.target}")
            base = _instructions(other, target)
    return VerifyReport(
        bundle.root,
        target.name,
        bundle.backend,
        not target.is_host,
        diff,
        argmax_ok,
        diff <= atol and argmax_ok,
        instructions,
        base,
        target.emulator_cpu if not target.is_host else None,
        per_function,
    )


def _instructions(bundle: Bundle, target: Target) -> int:
    from .emulate import instructions_per_inference

    return instructions_per_inference(target, runner_argv(bundle), cwd=bundle.root)
