"""Lowering a PyTorch model to the native runtime: the op graph of a ``.pakd`` file.

``lower(model, input_shape, quant)`` traces the model with ``torch.fx``, propagates shapes for one
sample, and turns every node into one op of the runtime (docs/format.md, GRAPH section) through a
table keyed by module type / function / method. Two fusions follow: a batch-norm right after a
convolution becomes that convolution's per-channel epilogue (folded into f32 and int8 weights, kept
as a scale vector beside codebook weights so the shared codebook survives), and an activation
right after a conv / linear / add / batch-norm becomes that op's fused activation.

``export_pakd`` writes the runnable file; the size accountant (``pakd.lower.accountant``) counts
exactly these bytes.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError
from ..quant.base import Int8Codes, Quantizer, SharedCodes, WeightCodes
from ..storage import atomic_write
from .format import TensorPlan, write_pakd

# Op types and fused activations (docs/format.md; csrc/src/runtime/graph.h has the same numbers).
OP_CONV2D, OP_LINEAR, OP_AFFINE, OP_ACT, OP_ADD, OP_CONCAT = 1, 2, 3, 4, 5, 6
OP_MAXPOOL, OP_AVGPOOL, OP_GLOBAL_AVGPOOL, OP_RESHAPE, OP_SOFTMAX = 7, 8, 9, 10, 11
OP_BINARY, OP_CLAMP, OP_PAD, OP_UPSAMPLE, OP_CHANNEL_SHUFFLE = 12, 13, 14, 15, 16  # format 1.1
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_HARDSWISH, ACT_SIGMOID = 0, 1, 2, 3, 4
ACT_HARDSIGMOID, ACT_SILU, ACT_GELU, ACT_GELU_TANH = 5, 6, 7, 8  # format 1.1
BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV = 0, 1, 2, 3
OP_NAMES = {
    OP_CONV2D: "conv2d",
    OP_LINEAR: "linear",
    OP_AFFINE: "affine",
    OP_ACT: "act",
    OP_ADD: "add",
    OP_CONCAT: "concat",
    OP_MAXPOOL: "maxpool",
    OP_AVGPOOL: "avgpool",
    OP_GLOBAL_AVGPOOL: "global-avgpool",
    OP_RESHAPE: "reshape",
    OP_SOFTMAX: "softmax",
    OP_BINARY: "binary",
    OP_CLAMP: "clamp",
    OP_PAD: "pad",
    OP_UPSAMPLE: "upsample",
    OP_CHANNEL_SHUFFLE: "channel-shuffle",
}
ACT_NAMES = {
    ACT_RELU: "relu",
    ACT_RELU6: "relu6",
    ACT_HARDSWISH: "hardswish",
    ACT_SIGMOID: "sigmoid",
    ACT_HARDSIGMOID: "hardsigmoid",
    ACT_SILU: "silu",
    ACT_GELU: "gelu",
    ACT_GELU_TANH: "gelu-tanh",
}
BIN_NAMES = {BIN_ADD: "add", BIN_SUB: "sub", BIN_MUL: "mul", BIN_DIV: "div"}
NO_TENSOR = -1


class LoweringError(ModelError):
    """The model uses something the native runtime has no op for."""


class PakdFileError(ModelError):
    """A .pakd file the native loader refuses: truncated, corrupted (its CRC-32), not a .pakd file."""


def open_pakd(source: str | Path | bytes, **options: Any) -> Any:
    """A ``pakd._core.Session`` on a .pakd file (a path, or the file's bytes); a file the
    loader refuses is one PakdFileError naming it and the loader's reason."""
    from .._core import Session

    what = "the .pakd bytes" if isinstance(source, bytes) else str(source)
    try:
        return Session(source if isinstance(source, bytes) else str(source), **options)
    except ValueError as exc:
        reason = str(exc).removeprefix("Session: ").removeprefix("bad format: ").removeprefix(f"{what}: ")
        raise PakdFileError(f"{what}: not a usable .pakd file ({reason})") from None


@dataclass
class Op:
    type: int
    inputs: list[int]
    output: int
    attrs: list[int] = field(default_factory=list)
    act: int = ACT_NONE
    module: nn.Module | None = None  # conv / linear / batch-norm whose tensors the op needs
    name: str = ""
    bn: nn.BatchNorm2d | None = None  # batch-norm fused into a conv
    flat: bool = False  # a 1x1 convolution run as a linear layer: its weight stored 2-D


@dataclass
class Lowered:
    """The graph ready to write: value shapes (per sample), ops, and the tensors they reference."""

    shapes: list[tuple[int, ...]]
    input: int
    output: int
    ops: list[Op]
    tensors: list[TensorPlan]
    refs: list[tuple[int, int, int]]  # (weight, scale, bias) tensor index per op

    def graph_bytes(self) -> bytes:
        out = [struct.pack("<I", len(self.shapes))]
        for s in self.shapes:
            out.append(struct.pack(f"<B3x{len(s)}I", len(s), *s))
        out.append(struct.pack("<III", self.input, self.output, len(self.ops)))
        for op, refs in zip(self.ops, self.refs, strict=True):
            out.append(struct.pack("<BBBBI", op.type, op.act, len(op.inputs), len(op.attrs), op.output))
            out.append(struct.pack(f"<{len(op.inputs)}I{len(op.attrs)}i3i", *op.inputs, *op.attrs, *refs))
        return b"".join(out)

    def describe(self) -> list[str]:
        def label(o: Op) -> str:
            kind = f"-{BIN_NAMES[o.attrs[0]]}" if o.type == OP_BINARY else ""
            act = f"+{ACT_NAMES[o.act]}" if o.act in ACT_NAMES else ""
            return f"{OP_NAMES[o.type]}{kind}{act}"

        return [f"{label(o)} {o.name} {self.shapes[o.output]}" for o in self.ops]


# ----------------------------------------------------------------------------------------------
# Per-op lowering, one table entry per module type / function / method
# ----------------------------------------------------------------------------------------------

_ACT_MODULES: dict[type, int] = {
    nn.ReLU: ACT_RELU,
    nn.ReLU6: ACT_RELU6,
    nn.Hardswish: ACT_HARDSWISH,
    nn.Sigmoid: ACT_SIGMOID,
    nn.Hardsigmoid: ACT_HARDSIGMOID,
    nn.SiLU: ACT_SILU,
}
_ACT_FUNCTIONS: dict[Any, int] = {
    F.relu: ACT_RELU,
    torch.relu: ACT_RELU,
    F.relu_: ACT_RELU,
    torch.relu_: ACT_RELU,
    F.relu6: ACT_RELU6,
    F.hardswish: ACT_HARDSWISH,
    torch.sigmoid: ACT_SIGMOID,
    torch.sigmoid_: ACT_SIGMOID,
    F.sigmoid: ACT_SIGMOID,
    F.hardsigmoid: ACT_HARDSIGMOID,
    F.silu: ACT_SILU,
}
_ACT_METHODS = {"relu": ACT_RELU, "relu_": ACT_RELU, "sigmoid": ACT_SIGMOID, "sigmoid_": ACT_SIGMOID}
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout)
_BINARY_FUNCTIONS: dict[Any, int] = {
    operator.add: BIN_ADD,
    operator.iadd: BIN_ADD,
    torch.add: BIN_ADD,
    operator.sub: BIN_SUB,
    operator.isub: BIN_SUB,
    torch.sub: BIN_SUB,
    torch.subtract: BIN_SUB,
    operator.mul: BIN_MUL,
    operator.imul: BIN_MUL,
    torch.mul: BIN_MUL,
    torch.multiply: BIN_MUL,
    operator.truediv: BIN_DIV,
    operator.itruediv: BIN_DIV,
    torch.div: BIN_DIV,
    torch.divide: BIN_DIV,
    torch.true_divide: BIN_DIV,
}
_BINARY_METHODS = {
    **{m: BIN_ADD for m in ("add", "add_", "__add__", "__iadd__", "__radd__")},
    **{m: BIN_SUB for m in ("sub", "sub_", "subtract", "__sub__", "__isub__")},
    **{m: BIN_MUL for m in ("mul", "mul_", "multiply", "__mul__", "__imul__", "__rmul__")},
    **{m: BIN_DIV for m in ("div", "div_", "divide", "true_divide", "__truediv__", "__itruediv__")},
}
_RESHAPE_METHODS = ("view", "reshape", "flatten", "unsqueeze", "squeeze", "unsqueeze_", "squeeze_", "view_as")
_RESHAPE_FUNCTIONS = (torch.flatten, torch.reshape, torch.unsqueeze, torch.squeeze)
_CLAMP_METHODS = ("clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_")


def _f32_bits(v: float) -> int:
    return int(struct.unpack("<i", struct.pack("<f", float(v)))[0])


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_op(m: nn.Conv2d) -> tuple[int, list[int]]:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        if m.padding != "valid" and not (isinstance(m.padding, str) and m.padding == "same" and m.stride == (1, 1)):
            raise LoweringError(f"conv padding {m.padding!r}/{m.padding_mode!r} is not supported")
    if m.padding_mode != "zeros":
        raise LoweringError(f"conv padding_mode={m.padding_mode!r} is not supported (only zeros)")
    pad = _conv_padding(m)
    return OP_CONV2D, [*_pair(m.stride), *pad, *_pair(m.dilation), int(m.groups)]


def _conv_padding(m: nn.Conv2d) -> tuple[int, int]:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return 0, 0
        kh, kw = m.kernel_size
        dh, dw = _pair(m.dilation)
        if (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2:
            raise LoweringError("asymmetric 'same' padding is not supported")
        return dh * (kh - 1) // 2, dw * (kw - 1) // 2
    return _pair(m.padding)


def _pool_attrs(kernel, stride, padding, dilation, ceil_mode, extra: int) -> list[int]:
    k = _pair(kernel)
    s = _pair(stride if stride not in (None, ()) else kernel)
    return [*k, *s, *_pair(padding), *_pair(dilation), int(bool(ceil_mode)), int(extra)]


def _clamp(lo: Any, hi: Any) -> tuple[int, list[int], int]:
    """clamp / hardtanh / relu6 with number bounds: an activation where one fits, else the clamp op."""
    if isinstance(lo, fx.Node) or isinstance(hi, fx.Node) or isinstance(lo, torch.Tensor):
        raise LoweringError("clamp with tensor bounds has no native op (only number bounds)")
    lo_f = float("-inf") if lo is None else float(lo)
    hi_f = float("inf") if hi is None else float(hi)
    if lo_f == 0.0 and hi_f == 6.0:
        return OP_ACT, [], ACT_RELU6
    if lo_f == 0.0 and hi_f == float("inf"):
        return OP_ACT, [], ACT_RELU
    if not lo_f <= hi_f:
        raise LoweringError(f"clamp(min={lo}, max={hi}): min above max")
    return OP_CLAMP, [_f32_bits(lo_f), _f32_bits(hi_f)], ACT_NONE


def _gelu(approximate: str) -> tuple[int, list[int], int]:
    if approximate == "none":
        return OP_ACT, [], ACT_GELU
    if approximate == "tanh":
        return OP_ACT, [], ACT_GELU_TANH
    raise LoweringError(f"GELU(approximate={approximate!r}) is not supported")


def _pad_op(pad: Any, mode: str, value: Any, in_shape) -> tuple[int, list[int], int]:
    if mode != "constant" or value not in (None, 0, 0.0):
        raise LoweringError(f"padding mode={mode!r} value={value!r} is not supported (only zero padding)")
    pad = [int(p) for p in pad]
    if len(in_shape) != 3 or len(pad) not in (2, 4) or any(p < 0 for p in pad):
        raise LoweringError(f"padding {tuple(pad)} of a {in_shape} value: only non-negative padding of H and W")
    left, right = pad[0], pad[1]
    top, bottom = (pad[2], pad[3]) if len(pad) == 4 else (0, 0)
    return OP_PAD, [top, bottom, left, right], ACT_NONE


def _upsample_op(mode: str, in_shape, out_shape) -> tuple[int, list[int], int]:
    if mode not in ("nearest", "nearest-exact"):
        raise LoweringError(f"upsampling mode={mode!r} is not supported (only nearest)")
    if len(in_shape) != 3:
        raise LoweringError(f"upsampling of a {in_shape} value: only C x H x W")
    (h, w), (oh, ow) = in_shape[1:], out_shape[1:]
    if oh % h or ow % w:
        raise LoweringError(f"nearest upsampling {h}x{w} -> {oh}x{ow} is not by integer factors")
    return OP_UPSAMPLE, [oh // h, ow // w], ACT_NONE


def _module_op(m: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, list[int], int]:
    """(op type, attrs, fused activation) for a leaf module."""
    if type(m) in _ACT_MODULES:
        return OP_ACT, [], _ACT_MODULES[type(m)]
    if isinstance(m, nn.Hardtanh):  # ReLU6 is a Hardtanh: matched above
        return _clamp(m.min_val, m.max_val)
    if isinstance(m, nn.GELU):
        return _gelu(m.approximate)
    if isinstance(m, nn.Conv2d):
        t, attrs = _conv_op(m)
        return t, attrs, ACT_NONE
    if isinstance(m, nn.Linear):
        return OP_LINEAR, [], ACT_NONE
    if isinstance(m, nn.BatchNorm2d):
        return OP_AFFINE, [], ACT_NONE
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise LoweringError("MaxPool2d(return_indices=True) is not supported")
        return OP_MAXPOOL, _pool_attrs(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, 0), ACT_NONE
    if isinstance(m, nn.AvgPool2d):
        if m.divisor_override is not None:
            raise LoweringError("AvgPool2d(divisor_override=...) is not supported")
        return (
            OP_AVGPOOL,
            _pool_attrs(m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, m.count_include_pad),
            ACT_NONE,
        )
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return _adaptive_avg(in_shape, out_shape)
    if isinstance(m, (nn.Flatten, nn.Unflatten)):
        return OP_RESHAPE, [], ACT_NONE
    if isinstance(m, nn.Softmax):
        return _softmax(m.dim, in_shape)
    if isinstance(m, (nn.ZeroPad2d, nn.ConstantPad2d)):
        return _pad_op(m.padding, "constant", m.value, in_shape)
    if isinstance(m, nn.Upsample):
        return _upsample_op(m.mode, in_shape, out_shape)
    if isinstance(m, nn.ChannelShuffle):
        return _shuffle_op(m.groups, in_shape)
    raise LoweringError(f"module {type(m).__name__} has no native op")


def _shuffle_op(groups: int, in_shape) -> tuple[int, list[int], int]:
    if len(in_shape) != 3 or in_shape[0] % int(groups):
        raise LoweringError(f"channel shuffle of {in_shape} in {groups} groups: needs C x H x W, C divisible")
    return OP_CHANNEL_SHUFFLE, [int(groups)], ACT_NONE


def _adaptive_avg(in_shape, out_shape) -> tuple[int, list[int], int]:
    if len(in_shape) != 3:
        raise LoweringError(f"adaptive average pooling needs a C x H x W input, got {in_shape}")
    oh, ow = out_shape[-2:] if len(out_shape) == 3 else (1, 1)
    if (oh, ow) == (1, 1):
        return OP_GLOBAL_AVGPOOL, [], ACT_NONE
    h, w = in_shape[1:]
    if h % oh or w % ow:
        raise LoweringError(f"adaptive average pooling {h}x{w} -> {oh}x{ow} is not a uniform pooling")
    kh, kw = h // oh, w // ow
    return OP_AVGPOOL, [kh, kw, kh, kw, 0, 0, 1, 1, 0, 1], ACT_NONE


def _softmax(dim, in_shape) -> tuple[int, list[int], int]:
    if len(in_shape) != 1 or dim not in (-1, 1):
        raise LoweringError(f"softmax is supported over the class dimension of a vector, got dim={dim}")
    return OP_SOFTMAX, [], ACT_NONE


def _mean(node: fx.Node, in_shape) -> tuple[int, list[int], int]:
    dims = _arg(node, 1, "dim")
    if dims is None or len(in_shape) != 3:
        raise LoweringError(f"mean over dims {dims} of a {in_shape} value is not supported (only H and W: (2, 3))")
    dims = tuple(sorted(int(d) % 4 for d in (dims if isinstance(dims, (tuple, list)) else (dims,))))
    if dims != (2, 3):
        raise LoweringError(f"mean over dims {dims} is not supported (only H and W: (2, 3))")
    return OP_GLOBAL_AVGPOOL, [], ACT_NONE


def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _function_op(node: fx.Node, in_shape, out_shape) -> tuple[int, list[int], int]:
    fn = node.target
    if fn in _ACT_FUNCTIONS:
        return OP_ACT, [], _ACT_FUNCTIONS[fn]
    if fn is F.gelu:
        return _gelu(_arg(node, 1, "approximate", "none"))
    if fn in (F.hardtanh, F.hardtanh_):
        return _clamp(_arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0))
    if fn in (torch.clamp, torch.clip, torch.clamp_):
        return _clamp(_arg(node, 1, "min"), _arg(node, 2, "max"))
    if fn is torch.clamp_min:
        return _clamp(_arg(node, 1, "min"), None)
    if fn is torch.clamp_max:
        return _clamp(None, _arg(node, 1, "max"))
    if fn in _BINARY_FUNCTIONS:
        return OP_BINARY, [_BINARY_FUNCTIONS[fn]], ACT_NONE  # operands resolved in _binary
    if fn is torch.cat:
        dim = _arg(node, 1, "dim", 0)
        return _concat(dim, out_shape)
    if fn in _RESHAPE_FUNCTIONS or fn is operator.getitem:
        return OP_RESHAPE, [], ACT_NONE  # checked in _reshape_check
    if fn is torch.mean:
        return _mean(node, in_shape)
    if fn is F.adaptive_avg_pool2d:
        return _adaptive_avg(in_shape, out_shape)
    if fn is F.max_pool2d:
        k = _arg(node, 1, "kernel_size")
        return (
            OP_MAXPOOL,
            _pool_attrs(
                k,
                _arg(node, 2, "stride"),
                _arg(node, 3, "padding", 0),
                _arg(node, 4, "dilation", 1),
                _arg(node, 5, "ceil_mode", False),
                0,
            ),
            ACT_NONE,
        )
    if fn is F.avg_pool2d:
        k = _arg(node, 1, "kernel_size")
        if _arg(node, 6, "divisor_override") is not None:
            raise LoweringError("avg_pool2d(divisor_override=...) is not supported")
        return (
            OP_AVGPOOL,
            _pool_attrs(
                k,
                _arg(node, 2, "stride"),
                _arg(node, 3, "padding", 0),
                1,
                _arg(node, 4, "ceil_mode", False),
                _arg(node, 5, "count_include_pad", True),
            ),
            ACT_NONE,
        )
    if fn in (F.softmax, torch.softmax):
        return _softmax(_arg(node, 1, "dim"), in_shape)
    if fn is F.pad:
        return _pad_op(_arg(node, 1, "pad"), _arg(node, 2, "mode", "constant"), _arg(node, 3, "value"), in_shape)
    if fn in (F.interpolate, F.upsample, F.upsample_nearest):
        mode = "nearest" if fn is F.upsample_nearest else _arg(node, 3, "mode", "nearest")
        return _upsample_op(mode, in_shape, out_shape)
    if fn in (F.channel_shuffle, torch.channel_shuffle, torch.native_channel_shuffle):
        return _shuffle_op(_arg(node, 1, "groups"), in_shape)
    if fn in (torch.transpose, torch.permute):
        return _transpose(node, in_shape)
    raise LoweringError(f"function {getattr(fn, '__name__', fn)} has no native op")


def _concat(dim, out_shape) -> tuple[int, list[int], int]:
    if dim not in (1, -len(out_shape)):
        raise LoweringError(f"concatenation is supported along channels (dim=1), got dim={dim}")
    return OP_CONCAT, [0], ACT_NONE


def _transpose(node: fx.Node, in_shape) -> tuple[int, list[int], int]:
    """Only the channel-shuffle idiom: a (G, C/G, H, W) value with its first two dims swapped."""
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "transpose")
    rank = len(in_shape) + 1
    if name in ("transpose", "swapaxes", "swapdims"):
        d0, d1 = (int(_arg(node, 1, "dim0")) % rank, int(_arg(node, 2, "dim1")) % rank)
        perm = list(range(rank))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    else:
        args: Any = node.args[1:]
        dims: Any = (
            args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args or node.kwargs.get("dims")
        )
        perm = [int(d) % rank for d in dims]
    if len(in_shape) == 4 and perm == [0, 2, 1, 3, 4]:
        return OP_CHANNEL_SHUFFLE, [int(in_shape[0])], ACT_NONE
    raise LoweringError(
        f"{name} with dims {tuple(perm)} of a {in_shape} value has no native op "
        "(only the channel-shuffle idiom x.view(N, g, C // g, H, W).transpose(1, 2))"
    )


def _method_op(node: fx.Node, in_shape, out_shape) -> tuple[int, list[int], int]:
    name = node.target
    if name in _ACT_METHODS:
        return OP_ACT, [], _ACT_METHODS[name]
    if name in _CLAMP_METHODS:
        lo = None if name.startswith("clamp_max") else _arg(node, 1, "min")
        hi = None if name.startswith("clamp_min") else _arg(node, 2 if not name.startswith("clamp_max") else 1, "max")
        return _clamp(lo, hi)
    if name in _RESHAPE_METHODS:
        return OP_RESHAPE, [], ACT_NONE
    if name in _BINARY_METHODS:
        return OP_BINARY, [_BINARY_METHODS[name]], ACT_NONE
    if name == "mean":
        return _mean(node, in_shape)
    if name == "softmax":
        return _softmax(_arg(node, 1, "dim"), in_shape)
    if name in ("transpose", "permute", "swapaxes", "swapdims"):
        return _transpose(node, in_shape)
    raise LoweringError(f"tensor method .{name}() has no native op")


def _reshape_check(node: fx.Node, in_full: tuple[int, ...]) -> None:
    """Indexing and squeeze/unsqueeze that only reshape; real slicing and batch moves are refused."""
    if node.target is operator.getitem:
        idx = node.args[1]
        items = idx if isinstance(idx, tuple) else (idx,)
        for it in items:
            if it is None or it is Ellipsis or (isinstance(it, slice) and it == slice(None)):
                continue
            raise LoweringError(
                f"indexing with {idx!r} slices the tensor (only [:, :, None, None]-style indexing that reshapes)"
            )
        if items and items[0] is None:
            raise LoweringError("indexing that adds a dimension before the batch is not supported")
        return
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if name.startswith(("squeeze", "unsqueeze")):
        dim = _arg(node, 1, "dim")
        if dim is None:
            raise LoweringError("squeeze() without dims could drop the batch dimension: name the dims")
        dims = dim if isinstance(dim, (tuple, list)) else (dim,)
        rank = len(in_full) + (1 if name.startswith("unsqueeze") else 0)
        if any(int(d) % rank == 0 for d in dims):
            raise LoweringError(f"{name}({dim}) moves the batch dimension")


def _where(node: fx.Node) -> str:
    """The model's source line of a node: the innermost frame outside torch of the stack trace
    recorded while tracing."""
    trace = node.stack_trace or node.meta.get("stack_trace") or ""
    lines = [ln.strip() for ln in str(trace).splitlines() if ln.strip()]
    torch_dir = str(Path(torch.__file__).resolve().parent)
    found = ""
    for i, line in enumerate(lines):
        if line.startswith("File ") and torch_dir not in line:
            code = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("File ") else ""
            loc = line.replace("File ", "", 1)
            found = f"{loc}: {code}" if code else loc
    return found or "source line unknown"


def _node_error(node: fx.Node, exc: LoweringError) -> LoweringError:
    return LoweringError(f"node {node.name} ({node.op} {_target_name(node)}): {exc}; at {_where(node)}")


def _target_name(node: fx.Node) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", str(t))


# ----------------------------------------------------------------------------------------------
# Tracing and fusion
# ----------------------------------------------------------------------------------------------

_PASS_THROUGH_METHODS = ("contiguous", "clone", "detach", "float")


def _tensor_meta(node: fx.Node):
    meta = node.meta.get("tensor_meta")
    return meta if meta is not None and hasattr(meta, "shape") else None


def _full_shape(node: fx.Node) -> tuple[int, ...]:
    meta = _tensor_meta(node)
    if meta is None:
        raise LoweringError(f"node {node.name} does not produce a single tensor")
    return tuple(int(d) for d in meta.shape)


def _shape(node: fx.Node) -> tuple[int, ...]:
    shape = _full_shape(node)
    if not shape or shape[0] != 1:
        raise LoweringError(f"node {node.name} has shape {shape}: batch must stay the first dimension")
    return shape[1:]


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    try:
        tracer = fx.Tracer()
        tracer.record_stack_traces = True
        graph = tracer.trace(model)
        gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as exc:  # noqa: BLE001 - fx raises many types for untraceable Python
        raise LoweringError(f"cannot trace the model with torch.fx: {exc}") from None
    was_training = model.training
    gm.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as exc:  # noqa: BLE001 - whatever the model's own code raises
        cause = str(exc.__cause__ or exc).strip().splitlines() or [type(exc).__name__]
        raise LoweringError(f"the model fails on an input of shape {(1, *input_shape)}: {cause[0]}") from None
    finally:
        gm.train(was_training)
    return gm


def _is_dropout(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], _IDENTITY_MODULES)  # eval-mode dropout: identity
    if node.op == "call_function" and node.target in _DROPOUT_FUNCTIONS:
        if _arg(node, 2, "training", True):
            raise LoweringError("functional dropout with training=True is random even in eval mode")
        return True
    return node.op == "call_method" and node.target in _PASS_THROUGH_METHODS


def _binary_operands(node: fx.Node, value: dict[fx.Node, int], shapes, kind: int, out_shape):
    """(op type, inputs, attrs) of a binary node: two tensors (same shape add stays the add op that
    convolutions absorb), or a tensor and a number."""
    operands: list[Any] = [*node.args[:2], *(node.kwargs[k] for k in ("other",) if k in node.kwargs)]
    if len(operands) != 2:
        raise LoweringError(f"{BIN_NAMES[kind]} needs two operands")
    alpha = node.kwargs.get("alpha", 1)
    if alpha != 1 or node.kwargs.get("rounding_mode") is not None:
        raise LoweringError(f"{BIN_NAMES[kind]} with alpha/rounding_mode is not supported")
    tensors = [isinstance(a, fx.Node) and a in value for a in operands]
    if all(tensors):
        a, b = operands
        if len(_full_shape(a)) != len(_full_shape(b)):
            raise LoweringError(
                f"{BIN_NAMES[kind]} of tensors of rank {len(_full_shape(a))} and {len(_full_shape(b))}: "
                "broadcasting needs equal ranks (index with None to align them)"
            )
        ids = [value[a], value[b]]
        if kind == BIN_ADD and shapes[ids[0]] == out_shape and shapes[ids[1]] == out_shape:
            return OP_ADD, ids, []
        return OP_BINARY, ids, [kind, 0, 0]
    if not any(tensors):
        raise LoweringError(f"{BIN_NAMES[kind]} without a tensor operand")
    t = 0 if tensors[0] else 1
    c = operands[1 - t]
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        what = "a parameter or buffer" if isinstance(c, fx.Node) else type(c).__name__
        raise LoweringError(f"{BIN_NAMES[kind]} with {what} as an operand (only tensors of the graph and numbers)")
    return OP_BINARY, [value[operands[t]]], [kind, t, _f32_bits(float(c))]


def _build_ops(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> tuple[list[tuple[int, ...]], int, int, list[Op]]:
    modules = dict(gm.named_modules())
    value: dict[fx.Node, int] = {}
    shapes: list[tuple[int, ...]] = []
    ops: list[Op] = []
    skipped: set[fx.Node] = set()  # nodes that are not tensors (sizes, shape arithmetic)
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    input_id = output_id = -1

    def new_value(shape) -> int:
        shapes.append(tuple(shape))
        return len(shapes) - 1

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if input_id >= 0:
                raise LoweringError("the model must take exactly one input tensor")
            input_id = value[node] = new_value(input_shape)
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node) or out not in value:
                raise LoweringError("the model must return exactly one tensor")
            output_id = value[out]
            continue
        try:
            _check_in_place(node, order)
            _lower_node(node, modules, value, shapes, ops, skipped, new_value)
        except LoweringError as exc:
            raise _node_error(node, exc) from None
    if input_id < 0 or output_id < 0:
        raise LoweringError("the model has no input or no output")
    if output_id == input_id:
        raise LoweringError("the model returns its input unchanged")
    return shapes, input_id, output_id, ops


def _check_in_place(node: fx.Node, order: dict[fx.Node, int]) -> None:
    """An in-place method (``x.mul_(s)``) whose input is read again later: fx keeps the later
    reads on the unmodified node, so the graph would compute something else than PyTorch."""
    name = node.target if isinstance(node.target, str) else ""
    if node.op != "call_method" or not name.endswith("_") or name.startswith("__") or not node.args:
        return
    x = node.args[0]
    if isinstance(x, fx.Node) and any(order[u] > order[node] for u in x.users if u is not node):
        raise LoweringError(
            f"in-place .{name}() on a tensor that is read again afterwards; use its result "
            f"(y = x.{name}(...)) or the out-of-place .{name[:-1]}()"
        )


def _lower_node(node: fx.Node, modules, value, shapes, ops: list[Op], skipped: set[fx.Node], new_value) -> None:
    if node.op == "get_attr":
        if _tensor_meta(node) is not None:
            skipped.add(node)  # refused where a tensor op reads it (_binary_operands names it)
            return
        skipped.add(node)
        return
    if _tensor_meta(node) is None:
        # a size, a shape or arithmetic on them: only feeds view/reshape arguments (shapes come
        # from shape propagation). A tuple of tensors (chunk, split) is refused where it is read.
        skipped.add(node)
        return
    inputs = [a for a in node.all_input_nodes if a in value]
    if not inputs:
        read = [a.name for a in node.all_input_nodes if a in skipped]
        if read:
            raise LoweringError(f"reads {', '.join(read)}, which is not a tensor the runtime has")
        raise LoweringError("no tensor input")
    if _is_dropout(node, modules):
        value[node] = value[inputs[0]]
        return
    in_shape = shapes[value[inputs[0]]]
    if node.op in ("call_method", "call_function"):
        _reshape_check(node, _full_shape(inputs[0]))  # indexing / squeeze: before the batch check
    out_shape = _shape(node)
    module = None
    if node.op == "call_module":
        module = modules[node.target]
        op_type, attrs, act = _module_op(module, in_shape, out_shape)
    elif node.op == "call_function":
        op_type, attrs, act = _function_op(node, in_shape, out_shape)
    else:
        op_type, attrs, act = _method_op(node, in_shape, out_shape)
    ids = [value[inputs[0]]]
    if op_type == OP_BINARY:
        op_type, ids, attrs = _binary_operands(node, value, shapes, attrs[0], out_shape)
    elif op_type == OP_CONCAT:
        ids = [value[i] for i in inputs]
    if op_type == OP_GLOBAL_AVGPOOL and len(in_shape) != 3:
        raise LoweringError(f"global average pooling of a {in_shape} value")
    value[node] = new_value(out_shape)
    ops.append(
        Op(
            op_type,
            ids,
            value[node],
            list(attrs),
            act,
            module,
            str(node.target) if node.op == "call_module" else node.name,
        )
    )


def _fuse(ops: list[Op], output_id: int) -> list[Op]:
    """Batch-norm into the preceding conv, then activations into their producer."""

    def users() -> dict[int, int]:
        count: dict[int, int] = {output_id: 1}
        for op in ops:
            for v in op.inputs:
                count[v] = count.get(v, 0) + 1
        return count

    def fuse_pass(can_fuse: Callable[[Op, Op], bool], merge: Callable[[Op, Op], None]) -> None:
        nonlocal ops
        producer = {op.output: op for op in ops}
        count = users()
        kept = []
        for op in ops:
            src = producer.get(op.inputs[0]) if len(op.inputs) == 1 else None
            if src is not None and count.get(src.output, 0) == 1 and can_fuse(src, op):
                merge(src, op)
                src.output = op.output
                producer[op.output] = src
                continue
            kept.append(op)
        ops = kept

    def bn_into_conv(src: Op, op: Op) -> bool:
        return op.type == OP_AFFINE and src.type == OP_CONV2D and src.bn is None and src.act == ACT_NONE

    def merge_bn(src: Op, op: Op) -> None:
        src.bn = op.module  # type: ignore[assignment]

    def act_into_producer(src: Op, op: Op) -> bool:
        return (
            op.type == OP_ACT
            and src.type in (OP_CONV2D, OP_LINEAR, OP_ADD, OP_AFFINE, OP_BINARY)
            and src.act == ACT_NONE
        )

    def merge_act(src: Op, op: Op) -> None:
        src.act = op.act

    def pad_into_conv() -> None:
        """A symmetric zero padding read only by a convolution becomes that convolution's padding."""
        nonlocal ops
        producer = {op.output: op for op in ops}
        count = users()
        dropped: set[int] = set()
        for op in ops:
            src = producer.get(op.inputs[0])
            if op.type != OP_CONV2D or src is None or src.type != OP_PAD or count.get(src.output, 0) != 1:
                continue
            top, bottom, left, right = src.attrs
            if top != bottom or left != right:
                continue  # asymmetric (TensorFlow-style 'same'): stays a pad op
            op.attrs[2] += top
            op.attrs[3] += left
            op.inputs = [src.inputs[0], *op.inputs[1:]]
            dropped.add(id(src))
        ops = [op for op in ops if id(op) not in dropped]

    pad_into_conv()
    fuse_pass(bn_into_conv, merge_bn)
    fuse_pass(act_into_producer, merge_act)
    return ops


def _pointwise_as_linear(ops: list[Op], shapes: list[tuple[int, ...]]) -> list[Op]:
    """A 1x1 convolution of a (C, 1, 1) value (a squeeze-excite block's two layers) as reshape +
    linear + reshape: the same arithmetic, but the runtime's batch-1 linear kernel streams the
    weight once where the convolution's GEMM would pad its single output column to a whole tile.
    The reshapes cost nothing (the runtime aliases them)."""
    out: list[Op] = []
    for op in ops:
        m = op.module
        if (
            op.type != OP_CONV2D
            or shapes[op.inputs[0]][1:] != (1, 1)
            or not isinstance(m, nn.Conv2d)
            or tuple(m.kernel_size) != (1, 1)
            or op.attrs[2:4] != [0, 0]
            or op.attrs[6] != 1
        ):
            out.append(op)
            continue
        cin, cout = shapes[op.inputs[0]][0], shapes[op.output][0]
        shapes.append((cin,))
        flat_in = len(shapes) - 1
        shapes.append((cout,))
        flat_out = len(shapes) - 1
        out.append(Op(OP_RESHAPE, [op.inputs[0]], flat_in, name=f"{op.name}.flatten"))
        out.append(Op(OP_LINEAR, [flat_in], flat_out, [], op.act, m, op.name, op.bn, flat=True))
        out.append(Op(OP_RESHAPE, [flat_out], op.output, name=f"{op.name}.unflatten"))
    return out


def _renumber(shapes, input_id, output_id, ops) -> tuple[list[tuple[int, ...]], int, int]:
    """Drop values no op produces or reads any more (fused intermediates), keep order."""
    used = sorted({input_id, output_id, *(v for op in ops for v in (*op.inputs, op.output))})
    new = {v: i for i, v in enumerate(used)}
    for op in ops:
        op.inputs = [new[v] for v in op.inputs]
        op.output = new[op.output]
    return [shapes[v] for v in used], new[input_id], new[output_id]


# ----------------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().contiguous().numpy()


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    var = bn.running_var.detach().double() if bn.running_var is not None else None
    mean = bn.running_mean.detach().double() if bn.running_mean is not None else None
    if var is None or mean is None:
        raise LoweringError("batch-norm without running statistics cannot be folded")
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale.numpy(), (beta - mean * scale).numpy()


class _Tensors:
    """Collects TensorPlans, encoded as the quantizer left them (codebook / int8 / f32)."""

    def __init__(self, model: nn.Module, quant: Quantizer | None) -> None:
        self.plans: list[TensorPlan] = []
        self.param_name = {id(p): n for n, p in model.named_parameters()}
        self.codes: dict[str, WeightCodes] = quant.weight_codes(model) if quant is not None else {}

    def add(self, plan: TensorPlan) -> int:
        self.plans.append(plan)
        return len(self.plans) - 1

    def f32(self, name: str, values: np.ndarray, allow_sparse: bool = False) -> int:
        return self.add(TensorPlan(name, np.ascontiguousarray(values, dtype=np.float32), allow_sparse=allow_sparse))

    def weight(self, op: Op, module: nn.Module, scale: np.ndarray | None) -> tuple[int, int]:
        """Stores module.weight with the epilogue scale folded in where the encoding allows it;
        returns (weight index, scale index or NO_TENSOR)."""
        w = module.weight
        assert isinstance(w, torch.Tensor)
        name = self.param_name.get(id(w), f"{op.name}.weight")
        values = _np(w)
        if op.flat:
            values = values.reshape(values.shape[0], -1)

        def per_channel(a):
            return a.reshape(-1, *([1] * (values.ndim - 1)))

        code = self.codes.get(name)
        if isinstance(code, SharedCodes):
            idx = code.indices.detach().cpu().reshape(values.shape).numpy()
            codebook = code.codebook.detach().cpu().numpy().astype(np.float32)
            snapped = np.where(idx >= 0, codebook[np.clip(idx, 0, None)], 0).astype(np.float32)
            plan = TensorPlan(name, snapped, codebook=codebook, indices=idx)
            s = NO_TENSOR if scale is None else self.f32(f"{op.name}.scale", scale.astype(np.float32))
            return self.add(plan), s
        if isinstance(code, Int8Codes):
            scales = code.scales.detach().cpu().double().numpy() * (1.0 if scale is None else scale)
            shape: tuple[int, ...] = tuple(values.shape)
            q = code.values.detach().cpu().numpy().reshape(shape)
            values = (q.reshape(shape[0], -1).astype(np.float64) * scales[:, None]).reshape(shape)
            return self.add(
                TensorPlan(name, values.astype(np.float32), int8=q, scales=scales.astype(np.float32))
            ), NO_TENSOR
        shared = _shared_values(values) if not self.codes else None
        if shared is not None:  # weight sharing recognised in a saved model (no quantizer at hand)
            codebook, idx = shared
            s = NO_TENSOR if scale is None else self.f32(f"{op.name}.scale", scale.astype(np.float32))
            return self.add(TensorPlan(name, values, codebook=codebook, indices=idx)), s
        if scale is not None:
            values = (values.astype(np.float64) * per_channel(scale)).astype(np.float32)
        return self.add(TensorPlan(name, values)), NO_TENSOR


def _shared_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(codebook, indices with -1 for zeros) when a weight holds at most 256 distinct nonzero values,
    few enough that indices beat f32 (a k-means stage's snapped weights, saved without its
    quantizer); None otherwise."""
    nz = values != 0
    n = int(nz.sum())
    if n < 64:
        return None
    uniq = np.unique(values[nz])
    if uniq.size > 256 or uniq.size > n // 8:
        return None
    idx = np.full(values.shape, -1, dtype=np.int64)
    idx[nz] = np.searchsorted(uniq, values[nz])
    return uniq.astype(np.float32), idx


def _tensor_refs(ops: list[Op], tensors: _Tensors) -> list[tuple[int, int, int]]:
    refs = []
    for op in ops:
        m = op.module
        if op.type in (OP_CONV2D, OP_LINEAR):
            assert m is not None
            bias = _np(m.bias).astype(np.float64) if isinstance(m.bias, torch.Tensor) else None
            scale = None
            if op.bn is not None:
                scale, shift = _bn_scale_shift(op.bn)
                bias = shift + scale * (bias if bias is not None else 0.0)
            w, s = tensors.weight(op, m, scale)
            b = NO_TENSOR if bias is None else tensors.f32(f"{op.name}.bias", bias.astype(np.float32))
            refs.append((w, s, b))
        elif op.type == OP_AFFINE:
            scale, shift = _bn_scale_shift(m)  # type: ignore[arg-type]
            refs.append(
                (
                    NO_TENSOR,
                    tensors.f32(f"{op.name}.scale", scale.astype(np.float32)),
                    tensors.f32(f"{op.name}.bias", shift.astype(np.float32)),
                )
            )
        else:
            refs.append((NO_TENSOR, NO_TENSOR, NO_TENSOR))
    return refs


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def lower(model: nn.Module, input_shape: tuple[int, ...] | list[int], quant: Quantizer | None = None) -> Lowered:
    """The runtime graph of ``model`` for inputs of ``input_shape`` (one sample, e.g. (1, 28, 28)).

    ``quant`` is the compression stage's quantizer (k-means weight sharing or int8), whose
    encodings are kept. Raises LoweringError for anything the runtime cannot run."""
    input_shape = tuple(int(d) for d in input_shape)
    gm = _trace(model, input_shape)
    shapes, input_id, output_id, ops = _build_ops(gm, input_shape)
    ops = _fuse(ops, output_id)
    ops = _pointwise_as_linear(ops, shapes)
    shapes, input_id, output_id = _renumber(shapes, input_id, output_id, ops)
    tensors = _Tensors(model, quant)
    refs = _tensor_refs(ops, tensors)
    return Lowered(shapes, input_id, output_id, ops, tensors.plans, refs)


def to_pakd(model: nn.Module, meta: dict[str, Any], quant: Quantizer | None = None, huffman: bool = True) -> bytes:
    """The runnable .pakd bytes: META + GRAPH + TENSORS. ``meta['input_shape']`` is required."""
    if "input_shape" not in meta:
        raise LoweringError("meta needs 'input_shape' (one sample, e.g. [1, 28, 28])")
    lowered = lower(model, meta["input_shape"], quant)
    return write_pakd(lowered.tensors, meta, huffman_coding=huffman, graph=lowered.graph_bytes())


def export_pakd(
    source: nn.Module | str | Path,
    out_path: str | Path | None = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    huffman: bool = True,
    meta: dict[str, Any] | None = None,
) -> bytes:
    """Lower a model (or a model folder: model.safetensors + spec.json) to a .pakd file.

    Writes ``out_path`` when given and returns the bytes."""
    if isinstance(source, nn.Module):
        model, meta = source, dict(meta or {})
        if input_shape is not None:
            meta["input_shape"] = list(input_shape)
        meta.setdefault("input_shape", [1, 28, 28])
    else:
        from ..modelio import load_model

        model, spec = load_model(Path(source))
        data = spec.get("data", {})
        meta = {
            "model": spec.get("model"),
            "input_shape": list(input_shape or data.get("input_shape") or [1, 28, 28]),
            "normalize": data.get("normalize"),
            **(meta or {}),
        }
    model.eval()
    blob = to_pakd(model, meta, huffman=huffman)
    if out_path is not None:
        atomic_write(out_path, blob)
    return blob
