"""Channel dependency graph: which channels of which layers must be removed together, and the
surgery that removes them.

The model is traced with ``torch.fx`` and run once on an example input (shape propagation). Every
tensor's channel dimension (dim 1) is described as a *layout*: consecutive channel variables, each
with the number of positions one channel occupies (``repeat``: 1, or H*W once a flatten merged the
spatial dims into the features). A conv or linear layer creates a variable for its outputs; ops
that combine tensors element-wise (residual ``add``, ``mul`` of an attention map) unify the
variables of their inputs; ``torch.cat`` on dim 1 concatenates layouts. The equivalence classes of
variables are the channel *groups*: removing channel ``i`` of a group removes position ``i`` of
every layer coupled to it (producers' filters, BN statistics, depthwise filters, consumers' input
channels). Variables that reach the network input or output, or a layer listed in ``skip``, are
fixed.

Everything that is not understood raises :class:`PruneError` naming the op, so a pruned model is
never silently wrong. How a layer type takes part (traced, weights for importance, loses channels,
rescales its outputs) is one entry of ``_MODULE_OPS``; how a function or method passes channels is
one entry of ``_FUNCTION_RULES`` / ``_METHOD_RULES``.
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .base import PruneError

Layout = tuple[tuple[int, int], ...]  # a tensor's channel dim as (variable, positions per channel), in order

OUT, IN, DW = "out", "in", "dw"
CONFIG_FORMAT = 1


@dataclass(frozen=True)
class Coupling:
    """One place where a group's channels live: an axis of ``module``'s weights.

    ``role`` is ``"out"`` for channels a layer produces or normalises (weight dim 0, BN
    statistics), ``"in"`` for channels a conv/linear consumes (weight dim 1) and ``"dw"`` for a
    depthwise conv, whose input and output channels are the same. Channel ``c`` of the group sits at
    positions ``offset + c * repeat + [0, repeat)`` of that axis (``offset``: channels concatenated
    before it; ``repeat``: H*W when a flatten feeds a linear layer).
    """

    module: str
    role: str
    offset: int = 0
    repeat: int = 1

    def positions(self, channels: torch.Tensor) -> torch.Tensor:
        """Indices along the module's axis that hold ``channels`` of the group."""
        return (self.offset + channels[:, None] * self.repeat + torch.arange(self.repeat)).flatten()

    def gather(self, per_position: torch.Tensor, size: int) -> torch.Tensor:
        """Sum a per-position tensor of the module's axis into one value per group channel."""
        return per_position[self.offset : self.offset + size * self.repeat].reshape(size, self.repeat).sum(1)


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are removed together. ``name`` is the first layer producing them."""

    name: str
    size: int
    couplings: tuple[Coupling, ...]
    # Where the channels leave their producer chain: the BN after a conv (or the conv/linear itself
    # when no BN follows). Zeroing a channel at every site makes it exactly zero downstream
    # (through zero-preserving activations), which is what gates and masks rely on.
    sites: tuple[Coupling, ...]


@dataclass(frozen=True)
class _Layer:
    """What the MAC count of a conv/linear layer depends on (batch of one)."""

    depthwise: bool
    per_pair: int  # MACs per (output channel, input channel of its group): kernel size * output positions


# ---------------------------------------------------------------------------------------------
# Per-module-type behaviour
# ---------------------------------------------------------------------------------------------


def _keep(n: int, removed: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[removed] = False
    return mask.nonzero().flatten()


def _param(p: torch.Tensor, keep: torch.Tensor, dim: int) -> nn.Parameter:
    return nn.Parameter(p.detach().index_select(dim, keep).clone(), requires_grad=p.requires_grad)


def _prune_conv(m: nn.Module, role: str, removed: torch.Tensor) -> None:
    dim = 1 if role == IN else 0
    keep = _keep(m.weight.shape[dim], removed)
    m.weight = _param(m.weight, keep, dim)
    if role == IN:
        m.in_channels = len(keep)
        return
    if m.bias is not None:
        m.bias = _param(m.bias, keep, 0)
    m.out_channels = len(keep)
    if role == DW:
        m.in_channels = m.groups = len(keep)


def _prune_linear(m: nn.Linear, role: str, removed: torch.Tensor) -> None:
    dim = 1 if role == IN else 0
    keep = _keep(m.weight.shape[dim], removed)
    m.weight = _param(m.weight, keep, dim)
    if role == IN:
        m.in_features = len(keep)
    else:
        if m.bias is not None:
            m.bias = _param(m.bias, keep, 0)
        m.out_features = len(keep)


def _prune_norm(m: nn.modules.batchnorm._BatchNorm, role: str, removed: torch.Tensor) -> None:
    keep = _keep(m.num_features, removed)
    if m.affine:
        m.weight = _param(m.weight, keep, 0)
        m.bias = _param(m.bias, keep, 0)
    if m.track_running_stats:
        m.running_mean = m.running_mean.index_select(0, keep).clone()
        m.running_var = m.running_var.index_select(0, keep).clone()
    m.num_features = len(keep)


def _prune_prelu(m: nn.PReLU, role: str, removed: torch.Tensor) -> None:
    keep = _keep(m.num_parameters, removed)
    m.weight = _param(m.weight, keep, 0)
    m.num_parameters = len(keep)


def _weights_rows(m: nn.Module, role: str) -> torch.Tensor:
    """Weights with one row per position of the coupled axis (filters, or input-channel slices)."""
    w = m.weight.detach()
    return (w.transpose(0, 1) if role == IN else w).flatten(1)


def _norm_rows(m: nn.Module, role: str) -> torch.Tensor | None:
    return m.weight.detach()[:, None] if m.affine else None


def _scale_out(m: nn.Module, factors: torch.Tensor) -> None:
    """Multiply output channel ``j`` of a conv/linear by ``factors[j]`` (folds a gate, zeroes a filter)."""
    shape = (-1,) + (1,) * (m.weight.dim() - 1)
    m.weight.mul_(factors.view(shape))
    if m.bias is not None:
        m.bias.mul_(factors)


def _scale_norm(m: nn.Module, factors: torch.Tensor) -> None:
    if not m.affine:
        raise PruneError(f"cannot rescale the outputs of {type(m).__name__} without affine parameters")
    m.weight.mul_(factors)
    m.bias.mul_(factors)


# ---------------------------------------------------------------------------------------------
# Tracing rules. A rule gets the builder and the node; it returns the node's output layout
# (None: the output carries no channels) or raises PruneError.
# ---------------------------------------------------------------------------------------------


def _prod(xs: Iterable[int]) -> int:
    return math.prod(int(x) for x in xs)


def _passthrough(b: _Builder, node: fx.Node, *_: object) -> Layout | None:
    """Per-channel ops (activations, pooling, dropout, identity): channels pass unchanged; any
    further tensor argument must not carry channels."""
    if not node.all_input_nodes:
        return None
    first, *rest = node.all_input_nodes
    for other in rest:
        if other in b.layouts:
            raise PruneError(f"{b.describe(node)} takes a second channel-carrying tensor ({other.name}); not supported")
    return b.layouts.get(first)


def _trace_conv(b: _Builder, node: fx.Node, m: nn.Module) -> Layout | None:
    name = b.claim(node)
    x = b.layouts.get(node.args[0])
    per_pair = _prod(m.kernel_size) * _prod(b.shape(node)[2:])
    if m.groups == 1:
        b.layers[name] = _Layer(depthwise=False, per_pair=per_pair)
        b.consume(name, IN, x)
        return b.produce(name, m.out_channels)
    if m.groups == m.in_channels == m.out_channels:
        b.layers[name] = _Layer(depthwise=True, per_pair=per_pair)
        b.consume(name, DW, x)
        return x
    raise PruneError(
        f"grouped conv {name} (groups={m.groups}, {m.in_channels} -> {m.out_channels} channels) is "
        "not supported: only groups=1 and depthwise convs (groups = in = out channels)"
    )


def _trace_linear(b: _Builder, node: fx.Node, m: nn.Linear) -> Layout | None:
    name = b.claim(node)
    rank = len(b.shape(node.args[0]))
    if rank != 2:
        raise PruneError(
            f"linear layer {name} is applied to a rank-{rank} tensor; only (batch, features) inputs are supported"
        )
    b.layers[name] = _Layer(depthwise=False, per_pair=1)
    b.consume(name, IN, b.layouts.get(node.args[0]))
    return b.produce(name, m.out_features)


def _trace_norm(b: _Builder, node: fx.Node, m: nn.Module) -> Layout | None:
    name = b.claim(node)
    x = b.layouts.get(node.args[0])
    b.consume(name, OUT, x)
    return x


def _trace_prelu(b: _Builder, node: fx.Node, m: nn.PReLU) -> Layout | None:
    return _trace_norm(b, node, m) if m.num_parameters > 1 else _passthrough(b, node)


def _trace_flatten_module(b: _Builder, node: fx.Node, m: nn.Flatten) -> Layout | None:
    return b.flatten(node, node.args[0], m.start_dim, m.end_dim)


@dataclass(frozen=True)
class _ModuleOp:
    trace: Callable[..., Layout | None]
    prune: Callable[[nn.Module, str, torch.Tensor], None] | None = None  # (module, role, removed positions)
    rows: Callable[[nn.Module, str], torch.Tensor | None] | None = None  # weights per position (importance)
    scale: Callable[[nn.Module, torch.Tensor], None] | None = None  # multiply its output channels


_CONV = _ModuleOp(_trace_conv, _prune_conv, _weights_rows, _scale_out)
_NORM = _ModuleOp(_trace_norm, _prune_norm, _norm_rows, _scale_norm)
_PASS = _ModuleOp(_passthrough)
_MODULE_OPS: dict[type, _ModuleOp] = {
    nn.Conv1d: _CONV,
    nn.Conv2d: _CONV,
    nn.Conv3d: _CONV,
    nn.Linear: _ModuleOp(_trace_linear, _prune_linear, _weights_rows, _scale_out),
    nn.BatchNorm1d: _NORM,
    nn.BatchNorm2d: _NORM,
    nn.BatchNorm3d: _NORM,
    nn.PReLU: _ModuleOp(_trace_prelu, _prune_prelu),
    nn.Flatten: _ModuleOp(_trace_flatten_module),
    **{
        t: _PASS
        for t in (
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.ELU,
            nn.GELU,
            nn.SiLU,
            nn.Mish,
            nn.Hardswish,
            nn.Hardsigmoid,
            nn.Hardtanh,
            nn.Sigmoid,
            nn.Tanh,
            nn.Identity,
            nn.Dropout,
            nn.Dropout1d,
            nn.Dropout2d,
            nn.Dropout3d,
            nn.AlphaDropout,
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.MaxPool3d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AvgPool3d,
            nn.AdaptiveAvgPool1d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveAvgPool3d,
            nn.AdaptiveMaxPool1d,
            nn.AdaptiveMaxPool2d,
            nn.AdaptiveMaxPool3d,
            nn.Upsample,
        )
    },
}


def _module_op(module: nn.Module) -> _ModuleOp | None:
    # Exact type first, then the nearest registered base class (subclasses of nn layers).
    for cls in type(module).__mro__:
        if cls in _MODULE_OPS:
            return _MODULE_OPS[cls]
    return None


def _arg(node: fx.Node, index: int, name: str, default: object) -> object:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _binary(b: _Builder, node: fx.Node) -> Layout | None:
    """Element-wise arithmetic with broadcasting: operands whose channels line up are coupled."""
    if b.meta(node) is None:
        return None  # arithmetic on sizes
    rank = len(b.shape(node))
    layouts = []
    for operand in node.args[:2]:
        if not isinstance(operand, fx.Node) or b.meta(operand) is None:
            continue  # a Python scalar
        shape = b.shape(operand)
        if operand in b.layouts and len(shape) != rank and shape[1] > 1:
            raise PruneError(
                f"{b.describe(node)} broadcasts channels ({operand.name}) to a tensor of another rank; not supported"
            )
        dim = 1 - (rank - len(shape))  # the operand's dim that broadcasts onto channel dim 1
        if dim < 0 or shape[dim] == 1:
            continue  # broadcast over the channels
        if operand not in b.layouts:
            raise PruneError(
                f"{b.describe(node)} combines the channels with a constant tensor ({operand.name}); not supported"
            )
        layouts.append(b.layouts[operand])
    return b.unify(node, layouts) if layouts else None


def _cat(b: _Builder, node: fx.Node) -> Layout | None:
    tensors = list(_arg(node, 0, "tensors", ()))
    dim = _arg(node, 1, "dim", 0)
    dim %= len(b.shape(node))
    if any(t not in b.layouts for t in tensors):
        if any(t in b.layouts for t in tensors):
            raise PruneError(f"{b.describe(node)} concatenates channels with a constant tensor; not supported")
        return None
    if dim == 1:
        return tuple(entry for t in tensors for entry in b.layouts[t])
    return b.unify(node, [b.layouts[t] for t in tensors])


def _flatten_fn(b: _Builder, node: fx.Node) -> Layout | None:
    return b.flatten(node, node.args[0], _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))


def _reshape(b: _Builder, node: fx.Node) -> Layout | None:
    """Only ``x.view(n, -1)`` / ``reshape`` to (batch, features), i.e. a flatten, is understood."""
    x = node.args[0]
    if x not in b.layouts:
        return None
    sizes = node.args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    sizes = sizes or tuple(node.kwargs.get("shape", ()))
    in_shape, out_shape = b.shape(x), b.shape(node)
    if len(sizes) == 2 and sizes[1] == -1 and out_shape[0] == in_shape[0]:
        return b.flatten(node, x, 1, -1)
    raise PruneError(
        f"{b.describe(node)} reshapes the channel dimension; only flattening to (batch, -1) before a "
        "linear layer is supported"
    )


def _reduce(b: _Builder, node: fx.Node) -> Layout | None:
    """mean/sum/amax over spatial dims (global pooling) keep the channels."""
    x = node.args[0]
    if x not in b.layouts:
        return None
    dims = _arg(node, 1, "dim", None)
    rank = len(b.shape(x))
    dims = [dims] if isinstance(dims, int) else dims
    if dims is None or any(d % rank in (0, 1) for d in dims):
        raise PruneError(f"{b.describe(node)} reduces over the batch or channel dimension; not supported")
    return b.layouts[x]


def _getitem(b: _Builder, node: fx.Node) -> Layout | None:
    if node.args[0] in b.layouts:
        raise PruneError(f"{b.describe(node)} indexes or slices a channel-carrying tensor; not supported")
    return None


def _no_channels(b: _Builder, node: fx.Node) -> Layout | None:
    """Sizes, ranks, shapes; an attribute that is itself a tensor (``x.T``) is refused."""
    if b.meta(node) is not None and node.args[0] in b.layouts:
        raise PruneError(
            f"{b.describe(node)} ({node.args[1]!r}) returns a tensor from a channel-carrying tensor; not supported"
        )
    return None


_UNARY_FUNCTIONS = (
    torch.relu,
    torch.relu_,
    F.relu,
    F.relu6,
    F.hardtanh,
    F.leaky_relu,
    F.elu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    torch.clamp,
    torch.clip,
    torch.abs,
    torch.neg,
    operator.neg,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.interpolate,
)
_BINARY_FUNCTIONS = (
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.iadd,
    operator.isub,
    operator.imul,
    operator.itruediv,
    torch.add,
    torch.sub,
    torch.mul,
    torch.div,
    torch.maximum,
    torch.minimum,
)
_FUNCTION_RULES: dict[object, Callable[[_Builder, fx.Node], Layout | None]] = {
    **{f: _passthrough for f in _UNARY_FUNCTIONS},
    **{f: _binary for f in _BINARY_FUNCTIONS},
    torch.cat: _cat,
    torch.concat: _cat,
    torch.concatenate: _cat,
    torch.flatten: _flatten_fn,
    torch.reshape: _reshape,
    torch.mean: _reduce,
    torch.sum: _reduce,
    torch.amax: _reduce,
    operator.getitem: _getitem,
    getattr: _no_channels,
}
_METHOD_RULES: dict[str, Callable[[_Builder, fx.Node], Layout | None]] = {
    **{
        m: _passthrough
        for m in (
            "relu",
            "relu_",
            "sigmoid",
            "sigmoid_",
            "tanh",
            "tanh_",
            "clamp",
            "clamp_",
            "clip",
            "abs",
            "neg",
            "contiguous",
            "clone",
        )
    },
    **{m: _binary for m in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_")},
    "flatten": _flatten_fn,
    "view": _reshape,
    "reshape": _reshape,
    "mean": _reduce,
    "sum": _reduce,
    "amax": _reduce,
    "size": _no_channels,
    "dim": _no_channels,
}


# ---------------------------------------------------------------------------------------------
# Building the graph
# ---------------------------------------------------------------------------------------------


class _Builder:
    """Walks the traced graph once, assigning layouts and unifying channel variables (union-find)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.modules = dict(gm.named_modules())
        self.layouts: dict[fx.Node, Layout] = {}
        self.layers: dict[str, _Layer] = {}
        self.parent: list[int] = []
        self.size: list[int] = []
        self.fixed: list[bool] = []
        self.producer: list[str | None] = []
        self.couplings: list[tuple[int, Coupling]] = []  # in creation (graph) order
        self.single_user_norm: set[str] = set()  # conv/linear whose only user is a BN module
        self._claimed: set[str] = set()

    # -- variables -------------------------------------------------------------------------
    def new_var(self, size: int, producer: str | None, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.fixed.append(fixed)
        self.producer.append(producer)
        return len(self.parent) - 1

    def find(self, v: int) -> int:
        while self.parent[v] != v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def union(self, a: int, b: int) -> None:
        ra, rb = sorted((self.find(a), self.find(b)))
        if ra != rb:
            self.parent[rb] = ra  # the earlier variable stays the root: names follow graph order
            self.fixed[ra] = self.fixed[ra] or self.fixed[rb]

    def fix(self, layout: Layout) -> None:
        for v, _ in layout:
            self.fixed[self.find(v)] = True

    # -- helpers used by the rules ---------------------------------------------------------
    def meta(self, node: object) -> TensorMetadata | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        return meta if isinstance(meta, TensorMetadata) else None

    def shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = self.meta(node)
        if meta is None:
            raise PruneError(f"{self.describe(node)} does not produce a single tensor; not supported")
        return tuple(meta.shape)

    def describe(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"module {node.target} ({type(self.modules[node.target]).__name__})"
        if node.op == "call_method":
            return f"method Tensor.{node.target} (node {node.name!r})"
        target = node.target
        owner = getattr(target, "__module__", None) or ""
        if owner.startswith("torch.nn.functional") or owner == "torch._C._nn":
            owner = "torch.nn.functional"
        elif owner.startswith("torch"):
            owner = "torch"
        elif owner == "_operator":
            owner = "operator"
        qual = getattr(target, "__name__", repr(target))
        return f"function {owner + '.' if owner else ''}{qual} (node {node.name!r})"

    def claim(self, node: fx.Node) -> str:
        name = str(node.target)
        if name in self._claimed:
            raise PruneError(f"module {name} is called more than once; pruning shared layers is not supported")
        self._claimed.add(name)
        return name

    def consume(self, module: str, role: str, layout: Layout | None) -> None:
        offset = 0
        for v, repeat in layout or ():
            self.couplings.append((v, Coupling(module, role, offset, repeat)))
            offset += self.size[v] * repeat

    def produce(self, module: str, channels: int) -> Layout:
        v = self.new_var(channels, module)
        self.couplings.append((v, Coupling(module, OUT)))
        return ((v, 1),)

    def unify(self, node: fx.Node, layouts: list[Layout]) -> Layout:
        first = layouts[0]
        for other in layouts[1:]:
            if len(other) != len(first) or any(
                self.size[a] != self.size[b] or ra != rb for (a, ra), (b, rb) in zip(first, other, strict=True)
            ):
                raise PruneError(
                    f"{self.describe(node)} combines tensors whose channels are concatenated differently; not supported"
                )
            for (a, _), (b, _) in zip(first, other, strict=True):
                self.union(a, b)
        return first

    def flatten(self, node: fx.Node, x: fx.Node, start: int, end: int) -> Layout | None:
        if x not in self.layouts:
            return None
        shape = self.shape(x)
        start, end = start % len(shape), end % len(shape)
        if start == 0 and end > 0:
            raise PruneError(f"{self.describe(node)} flattens the batch dimension into the channels; not supported")
        if start != 1 or end == 1:
            return self.layouts[x]  # the channel dim is untouched
        factor = _prod(shape[2 : end + 1])
        return tuple((v, repeat * factor) for v, repeat in self.layouts[x])

    # -- the walk --------------------------------------------------------------------------
    def run(self, graph: fx.Graph) -> None:
        for node in graph.nodes:
            if node.op == "placeholder":
                meta = self.meta(node)
                if meta is not None and len(meta.shape) >= 2:
                    self.layouts[node] = ((self.new_var(int(meta.shape[1]), None, fixed=True), 1),)
            elif node.op == "output":
                for arg in node.all_input_nodes:
                    if arg in self.layouts:
                        self.fix(self.layouts[arg])
            elif node.op in ("call_module", "call_function", "call_method"):
                layout = self.visit(node)
                if layout is not None:
                    self.layouts[node] = layout
            # get_attr: parameters and constants carry no channel variables

        for node in graph.nodes:  # conv/linear whose only user is a BN: the BN is the gate site
            if node.op == "call_module" and node.target in self.layers and len(node.users) == 1:
                (user,) = node.users
                if user.op == "call_module" and _module_op(self.modules[user.target]) is _NORM:
                    self.single_user_norm.add(str(node.target))

    def visit(self, node: fx.Node) -> Layout | None:
        if node.op == "call_module":
            module = self.modules[node.target]
            op = _module_op(module)
            rule = (lambda b, n: op.trace(b, n, module)) if op is not None else None
        elif node.op == "call_function":
            rule = _FUNCTION_RULES.get(node.target)
        else:
            rule = _METHOD_RULES.get(node.target)
        if rule is None:
            if any(arg in self.layouts for arg in node.all_input_nodes):
                raise PruneError(
                    f"cannot prune through {self.describe(node)}: the op is not supported by structured pruning"
                )
            return None  # computes on constants only
        return rule(self, node)

    def groups(self, skip: tuple[str, ...]) -> tuple[ChannelGroup, ...]:
        def skipped(module: str) -> bool:
            return any(module == s or module.startswith(s + ".") for s in skip)

        for v, c in self.couplings:
            if skipped(c.module):
                self.fixed[self.find(v)] = True
        members: dict[int, list[Coupling]] = {}
        for v, c in self.couplings:
            root = self.find(v)
            if not self.fixed[root]:
                members.setdefault(root, []).append(c)
        groups = []
        for root in sorted(members):
            couplings = tuple(members[root])
            sites = tuple(
                c
                for c in couplings
                if c.role != IN
                and (
                    _module_op(self.modules[c.module]) is _NORM
                    or (c.module in self.layers and c.module not in self.single_user_norm)
                )
            )
            groups.append(ChannelGroup(self.producer[root], self.size[root], couplings, sites))
        return tuple(groups)


def _trace(model: nn.Module, example_input: torch.Tensor) -> fx.GraphModule:
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, ... for data-dependent Python
        raise PruneError(
            f"torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: {exc}); "
            "structured pruning needs a traceable forward"
        ) from exc
    modes = {m: m.training for m in model.modules()}
    model.eval()  # shape propagation must not update BN statistics
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    finally:
        for m, training in modes.items():
            m.training = training
    return gm


class DepGraph:
    """The channel groups of one model (built by :func:`build_graph`)."""

    def __init__(self, model: nn.Module, groups: tuple[ChannelGroup, ...], layers: dict[str, _Layer]) -> None:
        self.model = model
        self.groups = groups
        self._by_name = {g.name: g for g in groups}
        self.layers = layers  # conv/linear layers (the ones with MACs), by name

    def group(self, name: str) -> ChannelGroup:
        try:
            return self._by_name[name]
        except KeyError:
            raise PruneError(f"no prunable channel group named {name!r}; groups: {', '.join(self._by_name)}") from None

    def macs(self, removed: Mapping[str, int] | None = None) -> int:
        """MACs of the conv/linear layers for one input, after removing ``removed[group]`` channels
        of each named group (same count as :func:`pakd.metrics.model_stats`)."""
        lost: dict[tuple[str, str], int] = {}
        for name, count in (removed or {}).items():
            for c in self.group(name).couplings:
                role = IN if c.role == IN else OUT
                lost[c.module, role] = lost.get((c.module, role), 0) + count * c.repeat
        total = 0
        for name, layer in self.layers.items():
            m = self.model.get_submodule(name)
            n_out = m.weight.shape[0] - lost.get((name, OUT), 0)
            n_in = 1 if layer.depthwise else m.weight.shape[1] - lost.get((name, IN), 0)
            total += n_out * n_in * layer.per_pair
        return total

    def prune(self, plan: Mapping[str, Iterable[int]]) -> nn.Module:
        """A copy of the model with ``plan[group]`` channels (original indices) removed."""
        removed: dict[tuple[str, str], list[torch.Tensor]] = {}
        for name, channels in plan.items():
            group = self.group(name)
            chans = torch.tensor(sorted({int(c) for c in channels}), dtype=torch.long)
            if len(chans) == 0:
                continue
            if chans[0] < 0 or chans[-1] >= group.size:
                raise PruneError(f"plan for group {name} names channels outside [0, {group.size})")
            if len(chans) == group.size:
                raise PruneError(f"plan removes all {group.size} channels of group {name}")
            for c in group.couplings:
                removed.setdefault((c.module, c.role), []).append(c.positions(chans))
        pruned = copy.deepcopy(self.model)
        for (name, role), positions in removed.items():
            module = pruned.get_submodule(name)
            _module_op(module).prune(module, role, torch.cat(positions))
        return pruned


def build_graph(model: nn.Module, example_input: torch.Tensor, skip: Iterable[str] = ()) -> DepGraph:
    """Trace ``model`` on ``example_input`` and find its prunable channel groups.

    ``skip`` names modules (or module prefixes) that must keep all their weights: every group
    touching them is fixed. The network input and output channels are always fixed.
    """
    gm = _trace(model, example_input)
    builder = _Builder(gm)
    builder.run(gm.graph)
    return DepGraph(model, builder.groups(tuple(skip)), builder.layers)


def prune_channels(model: nn.Module, example_input: torch.Tensor, plan: Mapping[str, Iterable[int]]) -> nn.Module:
    """A physically smaller copy of ``model`` without the channels ``plan`` names.

    ``plan`` maps a group name (see :attr:`ChannelGroup.name`) to the channel indices to remove;
    the result is a plain dense module of the same class, with fewer parameters and MACs.
    """
    return build_graph(model, example_input).prune(plan)


def channel_rows(module: nn.Module, role: str) -> torch.Tensor | None:
    """``module``'s weights with one row per position of the coupled axis, for importance
    criteria (None when the layer has no weights that rank channels, e.g. a PReLU)."""
    op = _module_op(module)
    return op.rows(module, role) if op is not None and op.rows is not None else None


@torch.no_grad()
def scale_outputs(module: nn.Module, factors: torch.Tensor) -> None:
    """Multiply the output channels of a conv/linear/BN layer in place by ``factors``."""
    op = _module_op(module)
    if op is None or op.scale is None:
        raise PruneError(f"cannot rescale the outputs of {type(module).__name__}")
    op.scale(module, factors.to(module.weight.device, module.weight.dtype))


def channel_config(model: nn.Module) -> dict:
    """The channel counts of every prunable layer, as plain JSON-able data (save it with the
    weights; :func:`apply_channel_config` rebuilds the shapes from the original architecture)."""
    layers = {}
    for name, m in model.named_modules():
        op = _module_op(m)
        if op is None or op.prune is None:
            continue
        if isinstance(m, nn.Linear):
            layers[name] = {"in": m.in_features, "out": m.out_features}
        elif isinstance(m, nn.PReLU):
            layers[name] = {"in": m.num_parameters, "out": m.num_parameters}
        elif op is _NORM:
            layers[name] = {"in": m.num_features, "out": m.num_features}
        else:
            layers[name] = {"in": m.in_channels, "out": m.out_channels}
    return {"format": CONFIG_FORMAT, "layers": layers}


def apply_channel_config(model: nn.Module, example_input: torch.Tensor, config: Mapping) -> nn.Module:
    """A copy of the freshly built (unpruned) ``model`` with the channel counts of ``config``, so
    that the state dict saved from the pruned model loads into it. Which channels are dropped does
    not matter: the weights are replaced by the loaded ones."""
    if config.get("format") != CONFIG_FORMAT or not isinstance(config.get("layers"), Mapping):
        raise PruneError(f"not a channel config (format {CONFIG_FORMAT}): {sorted(config)}")
    layers = config["layers"]
    graph = build_graph(model, example_input)
    plan = {}
    for group in graph.groups:
        if group.name not in layers:
            raise PruneError(f"channel config has no layer {group.name!r}; was it made for another architecture?")
        size = int(layers[group.name]["out"])
        if not 1 <= size <= group.size:
            raise PruneError(f"channel config gives {group.name} {size} channels; the architecture has {group.size}")
        plan[group.name] = range(size, group.size)
    pruned = graph.prune(plan)
    got = channel_config(pruned)["layers"]
    wrong = sorted(name for name in set(got) | set(layers) if got.get(name) != layers.get(name))
    if wrong:
        raise PruneError(
            f"channel config does not fit this architecture: layer {wrong[0]} should have "
            f"{layers.get(wrong[0])} channels, the rebuilt model has {got.get(wrong[0])}"
        )
    return pruned
