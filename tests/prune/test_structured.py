"""Structured pruners (channel, sfp, gate), importance criteria and channel selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd.metrics import model_stats
from pakd.models import build_model
from pakd.prune.base import PruneConfig, PruneContext, PruneError, make_pruner
from pakd.prune.depgraph import build_graph
from pakd.prune.structured import GATE, L1Importance, make_importance, model_gates, select_channels

X = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(n)
    return [(torch.randn(4, 1, 28, 28, generator=gen), torch.randint(0, 10, (4,), generator=gen)) for _ in range(n)]


def _ctx(epochs: int = 1) -> PruneContext:
    return PruneContext(example_input=X, batches=_batches, loss_fn=F.cross_entropy, total_epochs=epochs)


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet20")
    with torch.no_grad():  # the zoo zero-inits the residual BN scales; make every channel matter
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def _train_steps(model: nn.Module, pruner, steps: int = 2) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for step, (x, y) in enumerate(_batches(steps)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.on_step(model, step)


def _sizes(model: nn.Module) -> dict[str, int]:
    return {g.name: g.size for g in build_graph(model, X).groups}


def test_l1_importance_sums_filter_bn_and_consumer_norms():
    model = build_model("vgg-small", width=0.25)
    graph = build_graph(model, X)
    score = L1Importance(model, graph, _ctx(), {})(graph.group("features.0"))
    conv, bn, nxt = model.features[0], model.features[1], model.features[3]
    expected = (
        conv.weight.abs().flatten(1).sum(1) + bn.weight.abs() + nxt.weight.abs().transpose(0, 1).flatten(1).sum(1)
    )
    torch.testing.assert_close(score, expected.detach())


def test_channel_pruner_layer_scope_removes_the_fraction_of_every_group():
    model = _resnet()
    before = _sizes(model)
    pruner = make_pruner(PruneConfig("channel", 0.5, criterion="l2", schedule="oneshot"), _ctx())
    pruned = pruner.setup(model)
    assert _sizes(pruned) == {name: n - round(0.5 * n) for name, n in before.items()}
    assert model_stats(pruned).macs < 0.3 * model_stats(model).macs
    assert all(len(ch) == round(0.5 * before[name]) for name, ch in pruner.plan.items())


def test_channel_pruner_removes_the_weakest_channels():
    model = build_model("lenet5")
    with torch.no_grad():
        model.features[0].weight[[3, 7]] *= 1e-3  # two channels that hardly matter
        model.features[3].weight[:, [3, 7]] *= 1e-3
    pruner = make_pruner(PruneConfig("channel", 0.1, criterion="l1", schedule="oneshot"), _ctx())
    pruner.setup(model)
    assert pruner.plan["features.0"] == [3, 7]


def test_global_scope_keeps_the_minimum_per_group():
    model = _resnet()
    cfg = PruneConfig("channel", 0.9, schedule="oneshot", scope="global", options={"min_channels": 2})
    pruned = make_pruner(cfg, _ctx()).setup(model)
    sizes = _sizes(pruned)
    assert min(sizes.values()) >= 2
    assert sum(sizes.values()) == sum(_sizes(model).values()) - round(0.9 * sum(_sizes(model).values()))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_macs_target_removes_at_least_the_requested_fraction(scope):
    model = build_model("mobilenetv2", width_mult=0.25)
    cfg = PruneConfig("channel", 0.4, schedule="oneshot", scope=scope, target="macs")
    pruned = make_pruner(cfg, _ctx()).setup(model)
    ratio = model_stats(pruned).macs / model_stats(model).macs
    assert 0.55 < ratio <= 0.6


def test_unreachable_macs_target_is_refused():
    graph = build_graph(build_model("lenet5"), X)
    scores = {g.name: torch.ones(g.size) for g in graph.groups}
    with pytest.raises(PruneError, match="MACs"):
        select_channels(graph, scores, 0.999, target="macs", min_channels=10)


def test_taylor_criterion_uses_batches_and_prunes():
    model = _resnet()
    cfg = PruneConfig("channel", 0.25, criterion="taylor", schedule="oneshot", options={"taylor_batches": 2})
    pruner = make_pruner(cfg, _ctx())
    pruned = pruner.setup(model)
    assert model_stats(pruned).params < model_stats(model).params
    graph = build_graph(model, X)
    scores = make_importance("taylor", model, graph, _ctx(), {"taylor_batches": 2})(graph.group("stem.0"))
    assert scores.shape == (16,) and bool((scores > 0).all())


def test_taylor_without_batches_is_refused():
    cfg = PruneConfig("channel", 0.5, criterion="taylor", schedule="oneshot")
    with pytest.raises(PruneError, match="batches"):
        make_pruner(cfg, PruneContext(example_input=X)).setup(build_model("lenet5"))


def test_channel_pruner_resumes_from_its_state_dict():
    cfg = PruneConfig(
        "channel", 0.3, criterion="taylor", schedule="oneshot", scope="global", options={"taylor_batches": 2}
    )
    first = make_pruner(cfg, _ctx())
    pruned = first.setup(_resnet())
    again = make_pruner(cfg, PruneContext(example_input=X))  # no batches needed: the plan is replayed
    again.load_state_dict(first.state_dict())
    rebuilt = again.setup(_resnet())
    rebuilt.load_state_dict(pruned.state_dict())
    assert again.plan == first.plan


@pytest.mark.parametrize(
    "cfg,message",
    [
        (PruneConfig("channel", 0.5), "oneshot"),
        (PruneConfig("channel", 0.5, schedule="oneshot", criterion="obd"), "criterion"),
        (PruneConfig("sfp", 0.5, options={"min_channel": 2}), "unknown option"),
        (PruneConfig("gate", 0.5, criterion="l1"), "Taylor"),
    ],
)
def test_bad_configs_are_refused(cfg, message):
    with pytest.raises(PruneError, match=message):
        make_pruner(cfg, _ctx())


def test_sfp_zeroes_the_weakest_filters_which_can_recover():
    model = _resnet()
    with torch.no_grad():  # a zeroed filter learns only through an open ReLU: BN shift > 0
        model.layer1[0].bn1.bias.abs_()
    pruner = make_pruner(PruneConfig("sfp", 0.5, criterion="l2", schedule="oneshot"), _ctx(epochs=2))
    model = pruner.setup(model)
    graph = build_graph(model, X)
    expected = make_importance("l2", model, graph, _ctx(), {})(graph.group("layer1.0.conv1"))
    pruner.on_epoch_end(model, 1)
    zeroed = pruner.plan["layer1.0.conv1"]
    assert sorted(zeroed) == sorted(torch.argsort(expected)[:8].tolist())
    conv = model.layer1[0].conv1
    assert conv.weight[zeroed].abs().sum() == 0
    _train_steps(model, pruner, steps=1)
    assert bool((conv.weight[zeroed].flatten(1).abs().sum(1) > 0).all())  # soft: they keep learning

    pruner.on_epoch_end(model, 2)
    final = pruner.finalize(model)
    assert _sizes(final)["layer1.0.conv1"] == 8
    restored = make_pruner(PruneConfig("sfp", 0.5, criterion="l2", schedule="oneshot"), _ctx(epochs=2))
    restored.load_state_dict(pruner.state_dict())
    assert restored.plan == pruner.plan


def test_sfp_finalize_is_exact_without_norm_layers():
    model = build_model("lenet5").eval()
    pruner = make_pruner(PruneConfig("sfp", 0.5, schedule="oneshot"), _ctx())
    model = pruner.setup(model)
    pruner.on_epoch_end(model, 1)
    final = pruner.finalize(model)
    torch.testing.assert_close(final(X), model(X), atol=1e-5, rtol=0)
    assert model_stats(final).params < 0.5 * model_stats(model).params


@pytest.mark.slow
def test_gate_decorator_closes_gates_and_finalize_folds_them():
    model = build_model("mobilenetv2", width_mult=0.25)
    plain = model_stats(model)
    cfg = PruneConfig("gate", 0.4, scope="global", schedule="cubic")
    pruner = make_pruner(cfg, _ctx(epochs=3))
    model = pruner.setup(model)
    gates = model_gates(model)
    assert gates and all(bool((g == 1).all()) for g in gates.values())
    for epoch in (1, 2):
        _train_steps(model, pruner, steps=1)
        pruner.on_epoch_end(model, epoch)
    closed = sum(len(ch) for ch in pruner.plan.values())
    total = sum(g.size for g in pruner.graph.groups)
    assert closed == round(0.4 * total)  # the target is reached one epoch before the end
    assert sum(int((g == 0).sum()) for g in gates.values()) >= closed

    model.eval()
    gated_out = model(X)
    final = pruner.finalize(model).eval()
    assert not any(GATE in m._parameters or m._forward_hooks for m in final.modules())
    assert not any(GATE in key for key in final.state_dict())
    torch.testing.assert_close(final(X), gated_out, atol=1e-5, rtol=0)
    assert model_stats(final).macs < plain.macs
    torch.export.export(final, (X,))


def test_gate_decorator_resumes_in_the_runners_order():
    """setup on the stage's start model, load the model checkpoint, then the pruner's state."""
    cfg = PruneConfig("gate", 0.3, schedule="oneshot")
    first = make_pruner(cfg, _ctx(epochs=2))
    model = first.setup(build_model("lenet5"))
    _train_steps(model, first)
    first.on_epoch_end(model, 1)
    again = make_pruner(cfg, _ctx(epochs=2))
    resumed = again.setup(build_model("lenet5"))
    resumed.load_state_dict(model.state_dict())
    again.load_state_dict(first.state_dict())
    assert again.plan == first.plan
    torch.testing.assert_close(again.finalize(resumed)(X), first.finalize(model)(X))
