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
fixed. When one variable meets a concatenation (``x * se(x)`` after a ``torch.cat``), it is split
at the concatenation's boundaries.

Ops the channels cannot be removed through, but whose effect is known (grouped convs, channel
shuffles, channel slices, reductions over the channels, reshapes that split, move or hard-code
the channel count), *hold* them: their inputs' variables are fixed and their outputs get new,
fixed ones; :attr:`DepGraph.held` lists why. An op not understood gets fixed outputs too, and its
inputs must end up fixed for another reason, or :class:`PruneError` names the op; so a pruned
model is never silently wrong. ``size(1)`` / ``shape[1]`` values are followed: a reshape to one
couples the channels, a tensor built from one reads them. How a layer type takes part (traced, weights for importance, loses channels,
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
    """Per-channel ops (activations, pooling, dropout, identity): channels pass unchanged. A
    further tensor argument with channels of its own (a per-channel clamp bound) keeps them."""
    if not node.all_input_nodes:
        return None
    first, *rest = node.all_input_nodes
    for other in rest:
        if other in b.layouts or b.channel_sized(other, len(b.shape(node)) if b.meta(node) else 0):
            return b.hold(node, f"{b.describe(node)} takes a second tensor with channels ({other.name})", first, other)
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
    # A grouped conv (or a depthwise one with a channel multiplier) ties every output channel to
    # one block of input channels; removing single channels would break the blocks. Its input and
    # output channels are kept (whole-group removal is not implemented).
    b.layers[name] = _Layer(depthwise=False, per_pair=per_pair)
    b.hold_layout(
        x,
        f"grouped conv {name} (groups={m.groups}, {m.in_channels} -> {m.out_channels} channels) keeps "
        "its input and output channels",
    )
    return ((b.new_var(m.out_channels, name, fixed=True), 1),)


def _trace_linear(b: _Builder, node: fx.Node, m: nn.Linear) -> Layout | None:
    name = b.claim(node)
    shape = b.shape(node)
    if len(shape) > 2:  # acts on the last dim, once per position of the others (its MACs follow dim 1)
        b.layers[name] = _Layer(depthwise=False, per_pair=_prod(shape[1:-1]))
        x = b.layouts.get(node.args[0])
        b.hold_layout(x, f"linear layer {name} is applied to a rank-{len(shape)} tensor (over its last dim)")
        return x
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


def _trace_pad_module(b: _Builder, node: fx.Node, m: nn.Module) -> Layout | None:
    return b.pad(node, node.args[0], tuple(m.padding))


def _trace_shuffle_module(b: _Builder, node: fx.Node, m: nn.Module) -> Layout | None:
    return b.hold(node, f"{b.describe(node)} permutes the channels", node.args[0])


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
            nn.UpsamplingNearest2d,
            nn.UpsamplingBilinear2d,
        )
    },
    **{
        t: _ModuleOp(_trace_pad_module)
        for t in (
            nn.ZeroPad1d,
            nn.ZeroPad2d,
            nn.ZeroPad3d,
            nn.ConstantPad1d,
            nn.ConstantPad2d,
            nn.ConstantPad3d,
            nn.ReflectionPad1d,
            nn.ReflectionPad2d,
            nn.ReflectionPad3d,
            nn.ReplicationPad1d,
            nn.ReplicationPad2d,
            nn.ReplicationPad3d,
            nn.CircularPad1d,
            nn.CircularPad2d,
            nn.CircularPad3d,
        )
    },
    nn.ChannelShuffle: _ModuleOp(_trace_shuffle_module),
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
    """Element-wise arithmetic with broadcasting: operands whose channels line up are coupled; an
    operand of one channel (a spatial map, a (N, 1, 1, 1) scale) or a scalar broadcasts over them."""
    operands = [a for a in node.args[:2] if isinstance(a, fx.Node)]
    if b.meta(node) is None:  # arithmetic on sizes
        b.count_of(node, node.all_input_nodes)
        return None
    rank = len(b.shape(node))
    layouts, why = [], None
    for operand in operands:
        if operand in b.counts:
            why = f"{b.describe(node)} computes with a channel count"
            continue
        if b.meta(operand) is None:
            continue  # a Python scalar
        shape = b.shape(operand)
        if operand in b.layouts and len(shape) != rank and shape[1] > 1:
            why = f"{b.describe(node)} broadcasts channels ({operand.name}) onto another dim"
        elif b.channel_sized(operand, rank):
            if operand not in b.layouts:
                why = f"{b.describe(node)} combines the channels with a constant tensor ({operand.name})"
                continue
            layouts.append(b.layouts[operand])
    if why is not None:
        return b.hold(node, why, *operands)
    return b.unify(node, layouts) if layouts else None


def _cat(b: _Builder, node: fx.Node) -> Layout | None:
    tensors = list(_arg(node, 0, "tensors", ()))
    dim = _arg(node, 1, "dim", 0)
    dim %= len(b.shape(node))
    if any(t not in b.layouts for t in tensors):
        if any(t in b.layouts for t in tensors):
            return b.hold(node, f"{b.describe(node)} concatenates channels with a constant tensor", *tensors)
        return None
    if dim == 1:
        return tuple(entry for t in tensors for entry in b.layouts[t])
    return b.unify(node, [b.layouts[t] for t in tensors])


def _flatten_fn(b: _Builder, node: fx.Node) -> Layout | None:
    return b.flatten(node, node.args[0], _arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1))


def _merge_factor(src: tuple[int, ...], dst: tuple[int, ...]) -> int | None:
    """How many positions of ``dst``'s dim 1 one channel of ``src`` occupies after a reshape (the
    batch kept, the channels possibly merged with the dims after them: row-major order puts channel
    ``c`` at ``[c * f, (c + 1) * f)``), or None when the reshape moves or splits the channels."""
    if len(src) < 2 or len(dst) < 2 or src[0] != dst[0] or src[1] == 0 or dst[1] % src[1]:
        return None
    return dst[1] // src[1]


def _reshape(b: _Builder, node: fx.Node) -> Layout | None:
    """``view`` / ``reshape``: flattening the channels with the dims after them (``x.view(n, -1)``),
    adding or dropping size-one dims (``s.view(n, c, 1, 1)``). The size given for dim 1 must follow
    the channels when some are removed: ``-1``, or the channel count of a tensor read with
    ``size(1)`` / ``shape[1]`` (whose channels are then coupled to these). A hard-coded count, or a
    reshape that splits or moves the channels (a channel shuffle's ``view(n, g, c // g, h, w)``),
    keeps the channels."""
    x = node.args[0]
    if x not in b.layouts:
        return None
    sizes = node.args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    sizes = sizes or tuple(node.kwargs.get("shape", node.kwargs.get("size", ())))
    factor = _merge_factor(b.shape(x), b.shape(node))
    if factor is None:
        return b.hold(node, f"{b.describe(node)} reshapes the channel dimension", x)
    layout = tuple((v, repeat * factor) for v, repeat in b.layouts[x])
    count = sizes[1] if len(sizes) > 1 else None
    if any(s in b.counts for i, s in enumerate(sizes) if i != 1 and isinstance(s, fx.Node)):
        # another dim follows a channel count (x.view(n, -1, c)): it, not dim 1, would shrink
        return b.hold(node, f"{b.describe(node)} sizes another dim by a channel count", x)
    if count == -1:
        return layout
    source = b.size_of.get(count) if isinstance(count, fx.Node) else None
    if source is not None and source[1] == 1 and factor == 1 and source[0] in b.layouts:
        return b.unify(node, [layout, b.layouts[source[0]]])
    b.hold_layout(layout, f"{b.describe(node)} gives the channel dimension a size that does not follow pruning")
    return layout


def _reshape_as(b: _Builder, node: fx.Node) -> Layout | None:
    """``x.view_as(y)`` / ``reshape_as``: the channels of ``x`` become those of ``y``."""
    x, other = node.args[0], node.args[1]
    if x not in b.layouts:
        return None
    factor = _merge_factor(b.shape(x), b.shape(node))
    if factor is None or other not in b.layouts:
        return b.hold(node, f"{b.describe(node)} reshapes the channel dimension", x)
    layout = tuple((v, repeat * factor) for v, repeat in b.layouts[x])
    return b.unify(node, [layout, b.layouts[other]])


def _unsqueeze(b: _Builder, node: fx.Node) -> Layout | None:
    x = node.args[0]
    if x not in b.layouts:
        return None
    dim = int(_arg(node, 1, "dim", 0)) % len(b.shape(node))
    if dim >= 2:
        return b.layouts[x]
    return b.hold(node, f"{b.describe(node)} inserts a dim before the channels", x)


def _squeeze(b: _Builder, node: fx.Node) -> Layout | None:
    x = node.args[0]
    if x not in b.layouts:
        return None
    rank = len(b.shape(x))
    dims = _arg(node, 1, "dim", None)
    if dims is None:  # squeezes the channel dim too once a single channel is left
        b.hold_layout(
            b.layouts[x], f"{b.describe(node)} squeezes every size-one dim; name the dims to prune through it"
        )
        return b.layouts[x] if _merge_factor(b.shape(x), b.shape(node)) == 1 else b.fresh(node)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if any(int(d) % rank < 2 for d in dims):
        return b.hold(node, f"{b.describe(node)} squeezes the batch or channel dimension", x)
    return b.layouts[x]


def _transpose(b: _Builder, node: fx.Node) -> Layout | None:
    """``transpose`` / ``permute``: among the dims after the channels they keep them; moving the
    channels (NCHW -> NHWC, a shuffle's transpose(1, 2)) keeps the channels."""
    x = node.args[0]
    if x not in b.layouts:
        return None
    rank = len(b.shape(x))
    if node.target == "permute" or node.target is torch.permute:
        dims = node.args[1:] if node.args[1:] and isinstance(node.args[1], int) else _arg(node, 1, "dims", ())
        moved = [int(d) % rank for d in dims][:2] != [0, 1]
    else:
        moved = any(int(d) % rank < 2 for d in (_arg(node, 1, "dim0", 0), _arg(node, 2, "dim1", 0)))
    if moved:
        return b.hold(node, f"{b.describe(node)} moves the channel dimension", x)
    return b.layouts[x]


def _pad(b: _Builder, node: fx.Node) -> Layout | None:
    return b.pad(node, node.args[0], tuple(_arg(node, 1, "pad", ())))


def _reduce(b: _Builder, node: fx.Node) -> Layout | None:
    """mean/sum/amax over spatial dims (global pooling) keep the channels; over the channels (a
    spatial attention map) or the batch, the channels are kept."""
    x = node.args[0]
    if x not in b.layouts:
        return None
    dims = _arg(node, 1, "dim", None)
    rank = len(b.shape(x))
    dims = [dims] if isinstance(dims, int) else dims
    if dims is None or any(d % rank in (0, 1) for d in dims):
        return b.hold(node, f"{b.describe(node)} reduces over the batch or channel dimension", x)
    return b.layouts[x]


def _index_keeps_channels(index: object, rank: int) -> bool:
    """Whether ``x[index]`` on a rank-``rank`` tensor leaves the whole channel dim at dim 1 (basic
    indexing: full slice of the channels, ints, slices and ``None`` only on the dims after them)."""
    entries = list(index) if isinstance(index, tuple) else [index]
    if any(isinstance(e, fx.Node) for e in entries):
        return False  # a tensor index (advanced indexing) or a computed int
    consumed = sum(1 for e in entries if e is not None and e is not Ellipsis)
    expanded: list[object] = []
    for e in entries:
        expanded.extend([slice(None)] * (rank - consumed) if e is Ellipsis else [e])
    expanded.extend([slice(None)] * (rank - sum(1 for e in expanded if e is not None)))
    in_dim = out_dim = 0
    for e in expanded:
        if e is None:
            out_dim += 1
            continue
        if in_dim == 1:
            return e == slice(None) and out_dim == 1
        in_dim += 1
        out_dim += 0 if isinstance(e, int) else 1
    return False


def _getitem(b: _Builder, node: fx.Node) -> Layout | None:
    container, index = node.args[0], node.args[1]
    if container in b.size_of and isinstance(index, int):  # x.size()[1], x.shape[1], c of b, c, h, w = x.shape
        tensor, _ = b.size_of[container]
        b.size_of[node] = (tensor, index % len(b.shape(tensor)))
        if b.size_of[node][1] == 1:
            b.counts[node] = [tensor]
        return None
    if container in b.size_of and isinstance(index, slice):  # x.shape[2:]: counts only if it holds dim 1
        tensor, _ = b.size_of[container]
        if 1 in range(len(b.shape(tensor)))[index]:
            b.counts[node] = [tensor]
        return None
    if b.meta(node) is None:  # an element of a tuple of sizes
        b.count_of(node, [container])
    if container in b.opaque_nodes:  # an element of what an op not understood returned
        return b.fresh(node)
    if container not in b.layouts:
        return None
    if _index_keeps_channels(index, len(b.shape(container))):
        return b.layouts[container]
    return b.hold(node, f"{b.describe(node)} indexes or slices the channels", container)


def _size(b: _Builder, node: fx.Node) -> Layout | None:
    """``x.size()`` / ``x.size(d)``: remembered, so that a reshape to ``x``'s channel count follows x."""
    x = node.args[0]
    if isinstance(x, fx.Node) and b.meta(x) is not None:
        dim = _arg(node, 1, "dim", None)
        b.size_of[node] = (x, None if dim is None else int(dim) % len(b.shape(x)))
        if b.size_of[node][1] in (None, 1):
            b.counts[node] = [x]
    return None


def _getattr(b: _Builder, node: fx.Node) -> Layout | None:
    """``x.shape`` is a size; a tensor attribute of a channel-carrying tensor (``x.T``) is an op
    like any other not understood."""
    x, attr = node.args[0], node.args[1]
    if attr == "shape" and isinstance(x, fx.Node) and b.meta(x) is not None:
        b.size_of[node] = (x, None)
        b.counts[node] = [x]
        return None
    if b.meta(node) is not None and x in b.layouts:
        return b.opaque(node)
    return None


def _no_channels(b: _Builder, node: fx.Node) -> Layout | None:
    return None


def _shuffle(b: _Builder, node: fx.Node) -> Layout | None:
    return b.hold(node, f"{b.describe(node)} permutes the channels", node.args[0])


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
    F.alpha_dropout,
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
    F.upsample_nearest,
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
    torch.unsqueeze: _unsqueeze,
    torch.squeeze: _squeeze,
    F.pad: _pad,
    torch.transpose: _transpose,
    torch.permute: _transpose,
    torch.mean: _reduce,
    torch.sum: _reduce,
    torch.amax: _reduce,
    F.channel_shuffle: _shuffle,
    torch.channel_shuffle: _shuffle,
    torch.native_channel_shuffle: _shuffle,
    operator.getitem: _getitem,
    getattr: _getattr,
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
            "clip_",
            "abs",
            "neg",
            "contiguous",
            "clone",
        )
    },
    **{m: _binary for m in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "expand_as")},
    "flatten": _flatten_fn,
    "view": _reshape,
    "reshape": _reshape,
    "view_as": _reshape_as,
    "reshape_as": _reshape_as,
    "unsqueeze": _unsqueeze,
    "squeeze": _squeeze,
    "transpose": _transpose,
    "permute": _transpose,
    "mean": _reduce,
    "sum": _reduce,
    "amax": _reduce,
    "size": _size,
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
        self.size_of: dict[fx.Node, tuple[fx.Node, int | None]] = {}  # size nodes: (tensor, dim or None)
        self.counts: dict[fx.Node, list[fx.Node]] = {}  # values computed from channel counts -> those tensors
        self.opaque_nodes: set[fx.Node] = set()  # outputs of ops not understood
        self.unknown: list[tuple[str, list[int]]] = []  # (op, the channel variables it reads)
        self.held: dict[str, None] = {}  # why channels are kept (ordered, deduplicated)
        self.split_into: dict[int, tuple[int, ...]] = {}  # a variable split by unify -> its pieces
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
        for v, _ in self.current(layout):
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
        if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
            return f"function torch.ops.{target} (node {node.name!r})"
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
        """Couple the channels of tensors combined element-wise. When one tensor's channels are
        one variable and the other's a concatenation (a squeeze-excite or a residual after a
        ``torch.cat``), the single variable is split at the concatenation's boundaries; layouts
        that do not refine one another (cut at different places) keep all their channels."""
        first = self.current(layouts[0])
        for other in layouts[1:]:
            first, other = self.current(first), self.current(other)
            if not self._same(first, other):
                if not (self._refine(other, first) or self._refine(first, other)):
                    for layout in layouts:
                        self.hold_layout(
                            layout,
                            f"{self.describe(node)} combines tensors whose channels are concatenated differently",
                        )
                    return self.current(layouts[0])
                first, other = self.current(first), self.current(other)
            for (a, _), (b, _) in zip(first, other, strict=True):
                self.union(a, b)
        return self.current(first)

    def _same(self, x: Layout, y: Layout) -> bool:
        return len(x) == len(y) and all(
            self.size[a] == self.size[b] and ra == rb for (a, ra), (b, rb) in zip(x, y, strict=True)
        )

    def _refine(self, coarse: Layout, fine: Layout) -> bool:
        """Split the variables of ``coarse`` so that it lines up with ``fine`` entry by entry;
        False (nothing split) when ``fine`` does not cut ``coarse`` at whole channels."""
        cuts: dict[int, list[int]] = {}  # class root -> channel counts of its pieces
        j = 0
        for v, repeat in coarse:
            length, covered, sizes = self.size[v] * repeat, 0, []
            while covered < length:
                if j >= len(fine):
                    return False
                w, r = fine[j]
                piece = self.size[w] * r
                if r != repeat or covered + piece > length:
                    return False
                sizes.append(self.size[w])
                covered += piece
                j += 1
            if cuts.setdefault(self.find(v), sizes) != sizes:
                return False  # the same channels cut in two ways
        if j != len(fine):
            return False
        for root, sizes in cuts.items():
            if len(sizes) > 1:
                self._split(root, sizes)
        return True

    def _split(self, root: int, sizes: list[int]) -> None:
        """Replace every variable of ``root``'s class by consecutive pieces of ``sizes`` channels
        (piece ``i`` of every member in one class), in couplings and layouts alike."""
        members = [u for u in range(len(self.parent)) if u not in self.split_into and self.find(u) == root]
        fixed = self.fixed[root]
        pieces = {u: tuple(self.new_var(n, self.producer[u], fixed) for n in sizes) for u in members}
        for u in members[1:]:
            for a, b in zip(pieces[members[0]], pieces[u], strict=True):
                self.union(a, b)
        self.split_into.update(pieces)
        couplings = []
        for v, c in self.couplings:
            if v not in pieces:
                couplings.append((v, c))
                continue
            start = 0
            for piece, n in zip(pieces[v], sizes, strict=True):
                couplings.append((piece, Coupling(c.module, c.role, c.offset + start * c.repeat, c.repeat)))
                start += n
        self.couplings = couplings
        for node, layout in self.layouts.items():
            if any(v in pieces for v, _ in layout):
                self.layouts[node] = self.current(layout)

    def current(self, layout: Layout) -> Layout:
        """``layout`` with the variables split since it was read replaced by their pieces."""
        out: list[tuple[int, int]] = []
        for v, repeat in layout:
            if v in self.split_into:
                out.extend(self.current(tuple((p, repeat) for p in self.split_into[v])))
            else:
                out.append((v, repeat))
        return tuple(out)

    def hold_layout(self, layout: Layout | None, reason: str) -> None:
        """Keep every channel of ``layout`` (an op the channels cannot be removed through)."""
        if layout and not all(self.fixed[self.find(v)] for v, _ in self.current(layout)):
            self.held[reason] = None
        self.fix(layout or ())

    def fresh(self, node: fx.Node) -> Layout | None:
        """A new, fixed channel variable for ``node``'s output (None unless it is a batched tensor)."""
        meta = self.meta(node)
        if meta is None or len(meta.shape) < 2:
            return None
        return ((self.new_var(int(meta.shape[1]), None, fixed=True), 1),)

    def hold(self, node: fx.Node, reason: str, *inputs: object) -> Layout | None:
        """``node`` computes on channels in a way that cannot follow their removal: keep the
        channels of its inputs, and its outputs' channels are new, fixed ones."""
        for x in inputs:
            if isinstance(x, fx.Node):
                self.hold_layout(self.layouts.get(x), reason)
        return self.fresh(node)

    def opaque(self, node: fx.Node) -> Layout | None:
        """An op not understood. It is harmless only if every channel it reads is kept for another
        reason (the network input, a skipped layer, a held op); :meth:`groups` checks that."""
        sources = [*node.all_input_nodes, *(t for arg in node.all_input_nodes for t in self.counts.get(arg, ()))]
        reads = [v for arg in sources if arg in self.layouts for v, _ in self.layouts[arg]]
        self.unknown.append((self.describe(node), reads))
        self.opaque_nodes.add(node)
        return self.fresh(node)

    def count_of(self, node: fx.Node, inputs: Iterable[object]) -> None:
        """``node`` (not a tensor) is computed from channel counts if any of ``inputs`` is."""
        sources = [t for x in inputs if isinstance(x, fx.Node) for t in self.counts.get(x, ())]
        if sources:
            self.counts[node] = sources

    def channel_sized(self, x: fx.Node, rank: int) -> bool:
        """Whether tensor ``x``, broadcast to rank ``rank``, has more than one position on dim 1."""
        meta = self.meta(x)
        if meta is None:
            return False
        dim = 1 - (rank - len(meta.shape))
        return dim >= 0 and int(meta.shape[dim]) > 1

    def pad(self, node: fx.Node, x: object, padding: tuple) -> Layout | None:
        if x not in self.layouts:
            return None
        if len(padding) <= 2 * (len(self.shape(x)) - 2):  # pads only the dims after the channels
            return self.layouts[x]
        return self.hold(node, f"{self.describe(node)} pads the channel dimension", x)

    def flatten(self, node: fx.Node, x: fx.Node, start: int, end: int) -> Layout | None:
        if x not in self.layouts:
            return None
        shape = self.shape(x)
        start, end = start % len(shape), end % len(shape)
        if start == 0 and end > 0:
            return self.hold(node, f"{self.describe(node)} flattens the batch dimension into the channels", x)
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
            if isinstance(node.target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
                raise PruneError(
                    f"{self.describe(node)} is an ATen op: structured pruning removes channels from the "
                    "model's nn.Module layers, not from an exported (torch.export) graph; give the model's "
                    "factory and weights instead"
                )
            rule = _FUNCTION_RULES.get(node.target)
        else:
            rule = _METHOD_RULES.get(node.target)
        if rule is None:
            if any(arg in self.layouts for arg in node.all_input_nodes):
                return self.opaque(node)
            if any(arg in self.counts for arg in node.all_input_nodes):
                if self.meta(node) is None:  # arithmetic on channel counts
                    self.count_of(node, node.all_input_nodes)
                    return None
                return self.opaque(node)  # a tensor shaped by a channel count (torch.zeros(n, c, h, w))
            return None  # computes on constants only
        return rule(self, node)

    def groups(self, skip: tuple[str, ...]) -> tuple[ChannelGroup, ...]:
        def skipped(module: str) -> bool:
            return any(module == s or module.startswith(s + ".") for s in skip)

        for v, c in self.couplings:
            if skipped(c.module):
                self.fixed[self.find(v)] = True
        for op, reads in self.unknown:
            live = self.current(tuple((v, 1) for v in reads))
            free = [self.find(v) for v, _ in live if not self.fixed[self.find(v)]]
            if free:
                raise PruneError(
                    f"cannot prune through {op}: the op is not supported by structured pruning (it reads "
                    f"channels of group {self.producer[free[0]]}; list that layer in skip to keep them)"
                )
            self.held[f"{op} is not understood: the channels it reads and produces are kept"] = None
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
    for m in modes:  # shape propagation must not update BN statistics (not model.eval(): an
        m.training = False  # exported program's module refuses eval(), yet runs in eval mode)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input)
    finally:
        for m, training in modes.items():
            m.training = training
    return gm


class DepGraph:
    """The channel groups of one model (built by :func:`build_graph`)."""

    def __init__(
        self,
        model: nn.Module,
        groups: tuple[ChannelGroup, ...],
        layers: dict[str, _Layer],
        held: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.groups = groups
        self.held = held  # why some channels are kept: the ops they cannot be removed through
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
    return DepGraph(model, builder.groups(tuple(skip)), builder.layers, tuple(builder.held))


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
