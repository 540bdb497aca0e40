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
    assert events[0] == ("start", {"epochs": 2, "steps_per_epoch": 6, "resumed_epoch": 1})
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
