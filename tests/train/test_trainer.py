"""Training: it learns on real Fashion-MNIST, is deterministic under a seed, and resumes exactly."""

from __future__ import annotations

import pytest
import torch

from pakd.data import Split, load_dataset
from pakd.errors import RunError
from pakd.models import build_model
from pakd.train import TrainConfig, augment_batch, evaluate, train


@pytest.mark.slow
def test_short_training_on_real_fashion_mnist_learns(fmnist):
    """10k real training images, 2 epochs: held-out validation images must reach >= 80%."""
    model = build_model("lenet5")
    cfg = TrainConfig(epochs=2, batch_size=64, optimizer="sgd", lr=0.05, augment="none", seed=0, threads=2)
    history = train(model, fmnist.train.subset(10_000), fmnist.val, cfg)
    top1, _ = evaluate(model, fmnist.val)
    assert top1 == pytest.approx(history[-1].val_top1)
    assert top1 >= 0.80, f"only {top1:.3f} on 5000 held-out images"
    assert history[-1].train_loss < history[0].train_loss


def _tiny_run(seed: int, epochs: int = 2, **kw):
    data = load_dataset("synthetic")
    torch.manual_seed(seed)  # the initial weights come from the seed too
    model = build_model("lenet5")
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=0.02, seed=seed, threads=1, **kw)
    history = train(model, data.train.subset(600), data.val, cfg)
    return model, history


@pytest.mark.slow
def test_same_seed_gives_identical_weights():
    a, _ = _tiny_run(seed=3)
    b, _ = _tiny_run(seed=3)
    c, _ = _tiny_run(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


class _StopAfterFirstEpoch(Exception):
    pass


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    data = load_dataset("synthetic")
    cfg = TrainConfig(epochs=2, batch_size=100, lr=0.02, seed=1, threads=1)
    torch.manual_seed(1)
    straight = build_model("lenet5")
    train(straight, data.train.subset(600), data.val, cfg)

    ckpt = tmp_path / "checkpoint.pt"

    def interrupt(event, info):
        if event == "epoch" and info["result"].epoch == 1:
            raise _StopAfterFirstEpoch

    torch.manual_seed(1)
    first = build_model("lenet5")
    with pytest.raises(_StopAfterFirstEpoch):
        train(first, data.train.subset(600), data.val, cfg, checkpoint=ckpt, progress=interrupt)
    assert ckpt.is_file()

    events = []
    resumed = build_model("lenet5")
    history = train(
        resumed, data.train.subset(600), data.val, cfg, checkpoint=ckpt, progress=lambda e, i: events.append((e, i))
    )
    name, info = events[0]
    assert name == "start" and {k: info[k] for k in ("epochs", "steps_per_epoch", "resumed_epoch")} == {
        "epochs": 2,
        "steps_per_epoch": 6,
        "resumed_epoch": 1,
    }
    assert [h.epoch for h in history] == [1, 2]
    s, r = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(s[k], r[k]) for k in s)


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    data = load_dataset("synthetic")
    ckpt = tmp_path / "checkpoint.pt"
    train(
        build_model("lenet-300-100"),
        data.train.subset(200),
        data.val,
        TrainConfig(epochs=1, batch_size=100, threads=1),
        checkpoint=ckpt,
    )
    with pytest.raises(RunError, match="other training settings"):
        train(
            build_model("lenet-300-100"),
            data.train.subset(200),
            data.val,
            TrainConfig(epochs=1, batch_size=50, threads=1),
            checkpoint=ckpt,
        )


def test_crop_and_flip_keep_shape_and_content():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    y = augment_batch(x, "crop+flip", gen)
    assert y.shape == x.shape
    assert augment_batch(x, "none", gen) is x
    flipped = augment_batch(x, "flip", torch.Generator().manual_seed(0))
    for i in range(2):  # each image is either itself or its mirror
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(epochs=0), "epochs"),
        (dict(optimizer="rmsprop"), "unknown optimizer"),
        (dict(augment="mixup"), "unknown augmentation"),
        (dict(lr=-1.0), "learning rate"),
    ],
)
def test_bad_settings_are_refused(bad, message):
    with pytest.raises(RunError, match=message):
        TrainConfig(**bad)


def test_evaluate_counts_correct_predictions():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]]).reshape(3, 1, 2, 2)
    top1, _ = evaluate(model, Split(x, torch.tensor([0, 1, 1])))
    assert top1 == pytest.approx(2 / 3)


class _ViewNet(torch.nn.Module):
    """Flattens with x.view(x.size(0), -1), as many user models do: no channels-last memory."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def test_a_model_that_flattens_with_view_trains_in_the_default_layout():
    data = load_dataset("synthetic")
    torch.manual_seed(0)
    history = train(_ViewNet(), data.train.subset(256), data.val.subset(64), TrainConfig(epochs=1, batch_size=64))
    assert len(history) == 1 and history[0].val_top1 >= 0.0


def test_activation_bytes_counts_what_backward_keeps():
    """A linear layer keeps its input for backward: 3*4*4 floats per image (its weight, saved at
    every batch size, does not count)."""
    from pakd.train.trainer import activation_bytes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    before = torch.get_rng_state()
    assert activation_bytes(model, (3, 4, 4), "cpu", channels_last=False) == 48 * 4
    assert torch.equal(torch.get_rng_state(), before)  # the probe leaves the training's random state alone
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
    stats = bn[1].running_mean.clone()
    assert activation_bytes(bn, (1, 8, 8), "cpu", channels_last=True) > 0
    assert torch.equal(bn[1].running_mean, stats)  # measured on a copy


@pytest.mark.parametrize(
    ("batch", "per_image", "budget", "micro"),
    [(32, 10, 1000, 32), (32, 75, 768, 10), (32, 1000, 768, 2), (1, 1000, 768, 1), (5, 100, 200, 2)],
)
def test_micro_batch_fits_the_budget_and_keeps_two_images(batch, per_image, budget, micro):
    from pakd.train.trainer import micro_batch

    assert micro_batch(batch, per_image, budget) == micro


def test_a_batch_over_the_activation_budget_trains_in_parts_to_the_same_weights(monkeypatch):
    """LeNet-5 (no batch norm) with a budget of 20 images: batches of 100 run in 5 parts, and the
    weights after an epoch are those of whole batches, up to float rounding."""
    import pakd.train.trainer as trainer

    data = load_dataset("synthetic")
    cfg = TrainConfig(epochs=1, batch_size=100, lr=0.02, seed=1, threads=1, augment="crop")
    torch.manual_seed(1)
    whole = build_model("lenet5")
    parts = build_model("lenet5")
    parts.load_state_dict(whole.state_dict())
    h_whole = train(whole, data.train.subset(400), data.val, cfg)
    per_image = trainer.activation_bytes(whole, (1, 28, 28), "cpu", channels_last=True)
    monkeypatch.setattr(trainer, "STEP_ACTIVATION_BYTES", 20 * per_image)
    starts = []
    h_parts = train(
        parts, data.train.subset(400), data.val, cfg, progress=lambda e, i: starts.append(i) if e == "start" else None
    )
    assert starts[0]["batch"] == 100 and starts[0]["micro_batch"] == 20
    sw, sp = whole.state_dict(), parts.state_dict()
    assert all(torch.allclose(sw[k], sp[k], rtol=1e-4, atol=1e-6) for k in sw)
    assert h_parts[0].train_loss == pytest.approx(h_whole[0].train_loss, rel=1e-5)
    assert h_parts[0].train_top1 == h_whole[0].train_top1


@pytest.mark.parametrize(("micro", "noted"), [(10, True), (32, False)])
def test_the_progress_says_when_a_batch_runs_in_parts(monkeypatch, micro, noted):
    import io

    from rich.console import Console

    from pakd import ui

    out = io.StringIO()
    monkeypatch.setattr(ui, "console", Console(file=out, width=300))
    info = {"epochs": 1, "steps_per_epoch": 2, "resumed_epoch": 0, "batch": 32, "micro_batch": micro}
    info |= {"activation_bytes": int(74.6 * 2**20), "activation_budget": 768 * 2**20}
    with ui.TrainProgress("teacher") as progress:
        progress("start", info)
    line = "note: each batch of 32 runs in parts of at most 10 images, their gradients added up before the step"
    assert (line in out.getvalue()) == noted
    assert ("keeps 74.6 MiB per image for backward, and a part keeps at most 768 MiB" in out.getvalue()) == noted
