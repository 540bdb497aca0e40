"""Channel dependency graph and physical channel removal on the zoo and on user-defined models."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd.metrics import model_stats
from pakd.models import build_model
from pakd.prune.base import PruneError
from pakd.prune.depgraph import apply_channel_config, build_graph, channel_config, prune_channels

X = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
ATOL = 1e-5


def _randomize_norms(model: nn.Module) -> nn.Module:
    """Non-trivial BN affine parameters and statistics (the zoo zero-inits some BN scales)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _half_plan(graph, seed: int = 0) -> dict[str, list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return {g.name: torch.randperm(g.size, generator=gen)[: g.size // 2].tolist() for g in graph.groups}


def _removal_reference(model: nn.Module, graph, plan) -> nn.Module:
    """The original with every consumer's weights for the removed channels zeroed: what the network
    computes once those channels no longer reach any layer (whatever their producers output)."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, channels in plan.items():
            for c in graph.group(name).couplings:
                if c.role == "in":
                    ref.get_submodule(c.module).weight[:, c.positions(torch.tensor(channels))] = 0
    return ref


def _names(graph) -> set[frozenset[str]]:
    return {frozenset(c.module for c in g.couplings) for g in graph.groups}


class ConcatNet(nn.Module):
    """Two branches concatenated on channels, a BN over the concatenation, then a consumer."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(12)
        self.c = nn.Conv2d(12, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 7 * 7, 10)

    def forward(self, x):
        y = F.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        y = F.max_pool2d(F.relu(self.c(y)), 4)
        return self.fc(y.view(y.size(0), -1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 2, 1)
        self.expand = nn.Conv2d(channels // 2, channels, 1)

    def forward(self, x):
        s = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * s


class UserNet(nn.Module):
    """Not in the zoo: squeeze-excite, a residual, per-channel PReLU, functional ops, BN1d head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 12, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(12)
        self.act = nn.PReLU(12)
        self.se = SqueezeExcite(12)
        self.dw = nn.Conv2d(12, 12, 3, padding=1, groups=12)
        self.head = nn.Linear(12, 16)
        self.head_bn = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, 10)

    def forward(self, x):
        x = self.act(self.bn(self.stem(x)))
        x = x + F.hardswish(self.dw(self.se(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.out(F.relu6(self.head_bn(self.head(x))))


ZOO = [("lenet5", {}), ("vgg-small", {"width": 0.25}), ("resnet20", {}), ("mobilenetv2", {"width_mult": 0.25})]


def _zoo(name: str, kwargs: dict) -> nn.Module:
    return _randomize_norms(build_model(name, **kwargs))


def test_resnet20_residual_adds_couple_each_stage_into_one_group():
    graph = build_graph(build_model("resnet20"), X)
    assert len(graph.groups) == 3 + 9  # one residual group per stage, one per block's inner conv
    stage1 = graph.group("stem.0")
    producers = {c.module for c in stage1.couplings if c.role == "out"}
    assert producers == {"stem.0", "stem.1"} | {f"layer1.{i}.{m}" for i in range(3) for m in ("conv2", "bn2")}
    stage2 = graph.group("layer2.0.conv2")  # named after its first producer in graph order
    assert {"layer2.0.conv2", "layer2.2.bn2", "layer3.0.shortcut.0"} <= {c.module for c in stage2.couplings}
    assert "fc" in {c.module for c in graph.group("layer3.0.conv2").couplings}


def test_concat_offsets_channels_in_the_consumers():
    graph = build_graph(ConcatNet(), X)
    a, b = graph.group("a"), graph.group("b")
    assert {(c.module, c.role, c.offset) for c in a.couplings} == {("a", "out", 0), ("bn", "out", 0), ("c", "in", 0)}
    assert {(c.module, c.role, c.offset) for c in b.couplings} == {("b", "out", 0), ("bn", "out", 8), ("c", "in", 8)}
    assert {(c.module, c.repeat) for c in graph.group("c").couplings if c.role == "in"} == {("fc", 49)}


def test_depthwise_convs_join_their_producers_group():
    graph = build_graph(build_model("mobilenetv2", width_mult=0.25), X)
    expand = graph.group("features.4.conv.0")
    roles = {c.module: c.role for c in expand.couplings}
    assert roles["features.4.conv.3"] == "dw" and roles["features.4.conv.6"] == "in"
    assert [c.module for c in expand.sites] == ["features.4.conv.1", "features.4.conv.4"]  # both BNs


@pytest.mark.parametrize("name,kwargs,repeat", [("lenet5", {}, 16), ("vgg-small", {"width": 0.25}, 9)])
def test_flatten_maps_each_channel_to_its_spatial_block(name, kwargs, repeat):
    graph = build_graph(build_model(name, **kwargs), X)
    last = graph.groups[-2]  # the last conv's group feeds the first linear layer
    (into_fc,) = [c for c in last.couplings if c.role == "in"]
    assert into_fc.module == "classifier.1" and into_fc.repeat == repeat
    assert graph.groups[-1].name == "classifier.1"  # hidden linear is prunable, the logits are not


def test_user_model_outside_the_zoo():
    graph = build_graph(UserNet(), X)
    stem = graph.group("stem")
    modules = {c.module: c.role for c in stem.couplings}
    assert modules == {
        "stem": "out",
        "bn": "out",
        "act": "out",
        "se.reduce": "in",
        "se.expand": "out",
        "dw": "dw",
        "head": "in",
    }
    assert {g.name for g in graph.groups} == {"stem", "se.reduce", "head"}


@pytest.mark.parametrize("name,kwargs", ZOO)
def test_pruned_zoo_model_computes_what_the_original_does_without_the_channels(name, kwargs):
    model = _zoo(name, kwargs)
    graph = build_graph(model, X)
    plan = _half_plan(graph)
    pruned = graph.prune(plan).eval()
    torch.testing.assert_close(pruned(X), _removal_reference(model, graph, plan)(X), atol=ATOL, rtol=0)


@pytest.mark.parametrize("net", [ConcatNet, UserNet])
def test_pruned_user_model_matches_the_reference(net):
    model = _randomize_norms(net())
    graph = build_graph(model, X)
    plan = _half_plan(graph, seed=3)
    pruned = graph.prune(plan).eval()
    torch.testing.assert_close(pruned(X), _removal_reference(model, graph, plan)(X), atol=ATOL, rtol=0)
    assert not any(isinstance(m, nn.Identity) for m in pruned.modules())  # no masks or stand-ins


@pytest.mark.parametrize("name,kwargs", [("resnet20", {}), ("mobilenetv2", {"width_mult": 0.25})])
def test_pruned_model_exports_and_is_smaller(name, kwargs):
    model = build_model(name, **kwargs).eval()
    graph = build_graph(model, X)
    plan = _half_plan(graph)
    pruned = graph.prune(plan).eval()
    exported = torch.export.export(pruned, (X,))
    torch.testing.assert_close(exported.module()(X), pruned(X))
    before, after = model_stats(model), model_stats(pruned)
    assert after.params < 0.4 * before.params and after.macs < 0.4 * before.macs
    assert after.macs == graph.macs({k: len(v) for k, v in plan.items()})  # the graph's own MAC model


def test_skipped_layers_keep_their_channels():
    graph = build_graph(build_model("resnet20"), X, skip=("layer1",))
    assert "stem.0" not in {g.name for g in graph.groups}  # layer1 consumes the stem's channels
    assert "layer1.0.conv1" not in {g.name for g in graph.groups}
    assert "layer2.0.conv1" in {g.name for g in graph.groups}


def test_channel_config_round_trip(tmp_path):
    model = _zoo("mobilenetv2", {"width_mult": 0.25})
    pruned = prune_channels(model, X, _half_plan(build_graph(model, X)))
    config = json.loads(json.dumps(channel_config(pruned)))
    rebuilt = apply_channel_config(build_model("mobilenetv2", width_mult=0.25), X, config)
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt.eval()(X), pruned(X))


def test_channel_config_for_another_architecture_is_refused():
    config = channel_config(build_model("resnet20"))
    with pytest.raises(PruneError, match="channel config"):
        apply_channel_config(build_model("vgg-small", width=0.25), X, config)


def test_plan_cannot_empty_a_group():
    graph = build_graph(build_model("lenet5"), X)
    with pytest.raises(PruneError, match="all 20 channels"):
        graph.prune({"features.0": range(20)})


class _Slice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)

    def forward(self, x):
        return self.conv(x)[:, :4]


class _Roll(_Slice):
    def forward(self, x):
        return torch.roll(self.conv(x), 1, dims=1)


class _HardCodedView(_Slice):
    def forward(self, x):
        return self.conv(x).view(-1, 8 * 26 * 26)


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.grouped = nn.Conv2d(8, 8, 3, groups=2)

    def forward(self, x):
        return self.grouped(self.conv(x))


class _Transposed(_Slice):
    def forward(self, x):
        return self.conv(x).mean((2, 3)).T


class _ControlFlow(_Slice):
    def forward(self, x):
        y = self.conv(x)
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize(
    "net,message",
    [
        (_Roll, "torch.roll"),
        (_Transposed, "getattr"),
        (_ControlFlow, "cannot trace"),
    ],
)
def test_unsupported_constructs_raise_naming_the_op(net, message):
    with pytest.raises(PruneError, match=message):
        build_graph(net(), X)


@pytest.mark.parametrize(
    "net,message",
    [
        (_Slice, "getitem"),
        (_HardCodedView, "Tensor.view"),
        (_Grouped, "grouped conv grouped"),
    ],
)
def test_constructs_that_cannot_follow_a_removal_keep_the_channels(net, message):
    graph = build_graph(net(), X)
    assert graph.groups == ()  # the conv's channels are the only prunable ones, and they are kept
    (held,) = graph.held
    assert message in held


@pytest.mark.parametrize(
    "name,kwargs,classifier",
    [
        ("resnet20", {}, "fc"),
        ("vgg-small", {"width": 0.25}, "classifier.3"),
        ("mobilenetv2", {"width_mult": 0.25}, "classifier.1"),
    ],
)
def test_groups_agree_with_torch_pruning(name, kwargs, classifier):
    tp = pytest.importorskip("torch_pruning")
    model = build_model(name, **kwargs).eval()
    real = dict(model.named_modules())
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=X)
    theirs = set()
    for group in dg.get_all_groups(ignored_layers=[real[classifier]], root_module_types=[nn.Conv2d, nn.Linear]):
        names = {dep.target.name.split(" (")[0] for dep, _ in group}
        theirs.add(frozenset(n for n in names if n in real))
    assert _names(build_graph(model, X)) == theirs
