"""deploy/examples/c_app built as its own CMake project (exactly as its README says) classifies
Fashion-MNIST test image #0 as pakd._core.Session does, normalizing with the model's META."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tests.tools.conftest import NORMALIZE, REPO, Model, run

pytestmark = pytest.mark.slow  # CMake builds (host, rpi3, rpi4) and qemu runs

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def c_app(cmake_build) -> Path:
    build = cmake_build(
        "c_app",
        REPO / "deploy/examples/c_app",
        {"PAKD_SOURCE_DIR": str(REPO), "CMAKE_BUILD_TYPE": "Release"},
        ["c_app"],
    )
    return build / "c_app"


@pytest.fixture(scope="module")
def image0(fmnist_dir) -> np.ndarray:
    from pakd.data import IMAGES_MAGIC, read_idx

    return read_idx(fmnist_dir / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, 10000, (28, 28))[0]


def _session_scores(model: Path, pixels: np.ndarray, mean: float, std: float) -> np.ndarray:
    from pakd._core import Session

    x = ((pixels.astype(np.float32) / 255.0 - mean) / std).reshape(1, 1, 28, 28).astype(np.float32)
    return np.asarray(Session(str(model)).run(x))[0]


def _parse(stdout: str) -> tuple[int, str, np.ndarray]:
    m = re.search(r"^class (\d+): (.+)$", stdout, re.M)
    s = re.search(r"^scores:(.*)$", stdout, re.M)
    assert m and s, stdout
    return int(m.group(1)), m.group(2), np.array([float(v) for v in s.group(1).split()])


def _write_pgm(path: Path, pixels: np.ndarray) -> None:
    path.write_bytes(b"P5\n# Fashion-MNIST t10k #0\n28 28\n255\n" + pixels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("fmt", ["raw", "pgm"])
def test_classifies_test_image_0_like_session_run(c_app, lenet: Model, image0, tmp_path, fmt):
    image = tmp_path / f"image0.{fmt}"
    if fmt == "raw":
        image.write_bytes(image0.astype(np.uint8).tobytes())
    else:
        _write_pgm(image, image0)
    r = run([c_app, lenet.path, image])
    index, name, scores = _parse(r.stdout)
    # META's normalize (mean 0.5, std 0.25) is what the app used: no warning, same scores.
    assert "normalize" not in r.stderr
    expected = _session_scores(lenet.path, image0, NORMALIZE["mean"], NORMALIZE["std"])
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert index == int(np.argmax(expected))
    assert name == CLASSES[index]


def test_mean_std_flags_override_metadata(c_app, lenet: Model, image0, tmp_path):
    image = tmp_path / "image0.raw"
    image.write_bytes(image0.astype(np.uint8).tobytes())
    r = run([c_app, lenet.path, image, "--mean", "0.286", "--std", "0.353"])
    _, _, scores = _parse(r.stdout)
    np.testing.assert_allclose(scores, _session_scores(lenet.path, image0, 0.286, 0.353), atol=1e-5, rtol=0)


def test_rejects_an_image_of_the_wrong_size(c_app, lenet: Model, tmp_path):
    image = tmp_path / "small.raw"
    image.write_bytes(bytes(100))
    r = run([c_app, lenet.path, image], check=False)
    assert r.returncode == 1
    assert "expected 784 raw bytes (28x28) or a binary PGM" in r.stderr


@pytest.mark.parametrize("board", ["rpi4", "rpi3"])
def test_cross_compiled_app_classifies_under_qemu(cmake_build, board, lenet: Model, image0, tmp_path):
    """The same app cross-compiled with the board's CMake toolchain file, run under qemu-user."""
    from pakd.deploy import TargetError, load_target
    from pakd.deploy.emulate import run_emulated

    target = load_target(board)
    try:
        target.check_toolchain()
        target.check_emulator()
    except TargetError as exc:
        pytest.skip(str(exc))
    build = cmake_build(
        f"c_app-{board}",
        REPO / "deploy/examples/c_app",
        {
            "PAKD_SOURCE_DIR": str(REPO),
            "CMAKE_BUILD_TYPE": "Release",
            "CMAKE_TOOLCHAIN_FILE": str(target.cmake_toolchain),
        },
        ["c_app"],
    )
    image = tmp_path / "image0.raw"
    image.write_bytes(image0.astype(np.uint8).tobytes())
    r = run_emulated(target, [build / "c_app", lenet.path, image], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    index, name, scores = _parse(r.stdout)
    expected = _session_scores(lenet.path, image0, NORMALIZE["mean"], NORMALIZE["std"])
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    assert index == int(np.argmax(expected)) and name == CLASSES[index]
