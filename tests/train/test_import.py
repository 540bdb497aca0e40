"""`pakd import`: models trained with plain PyTorch (a torch.save state dict, a torch.export .pt2)
become teacher folders that `pakd compress` takes; every bad input is one line and exit 2."""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from pakd.cli import main
from pakd.data import load_dataset
from pakd.modelio import load_model, read_spec
from pakd.models.layers import prunable_weights
from pakd.train.importer import exported_program

USER_MODULE = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10, width=16, act="relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)  # depthwise
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * 7 * 7, num_classes)
        self.act = act

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = F.hardswish(self.dw(x)) if self.act == "hardswish" else torch.relu(self.dw(x))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.reshape(x.size(0), -1))


def net(num_classes=10, width=16, act="relu"):
    return Net(num_classes, width, act)


def deeper(num_classes=10):
    model = Net(num_classes)
    model.extra = nn.Linear(4, 4)
    return model
"""

RECIPE = """
[recipe]
name = "imported"
batch_size = 128
huffman = true

[[stage]]
name = "prune"
epochs = 1
lr = 0.002
optimizer = "adamw"
augment = "none"
[stage.prune]
method = "unstructured"
criterion = "magnitude"
amount = 0.6
schedule = "oneshot"
[stage.distill]
teachers = ["teacher"]
alpha = 0.5
temperature = 4.0

[[stage]]
name = "share"
epochs = 1
lr = 0.001
optimizer = "adamw"
augment = "none"
[stage.quantize]
method = "kmeans"
bits = { conv = 6, linear = 5 }
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A net trained here with plain PyTorch on digits, saved both ways: (folder, test top-1)."""
    root = tmp_path_factory.mktemp("outside")
    (root / "usernet.py").write_text(textwrap.dedent(USER_MODULE))
    import sys

    sys.path.insert(0, str(root))
    try:
        import usernet
    finally:
        sys.path.remove(str(root))
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = usernet.net()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(2):
        perm = torch.randperm(len(data.train))
        for idx in perm.split(32):
            opt.zero_grad()
            F.cross_entropy(model(data.train.images[idx]), data.train.labels[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        top1 = (model(data.test.images).argmax(1) == data.test.labels).float().mean().item()
    torch.save(model.state_dict(), root / "net.pt")
    torch.save(model, root / "whole.pt")  # a pickled nn.Module: needs a full unpickle
    program = torch.export.export(model, (data.test.images[:1],))
    torch.export.save(program, root / "net.pt2")
    return root, top1


@pytest.fixture
def user_path(trained, monkeypatch):
    monkeypatch.syspath_prepend(str(trained[0]))
    return trained[0]


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_outside_model_learned(trained):
    assert trained[1] > 0.85  # a real trained network, not random weights


@pytest.mark.slow  # a compress run
def test_state_dict_import_then_compress(user_path, tmp_path, capsys, trained):
    runs = tmp_path / "runs"
    code, out, err = cli(
        capsys, "import", "--model", "usernet:net", "--weights", str(user_path / "net.pt"), "--data", "digits",
        "--runs-dir", str(runs), "--name", "mine",
    )  # fmt: skip
    assert code == 0, err
    teacher = runs / "mine" / "teacher"
    spec = read_spec(teacher)
    assert spec["model"] == {"name": "usernet:net", "args": {}}
    assert spec["import"]["format"] == "state-dict"
    assert spec["data"]["name"] == "digits" and spec["data"]["input_shape"] == [1, 28, 28]
    assert spec["metrics"]["test_top1"] == pytest.approx(trained[1], abs=1e-6)  # measured, the same net
    assert spec["metrics"]["params"] == sum(p.numel() for p in load_model(teacher)[0].parameters())
    assert spec["metrics"]["macs"] > 0
    assert "imported" in out and f"{100 * trained[1]:.2f}%" in out
    # the same command again reuses the folder; other weights into it need --force
    assert cli(capsys, "import", "-m", "usernet:net", "--weights", str(user_path / "net.pt"), "--data", "digits",
               "--runs-dir", str(runs), "--name", "mine")[1].startswith("reused")  # fmt: skip
    code, _, err = cli(capsys, "import", "-m", "usernet:net", "--weights", str(user_path / "net.pt2"),
                       "--data", "digits", "--runs-dir", str(runs), "--name", "mine")  # fmt: skip
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    code, out, err = cli(capsys, "compress", "--teacher", str(teacher), "--recipe", str(recipe),
                         "--runs-dir", str(runs), "-q")  # fmt: skip
    assert code == 0, err
    ledger = json.loads((runs / "imported" / "ledger.json").read_text())
    final = ledger[-1] if isinstance(ledger, list) else ledger["rows"][-1]
    assert final["weight_sparsity"] >= 0.59 and final["size_ratio"] > 4
    assert final["test_top1"] > 0.7


@pytest.mark.slow  # a compress run
def test_pt2_without_a_factory_rebuilds_real_layers_and_compresses(user_path, tmp_path, capsys, trained):
    runs = tmp_path / "runs"
    code, out, err = cli(capsys, "import", "--weights", str(user_path / "net.pt2"), "--data", "digits",
                         "--runs-dir", str(runs))  # fmt: skip
    assert code == 0, err
    teacher = runs / "net-digits" / "teacher"
    spec = read_spec(teacher)
    assert spec["model"]["name"] == "pakd.train.importer:exported_program"
    assert Path(spec["model"]["args"]["path"]) == (teacher / "program.pt2").resolve()
    assert spec["import"]["format"] == "torch-export"
    assert spec["metrics"]["test_top1"] == pytest.approx(trained[1], abs=1e-6)
    model, _ = load_model(teacher)
    # convs (the depthwise one too), BN and the linear are nn modules again, under their names
    assert set(prunable_weights(model)) == {"conv1.weight", "dw.weight", "conv2.weight", "fc.weight"}
    assert model.get_submodule("dw").groups == 16
    assert isinstance(model.get_submodule("bn2"), torch.nn.BatchNorm2d)
    data = load_dataset("digits")
    ref = torch.export.load(str(user_path / "net.pt2")).module()
    with torch.no_grad():  # any batch size: the export's batch of 1 in the view became -1
        batch = model(data.test.images[:5])
        assert torch.allclose(batch[:1], ref(data.test.images[:1]), atol=1e-5)
    # the pruner's dependency graph and the native lowering take it like a hand-written model
    from pakd.lower.native import lower
    from pakd.prune.depgraph import build_graph

    assert {g.name for g in build_graph(model.eval(), torch.zeros(1, 1, 28, 28)).groups} == {"conv1", "conv2"}
    assert [op.split()[0] for op in lower(model.eval(), (1, 28, 28)).describe()][-2:] == ["reshape", "linear"]

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(RECIPE)
    code, out, err = cli(capsys, "compress", "--teacher", str(teacher), "--recipe", str(recipe),
                         "--runs-dir", str(runs), "-q")  # fmt: skip
    assert code == 0, err
    student, _ = load_model(runs / "imported" / "stage-2")
    sparsity = [float((w == 0).float().mean()) for w in prunable_weights(student).values()]
    assert min(sparsity) >= 0.59


def test_pt2_with_a_factory_is_checked_against_the_program(user_path, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = cli(capsys, "import", "-m", "usernet:net", "--weights", str(user_path / "net.pt2"),
                       "--data", "digits", "--runs-dir", str(runs))  # fmt: skip
    assert code == 0, err
    assert read_spec(runs / "usernet-net-digits" / "teacher")["model"]["name"] == "usernet:net"
    # same tensors, another activation: not the program's architecture
    code, _, err = cli(capsys, "import", "-m", "usernet:net", "--model-arg", "act=hardswish", "--weights",
                       str(user_path / "net.pt2"), "--data", "digits", "--runs-dir", str(runs), "--name", "x")  # fmt: skip
    assert code == 2 and "does not compute what the program does" in err


def _tamper(src: Path, dst: Path, member_suffix: str, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith(member_suffix):
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(item, data)
    return dst


def _pickled_weight(cfg):
    next(iter(cfg["config"].values()))["use_pickle"] = True
    return cfg


def _os_system(program):
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
    return program


def _guards(program):
    program["guards_code"] = ["__import__('os').system('true')"]
    return program


@pytest.mark.parametrize(
    "case, message",
    [
        ("mismatch-missing", "does not fit the model: tensor 'extra.weight' is missing from the weights"),
        ("mismatch-shape", "does not fit the model: tensor 'conv1.weight' has shape (16, 1, 3, 3), the model's is (8, 1, 3, 3)"),
        ("mismatch-unexpected", "does not fit the model: tensor 'junk' is not in the model"),
        ("whole-module", "holds a usernet.Net object that only a full unpickle can load"),
        ("no-model", "without an architecture: give --model"),
        ("not-weights", "not safetensors, a torch.save state dict or a torch.export .pt2 program"),
        ("no-file", "weights file not found"),
        ("not-a-dict", "is not a state dict"),
        ("pt2-pickle", "refused to load this torch.export program: tensor 'conv1.weight' is stored as a pickle"),
        ("pt2-target", "node target 'torch.os.system' is not an aten operator"),
        ("pt2-guards", "it carries guard code"),
        ("pt2-dynamic", "it has dynamic (symbolic) shapes"),
        ("wrong-classes", "10 class scores expected"),
    ],
)  # fmt: skip
def test_bad_imports_are_one_line_and_exit_2(user_path, tmp_path, capsys, case, message):
    sd = torch.load(user_path / "net.pt", weights_only=True)
    model, weights = "usernet:net", user_path / "net.pt"
    extra: list[str] = []
    if case == "mismatch-missing":
        model = "usernet:deeper"
    elif case == "mismatch-shape":
        extra = ["--model-arg", "width=8"]
    elif case == "mismatch-unexpected":
        weights = tmp_path / "junk.pt"
        torch.save({**sd, "junk": torch.zeros(1)}, weights)
    elif case == "whole-module":
        weights = user_path / "whole.pt"
    elif case == "no-model":
        model = ""
    elif case == "not-weights":
        weights = tmp_path / "notes.txt"
        weights.write_text("hello")
    elif case == "no-file":
        weights = tmp_path / "absent.pt"
    elif case == "not-a-dict":
        weights = tmp_path / "list.pt"
        torch.save([torch.zeros(2)], weights)
    elif case == "pt2-pickle":
        weights = _tamper(user_path / "net.pt2", tmp_path / "p.pt2", "model_weights_config.json", _pickled_weight)
    elif case == "pt2-target":
        weights = _tamper(user_path / "net.pt2", tmp_path / "t.pt2", "models/model.json", _os_system)
    elif case == "pt2-guards":
        weights = _tamper(user_path / "net.pt2", tmp_path / "g.pt2", "models/model.json", _guards)
    elif case == "pt2-dynamic":
        import usernet

        batch = torch.export.Dim("batch", min=2)
        program = torch.export.export(usernet.net().eval(), (torch.zeros(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
        weights = tmp_path / "dyn.pt2"
        torch.export.save(program, weights)
        model = ""
    elif case == "wrong-classes":
        extra = ["--model-arg", "num_classes=7"]
        weights = tmp_path / "seven.pt"
        import usernet

        torch.save(usernet.net(num_classes=7).state_dict(), weights)
    argv = ["import", "--weights", str(weights), "--data", "digits", "--runs-dir", str(tmp_path / "runs"), *extra]
    if model:
        argv += ["--model", model]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert message in " ".join(lines), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("spec.json"))


def test_a_pt2_copy_is_checked_by_hash(user_path, tmp_path):
    copy = tmp_path / "program.pt2"
    shutil.copyfile(user_path / "net.pt2", copy)
    from pakd.train.importer import sha256

    digest = sha256(copy)
    exported_program(str(copy), digest)
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(Exception, match="SHA-256 changed"):
        exported_program(str(copy), digest)
