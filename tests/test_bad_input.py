"""Every `pakd` command against each kind of bad input it can receive: one line on stderr, exit
code 2 (1 for a check that ran and failed), never a traceback, and no existing file changed.

The commands run in this process through ``pakd.cli.main`` (what the ``pakd`` script calls), on
a real teacher, a real compress run and its .pakd file made once for the module; a few cases run
as subprocesses to check the exact stderr of the installed entry point. The error mapping itself
(``pakd.errors.user_error``) is tested directly at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from pakd.cli import main
from tests.conftest import run_cli

TINY_RECIPE = """\
[recipe]
name = "tiny"
batch_size = 128
huffman = true

[[stage]]
name = "prune"
epochs = 1
lr = 0.01
optimizer = "sgd"
[stage.prune]
method = "unstructured"
criterion = "magnitude"
scope = "global"
amount = 0.5
"""


# ----------------------------------------------------------------------------------------------
# The workspace: real files of every kind, made once
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A trained LeNet-5 teacher (1 epoch on the synthetic data), a one-stage compress run of it,
    its .pakd file, a recipe, and a bundle folder whose manifest matches its files."""
    root = tmp_path_factory.mktemp("ws")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        train = ["train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--threads", "1"]
        assert main([*train, "--runs-dir", "runs", "--name", "t", "--quiet"]) == 0
        (root / "tiny.toml").write_text(TINY_RECIPE)
        compress = ["compress", "--teacher", "runs/t/teacher", "--recipe", "tiny.toml", "--runs-dir", "runs"]
        assert main([*compress, "--threads", "1", "--quiet"]) == 0
    finally:
        os.chdir(cwd)
    shutil.copy(root / "runs/tiny/stage-1/model.pakd", root / "model.pakd")
    _fake_bundle(root / "bundle", root / "model.pakd")
    from pakd.bench.results import open_store

    with open_store(root / "results.db"):
        pass
    return root


def _fake_bundle(out: Path, pakd_file: Path) -> None:
    """A bundle folder as `pakd build` lays it out, with a manifest that matches its files; its
    runner is a script that fails (nothing is compiled: the cases are refused before a real
    runner would matter)."""
    from pakd.deploy.bundle import write_manifest

    out.mkdir()
    shutil.copy(pakd_file, out / "model.pakd")
    (out / "input.f32").write_bytes(struct.pack("<4f", 0, 1, 2, 3))
    (out / "expected.f32").write_bytes(struct.pack("<2f", 0, 1))
    (out / "bin").mkdir()
    (out / "bin/pakd-run").write_text("#!/bin/sh\necho not a runner >&2\nexit 1\n")
    (out / "bin/pakd-run").chmod(0o755)
    files = {
        "model.pakd": "model",
        "bin/pakd-run": "runner",
        "input.f32": "golden-input",
        "expected.f32": "golden-output",
    }
    write_manifest(
        out,
        files,
        model="t/stage-1",
        backend="native",
        target={"name": "host", "arch": "x86_64", "triple": "x86_64-linux-gnu"},
        run={"argv": ["bin/pakd-run", "model.pakd"], "output_option": "--save-output", "iters_option": "--iters"},
        golden={"atol": 1e-4},
    )


@dataclass
class Ctx:
    """What a case builds its bad input from: the shared workspace (read only) and its own folder."""

    ws: Path
    tmp: Path

    def copy(self, rel: str, name: str | None = None) -> Path:
        src, dst = self.ws / rel, self.tmp / (name or Path(rel).name)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst)
        return dst

    def write(self, name: str, data: str | bytes) -> Path:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            p.write_text(data)
        return p

    def folder(self, name: str = "empty") -> Path:
        p = self.tmp / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def teacher(self) -> str:
        return str(self.ws / "runs/t/teacher")

    @property
    def run(self) -> str:
        return str(self.ws / "runs/tiny")

    @property
    def pakd(self) -> str:
        return str(self.ws / "model.pakd")

    @property
    def bundle(self) -> str:
        return str(self.ws / "bundle")

    @property
    def results_db(self) -> str:
        return str(self.ws / "results.db")


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def bitflipped(path: Path, at: float = 0.5) -> Path:
    data = bytearray(path.read_bytes())
    data[int((len(data) - 1) * at)] ^= 0x10
    path.write_bytes(bytes(data))
    return path


def random_bytes(n: int = 300) -> bytes:
    import random

    return random.Random(16).randbytes(n)


def edit_json(path: Path, change: Callable[[dict], object]) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _set(d: dict, keys: str, value: object) -> None:
    *head, last = keys.split(".")
    for k in head:
        d = d[k]
    d[last] = value


def spec_with(ctx: Ctx, keys: str, value: object) -> str:
    """A copy of the teacher whose spec.json has ``keys`` (dotted) set to ``value``."""
    folder = ctx.copy("runs/t/teacher", "teacher")
    edit_json(folder / "spec.json", lambda s: _set(s, keys, value))
    return str(folder)


def teacher_with(ctx: Ctx, name: str, change: Callable[[Path], object]) -> str:
    folder = ctx.copy("runs/t/teacher", "teacher")
    change(folder / name)
    return str(folder)


def run_with(ctx: Ctx, name: str, change: Callable[[Path], object]) -> str:
    folder = ctx.copy("runs/tiny", "run")
    change(folder / name)
    return str(folder)


def bundle_with(ctx: Ctx, change: Callable[[Path], object]) -> str:
    folder = ctx.copy("bundle", "bundle")
    change(folder)
    return str(folder)


def manifest_lie(keys: str, value: object) -> Callable[[Path], object]:
    return lambda b: edit_json(b / "manifest.json", lambda m: _set(m, keys, value))


def recipe(ctx: Ctx, text: str) -> str:
    return str(ctx.write("bad.toml", text))


def recipe_edit(ctx: Ctx, old: str, new: str) -> str:
    assert old in TINY_RECIPE
    return recipe(ctx, TINY_RECIPE.replace(old, new))


GOOD_TARGET = (Path(__file__).resolve().parents[1] / "targets/host.toml").read_text()


def target_file(ctx: Ctx, text: str) -> str:
    return str(ctx.write("targets/host.toml", text))


def target_edit(ctx: Ctx, old: str, new: str) -> str:
    assert old in GOOD_TARGET
    return target_file(ctx, GOOD_TARGET.replace(old, new))


def devices(ctx: Ctx, text: str) -> str:
    return str(ctx.write("devices.toml", text))


# ----------------------------------------------------------------------------------------------
# The matrix
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    cmd: str
    what: str
    argv: Callable[[Ctx], list[str]]
    code: int = 2
    says: str = ""  # a piece of the message
    marks: tuple = ()

    @property
    def id(self) -> str:
        return f"{self.cmd}: {self.what}"


TRAIN = ["train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--quiet"]
DEV = "local"

CASES: list[Case] = [
    # --- every command: the command line itself
    Case("pakd", "unknown command", lambda c: ["bogus"], says="No such command"),
    Case("models", "an extra argument", lambda c: ["models", "extra"], says="unexpected extra argument"),
    Case("train", "no --model", lambda c: ["train"], says="--model"),
    Case("train", "unknown option", lambda c: [*TRAIN, "--epoch", "3"], says="--epoch"),
    # --- targets
    Case("targets", "missing --targets-dir", lambda c: ["targets", "--targets-dir", str(c.tmp / "nope")]),
    Case("targets", "--targets-dir is a file", lambda c: ["targets", "--targets-dir", c.pakd]),
    Case(
        "targets",
        "a board file that is not TOML",
        lambda c: ["targets", "--targets-dir", str(Path(target_file(c, "[target\nname=")).parent)],
        says="TOML",
    ),
    Case(
        "targets",
        "a board file with a wrong type",
        lambda c: ["targets", "--targets-dir", str(Path(target_edit(c, "cores = 2", 'cores = "two"')).parent)],
        says="cores",
    ),
    # --- train
    Case(
        "train", "unknown zoo model", lambda c: ["train", "--model", "resnet21", "--data", "synthetic"], says="resnet21"
    ),
    Case(
        "train", "factory not importable", lambda c: ["train", "--model", "nosuch_pkg.mod:make", "--data", "synthetic"]
    ),
    Case(
        "train", "factory without a colon part", lambda c: ["train", "--model", "os.path:nope", "--data", "synthetic"]
    ),
    Case("train", "model arg of a wrong type", lambda c: [*TRAIN, "--model-arg", "num_classes=x"], says="num_classes"),
    Case("train", "model arg not key=value", lambda c: [*TRAIN, "--model-arg", "num_classes"], says="key=value"),
    Case("train", "unknown model arg", lambda c: [*TRAIN, "--model-arg", "depth=3"], says="depth"),
    Case("train", "model arg out of range", lambda c: [*TRAIN, "--model-arg", "num_classes=0"]),
    Case("train", "non-numeric --epochs", lambda c: [*TRAIN, "--epochs", "x"], says="--epochs"),
    Case("train", "negative --epochs", lambda c: [*TRAIN, "--epochs", "-1"], says="epochs"),
    Case("train", "zero --batch-size", lambda c: [*TRAIN, "--batch-size", "0"], says="batch"),
    Case("train", "non-numeric --lr", lambda c: [*TRAIN, "--lr", "fast"], says="--lr"),
    Case("train", "negative --lr", lambda c: [*TRAIN, "--lr", "-0.1"], says="learning rate"),
    Case("train", "nan --lr", lambda c: [*TRAIN, "--lr", "nan"], says="learning rate"),
    Case("train", "unknown --optimizer", lambda c: [*TRAIN, "--optimizer", "adam9"], says="adam9"),
    Case("train", "unknown --augment", lambda c: [*TRAIN, "--augment", "rotate"], says="rotate"),
    Case("train", "--label-smoothing 1.5", lambda c: [*TRAIN, "--label-smoothing", "1.5"], says="smoothing"),
    Case("train", "negative --weight-decay", lambda c: [*TRAIN, "--weight-decay", "-1"], says="decay"),
    Case("train", "negative --threads", lambda c: [*TRAIN, "--threads", "-2"], says="threads"),
    Case("train", "--channels 2", lambda c: [*TRAIN, "--channels", "2"], says="channels"),
    Case("train", "bad --image-size", lambda c: [*TRAIN, "--image-size", "big"], says="image-size"),
    Case("train", "bad --data-memory", lambda c: [*TRAIN, "--data-memory", "lots"], says="lots"),
    Case("train", "unknown --device", lambda c: [*TRAIN, "--device", "tpu9", "--runs-dir", str(c.tmp)]),
    Case("train", "missing --data path", lambda c: [*TRAIN[:4], str(c.tmp / "nope"), "--epochs", "1"]),
    Case("train", "empty --data folder", lambda c: [*TRAIN[:4], str(c.folder()), "--epochs", "1"]),
    Case("train", "--data folder of the wrong kind", lambda c: [*TRAIN[:4], c.run, "--epochs", "1"]),
    Case(
        "train",
        "--data .npz of random bytes",
        lambda c: [*TRAIN[:4], str(c.write("d.npz", random_bytes())), "--epochs", "1"],
    ),
    Case("train", "--data a text file", lambda c: [*TRAIN[:4], str(c.write("d.txt", "hello")), "--epochs", "1"]),
    Case("train", "--runs-dir is a file", lambda c: [*TRAIN, "--runs-dir", c.pakd]),
    Case(
        "train",
        "missing --data-dir for fashion-mnist",
        lambda c: ["train", "--model", "lenet5", "--epochs", "1", "--data-dir", str(c.tmp / "nope")],
    ),
    # --- import
    Case(
        "import", "missing --weights", lambda c: ["import", "--weights", str(c.tmp / "w.safetensors"), "-m", "lenet5"]
    ),
    Case("import", "--weights is a folder", lambda c: ["import", "--weights", c.teacher, "-m", "lenet5"]),
    Case(
        "import",
        "truncated safetensors",
        lambda c: ["import", "--weights", str(truncated(c.copy("runs/t/teacher/model.safetensors"))), "-m", "lenet5"],
    ),
    Case(
        "import",
        "safetensors with a bit-flipped header",
        lambda c: [
            "import",
            "--weights",
            str(bitflipped(c.copy("runs/t/teacher/model.safetensors"), 0.000_01)),
            "-m",
            "lenet5",
        ],
    ),
    Case(
        "import",
        "a .pt of random bytes",
        lambda c: ["import", "--weights", str(c.write("w.pt", random_bytes())), "-m", "lenet5"],
    ),
    Case("import", "a .pt2 of random bytes", lambda c: ["import", "--weights", str(c.write("w.pt2", random_bytes()))]),
    Case(
        "import",
        "weights of another model",
        lambda c: [
            "import",
            "--weights",
            c.teacher + "/model.safetensors",
            "-m",
            "lenet-300-100",
            "--data",
            "synthetic",
        ],
    ),
    Case(
        "import",
        "no --model for safetensors",
        lambda c: ["import", "--weights", c.teacher + "/model.safetensors", "--data", "synthetic"],
    ),
    # --- eval
    Case("eval", "missing folder", lambda c: ["eval", str(c.tmp / "nope")]),
    Case("eval", "empty folder", lambda c: ["eval", str(c.folder())]),
    Case("eval", "a bundle folder", lambda c: ["eval", c.bundle]),
    Case("eval", "a file", lambda c: ["eval", c.ws.joinpath("tiny.toml").as_posix()]),
    Case("eval", "a .pakd file", lambda c: ["eval", c.pakd]),
    Case(
        "eval",
        "a truncated .pakd file",
        lambda c: ["eval", str(truncated(c.copy("model.pakd")))],
    ),
    Case("eval", "spec.json not JSON", lambda c: ["eval", teacher_with(c, "spec.json", lambda p: p.write_text("{"))]),
    Case("eval", "spec.json a list", lambda c: ["eval", teacher_with(c, "spec.json", lambda p: p.write_text("[]"))]),
    Case(
        "eval",
        "spec.json not UTF-8",
        lambda c: ["eval", teacher_with(c, "spec.json", lambda p: p.write_bytes(b"\xff\xfe{"))],
    ),
    Case(
        "eval",
        "model arg of a wrong type",
        lambda c: ["eval", spec_with(c, "model.args.num_classes", "x")],
        says="num_classes",
    ),
    Case("eval", "model args not a table", lambda c: ["eval", spec_with(c, "model.args", [1, 2])]),
    Case("eval", "unknown model arg", lambda c: ["eval", spec_with(c, "model.args.depth", 3)], says="depth"),
    Case("eval", "unknown model", lambda c: ["eval", spec_with(c, "model.name", "resnet21")], says="resnet21"),
    Case("eval", "model name not a string", lambda c: ["eval", spec_with(c, "model.name", 5)]),
    Case("eval", "model not a table", lambda c: ["eval", spec_with(c, "model", "lenet5")]),
    Case(
        "eval", "a factory model that is not importable", lambda c: ["eval", spec_with(c, "model.name", "nosuch.mod:f")]
    ),
    Case("eval", "data input_shape of a wrong type", lambda c: ["eval", spec_with(c, "data.input_shape", "28x28")]),
    Case("eval", "data name unknown", lambda c: ["eval", spec_with(c, "data.name", "imagenet-9")]),
    Case("eval", "data not a table", lambda c: ["eval", spec_with(c, "data", 7)]),
    Case(
        "eval",
        "truncated model.safetensors",
        lambda c: ["eval", teacher_with(c, "model.safetensors", truncated)],
    ),
    Case(
        "eval",
        "model.safetensors of random bytes",
        lambda c: ["eval", teacher_with(c, "model.safetensors", lambda p: p.write_bytes(random_bytes()))],
    ),
    Case(
        "eval",
        "model.safetensors with a bit-flipped header",
        lambda c: ["eval", teacher_with(c, "model.safetensors", lambda p: bitflipped(p, 0.000_01))],
    ),
    Case("eval", "model.safetensors missing", lambda c: ["eval", teacher_with(c, "model.safetensors", os.remove)]),
    Case(
        "eval",
        "model.safetensors is a folder",
        lambda c: ["eval", teacher_with(c, "model.safetensors", lambda p: (os.remove(p), p.mkdir()))],
    ),
    Case("eval", "both a folder and --model", lambda c: ["eval", c.teacher, "--model", "lenet5"]),
    Case(
        "eval", "--model with missing --weights", lambda c: ["eval", "--model", "lenet5", "--weights", str(c.tmp / "w")]
    ),
    Case(
        "eval",
        "--model with a truncated --weights",
        lambda c: [
            "eval",
            "--model",
            "lenet5",
            "--weights",
            str(truncated(c.copy("runs/t/teacher/model.safetensors"))),
            "--data",
            "synthetic",
        ],
    ),
    Case(
        "eval",
        "--model with weights of another model",
        lambda c: [
            "eval",
            "--model",
            "lenet-300-100",
            "--weights",
            c.teacher + "/model.safetensors",
            "--data",
            "synthetic",
        ],
    ),
    Case("eval", "non-numeric --threads", lambda c: ["eval", c.teacher, "--threads", "two"], says="--threads"),
    Case("eval", "unknown --data", lambda c: ["eval", c.teacher, "--data", "imagenet-9"]),
    Case("eval", "bad --image-size", lambda c: ["eval", c.teacher, "--image-size", "0x0"]),
    # --- stats
    Case("stats", "unknown model", lambda c: ["stats", "resnet21"], says="resnet21"),
    Case("stats", "missing folder path", lambda c: ["stats", str(c.tmp / "nope")]),
    Case("stats", "model arg of a wrong type", lambda c: ["stats", "lenet5", "--model-arg", "num_classes=x"]),
    Case("stats", "input_size of a wrong type", lambda c: ["stats", "lenet5", "--model-arg", "input_size=big"]),
    Case("stats", "spec.json with a wrong type", lambda c: ["stats", spec_with(c, "model.args.num_classes", "x")]),
    Case("stats", "spec.json input_shape of a wrong type", lambda c: ["stats", spec_with(c, "data.input_shape", "x")]),
    Case("stats", "an empty folder", lambda c: ["stats", str(c.folder())]),
    Case("stats", "bad --input-shape", lambda c: ["stats", "lenet5", "--input-shape", "1x-1x3"]),
    # --- compress
    Case("compress", "nothing given", lambda c: ["compress"]),
    Case(
        "compress",
        "missing --teacher",
        lambda c: [
            "compress",
            "--teacher",
            str(c.tmp / "nope"),
            "--recipe",
            c.ws.joinpath("tiny.toml").as_posix(),
            "--runs-dir",
            str(c.tmp),
        ],
    ),
    Case(
        "compress",
        "--teacher of the wrong kind",
        lambda c: ["compress", "--teacher", c.bundle, "--recipe", str(c.ws / "tiny.toml"), "--runs-dir", str(c.tmp)],
    ),
    Case(
        "compress",
        "--teacher with truncated weights",
        lambda c: [
            "compress",
            "--teacher",
            teacher_with(c, "model.safetensors", truncated),
            "--recipe",
            str(c.ws / "tiny.toml"),
            "--runs-dir",
            str(c.tmp / "r"),
        ],
    ),
    Case(
        "compress",
        "--teacher with a wrong-typed spec",
        lambda c: [
            "compress",
            "--teacher",
            spec_with(c, "model.args.num_classes", "x"),
            "--recipe",
            str(c.ws / "tiny.toml"),
            "--runs-dir",
            str(c.tmp / "r"),
        ],
    ),
    Case(
        "compress",
        "missing --recipe",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", str(c.tmp / "nope.toml")],
    ),
    Case(
        "compress", "--recipe is a folder", lambda c: ["compress", "--teacher", c.teacher, "--recipe", str(c.folder())]
    ),
    Case(
        "compress",
        "recipe not TOML",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe(c, "[recipe\n")],
        says="TOML",
    ),
    Case(
        "compress",
        "recipe not UTF-8",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", str(c.write("bad.toml", b"\xff\xfe[recipe]"))],
    ),
    Case(
        "compress",
        "recipe without stages",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe(c, '[recipe]\nname = "x"\n')],
    ),
    Case(
        "compress",
        "recipe unknown section",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe(c, TINY_RECIPE + "[extra]\n")],
    ),
    Case(
        "compress",
        "recipe unknown key",
        lambda c: [
            "compress",
            "--teacher",
            c.teacher,
            "--recipe",
            recipe_edit(c, "epochs = 1", "epochs = 1\nepoch = 2"),
        ],
        says="epoch",
    ),
    Case(
        "compress",
        "recipe wrong type",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, "epochs = 1", 'epochs = "one"')],
        says="epochs",
    ),
    Case(
        "compress",
        "recipe amount out of range",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, "amount = 0.5", "amount = 1.5")],
        says="amount",
    ),
    Case(
        "compress",
        "recipe unknown prune method",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, '"unstructured"', '"random"')],
    ),
    Case(
        "compress",
        "recipe unknown criterion",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, '"magnitude"', '"taylor9"')],
    ),
    Case(
        "compress",
        "recipe negative lr",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, "lr = 0.01", "lr = -0.01")],
    ),
    Case(
        "compress",
        "recipe stage is not a table",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe(c, "stage = [1, 2]\n")],
    ),
    Case(
        "compress",
        "recipe name not a string",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", recipe_edit(c, 'name = "tiny"', "name = 3")],
    ),
    Case(
        "compress",
        "recipe name with a slash",
        lambda c: [
            "compress",
            "--teacher",
            c.teacher,
            "--recipe",
            recipe_edit(c, 'name = "tiny"', 'name = "../escape"'),
            "--runs-dir",
            str(c.tmp / "r"),
        ],
    ),
    Case(
        "compress",
        "recipe distills from an unknown teacher",
        lambda c: [
            "compress",
            "--teacher",
            c.teacher,
            "--recipe",
            recipe(c, TINY_RECIPE + '[stage.distill]\nteachers = ["nobody"]\n'),
        ],
    ),
    Case(
        "compress",
        "recipe quantize bits out of range",
        lambda c: [
            "compress",
            "--teacher",
            c.teacher,
            "--recipe",
            recipe(
                c,
                TINY_RECIPE
                + '\n[[stage]]\nname = "q"\nepochs = 1\nlr = 0.01\n[stage.quantize]\nmethod = "kmeans"\nbits = { conv = 9, linear = 4 }\n',
            ),
        ],
    ),
    Case("compress", "missing --resume", lambda c: ["compress", "--resume", str(c.tmp / "nope")]),
    Case("compress", "--resume of the wrong kind", lambda c: ["compress", "--resume", c.teacher]),
    Case(
        "compress",
        "--resume with run.json not JSON",
        lambda c: ["compress", "--resume", run_with(c, "run.json", lambda p: p.write_text("{"))],
    ),
    Case(
        "compress",
        "--resume with run.json a list",
        lambda c: ["compress", "--resume", run_with(c, "run.json", lambda p: p.write_text("[1]"))],
    ),
    Case(
        "compress",
        "--resume with the recipe copy gone",
        lambda c: ["compress", "--resume", run_with(c, "recipe.toml", os.remove)],
    ),
    Case(
        "compress",
        "bad --data-memory",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", str(c.ws / "tiny.toml"), "--data-memory", "-5"],
    ),
    Case(
        "compress",
        "non-numeric --seed",
        lambda c: ["compress", "--teacher", c.teacher, "--recipe", str(c.ws / "tiny.toml"), "--seed", "x"],
    ),
    # --- build
    Case("build", "missing model", lambda c: ["build", str(c.tmp / "nope"), "--target", "host"]),
    Case("build", "an empty folder", lambda c: ["build", str(c.folder()), "--target", "host"]),
    Case("build", "a bundle folder", lambda c: ["build", c.bundle, "--target", "host"]),
    Case(
        "build",
        "a .pakd of 300 random bytes",
        lambda c: ["build", str(c.write("broken.pakd", random_bytes())), "--target", "host"],
    ),
    Case("build", "an empty .pakd", lambda c: ["build", str(c.write("empty.pakd", b"")), "--target", "host"]),
    Case("build", "a truncated .pakd", lambda c: ["build", str(truncated(c.copy("model.pakd"))), "--target", "host"]),
    Case(
        "build",
        "a .pakd cut in its header",
        lambda c: ["build", str(truncated(c.copy("model.pakd"), 0.000_01)), "--target", "host"],
    ),
    Case(
        "build", "a bit-flipped .pakd", lambda c: ["build", str(bitflipped(c.copy("model.pakd"))), "--target", "host"]
    ),
    Case(
        "build",
        "a .pakd with a bit-flipped header",
        lambda c: ["build", str(bitflipped(c.copy("model.pakd"), 0.000_001)), "--target", "host"],
    ),
    Case("build", "a .pakd that is a folder", lambda c: ["build", str(c.folder("m.pakd")), "--target", "host"]),
    Case(
        "build",
        "a run with no finished stage",
        lambda c: ["build", run_with(c, "stage-1", shutil.rmtree), "--target", "host"],
    ),
    Case(
        "build",
        "a model folder with truncated weights",
        lambda c: ["build", teacher_with(c, "model.safetensors", truncated), "--target", "host"],
    ),
    Case(
        "build",
        "a model folder with a wrong-typed spec",
        lambda c: ["build", spec_with(c, "model.args.num_classes", "x"), "--target", "host"],
    ),
    Case("build", "unknown --target", lambda c: ["build", c.pakd, "--target", "rpi9"]),
    Case("build", "--target file not TOML", lambda c: ["build", c.pakd, "--target", target_file(c, "[target\n")]),
    Case(
        "build",
        "--target file with an unknown key",
        lambda c: ["build", c.pakd, "--target", target_edit(c, "cores = 2", "cores = 2\nram = 4")],
    ),
    Case(
        "build",
        "--target file with a wrong type",
        lambda c: ["build", c.pakd, "--target", target_edit(c, "cores = 2", 'cores = "2"')],
    ),
    Case(
        "build",
        "--target file with a negative core count",
        lambda c: ["build", c.pakd, "--target", target_edit(c, "cores = 2", "cores = -2")],
    ),
    Case(
        "build",
        "--target file with a bad triple",
        lambda c: ["build", c.pakd, "--target", target_edit(c, 'triple = "x86_64-linux-gnu"', 'triple = "x86 64"')],
    ),
    Case(
        "build",
        "--target file missing a key",
        lambda c: ["build", c.pakd, "--target", target_edit(c, 'arch = "x86_64"\n', "")],
    ),
    Case(
        "build",
        "--target file, features not a list",
        lambda c: [
            "build",
            c.pakd,
            "--target",
            target_edit(c, 'features = ["sse2", "avx2", "fma"]', 'features = "sse2"'),
        ],
    ),
    Case(
        "build",
        "--target file, toolchain not a table",
        lambda c: [
            "build",
            c.pakd,
            "--target",
            target_file(c, GOOD_TARGET.split("[toolchain]")[0] + "toolchain = 3\n"),
        ],
    ),
    Case(
        "build",
        "--targets-dir missing",
        lambda c: ["build", c.pakd, "--target", "host", "--targets-dir", str(c.tmp / "nope")],
    ),
    Case("build", "unknown --backend", lambda c: ["build", c.pakd, "--target", "host", "--backend", "gpu"], says="gpu"),
    Case("build", "negative --tune-trials", lambda c: ["build", c.pakd, "--target", "host", "--tune-trials", "-1"]),
    Case(
        "build", "non-numeric --tune-trials", lambda c: ["build", c.pakd, "--target", "host", "--tune-trials", "many"]
    ),
    Case("build", "--out is a file", lambda c: ["build", c.pakd, "--target", "host", "--out", str(c.write("f", "x"))]),
    # --- verify
    Case("verify", "missing bundle", lambda c: ["verify", str(c.tmp / "nope")]),
    Case("verify", "a model folder", lambda c: ["verify", c.teacher]),
    Case("verify", "a .pakd file", lambda c: ["verify", c.pakd]),
    Case(
        "verify",
        "manifest not JSON",
        lambda c: ["verify", bundle_with(c, lambda b: (b / "manifest.json").write_text("{"))],
    ),
    Case(
        "verify", "manifest truncated", lambda c: ["verify", bundle_with(c, lambda b: truncated(b / "manifest.json"))]
    ),
    Case("verify", "manifest of another format", lambda c: ["verify", bundle_with(c, manifest_lie("format", "x/1"))]),
    Case("verify", "manifest files not a table", lambda c: ["verify", bundle_with(c, manifest_lie("files", [1]))]),
    Case(
        "verify",
        "manifest file entry not a table",
        lambda c: [
            "verify",
            bundle_with(c, lambda b: edit_json(b / "manifest.json", lambda m: m["files"].update({"model.pakd": 3}))),
        ],
    ),
    Case(
        "verify",
        "manifest lies about a hash",
        lambda c: ["verify", bundle_with(c, lambda b: bitflipped(b / "model.pakd"))],
        says="manifest hash",
    ),
    Case(
        "verify",
        "manifest lies about a size",
        lambda c: ["verify", bundle_with(c, lambda b: truncated(b / "model.pakd"))],
    ),
    Case(
        "verify",
        "manifest names a missing file",
        lambda c: ["verify", bundle_with(c, lambda b: os.remove(b / "input.f32"))],
        says="missing",
    ),
    Case(
        "verify",
        "manifest path escapes",
        lambda c: [
            "verify",
            bundle_with(
                c,
                lambda b: edit_json(
                    b / "manifest.json", lambda m: m["files"].update({"../x": m["files"]["input.f32"]})
                ),
            ),
        ],
        says="escapes",
    ),
    Case(
        "verify",
        "manifest names an unknown target",
        lambda c: ["verify", bundle_with(c, manifest_lie("target.name", "rpi9"))],
    ),
    Case(
        "verify",
        "manifest without a target",
        lambda c: ["verify", bundle_with(c, lambda b: edit_json(b / "manifest.json", lambda m: m.pop("target")))],
    ),
    Case("verify", "manifest target not a table", lambda c: ["verify", bundle_with(c, manifest_lie("target", "host"))]),
    Case(
        "verify",
        "manifest without a run",
        lambda c: ["verify", bundle_with(c, lambda b: edit_json(b / "manifest.json", lambda m: m.pop("run")))],
    ),
    Case(
        "verify",
        "manifest runner not in the bundle",
        lambda c: ["verify", bundle_with(c, manifest_lie("run.argv", ["bin/other", "model.pakd"]))],
    ),
    Case("verify", "a runner that fails", lambda c: ["verify", c.bundle], says="runner failed"),
    Case(
        "verify",
        "manifest runner escapes",
        lambda c: ["verify", bundle_with(c, manifest_lie("run.argv", ["/bin/sh", "-c", "exit 3"]))],
    ),
    Case(
        "verify",
        "manifest argv not a list",
        lambda c: ["verify", bundle_with(c, manifest_lie("run.argv", "bin/pakd-run"))],
    ),
    Case("verify", "negative --functions", lambda c: ["verify", c.bundle, "--functions", "-1"]),
    Case(
        "verify",
        "missing --baseline",
        lambda c: ["verify", c.bundle, "--baseline", str(c.tmp / "nope")],
        says="not a bundle",
    ),
    Case(
        "verify",
        "--baseline whose manifest lies",
        lambda c: ["verify", c.bundle, "--baseline", bundle_with(c, lambda b: bitflipped(b / "model.pakd"))],
        says="manifest hash",
    ),
    Case(
        "verify",
        "--targets-dir with a broken board",
        lambda c: ["verify", c.bundle, "--targets-dir", str(Path(target_file(c, "[target\n")).parent)],
    ),
    # --- bench
    Case("bench", "missing path", lambda c: ["bench", str(c.tmp / "nope"), "--db", str(c.tmp / "r.db")]),
    Case("bench", "an empty folder", lambda c: ["bench", str(c.folder()), "--db", str(c.tmp / "r.db")]),
    Case(
        "bench",
        "a .pakd of random bytes",
        lambda c: ["bench", str(c.write("broken.pakd", random_bytes())), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "a truncated .pakd",
        lambda c: ["bench", str(truncated(c.copy("model.pakd"))), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "a bit-flipped .pakd",
        lambda c: ["bench", str(bitflipped(c.copy("model.pakd"))), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "a model folder with truncated weights",
        lambda c: ["bench", teacher_with(c, "model.safetensors", truncated), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "a model folder with a wrong-typed spec",
        lambda c: ["bench", spec_with(c, "model.args.num_classes", "x"), "--db", str(c.tmp / "r.db")],
    ),
    Case("bench", "a bundle and a model", lambda c: ["bench", c.bundle, c.teacher]),
    Case("bench", "two models", lambda c: ["bench", c.teacher, c.pakd]),
    Case(
        "bench",
        "a bundle whose manifest lies",
        lambda c: ["bench", bundle_with(c, lambda b: bitflipped(b / "model.pakd")), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench", "non-numeric --threads", lambda c: ["bench", c.pakd, "--threads", "many", "--db", str(c.tmp / "r.db")]
    ),
    Case("bench", "zero --threads", lambda c: ["bench", c.pakd, "--threads", "0", "--db", str(c.tmp / "r.db")]),
    Case(
        "bench", "bundle zero --threads", lambda c: ["bench", c.bundle, "--threads", "0", "--db", str(c.tmp / "r.db")]
    ),
    Case("bench", "zero --runs", lambda c: ["bench", c.bundle, "--runs", "0", "--db", str(c.tmp / "r.db")]),
    Case("bench", "negative --repeats", lambda c: ["bench", c.pakd, "--repeats", "-3", "--db", str(c.tmp / "r.db")]),
    Case("bench", "negative --warmup", lambda c: ["bench", c.pakd, "--warmup", "-3", "--db", str(c.tmp / "r.db")]),
    Case("bench", "nan --min-time", lambda c: ["bench", c.pakd, "--min-time", "nan", "--db", str(c.tmp / "r.db")]),
    Case("bench", "negative --min-time", lambda c: ["bench", c.pakd, "--min-time", "-1", "--db", str(c.tmp / "r.db")]),
    Case(
        "bench",
        "--db is a folder",
        lambda c: [
            "bench",
            c.pakd,
            "--db",
            str(c.folder()),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--min-time",
            "0",
            "--same-process",
        ],
    ),
    Case(
        "bench",
        "--db of random bytes",
        lambda c: [
            "bench",
            c.pakd,
            "--db",
            str(c.write("r.db", random_bytes(5000))),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--min-time",
            "0",
            "--same-process",
        ],
    ),
    Case("bench", "--device qemu: with a model", lambda c: ["bench", c.pakd, "--device", "qemu:rpi4"]),
    Case(
        "bench",
        "--device qemu:unknown board",
        lambda c: ["bench", c.bundle, "--device", "qemu:rpi9", "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "--device unknown name",
        lambda c: ["bench", c.bundle, "--device", "pi9", "--devices", devices(c, ""), "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "--device bad ssh url",
        lambda c: ["bench", c.bundle, "--device", "ssh://", "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "--device ssh url with a bad port",
        lambda c: ["bench", c.bundle, "--device", "ssh://pi@host:99999", "--db", str(c.tmp / "r.db")],
    ),
    Case(
        "bench",
        "missing --devices file",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            str(c.tmp / "nope.toml"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file not TOML",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file unknown section",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[boards.pi4]\nhost='x'\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file unknown key",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4]\nhost='x'\nspeed=3\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file wrong type",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4]\nhost='x'\nport='22'\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file port out of range",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4]\nhost='x'\nport=70000\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file entry not a table",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "devices = 3\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file device not a table",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices]\npi4 = 3\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file without host",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4]\nport=22\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "devices file negative timeout",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "pi4",
            "--devices",
            devices(c, "[devices.pi4]\nhost='x'\nconnect_timeout=-1\n"),
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case("bench", "non-numeric --connect-timeout", lambda c: ["bench", c.bundle, "--connect-timeout", "soon"]),
    Case(
        "bench",
        "negative --connect-timeout",
        lambda c: [
            "bench",
            c.bundle,
            "--device",
            "ssh://pi@127.0.0.1:9",
            "--connect-timeout",
            "-1",
            "--db",
            str(c.tmp / "r.db"),
        ],
    ),
    Case(
        "bench",
        "--json is a folder",
        lambda c: [
            "bench",
            c.pakd,
            "--json",
            str(c.folder()),
            "--db",
            str(c.tmp / "r.db"),
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--min-time",
            "0",
            "--same-process",
        ],
    ),
    # --- results
    Case("results", "missing --db", lambda c: ["results", "--db", str(c.tmp / "nope.db")]),
    Case("results", "--db is a folder", lambda c: ["results", "--db", str(c.folder())]),
    Case("results", "--db of random bytes", lambda c: ["results", "--db", str(c.write("r.db", random_bytes(5000)))]),
    Case("results", "--db an empty file", lambda c: ["results", "--db", str(c.write("r.db", b""))]),
    Case("results", "--db another SQLite database", lambda c: ["results", "--db", _other_sqlite(c)]),
    Case("results", "unknown --role", lambda c: ["results", "--db", c.results_db, "--role", "pupil"]),
    Case("results", "non-numeric --last", lambda c: ["results", "--last", "some"]),
    Case("results", "negative --last", lambda c: ["results", "--db", c.results_db, "--last", "-1"]),
    Case("results", "zero --last", lambda c: ["results", "--db", c.results_db, "--last", "0"]),
    Case(
        "results",
        "non-numeric --threads of a real store",
        lambda c: ["results", "--db", c.results_db, "--threads", "x"],
    ),
    Case("results", "non-numeric --threads", lambda c: ["results", "--threads", "x"]),
    # --- report
    Case("report", "missing run", lambda c: ["report", str(c.tmp / "nope")]),
    Case("report", "a model folder", lambda c: ["report", c.teacher]),
    Case("report", "an empty folder", lambda c: ["report", str(c.folder())]),
    Case("report", "run.json not JSON", lambda c: ["report", run_with(c, "run.json", lambda p: p.write_text("{"))]),
    Case("report", "ledger not JSON", lambda c: ["report", run_with(c, "ledger.json", lambda p: p.write_text("{"))]),
    Case("report", "ledger truncated", lambda c: ["report", run_with(c, "ledger.json", truncated)]),
    Case(
        "report", "ledger a table", lambda c: ["report", run_with(c, "ledger.json", lambda p: p.write_text('{"a": 1}'))]
    ),
    Case(
        "report",
        "ledger rows of a wrong type",
        lambda c: ["report", run_with(c, "ledger.json", lambda p: p.write_text("[1, 2]"))],
    ),
    Case("report", "ledger gone", lambda c: ["report", run_with(c, "ledger.json", os.remove)]),
    Case(
        "report",
        "stage spec.json not JSON",
        lambda c: ["report", run_with(c, "stage-1/spec.json", lambda p: p.write_text("{"))],
    ),
    Case(
        "report",
        "recipe copy not TOML",
        lambda c: ["report", run_with(c, "recipe.toml", lambda p: p.write_text("[recipe\n"))],
    ),
    Case(
        "report",
        "--db of random bytes",
        lambda c: ["report", c.run, "--db", str(c.write("r.db", random_bytes(5000))), "--out", str(c.tmp / "rep")],
    ),
    Case(
        "report", "--db is a folder", lambda c: ["report", c.run, "--db", str(c.folder()), "--out", str(c.tmp / "rep")]
    ),
    Case("report", "--out is a file", lambda c: ["report", c.run, "--out", str(c.write("f", "x"))]),
    # --- demo
    Case(
        "demo",
        "missing --recipe",
        lambda c: ["demo", "--recipe", str(c.tmp / "nope.toml"), "--runs-dir", str(c.tmp / "runs")],
    ),
    Case(
        "demo",
        "recipe not TOML",
        lambda c: ["demo", "--recipe", recipe(c, "[recipe\n"), "--runs-dir", str(c.tmp / "runs")],
    ),
    Case("demo", "unknown --board", lambda c: ["demo", "--board", "rpi9", "--runs-dir", str(c.tmp / "runs")]),
    Case("demo", "unknown --model", lambda c: ["demo", "--model", "resnet21", "--runs-dir", str(c.tmp / "runs")]),
    Case("demo", "non-numeric --epochs", lambda c: ["demo", "--epochs", "x"]),
    Case("demo", "negative --epochs", lambda c: ["demo", "--epochs", "-1", "--runs-dir", str(c.tmp / "runs")]),
]


def _other_sqlite(c: Ctx) -> str:
    import sqlite3

    path = c.tmp / "other.db"
    if not path.exists():
        with sqlite3.connect(path) as con:
            con.execute("create table t (x)")
        con.close()
    return str(path)


def snapshot(*roots: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``roots``: size, mtime and sha256."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                out[str(p)] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def run_in_process(argv: list[str], capfd) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(case: Case, ws: Path, tmp_path: Path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default outputs (runs/, build/, results.db) land here
    monkeypatch.delenv("PAKD_DEBUG", raising=False)
    ctx = Ctx(ws, tmp_path / "case")
    ctx.tmp.mkdir()
    argv = case.argv(ctx)
    capfd.readouterr()
    before = snapshot(ws, tmp_path)
    with warnings.catch_warnings(record=True) as warned:  # a warning would be printed: more lines
        warnings.simplefilter("always")
        code, _, err = run_in_process(argv, capfd)
    after = snapshot(ws, tmp_path)
    assert not warned, [str(w.message) for w in warned]
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "internal error" not in err, err
    assert (code, len(lines)) == (case.code, 1), (code, err)
    assert case.says.lower() in lines[0].lower(), lines[0]
    changed = [p for p, v in before.items() if after.get(p) != v]
    assert not changed, f"changed or removed: {changed}"


def test_the_matrix_covers_every_command():
    from pakd.cli import app

    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    assert commands and commands <= {case.cmd for case in CASES}, commands - {case.cmd for case in CASES}


# ----------------------------------------------------------------------------------------------
# The installed entry point, as a user runs it (subprocesses): the exact stderr
# ----------------------------------------------------------------------------------------------


def test_build_of_300_random_bytes_is_one_line(tmp_path):
    """Found on main: `pakd build broken.pakd --target host` printed a ValueError traceback."""
    broken = tmp_path / "broken.pakd"
    broken.write_bytes(random_bytes(300))
    r = run_cli("build", str(broken), "--target", "host", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, f"error: {broken}: not a usable .pakd file (not a .pakd file (bad magic))\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pakd"]  # no build/ folder begun


def test_eval_of_a_spec_with_a_wrong_type_is_one_line(ws, tmp_path):
    """Found on main: model args of a wrong type in spec.json made `pakd eval` print a TypeError
    traceback."""
    folder = spec_with(Ctx(ws, tmp_path), "model.args.num_classes", "x")
    r = run_cli("eval", folder)
    assert (r.returncode, r.stderr) == (2, "error: model 'lenet5': argument num_classes='x' must be 'int'\n")


def test_a_usage_error_is_one_line():
    r = run_cli("train", "--model", "lenet5", "--epochs", "x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: Invalid value for '--epochs'") and "(see `pakd train --help`)" in r.stderr


def test_an_internal_error_is_one_line_and_its_traceback_is_one_variable_away(tmp_path):
    """An exception no mapping knows (here a user factory's ZeroDivisionError) is reported as a
    bug in one line with exit code 70; PAKD_DEBUG=1 shows the traceback."""
    (tmp_path / "brokenmodel.py").write_text("def make():\n    return 1 / 0\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = run_cli("stats", "brokenmodel:make", cwd=tmp_path, env=env)
    assert r.returncode == 70 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("internal error: ZeroDivisionError: division by zero at ")
    assert "brokenmodel.py:2" in r.stderr and "PAKD_DEBUG=1" in r.stderr
    debug = run_cli("stats", "brokenmodel:make", cwd=tmp_path, env={**env, "PAKD_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "ZeroDivisionError" in debug.stderr.splitlines()[-1]


# ----------------------------------------------------------------------------------------------
# The mapping itself: real exceptions of the real libraries
# ----------------------------------------------------------------------------------------------


def _raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the exception is the test's input
        return exc
    raise AssertionError("nothing raised")


def test_user_error_names_the_path_of_os_errors(tmp_path):
    import errno

    from pakd.errors import FileError, user_error

    missing = tmp_path / "nope.txt"
    cases = {
        "no such file or folder": _raised(lambda: open(missing)),
        "is a folder, where a file is expected": _raised(lambda: open(tmp_path)),
        "is not a folder": _raised(lambda: (tmp_path / "f").write_text("x") and (tmp_path / "f" / "g").mkdir()),
        "already exists": _raised(lambda: tmp_path.mkdir()),
        "no space left on the device": OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(missing)),
    }
    for text, exc in cases.items():
        err = user_error(exc)
        assert isinstance(err, FileError) and text in str(err), (text, err)
        assert str(err).startswith(str(exc.filename)), err  # type: ignore[attr-defined]


def test_user_error_knows_the_parsers_of_user_files(tmp_path):
    import sqlite3
    import tomllib
    import zipfile

    import numpy as np
    from safetensors.torch import load_file

    from pakd.errors import FileError, user_error

    junk = tmp_path / "junk"
    junk.write_bytes(random_bytes(5000))

    def sqlite_read():
        with sqlite3.connect(junk) as con:
            con.execute("select * from results")

    cases = {
        "not valid JSON": _raised(lambda: json.loads("{")),
        "not valid TOML": _raised(lambda: tomllib.loads("[recipe\n")),
        "not UTF-8 text": _raised(lambda: junk.read_text(encoding="utf-8")),
        "not a readable safetensors file": _raised(lambda: load_file(str(junk))),
        "not a readable SQLite database": _raised(sqlite_read),
        "not a readable zip (.npz) file": _raised(lambda: zipfile.ZipFile(junk)),
    }
    for text, exc in cases.items():
        err = user_error(exc, junk)
        assert isinstance(err, FileError) and str(err).startswith(f"{junk}: {text}"), (text, err)
    # numpy's refusal of a pickled .npz is a ValueError: the file's fault only while reading it
    exc = _raised(lambda: np.load(junk))
    assert user_error(exc) is None
    assert str(user_error(exc, junk, "an .npz file")).startswith(f"{junk}: not a valid an .npz file (ValueError")


def test_user_error_leaves_bugs_alone():
    from pakd.errors import PakdError, user_error

    for exc in (ZeroDivisionError("x"), TypeError("bad operand"), KeyError("k"), AssertionError(), OSError("no errno")):
        assert user_error(exc) is None, exc
    own = PakdError("mine")
    assert user_error(own) is own


def test_reading_turns_content_errors_into_one_error_naming_the_file(tmp_path):
    from pakd.errors import FileError, PakdError, reading

    path = tmp_path / "run.json"
    with pytest.raises(FileError, match=r"run.json: not a valid run.json \(KeyError: no 'teacher'\)"):
        with reading(path, "run.json"):
            {}["teacher"]
    with pytest.raises(PakdError, match="^kept$"):  # the project's own errors pass unchanged
        with reading(path):
            raise PakdError("kept")
    with pytest.raises(ZeroDivisionError):  # what is not about the file stays a bug
        with reading(path):
            1 / 0  # noqa: B018


def test_error_line_maps_every_kind_of_exception():
    import typer

    from pakd.cli import error_line
    from pakd.errors import BUG_EXIT, PakdError

    assert error_line(PakdError("a\nb")) == ("error: a b", 2)  # one line, always
    assert error_line(typer.Exit(0)) is None
    assert error_line(KeyboardInterrupt())[1] == 130  # type: ignore[index]
    line, code = error_line(_raised(lambda: 1 / 0))  # type: ignore[misc]
    assert code == BUG_EXIT and line.startswith("internal error: ZeroDivisionError: division by zero at ")
    assert "test_bad_input.py:" in line and "PAKD_DEBUG=1" in line


# ----------------------------------------------------------------------------------------------
# A real bundle (a native build for this machine): a manifest consistent with altered files
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_bundle(ws, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("host")
    cwd = Path.cwd()
    os.chdir(root)  # the native build's cache goes to ./build/.cache
    try:
        assert main(["build", str(ws / "model.pakd"), "--target", "host", "--out", "bundle"]) == 0
    finally:
        os.chdir(cwd)
    return root / "bundle"


def _shifted(path: Path) -> None:
    """Golden values that no runner gives: every value + 1, the largest one made the smallest."""
    import numpy as np

    v = np.fromfile(path, dtype="<f4")
    v = v + 1
    v[int(v.argmax())] = v.min() - 1
    v.astype("<f4").tofile(path)


def _rehashed(bundle: Path, alter: Callable[[Path], object], out: Path) -> Path:
    """A copy of ``bundle`` altered by ``alter`` and its manifest rewritten to match: a bundle
    whose manifest lies about what the files hold, undetectable by hashes."""
    from pakd.deploy.bundle import write_manifest

    shutil.copytree(bundle, out, symlinks=True)
    alter(out)
    manifest = json.loads((out / "manifest.json").read_text())
    files = {rel: e["role"] for rel, e in manifest.pop("files").items()}
    manifest.pop("format")
    write_manifest(out, files, **manifest)
    return out


@pytest.mark.slow  # one native build for the host
@pytest.mark.parametrize(
    ("what", "alter", "code", "says"),
    [
        ("a golden output that lies", lambda b: _shifted(b / "expected.f32"), 1, ""),
        ("a model.pakd bit-flipped", lambda b: bitflipped(b / "model.pakd"), 2, "checksum"),
        ("a model.pakd truncated", lambda b: truncated(b / "model.pakd"), 2, "truncated"),
        ("a golden input cut short", lambda b: truncated(b / "input.f32"), 2, "runner failed"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_verify_and_bench_of_a_bundle_whose_manifest_lies(
    host_bundle, tmp_path, capfd, monkeypatch, what, alter, code, says
):
    monkeypatch.chdir(tmp_path)
    bundle = _rehashed(host_bundle, alter, tmp_path / "bundle")
    before = snapshot(tmp_path)
    for argv in (
        ["verify", str(bundle)],
        ["bench", str(bundle), "--db", str(tmp_path / "r.db"), "--runs", "1", "--repeats", "1", "--quiet"],
    ):
        capfd.readouterr()
        got, out, err = run_in_process(argv, capfd)
        assert "Traceback" not in err and "internal error" not in err, err
        if argv[0] == "verify":
            assert got == code, (got, out, err)
            if code == 1:  # the check ran and failed: the verdict is on stdout, nothing on stderr
                assert "outputs DIFFER" in out and err == "", (out, err)
            else:
                assert len(err.strip().splitlines()) == 1 and says in err, err
        else:  # bench refuses the bundle on the device (golden output or runner): one error line
            assert got == 1 and [line for line in err.splitlines() if line.startswith("error:")], (got, out, err)
    assert not [p for p, v in before.items() if snapshot(tmp_path).get(p) != v]
