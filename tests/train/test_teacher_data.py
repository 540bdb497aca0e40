"""A teacher on the user's own data: zoo models take the data's channels, size and classes, the
flip is only where asked, the crop works at any size, and the whole path (train -> eval ->
compress -> build's golden input) runs on a folder of RGB images through the CLI."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch

from pakd.data import load_data
from pakd.errors import ModelError
from pakd.train import TeacherJob, augment_batch
from pakd.train.teacher import build_model_for, model_args_for, teacher_folder
from pakd.train.trainer import crop_padding
from tests.conftest import run_cli
from tests.data.conftest import make_folder


def test_flip_only_where_asked(tmp_path):
    root = make_folder(tmp_path / "imgs", per_class=2, test_per_class=1)
    assert TeacherJob.with_defaults("lenet5", "fashion-mnist").train.augment == "crop+flip"  # as before
    assert TeacherJob.with_defaults("lenet5", str(root)).train.augment == "crop"
    assert TeacherJob.with_defaults("lenet-300-100", str(root)).train.augment == "none"
    assert TeacherJob.with_defaults("lenet5", str(root), augment="crop+flip").train.augment == "crop+flip"
    assert teacher_folder("runs", "lenet5", str(root)).parent.name == "lenet5-imgs"


def test_zoo_models_take_shape_and_classes_from_the_data(tmp_path):
    data = load_data(str(make_folder(tmp_path / "imgs", classes=4, per_class=3, test_per_class=1, size=20)))
    args = model_args_for("lenet5", data, {})
    assert args == {"in_channels": 3, "num_classes": 4, "input_size": 20}
    assert build_model_for("lenet5", data, args)(data.test.images).shape == (4, 4)
    assert model_args_for("resnet20", data, {"width": 8}) == {"in_channels": 3, "num_classes": 4, "width": 8}
    with pytest.raises(ModelError, match="does not take the data's 3x20x20 images"):
        build_model_for("lenet5", data, {"in_channels": 1, "num_classes": 4, "input_size": 20})
    with pytest.raises(ModelError, match="the data has 4 classes"):
        build_model_for("lenet5", data, {"in_channels": 3, "num_classes": 10, "input_size": 20})


def test_crop_scales_with_the_image_and_crop_never_flips():
    assert crop_padding(28, 28) == 2 and crop_padding(224, 224) == 16 and crop_padding(8, 40) == 1
    x = torch.arange(2 * 3 * 20 * 36, dtype=torch.float32).view(2, 3, 20, 36) + 1
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        out = augment_batch(x, "crop", gen)
        assert out.shape == x.shape
        pad = crop_padding(20, 36)
        padded = torch.nn.functional.pad(x, (pad,) * 4)
        for b in range(2):  # every sample is a shifted window of its padded image, never mirrored
            windows = [
                padded[b, :, dy : dy + 20, dx : dx + 36] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            ]
            assert any(torch.equal(out[b], w) for w in windows)


def _cli_ok(*args, cwd):
    res = run_cli(*args, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_cli_train_then_eval_on_an_rgb_folder(tmp_path):
    root = make_folder(tmp_path / "shapes", classes=3, per_class=30, test_per_class=8, size=32)
    out = _cli_ok(
        "train", "--model", "lenet5", "--data", str(root), "--epochs", "1", "-q", "--threads", "1", cwd=tmp_path
    )
    teacher = tmp_path / "runs" / "lenet5-shapes" / "teacher"
    assert "trained" in out and teacher.is_dir()
    spec = json.loads((teacher / "spec.json").read_text())
    assert spec["data"]["input_shape"] == [3, 32, 32] and spec["data"]["classes"] == ["class-0", "class-1", "class-2"]
    assert spec["model"]["args"] == {"in_channels": 3, "num_classes": 3, "input_size": 32}
    assert spec["train"]["augment"] == "crop"
    # evaluated on its own data from spec.json, streaming under a tiny budget: the same figure
    out = _cli_ok("eval", str(teacher), "--data-memory", "64KiB", cwd=tmp_path)
    assert "on shapes" in out and f"{100 * spec['metrics']['test_top1']:.2f}%" in out


def test_compress_and_the_golden_input_use_the_teachers_data(tmp_path):
    from pakd.deploy.build import data_record, golden_input, resolve_student
    from pakd.pipeline import compress, compress_job
    from pakd.train import train_teacher

    root = make_folder(tmp_path / "shapes", classes=3, per_class=20, test_per_class=4, size=24)
    job = TeacherJob.with_defaults("lenet5", str(root), epochs=1, threads=1, batch_size=16)
    teacher = train_teacher(job, tmp_path / "runs" / "t" / "teacher")
    # pakd eval FOLDER --data OTHER: read at the model's shape and statistics, or refused in one line
    from pakd.errors import DataError
    from pakd.train import evaluate_model

    copy = make_folder(tmp_path / "copy", classes=3, per_class=20, test_per_class=4, size=24)
    res = evaluate_model(folder=teacher.folder, data=str(copy))
    assert res.splits[1][2] == teacher.spec["metrics"]["test_top1"]  # the same images: the same figure
    with pytest.raises(DataError, match="takes 3x24x24 images, --data synthetic is 1x28x28"):
        evaluate_model(folder=teacher.folder, data="synthetic")
    other = make_folder(tmp_path / "four", classes=4, per_class=2, test_per_class=1, size=24)
    with pytest.raises(DataError, match="has 3 classes, --data .*four has 4"):
        evaluate_model(folder=teacher.folder, data=str(other))

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        textwrap.dedent(
            """
            [recipe]
            name = "tiny"
            batch_size = 16
            [[stage]]
            name = "prune"
            epochs = 1
            lr = 0.01
            augment = "crop"
            [stage.prune]
            method = "unstructured"
            criterion = "magnitude"
            amount = 0.5
            [stage.distill]
            teachers = ["teacher"]
            """
        )
    )
    cjob = compress_job(teacher.folder, recipe, runs_dir=tmp_path / "runs", threads=1, data_memory=32 * 1024)
    _, rows = compress(cjob, lambda title: _NoProgress())
    assert [r["stage"] for r in rows] == ["teacher", "prune"]
    assert rows[0]["test_top1"] == teacher.spec["metrics"]["test_top1"]  # streamed: the same figure
    stage = tmp_path / "runs" / "tiny" / "stage-1"
    assert json.loads((stage / "spec.json").read_text())["data"] == teacher.spec["data"]

    student = resolve_student(tmp_path / "runs" / "tiny")
    x = golden_input(student.input_shape(), None, data_record(student))
    first = load_data(teacher.spec["data"]).test.images[:1].numpy()
    assert x.shape == (1, 3, 24, 24) and np.array_equal(x, first)  # the user's first test image

    from pakd.bench.local import plan_cases, sample_image

    image, name = sample_image(plan_cases(tmp_path / "runs" / "tiny"), 0)  # what `pakd bench RUN` times on
    assert name == "shapes" and np.array_equal(image, first)


class _NoProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, event, info):
        pass


def test_train_help_documents_the_data_forms():
    from typer.testing import CliRunner

    from pakd.cli import app

    res = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    for form in (
        "fashion-mnist",
        "ROOT/train/CLASS/",
        "ROOT/test/CLASS/",
        ".npz",
        "x_train",
        "package.module:function",
    ):
        assert form in text, form
    assert "--data-memory" in text and "--image-size" in text and "--channels" in text
