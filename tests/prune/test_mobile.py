"""Channel pruning through the ops of mobile networks, on models written here (not the zoo):
squeeze-excite (1x1-conv and linear forms), hardswish/hardsigmoid, depthwise and grouped convs,
inverted residuals, a two-branch concat, zero padding, nearest upsampling and channel shuffle.

Every pruned model must run, keep its output shape, lose parameters and compute exactly what the
original computes with the removed channels zeroed (the masks of sfp / gate) or ignored."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pakd.metrics import model_stats
from pakd.models.layers import prunable_weights
from pakd.prune import PruneConfig, PruneContext, make_pruner
from pakd.prune.base import PruneError
from pakd.prune.depgraph import apply_channel_config, build_graph, channel_config, scale_outputs
from pakd.quant.kmeans import KMeansConfig, WeightSharing

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
ATOL = 1e-5


def _stats(model: nn.Module):
    return model_stats(model, tuple(X.shape[1:]))


def _bn_act(c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: type = nn.Hardswish):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out), act()
    )


class ConvSE(nn.Module):
    """torchvision's SqueezeExcitation: mean -> 1x1 conv -> ReLU -> 1x1 conv -> hardsigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * s


class LinearSE(nn.Module):
    """The SE-ResNet form: pool -> flatten -> Linear -> SiLU -> Linear -> sigmoid -> view(b, c, 1, 1)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x):
        b, c, _, _ = x.size()
        s = self.pool(x).view(b, c)
        s = torch.sigmoid(self.fc2(F.silu(self.fc1(s))))
        return x * s.view(b, c, 1, 1)


class IndexSE(LinearSE):
    """mean without keepdim, GELU, a hand-written hardsigmoid and the gate unsqueezed by indexing."""

    def forward(self, x):
        s = self.fc2(F.gelu(self.fc1(x.mean((2, 3)))))
        return x * (F.relu6(s + 3.0) / 6.0)[:, :, None, None]


class MobileNetV3Block(nn.Module):
    """A MobileNetV3-small-like net: hardswish stem, inverted residuals with depthwise convs and
    three kinds of SE, a residual add, a pooled hardswish head with dropout."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 16, 3, 2)
        self.expand = _bn_act(16, 32)
        self.dw = _bn_act(32, 32, 3, 1, groups=32)
        self.se = ConvSE(32, 8)
        self.project = nn.Sequential(nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.dw2 = _bn_act(16, 16, 5, 2, groups=16, act=nn.ReLU)
        self.se2 = LinearSE(16, 4)
        self.expand2 = _bn_act(16, 24)
        self.se3 = IndexSE(24, 8)
        self.head = nn.Sequential(nn.Linear(24, 32), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(32, num_classes))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        x = self.se3(self.expand2(self.se2(self.dw2(x))))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.conv = nn.Sequential(
            _bn_act(c_in, hidden, act=nn.ReLU6),
            _bn_act(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2Block(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 16, 3, 2, act=nn.ReLU6)
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 4), InvertedResidual(24, 24, 1, 4)
        )
        self.last = _bn_act(24, 48, act=nn.ReLU6)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(48, num_classes))

    def forward(self, x):
        x = self.last(self.blocks(self.stem(x)))
        return self.classifier(x.mean((2, 3)))


class TwoBranch(nn.Module):
    """Two branches concatenated on channels (one zero-padded by F.pad, one upsampled back from a
    stride-2 conv), a BN over the concatenation, a clamp, then a consumer."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 12, 3, 2, act=nn.ReLU)
        self.a = nn.Conv2d(12, 8, 3, padding=0)
        self.b = nn.Conv2d(12, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(14)
        self.pad = nn.ZeroPad2d(1)
        self.c = nn.Conv2d(14, 10, 3, padding=0)
        self.fc = nn.Linear(10, num_classes)

    def forward(self, x):
        x = self.stem(x)
        a = F.pad(self.a(x), (1, 1, 1, 1))
        b = F.interpolate(self.b(x), scale_factor=2, mode="nearest")
        y = torch.clamp(self.bn(torch.cat([a, b], dim=1)), 0.0, 6.0)
        y = F.hardtanh(self.c(self.pad(y))).transpose(2, 3)
        return self.fc(y.mean((2, 3)))


class ConcatSE(nn.Module):
    """A concat of two branches followed by a squeeze-excite and a residual from a single conv:
    the SE's outputs and the conv's are split at the concatenation's boundary."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 12, 3, 2)
        self.a = _bn_act(12, 8, 3)
        self.b = _bn_act(12, 6, 1, act=nn.ReLU6)
        self.se = ConvSE(14, 4)
        self.skip = nn.Conv2d(12, 14, 1)
        self.project = _bn_act(14, 16)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.se(torch.cat([self.a(x), self.b(x)], 1)) + self.skip(x)
        return self.fc(self.project(y).mean((2, 3)))


class Grouped(nn.Module):
    """A grouped conv (groups=4, not depthwise) between two 1x1 convs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 16, 3, 2, act=nn.ReLU)
        self.reduce = _bn_act(16, 16, act=nn.ReLU)
        self.grouped = _bn_act(16, 16, 3, groups=4, act=nn.ReLU)
        self.expand = _bn_act(16, 24, act=nn.ReLU)
        self.fc = nn.Linear(24, num_classes)

    def forward(self, x):
        return self.fc(self.expand(self.grouped(self.reduce(self.stem(x)))).mean((2, 3)))


class UserNet(nn.Module):
    """Everything at once, as a user's model might: a depthwise and a grouped branch concatenated,
    squeeze-excite over the concatenation, hardswish, a mean over H and W."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 16, 3, 2)
        self.dw = _bn_act(16, 16, 3, groups=16)
        self.pw = _bn_act(16, 12)
        self.grouped = _bn_act(16, 16, 3, groups=4, act=nn.ReLU)
        self.se = ConvSE(28, 8)
        self.project = _bn_act(28, 24)
        self.fc = nn.Linear(24, num_classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.se(torch.cat([self.pw(self.dw(x)), self.grouped(x)], 1))
        return self.fc(self.project(y).mean((2, 3)))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle, written out as view -> transpose -> view."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(n, -1, h, w)


class Shuffle(nn.Module):
    """1x1 conv -> channel shuffle -> depthwise -> 1x1 conv, once written out and once as
    nn.ChannelShuffle."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = _bn_act(3, 16, 3, 2, act=nn.ReLU)
        self.pw1 = _bn_act(16, 16, act=nn.ReLU)
        self.dw1 = _bn_act(16, 16, 3, groups=16, act=nn.Identity)
        self.pw2 = _bn_act(16, 24, act=nn.ReLU)
        self.shuffle = nn.ChannelShuffle(4)
        self.pw3 = _bn_act(24, 24, act=nn.ReLU)
        self.fc = nn.Linear(24, num_classes)

    def forward(self, x):
        x = self.pw2(self.dw1(channel_shuffle(self.pw1(self.stem(x)), 4)))
        return self.fc(self.pw3(self.shuffle(x)).mean((2, 3)))


MODELS = [MobileNetV3Block, MobileNetV2Block, TwoBranch, ConcatSE, Grouped, Shuffle, UserNet]


def _randomized(net: type) -> nn.Module:
    """Random weights, BN statistics and affine parameters, so that every channel matters."""
    torch.manual_seed(0)
    model = net()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _members(graph, name: str) -> dict[str, str]:
    return {c.module: c.role for c in graph.group(name).couplings}


def _half_plan(graph, seed: int = 0) -> dict[str, list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return {g.name: torch.randperm(g.size, generator=gen)[: g.size // 2].tolist() for g in graph.groups}


@torch.no_grad()
def _masked(model: nn.Module, graph, plan) -> nn.Module:
    """The original with the plan's channels zeroed where they leave their producers (the group
    sites: what sfp and the gate decorator do before removing them)."""
    masked = copy.deepcopy(model)
    for name, channels in plan.items():
        for c in graph.group(name).sites:
            module = masked.get_submodule(c.module)
            factors = torch.ones(module.weight.shape[0])
            factors[c.positions(torch.tensor(channels))] = 0.0
            scale_outputs(module, factors)
    return masked


@torch.no_grad()
def _ignored(model: nn.Module, graph, plan) -> nn.Module:
    """The original with every consumer's weights for the plan's channels zeroed."""
    ref = copy.deepcopy(model)
    for name, channels in plan.items():
        for c in graph.group(name).couplings:
            if c.role == "in":
                ref.get_submodule(c.module).weight[:, c.positions(torch.tensor(channels))] = 0
    return ref


# ---------------------------------------------------------------------------------------------
# The groups
# ---------------------------------------------------------------------------------------------


def test_mobilenetv3_block_groups_run_through_the_se_multiply():
    graph = build_graph(_randomized(MobileNetV3Block), X)
    # the residual stream: stem, the block's projection, the stride-2 depthwise, the linear SE's
    # outputs (coupled through view(b, c, 1, 1) and the multiply) and the next expansion's inputs
    assert _members(graph, "stem.0") == {
        "stem.0": "out",
        "stem.1": "out",
        "expand.0": "in",
        "project.0": "out",
        "project.1": "out",
        "dw2.0": "dw",
        "dw2.1": "out",
        "se2.fc1": "in",
        "se2.fc2": "out",
        "expand2.0": "in",
    }
    # the expanded channels: expansion, depthwise, the conv SE's input and outputs, projection
    assert _members(graph, "expand.0") == {
        "expand.0": "out",
        "expand.1": "out",
        "dw.0": "dw",
        "dw.1": "out",
        "se.fc1": "in",
        "se.fc2": "out",
        "project.0": "in",
    }
    assert _members(graph, "expand2.0") == {
        "expand2.0": "out",
        "expand2.1": "out",
        "se3.fc1": "in",
        "se3.fc2": "out",
        "head.0": "in",
    }
    # the SE hidden layers and the head's hidden layer are groups of their own; logits are fixed
    for hidden, consumer in (
        ("se.fc1", "se.fc2"),
        ("se2.fc1", "se2.fc2"),
        ("se3.fc1", "se3.fc2"),
        ("head.0", "head.3"),
    ):
        assert _members(graph, hidden) == {hidden: "out", consumer: "in"}
    assert len(graph.groups) == 7
    assert graph.held == ()
    sites = {c.module for c in graph.group("expand.0").sites}
    assert sites == {"expand.1", "dw.1", "se.fc2"}  # the gate of the SE's outputs is at fc2


def test_mobilenetv2_block_groups():
    graph = build_graph(_randomized(MobileNetV2Block), X)
    # stem and the first (residual) block's projection; the second block's expansion reads them
    assert _members(graph, "stem.0") == {
        "stem.0": "out",
        "stem.1": "out",
        "blocks.0.conv.0.0": "in",
        "blocks.0.conv.2": "out",
        "blocks.0.conv.3": "out",
        "blocks.1.conv.0.0": "in",
    }
    assert _members(graph, "blocks.1.conv.2")["blocks.2.conv.3"] == "out"  # the residual of block 2
    assert _members(graph, "blocks.1.conv.0.0")["blocks.1.conv.1.0"] == "dw"
    assert {g.name for g in graph.groups} == {
        "stem.0",
        "blocks.0.conv.0.0",
        "blocks.1.conv.0.0",
        "blocks.1.conv.2",
        "blocks.2.conv.0.0",
        "last.0",
    }


def test_two_branch_concat_offsets_through_pad_and_upsampling():
    graph = build_graph(_randomized(TwoBranch), X)
    a, b = graph.group("a"), graph.group("b")
    assert {(c.module, c.role, c.offset) for c in a.couplings} == {("a", "out", 0), ("bn", "out", 0), ("c", "in", 0)}
    assert {(c.module, c.role, c.offset) for c in b.couplings} == {("b", "out", 0), ("bn", "out", 8), ("c", "in", 8)}
    assert {g.name for g in graph.groups} == {"stem.0", "a", "b", "c"}


def test_a_single_layer_meeting_a_concat_is_split_at_its_boundary():
    graph = build_graph(_randomized(ConcatSE), X)
    a, b = graph.group("a.0"), graph.group("b.0")
    shared = {("se.fc1", "in"), ("se.fc2", "out"), ("skip", "out"), ("project.0", "in")}
    assert {(c.module, c.role, c.offset) for c in a.couplings} == {
        ("a.0", "out", 0),
        ("a.1", "out", 0),
        *((m, r, 0) for m, r in shared),
    }
    assert {(c.module, c.role, c.offset) for c in b.couplings} == {
        ("b.0", "out", 0),
        ("b.1", "out", 0),
        *((m, r, 8) for m, r in shared),
    }
    assert (a.size, b.size) == (8, 6)
    assert {g.name for g in graph.groups} == {"stem.0", "a.0", "b.0", "se.fc1", "project.0"}
    assert graph.held == ()


def test_grouped_conv_keeps_its_input_and_output_channels():
    graph = build_graph(_randomized(Grouped), X)
    assert {g.name for g in graph.groups} == {"stem.0", "expand.0"}  # reduce's and grouped's are kept
    assert graph.held == ("grouped conv grouped.0 (groups=4, 16 -> 16 channels) keeps its input and output channels",)


def test_user_net_keeps_the_grouped_branch_and_prunes_the_rest():
    graph = build_graph(_randomized(UserNet), X)
    # the stem feeds the grouped conv: kept, and with it the depthwise conv on the same channels;
    # the SE's outputs are split between the pointwise branch (prunable) and the grouped one (kept)
    assert {g.name for g in graph.groups} == {"pw.0", "se.fc1", "project.0"}
    assert {(c.module, c.role, c.offset) for c in graph.group("pw.0").couplings} == {
        ("pw.0", "out", 0),
        ("pw.1", "out", 0),
        ("se.fc1", "in", 0),
        ("se.fc2", "out", 0),
        ("project.0", "in", 0),
    }
    assert graph.held == ("grouped conv grouped.0 (groups=4, 16 -> 16 channels) keeps its input and output channels",)


def test_channel_shuffle_keeps_the_shuffled_channels():
    graph = build_graph(_randomized(Shuffle), X)
    # pw1's channels are shuffled by view/transpose/view, pw2's by nn.ChannelShuffle; the stem's
    # and pw3's channels stay prunable
    assert {g.name for g in graph.groups} == {"stem.0", "pw3.0"}
    assert graph.held == (
        "method Tensor.view (node 'view') reshapes the channel dimension",
        "module shuffle (ChannelShuffle) permutes the channels",
    )


@pytest.mark.parametrize(
    "net,classifier", [(MobileNetV3Block, "head.3"), (MobileNetV2Block, "classifier.1"), (TwoBranch, "fc")]
)
def test_groups_agree_with_torch_pruning(net, classifier):
    """(ConcatSE differs on purpose: torch-pruning merges both branches into one group, here the SE's
    and the skip conv's channels are split between the branches' groups.)"""
    tp = pytest.importorskip("torch_pruning")
    model = net().eval()
    real = dict(model.named_modules())
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=X)
    theirs = set()
    for group in dg.get_all_groups(ignored_layers=[real[classifier]], root_module_types=[nn.Conv2d, nn.Linear]):
        theirs.add(frozenset(n for n in (dep.target.name.split(" (")[0] for dep, _ in group) if n in real))
    assert {frozenset(c.module for c in g.couplings) for g in build_graph(model, X).groups} == theirs


# ---------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net", MODELS)
def test_pruned_model_runs_smaller_and_equals_the_masked_original(net):
    model = _randomized(net)
    graph = build_graph(model, X)
    plan = _half_plan(graph)
    assert sum(len(v) for v in plan.values()) > 0
    pruned = graph.prune(plan).eval()
    with torch.no_grad():
        out = pruned(X)
        assert out.shape == model(X).shape
        torch.testing.assert_close(out, _masked(model, graph, plan)(X), atol=ATOL, rtol=0)
        torch.testing.assert_close(out, _ignored(model, graph, plan)(X), atol=ATOL, rtol=0)
    before, after = _stats(model), _stats(pruned)
    assert after.params < before.params and after.macs < before.macs
    assert after.macs == graph.macs({k: len(v) for k, v in plan.items()})
    # pruning nothing changes nothing
    torch.testing.assert_close(graph.prune({}).eval()(X), model(X), atol=0, rtol=0)


@pytest.mark.parametrize("net", [MobileNetV3Block, TwoBranch, ConcatSE, Shuffle, UserNet])
def test_pruned_model_can_be_pruned_again_and_rebuilt_from_its_config(net):
    model = _randomized(net)
    pruned = build_graph(model, X).prune(_half_plan(build_graph(model, X))).eval()
    again = build_graph(pruned, X)
    assert len(again.groups) == len(build_graph(model, X).groups)
    config = json.loads(json.dumps(channel_config(pruned)))
    rebuilt = apply_channel_config(net(), X, config)
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(rebuilt.eval()(X), pruned(X))


@pytest.mark.parametrize("net", [MobileNetV3Block, UserNet])
@pytest.mark.parametrize("method", ["channel", "sfp", "gate"])
def test_structured_pruners_on_the_mobile_models(method, net):
    model = _randomized(net)
    before = _stats(model).params
    ctx = PruneContext(
        example_input=X[:1],
        batches=lambda n: [(X, torch.tensor([1, 2]))] * n,
        loss_fn=F.cross_entropy,
        total_epochs=1,
    )
    cfg = PruneConfig(method, 0.5, schedule="oneshot", options={"taylor_batches": 1} if method != "gate" else {})
    pruner = make_pruner(cfg, ctx)
    model = pruner.setup(model)
    pruner.on_epoch_end(model, 1)
    with torch.no_grad():
        masked = model(X)
    pruned = pruner.finalize(model).eval()
    with torch.no_grad():
        out = pruned(X)
    assert out.shape == (2, 10)
    assert _stats(pruned).params < (0.6 if net is MobileNetV3Block else 0.9) * before
    if method == "gate":  # closed gates zero the channels at their sites: removing them changes nothing
        torch.testing.assert_close(out, masked, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["mobilenetv3-small", "mobilenetv2", "resnet18"])
def test_zoo_mobile_networks_prune_to_the_masked_original(name):
    """The zoo's phone-scale networks (3-channel input; skipped where the zoo lacks one)."""
    from pakd.models import build_model
    from pakd.models.registry import zoo_entry

    if zoo_entry(name) is None:
        pytest.skip(f"no {name} in this zoo")
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, num_classes=10).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    x = X[:1]
    graph = build_graph(model, x)
    assert graph.held == ()
    plan = _half_plan(graph)
    pruned = graph.prune(plan).eval()
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), _masked(model, graph, plan)(x), atol=ATOL, rtol=0)
    assert _stats(pruned).params < 0.5 * _stats(model).params


# ---------------------------------------------------------------------------------------------
# What is refused, and what is kept
# ---------------------------------------------------------------------------------------------


class _Roll(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(torch.roll(self.conv(x), 1, dims=1))


class _SliceChannels(_Roll):
    def forward(self, x):
        y = self.conv(x)
        return self.out(torch.cat([y[:, 4:], y[:, :4]], dim=1))


class _HardCodedGate(_Roll):
    def forward(self, x):
        y = self.conv(x)
        return self.out(y * torch.sigmoid(y.mean((2, 3))).view(-1, 8, 1, 1))


class _SqueezeAll(_Roll):
    def forward(self, x):
        y = self.conv(x)
        return self.out(y * y.mean((2, 3), keepdim=True).squeeze()[:, :, None, None])


class _ChannelMean(_Roll):  # spatial attention (CBAM): a map from the mean over the channels
    def forward(self, x):
        y = self.conv(x)
        return self.out(y * torch.sigmoid(y.mean(1, keepdim=True)))


class _ChannelsLast(_Roll):
    def forward(self, x):
        y = self.conv(x).permute(0, 2, 3, 1)
        return self.out((y * 2).permute(0, 3, 1, 2))


class _LayerScale(_Roll):
    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, 8, 1, 1), 0.1))

    def forward(self, x):
        return self.out(self.conv(x) * self.gamma)


class _ZerosOfTheChannelCount(_Roll):
    def __init__(self):
        super().__init__()
        self.out = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        y = self.conv(x)
        n, c, h, w = y.shape
        return self.out(torch.cat([y, torch.zeros((n, c // 2, h, w))], 1))


class _ZerosOfTheSpatialSize(_Roll):
    def forward(self, x):
        y = self.conv(x)
        return self.out(y + torch.zeros((y.size(0), 1) + y.shape[2:]))


class _CountAfterTheChannels(_Roll):
    def forward(self, x):
        y = F.adaptive_avg_pool2d(self.conv(x), 4)  # (n, 8, 4, 4): 16 rows of 8 after the view
        c = y.size(1)
        return self.out(y.view(y.size(0), -1, c).view_as(y))


class _TokenMixer(nn.Module):
    """A linear layer over the last (spatial) dim of a (N, C, L) tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.mix = nn.Linear(225, 225)
        self.out = nn.Linear(8, 10)

    def forward(self, x):
        y = self.mix(torch.flatten(self.conv(x), 2))
        return self.out(y.mean(2))


class _FlattenAll(_Roll):
    def forward(self, x):
        y = self.conv(x)
        return self.out(torch.flatten(y).view_as(y))


class _PadChannels(_Roll):
    def forward(self, x):
        return self.out(F.pad(self.conv(x), (0, 0, 0, 0, 0, 0)))


class _CrossedConcats(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 6, 3)
        self.c, self.d = nn.Conv2d(3, 6, 3), nn.Conv2d(3, 8, 3)
        self.out = nn.Conv2d(14, 4, 1)

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], 1) + torch.cat([self.c(x), self.d(x)], 1))


def test_an_op_not_understood_is_refused_naming_it_and_the_group():
    with pytest.raises(PruneError, match=r"torch\.roll .*group conv; list that layer in skip"):
        build_graph(_Roll(), X)
    graph = build_graph(_Roll(), X, skip=("conv",))  # ... and accepted once those channels are kept
    assert graph.groups == ()
    assert graph.held == (
        "function torch.roll (node 'roll') is not understood: the channels it reads and produces are kept",
    )
    # a tensor shaped by a channel count reads those channels
    with pytest.raises(PruneError, match=r"through function torch\.zeros .*group conv"):
        build_graph(_ZerosOfTheChannelCount(), X)
    # ... a tensor shaped by the batch and spatial sizes does not
    assert [g.name for g in build_graph(_ZerosOfTheSpatialSize(), X).groups] == ["conv"]


@pytest.mark.parametrize(
    "net,reason",
    [
        (_SliceChannels, "indexes or slices the channels"),
        (_HardCodedGate, "Tensor.view (node 'view') gives the channel dimension a size that does not follow pruning"),
        (_SqueezeAll, "squeezes every size-one dim"),
        (_PadChannels, "pads the channel dimension"),
        (_FlattenAll, "flattens the batch dimension into the channels"),
        (_TokenMixer, "linear layer mix is applied to a rank-3 tensor (over its last dim)"),
        (_CountAfterTheChannels, "sizes another dim by a channel count"),
        (_LayerScale, "combines the channels with a constant tensor (gamma)"),
        (_ChannelsLast, "method Tensor.permute (node 'permute') moves the channel dimension"),
        (_CrossedConcats, "combines tensors whose channels are concatenated differently"),
    ],
)
def test_ops_that_cannot_follow_a_removal_keep_the_channels(net, reason):
    graph = build_graph(net(), X)
    assert graph.groups == ()  # the convs' outputs are the only prunable channels, and they are kept
    assert any(reason in held for held in graph.held), graph.held


def test_a_pruner_with_nothing_to_prune_says_why():
    pruner = make_pruner(PruneConfig("channel", 0.5, schedule="oneshot"), PruneContext(example_input=X))
    with pytest.raises(PruneError, match=r"finds no channel of _SliceChannels .* indexes or slices the channels"):
        pruner.setup(_SliceChannels())


def test_an_exported_program_is_refused():
    exported = torch.export.export(_randomized(MobileNetV2Block), (X,)).module()
    with pytest.raises(PruneError, match=r"torch\.ops\.aten\.conv2d\.default .* is an ATen op"):
        build_graph(exported, X)


@pytest.mark.parametrize(
    "index,keeps",
    [
        ((slice(None), slice(None), None, None), True),
        ((Ellipsis, None, None), True),
        ((slice(None), slice(None), 0, slice(1, 3)), True),
        ((slice(None), slice(None, 4)), False),
        ((slice(None), None), False),
        (0, False),
        ((slice(None), 2), False),
    ],
)
def test_indexing_that_only_reshapes_keeps_the_channel_dim(index, keeps):
    from pakd.prune.depgraph import _index_keeps_channels

    assert _index_keeps_channels(index, 4) is keeps


def test_a_reduction_over_the_channels_keeps_them():
    graph = build_graph(_ChannelMean(), X)
    assert graph.groups == ()
    assert graph.held == ("method Tensor.mean (node 'mean') reduces over the batch or channel dimension",)


# ---------------------------------------------------------------------------------------------
# Unstructured pruning and k-means weight sharing on the same models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net", [MobileNetV3Block, Grouped])
def test_unstructured_and_kmeans_on_depthwise_and_pointwise_weights(net):
    model = _randomized(net)
    ctx = PruneContext(example_input=X)
    pruner = make_pruner(PruneConfig("unstructured", 0.6, schedule="oneshot"), ctx)
    model = pruner.finalize(pruner.setup(model))
    weights = prunable_weights(model)
    depthwise = [n for n, w in weights.items() if w.dim() == 4 and w.shape[1] == 1]
    pointwise = [n for n, w in weights.items() if w.dim() == 4 and w.shape[2:] == (1, 1)]
    assert depthwise or net is Grouped
    assert pointwise
    for name, w in weights.items():  # layer scope: every layer, depthwise 3x3 and 1x1 alike, at 60%
        assert (w == 0).float().mean().item() == pytest.approx(0.6, abs=0.5 / w.numel() + 1e-6), name
    sharing = WeightSharing(KMeansConfig(bits={"conv": 4, "linear": 3}))
    sharing.setup(model)
    for name, w in prunable_weights(model).items():
        nonzero = w[w != 0]
        assert (w == 0).float().mean().item() == pytest.approx(0.6, abs=0.5 / w.numel() + 1e-6), name
        assert 1 <= nonzero.unique().numel() <= (16 if w.dim() == 4 else 8), name
    with torch.no_grad():
        assert torch.isfinite(model(X)).all()
