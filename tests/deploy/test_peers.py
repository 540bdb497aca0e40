"""pakd.deploy.peers: ExecuTorch + XNNPACK (the executorch aarch64 wheel's libraries +
csrc/tools/et-runner.cc) and ONNX Runtime (the onnxruntime aarch64 wheel's library +
csrc/tools/ort-runner.c) built for the board, run under qemu as the board's CPU (with the board's
/proc/cpuinfo through csrc/tools/cpuinfo-shim.c), counted in guest instructions; the peers PaKD's
ARM counts are compared with."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pakd.deploy import peers
from pakd.deploy.emulate import instructions_per_inference
from pakd.models import build_model
from pakd.targets import load_target
from tests.deploy.conftest import require_target

ROOT = Path(__file__).resolve().parents[2]


def test_the_pinned_version_is_the_installed_one_and_pyprojects():
    assert importlib.metadata.version("executorch") == peers.EXECUTORCH_VERSION
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"executorch=={peers.EXECUTORCH_VERSION}" in [d.split(";")[0].strip() for d in deps]


def test_a_missing_wheel_is_one_clear_error(tmp_path, monkeypatch):
    """No index and an empty wheel folder: what pip says when the network or the wheel is missing."""
    (tmp_path / "no-wheels").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    with pytest.raises(peers.PeerDownloadError) as err:
        peers.fetch_executorch_runtime(load_target("rpi4"), tmp_path / "cache")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot download the manylinux_2_28_aarch64 wheel of executorch==1.5.1")
    assert "No matching distribution" in message


def test_a_target_without_wheels_is_a_row_with_the_reason(tmp_path):
    row = peers.measure_executorch(build_model("lenet5"), torch.zeros(1, 1, 28, 28), load_target("rpi3"), tmp_path)
    assert row.instructions is None and not row.ok and "no executorch runtime for armv7" in row.reason


def test_setup_errors_become_rows_in_measure_peers(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise peers.PeerDownloadError("cannot download the manylinux_2_28_aarch64 wheel of executorch==1.5.1: offline")

    monkeypatch.setattr(peers, "measure_executorch", no_network)
    monkeypatch.setitem(peers.PEERS, "executorch", no_network)
    monkeypatch.setitem(peers.PEERS, "onnxruntime", no_network)
    rows = peers.measure_peers(build_model("lenet5"), torch.zeros(1, 1, 28, 28), load_target("rpi4"), tmp_path)
    assert [r.engine for r in rows] == ["executorch", "onnxruntime"]
    assert all(r.reason.endswith("offline") and r.instructions is None for r in rows)
    assert peers.best_peer(rows) is None


def test_onnxruntime_on_a_target_without_wheels_is_a_row_with_the_reason(tmp_path):
    row = peers.measure_onnxruntime(build_model("lenet5"), torch.zeros(1, 1, 28, 28), load_target("rpi3"), tmp_path)
    assert row.instructions is None and not row.ok and "no onnxruntime runtime for armv7" in row.reason


def test_the_board_cpuinfo_names_the_core_as_the_kernel_prints_it():
    text = peers.board_cpuinfo("cortex-a72", cpus=4)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) == 4 and all("CPU implementer\t: 0x41" in b and "CPU part\t: 0xd08" in b for b in blocks)
    assert "asimddp" in peers.board_cpuinfo("cortex-a76", cpus=1)  # the Pi 5's core has dot product
    assert peers.board_cpuinfo("max") is None


@pytest.fixture(scope="module")
def rpi4():
    return require_target("rpi4", emulator=True)


@pytest.fixture(scope="module")
def lenet5_count(rpi4, tmp_path_factory):
    """LeNet-5 (random weights) measured once for the module: the wheel is cached, the runner built."""
    torch.manual_seed(0)
    net = build_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    work = tmp_path_factory.mktemp("et-lenet5")
    return net, x, work, peers.measure_executorch(net, x, rpi4, work)


@pytest.mark.slow  # lowering, a cross build and qemu runs
def test_the_aarch64_runner_matches_pytorch_under_qemu(lenet5_count, rpi4):
    net, x, work, row = lenet5_count
    assert row.ok, row.reason
    assert row.engine == "executorch" and row.emulator_cpu == "cortex-a72" and row.threads == 1
    assert row.info["delegated_calls"] >= 1
    with torch.inference_mode():
        ref = net(x).numpy().reshape(-1)
    out = np.fromfile(work / "output.f32", dtype="<f4")
    assert out.shape == ref.shape and np.max(np.abs(out - ref)) <= 1e-4
    assert row.max_abs_diff <= 1e-4


@pytest.mark.slow
def test_the_instruction_count_is_positive_and_deterministic(lenet5_count, rpi4):
    _, _, work, row = lenet5_count
    assert row.instructions > 100_000  # LeNet-5 on XNNPACK: about 1.3 M guest instructions
    runner = peers.build_et_runner(rpi4)  # cached: the same binary
    env = peers.peer_guest_env(rpi4, work)
    again = instructions_per_inference(
        rpi4, [runner, work / "model.pte", "--input", work / "input.f32"], cwd=work, guest_env=env
    )
    assert again == row.instructions


@pytest.mark.slow  # an ONNX export, a cross build and qemu runs
def test_onnxruntime_for_aarch64_matches_pytorch_and_counts_under_qemu(rpi4, tmp_path):
    torch.manual_seed(0)
    net = build_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    row = peers.measure_onnxruntime(net, x, rpi4, tmp_path, iters=3)
    assert row.ok, row.reason
    assert row.engine == "onnxruntime" and row.emulator_cpu == "cortex-a72" and row.info["cpuinfo"] == "cortex-a72"
    with torch.inference_mode():
        ref = net(x).numpy().reshape(-1)
    out = np.fromfile(tmp_path / "output.f32", dtype="<f4")
    assert out.shape == ref.shape and np.max(np.abs(out - ref)) <= 1e-4
    assert row.instructions > 100_000  # LeNet-5 on ONNX Runtime's MLAS: about 1.2 M guest instructions


def test_a_squeeze_excite_gate_is_delegated_whole_to_xnnpack(tmp_path):
    """MobileNetV3's hardsigmoid gate: XNNPACK has none, and ExecuTorch's decomposition left
    scalar-constant copies outside the delegate (the aarch64 runner links no portable kernels, so
    mobilenetv3-small could not be counted). Exported as relu6(x + 3) / 6, nothing is left out and
    the program computes what the model does."""
    from executorch.runtime import Runtime

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardsigmoid(), nn.Conv2d(8, 4, 1), nn.Hardswish()).eval()
    x = torch.randn(1, 3, 12, 12) * 4
    lowered = peers.export_pte(net, x, tmp_path / "m.pte")
    assert lowered["undelegated_ops"] == [] and lowered["delegated_calls"] >= 1
    assert isinstance(net[1], nn.Hardsigmoid)  # the caller's model is left as it was
    method = Runtime.get().load_program(tmp_path / "m.pte").load_method("forward")
    with torch.no_grad():
        assert torch.allclose(method.execute([x])[0], net(x), atol=1e-6)
