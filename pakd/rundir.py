"""The layout of a compress run folder, owned here and read through here only::

    runs/<name>/run.json         teacher path, recipe hash, seed (a rerun must match)
    runs/<name>/recipe.toml      the recipe as given
    runs/<name>/stage-K/         model.safetensors + spec.json (finished stage), model.pakd (the
                                 serialized student, codebooks included), and while the stage
                                 runs: checkpoint.pt (after every epoch)
    runs/<name>/ledger.json      one row per finished stage (and the teacher)

``pakd compress`` writes it (pakd.pipeline); build, bench and report read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .modelio import SPEC_FILE, write_json_atomic

RUN_FILE, LEDGER_FILE, RECIPE_COPY = "run.json", "ledger.json", "recipe.toml"
CHECKPOINT_FILE, PAKD_FILE = "checkpoint.pt", "model.pakd"
STAGE_PREFIX = "stage-"


@dataclass(frozen=True)
class ModelSource:
    """A model to run or build: a model folder (model.safetensors + spec.json), a .pakd file, or
    both (a finished stage, whose folder holds its model.pakd). Bench's ``ModelRef`` and build's
    ``Student`` are this, with what each needs on top."""

    label: str
    folder: Path | None = None
    pakd_file: Path | None = None

    @property
    def path(self) -> Path:
        """The model folder, or the .pakd file when there is no folder."""
        path = self.folder or self.pakd_file
        assert path is not None, f"a {type(self).__name__} has a folder or a .pakd file"
        return path


def is_run(path: str | Path) -> bool:
    """Whether ``path`` is a compress run folder (it has a run.json)."""
    return (Path(path) / RUN_FILE).is_file()


def run_of(stage_dir: str | Path) -> Path | None:
    """The run folder a stage folder belongs to, or None (a folder outside any run)."""
    parent = Path(stage_dir).parent
    return parent if is_run(parent) else None


def stage_dir(run_dir: str | Path, k: int) -> Path:
    return Path(run_dir) / f"{STAGE_PREFIX}{k}"


def stage_index(folder: Path) -> int | None:
    """K of a ``stage-K`` folder name, None for other names."""
    k = folder.name.removeprefix(STAGE_PREFIX)
    return int(k) if folder.name.startswith(STAGE_PREFIX) and k.isdigit() else None


def is_finished(folder: Path) -> bool:
    """A stage (or any model folder) is finished when its spec.json is there."""
    return (folder / SPEC_FILE).is_file()


def finished_stages(run_dir: str | Path) -> list[Path]:
    """The finished ``stage-K/`` folders of a run, by K."""
    stages = [p for p in Path(run_dir).glob(f"{STAGE_PREFIX}*") if p.is_dir() and stage_index(p) is not None]
    return sorted((p for p in stages if is_finished(p)), key=lambda p: stage_index(p) or 0)


def last_stage(run_dir: str | Path) -> Path | None:
    """The finished stage with the highest K, or None when there is none yet."""
    stages = finished_stages(run_dir)
    return stages[-1] if stages else None


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; raises OSError (missing, unreadable) or ValueError (not JSON)."""
    return json.loads(path.read_text())


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """run.json of ``run_dir``; raises OSError/ValueError as :func:`read_json`, ValueError when not an object."""
    info = read_json(Path(run_dir) / RUN_FILE)
    if not isinstance(info, dict):
        raise ValueError("not a JSON object")
    return info


def teacher_of(run_dir: str | Path) -> Path | None:
    """The teacher folder named in the run's run.json; None when run.json does not name one."""
    try:
        teacher = read_run(run_dir).get("teacher")
    except (OSError, ValueError):
        return None
    return Path(teacher) if isinstance(teacher, str) else None


def write_run(run_dir: str | Path, info: dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / RUN_FILE, info)


def write_ledger(run_dir: str | Path, recipe: str, rows: list[dict[str, Any]]) -> None:
    write_json_atomic(Path(run_dir) / LEDGER_FILE, {"recipe": recipe, "rows": rows})
