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
from .format import TensorPlan, write_pakd

# Op types and fused activations (docs/format.md; csrc/src/runtime/graph.h has the same numbers).
OP_CONV2D, OP_LINEAR, OP_AFFINE, OP_ACT, OP_ADD, OP_CONCAT = 1, 2, 3, 4, 5, 6
OP_MAXPOOL, OP_AVGPOOL, OP_GLOBAL_AVGPOOL, OP_RESHAPE, OP_SOFTMAX = 7, 8, 9, 10, 11
ACT_NONE, ACT_RELU, ACT_RELU6, ACT_HARDSWISH, ACT_SIGMOID = 0, 1, 2, 3, 4
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
}
NO_TENSOR = -1


class LoweringError(ModelError):
    """The model uses something the native runtime has no op for."""


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
        acts = {ACT_RELU: "+relu", ACT_RELU6: "+relu6", ACT_HARDSWISH: "+hardswish", ACT_SIGMOID: "+sigmoid"}
        return [f"{OP_NAMES[o.type]}{acts.get(o.act, '')} {o.name} {self.shapes[o.output]}" for o in self.ops]


# ----------------------------------------------------------------------------------------------
# Per-op lowering, one table entry per module type / function / method
# ----------------------------------------------------------------------------------------------

_ACT_MODULES: dict[type, int] = {
    nn.ReLU: ACT_RELU,
    nn.ReLU6: ACT_RELU6,
    nn.Hardswish: ACT_HARDSWISH,
    nn.Sigmoid: ACT_SIGMOID,
}
_ACT_FUNCTIONS: dict[Any, int] = {
    F.relu: ACT_RELU,
    torch.relu: ACT_RELU,
    F.relu6: ACT_RELU6,
    F.hardswish: ACT_HARDSWISH,
    torch.sigmoid: ACT_SIGMOID,
    F.sigmoid: ACT_SIGMOID,
}
_ACT_METHODS = {"relu": ACT_RELU, "relu_": ACT_RELU, "sigmoid": ACT_SIGMOID}
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_op(m: nn.Conv2d) -> tuple[int, list[int]]:
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        if m.padding != "valid" and not (isinstance(m.padding, str) and m.padding == "same" and m.stride == (1, 1)):
            raise LoweringError(f"conv padding {m.padding!r}/{m.padding_mode!r} is not supported")
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


def _module_op(m: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, list[int], int]:
    """(op type, attrs, fused activation) for a leaf module."""
    if type(m) in _ACT_MODULES:
        return OP_ACT, [], _ACT_MODULES[type(m)]
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
    if isinstance(m, nn.Flatten):
        return OP_RESHAPE, [], ACT_NONE
    if isinstance(m, nn.Softmax):
        return _softmax(m.dim, in_shape)
    raise LoweringError(f"module {type(m).__name__} has no native op")


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


def _arg(node: fx.Node, i: int, name: str, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _function_op(node: fx.Node, in_shape, out_shape) -> tuple[int, list[int], int]:
    fn = node.target
    if fn in _ACT_FUNCTIONS:
        return OP_ACT, [], _ACT_FUNCTIONS[fn]
    if fn in (operator.add, operator.iadd, torch.add):
        return OP_ADD, [], ACT_NONE
    if fn is torch.cat:
        dim = _arg(node, 1, "dim", 0)
        return _concat(dim, out_shape)
    if fn is torch.flatten:
        return OP_RESHAPE, [], ACT_NONE
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
    raise LoweringError(f"function {getattr(fn, '__name__', fn)} has no native op")


def _concat(dim, out_shape) -> tuple[int, list[int], int]:
    if dim not in (1, -len(out_shape)):
        raise LoweringError(f"concatenation is supported along channels (dim=1), got dim={dim}")
    return OP_CONCAT, [0], ACT_NONE


def _method_op(node: fx.Node, in_shape, out_shape) -> tuple[int, list[int], int]:
    name = node.target
    if name in _ACT_METHODS:
        return OP_ACT, [], _ACT_METHODS[name]
    if name in ("view", "reshape", "flatten"):
        return OP_RESHAPE, [], ACT_NONE
    if name in ("add", "add_"):
        return OP_ADD, [], ACT_NONE
    if name == "mean":
        dims = _arg(node, 1, "dim")
        dims = tuple(sorted(d % 4 for d in (dims if isinstance(dims, (tuple, list)) else (dims,))))
        if dims != (2, 3):
            raise LoweringError(f"mean over dims {dims} is not supported (only spatial: (2, 3))")
        return OP_GLOBAL_AVGPOOL, [], ACT_NONE
    if name == "softmax":
        return _softmax(_arg(node, 1, "dim"), in_shape)
    raise LoweringError(f"tensor method .{name}() has no native op")


# ----------------------------------------------------------------------------------------------
# Tracing and fusion
# ----------------------------------------------------------------------------------------------

_PASS_THROUGH_METHODS = ("contiguous", "clone", "detach")


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise LoweringError(f"node {node.name} does not produce a single tensor")
    shape = tuple(int(d) for d in meta.shape)
    if not shape or shape[0] != 1:
        raise LoweringError(f"node {node.name} has shape {shape}: batch must stay the first dimension")
    return shape[1:]


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many types for untraceable Python
        raise LoweringError(f"cannot trace the model with torch.fx: {exc}") from None
    was_training = model.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    gm.train(was_training)
    return gm


def _build_ops(gm: fx.GraphModule, input_shape: tuple[int, ...]) -> tuple[list[tuple[int, ...]], int, int, list[Op]]:
    modules = dict(gm.named_modules())
    value: dict[fx.Node, int] = {}
    shapes: list[tuple[int, ...]] = []
    ops: list[Op] = []
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
        if node.op == "get_attr":
            raise LoweringError(f"parameter {node.target} used as a value (only module weights are supported)")
        if node.op == "call_method" and node.target == "size":
            continue  # only feeds view/reshape arguments; shapes come from shape propagation
        inputs = [a for a in node.all_input_nodes if a in value]
        if (
            node.op == "call_module"
            and isinstance(modules[node.target], _IDENTITY_MODULES)
            or (node.op == "call_method" and node.target in _PASS_THROUGH_METHODS)
            or (node.op == "call_function" and node.target is F.dropout)
        ):
            value[node] = value[inputs[0]]
            continue
        if not inputs:
            raise LoweringError(f"node {node.name} has no tensor input")
        in_shape = shapes[value[inputs[0]]]
        out_shape = _shape(node)
        module = None
        if node.op == "call_module":
            module = modules[node.target]
            op_type, attrs, act = _module_op(module, in_shape, out_shape)
        elif node.op == "call_function":
            op_type, attrs, act = _function_op(node, in_shape, out_shape)
        else:
            op_type, attrs, act = _method_op(node, in_shape, out_shape)
        if op_type == OP_ADD and (len(inputs) != 2 or any(shapes[value[i]] != out_shape for i in inputs)):
            raise LoweringError(f"add {node.name}: only the sum of two same-shaped tensors is supported")
        if op_type not in (OP_ADD, OP_CONCAT):
            inputs = inputs[:1]
        value[node] = new_value(out_shape)
        ops.append(
            Op(
                op_type,
                [value[i] for i in inputs],
                value[node],
                list(attrs),
                act,
                module,
                str(node.target) if node.op == "call_module" else node.name,
            )
        )
    if input_id < 0 or output_id < 0:
        raise LoweringError("the model has no input or no output")
    if output_id == input_id:
        raise LoweringError("the model returns its input unchanged")
    return shapes, input_id, output_id, ops


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
        return op.type == OP_ACT and src.type in (OP_CONV2D, OP_LINEAR, OP_ADD, OP_AFFINE) and src.act == ACT_NONE

    def merge_act(src: Op, op: Op) -> None:
        src.act = op.act

    fuse_pass(bn_into_conv, merge_bn)
    fuse_pass(act_into_producer, merge_act)
    return ops


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
            q = code.values.detach().cpu().numpy()
            values = (q.reshape(q.shape[0], -1).astype(np.float64) * scales[:, None]).reshape(q.shape)
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
        Path(out_path).write_bytes(blob)
    return blob
