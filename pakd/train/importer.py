"""``pakd import``: a model trained outside PaKD becomes a teacher folder (``model.safetensors`` +
``spec.json``) that ``pakd compress --teacher`` and every later stage read like one ``pakd train``
wrote.

Three kinds of weights file are read, told apart by their bytes, never by unpickling:

- safetensors;
- a state dict saved with ``torch.save`` (also ``{"state_dict": ...}`` / ``{"model": ...}``
  checkpoints, and ``module.``-prefixed keys), read with ``torch.load(weights_only=True)``; a
  file that needs a full unpickle (a whole pickled ``nn.Module``) is refused;
- a ``torch.export`` program (``.pt2``). ``torch.export.load`` can run code: it unpickles
  weights marked ``use_pickle`` (``weights_only=False``), custom and opaque constants and
  legacy archives, falls back to ``weights_only=False`` for the sample inputs, evaluates
  symbolic-shape strings with ``sympy.sympify`` (an ``eval``), builds guard functions from
  source strings, and resolves node targets by attribute path under ``torch`` (``torch.os``
  included). So the archive is checked first (:func:`_check_program_archive`): no pickled
  payload, no symbolic shape, no guard code, every node an ``aten`` operator; and it is loaded
  with ``torch.load`` forced to ``weights_only=True`` and ``pickle.loads`` blocked.

With ``--model`` a program is only a source of weights (and the factory's outputs are checked
against the program's on test images). Without it the architecture is the program's graph:
:func:`exported_program` turns it back into an ``nn.Module`` whose convs, linears and batch
norms are real ``nn`` modules (so pruning masks, k-means and the size accountant see them) and
whose other ``aten`` calls become their ``torch`` functions where one exists. The teacher folder
keeps a copy, ``program.pt2``, and ``spec.json`` names the factory
``pakd.train.importer:exported_program`` with its absolute path and SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import operator
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..data import load_dataset
from ..errors import ModelError, RunError
from ..metrics import model_stats
from ..modelio import SPEC_FILE, library_versions, load_model, read_spec, save_model
from ..models import build_model, check_state_fits, load_state, zoo_entry
from ..storage import atomic_copy
from .trainer import evaluate

PROGRAM_FILE = "program.pt2"
PROGRAM_FACTORY = "pakd.train.importer:exported_program"
FORMATS = ("safetensors", "state-dict", "torch-export")
_AGREE_ATOL = 1e-4  # a factory's logits vs the program's, with the program's weights


@dataclass(frozen=True)
class ImportResult:
    folder: Path
    model: nn.Module
    spec: dict[str, Any]
    reused: bool


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- telling the formats apart ---------------------------------------------------------------
def weights_format(path: Path) -> str:
    """``safetensors``, ``state-dict`` or ``torch-export``, from the file's first bytes."""
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            raise ModelError(f"cannot read weights {path}: a damaged zip archive") from None
        if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
            return "torch-export"
        return "state-dict"  # torch.save's zip format
    if head[:1] == b"\x80":  # torch.save's legacy (non-zip) format: a pickle protocol header
        return "state-dict"
    raise ModelError(
        f"cannot read weights {path}: not safetensors, a torch.save state dict or a torch.export .pt2 program"
    )


# -- torch.save state dicts --------------------------------------------------------------------
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state dict, read with ``weights_only=True`` (never a full unpickle)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError...
        text = " ".join(str(exc).split())
        found = _GLOBAL.search(text)
        if found or "Weights only load failed" in text:
            what = f"a {found.group(1)} object" if found else "Python objects"
            raise ModelError(
                f"{path} holds {what} that only a full unpickle can load, which PaKD never does: "
                "save model.state_dict() with torch.save, or the model with torch.export"
            ) from None
        raise ModelError(f"cannot read weights {path} with torch.load: {text[:200]}") from None
    return _tensors_of(obj, path)


def _tensors_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model_state_dict", "model"):  # common training checkpoints
            if isinstance(obj.get(key), dict) and all(isinstance(v, torch.Tensor) for v in obj[key].values()):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        what = type(obj).__name__
        raise ModelError(f"{path} is not a state dict (a dict of tensors by name), it holds a {what}")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


# -- torch.export programs -------------------------------------------------------------------
_ALLOWED_TARGET = re.compile(r"^torch\.ops\.aten\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


def _walk(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _check_program_archive(path: Path) -> None:
    """Refuse, with one line, a .pt2 whose loading would unpickle, eval or import anything."""

    def refuse(why: str) -> ModelError:
        return ModelError(f"{path}: refused to load this torch.export program: {why}")

    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise refuse("not a zip archive") from None
    with z:
        names = z.namelist()
        fmt = [n for n in names if n.endswith("/archive_format") or n == "archive_format"]
        if len(fmt) != 1 or z.read(fmt[0]).strip() != b"pt2":
            raise refuse("not a torch.export.save archive (archive_format is not pt2)")
        root = fmt[0][: -len("archive_format")]
        models = [n for n in names if n.startswith(root + "models/") and n.endswith(".json")]
        if models != [root + "models/model.json"]:
            raise refuse(f"one program named 'model' expected, found {[n[len(root) :] for n in models]}")
        for n in names:
            rel = n[len(root) :]
            if rel.startswith(("data/weights/", "data/constants/")) and rel.endswith(".pt"):
                raise refuse(f"{rel} is a legacy pickled payload")
        for config_name in ("data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
            if root + config_name not in names:
                continue
            config = json.loads(z.read(root + config_name)).get("config", {})
            for fqn, meta in config.items():
                if meta.get("use_pickle"):
                    raise refuse(f"tensor {fqn!r} is stored as a pickle")
                if not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
                    raise refuse(f"constant {fqn!r} is a custom object (loaded by unpickling)")
        try:
            program = json.loads(z.read(root + "models/model.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise refuse(f"models/model.json is not JSON ({exc})") from None
    if program.get("guards_code"):
        raise refuse("it carries guard code (Python source run at load)")
    if program.get("range_constraints"):
        raise refuse("it has dynamic (symbolic) shapes; export with static shapes")
    for key, value in _walk(program.get("graph_module", {})):
        if key in ("expr_str", "as_expr"):
            raise refuse("it has symbolic shape expressions (evaluated by sympy at load); export with static shapes")
        if key == "nodes" and isinstance(value, list):
            for node in value:
                target = str(node.get("target", "")) if isinstance(node, dict) else ""
                if not (_ALLOWED_TARGET.match(target) or target == "_operator.getitem"):
                    raise refuse(f"node target {target!r} is not an aten operator")


@contextlib.contextmanager
def _no_unpickling() -> Iterator[None]:
    """While loading a program: ``torch.load`` only with ``weights_only=True``, no ``pickle.loads``."""
    import torch.export.pt2_archive._package as package

    real_load, real_obj = torch.load, getattr(torch._C, "_pickle_load_obj", None)

    def safe_load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ModelError("refused: loading this program would unpickle Python objects")

    class _Blocked:
        loads = load = staticmethod(refuse)

    real_pickle = getattr(package, "pickle", None)
    setattr(torch, "load", safe_load)  # noqa: B010 - patched for this load only, restored below
    setattr(torch._C, "_pickle_load_obj", refuse)  # noqa: B010
    setattr(package, "pickle", _Blocked())  # noqa: B010
    try:
        yield
    finally:
        setattr(torch, "load", real_load)  # noqa: B010
        if real_obj is not None:
            setattr(torch._C, "_pickle_load_obj", real_obj)  # noqa: B010
        if real_pickle is not None:
            setattr(package, "pickle", real_pickle)  # noqa: B010


def load_program(path: str | Path) -> torch.export.ExportedProgram:
    """``torch.export.load`` of a checked archive, with unpickling blocked (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"torch.export program not found: {path}")
    _check_program_archive(path)
    try:
        with _no_unpickling():
            program = torch.export.load(str(path))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch's deserializer raises many kinds
        text = " ".join(str(exc).split())
        raise ModelError(f"{path}: torch.export.load failed: {text[:200]}") from None
    for node in program.graph.nodes:
        if node.op == "call_function" and not (
            isinstance(node.target, torch._ops.OpOverload) or node.target is operator.getitem
        ):
            raise ModelError(f"{path}: refused: node {node.name} calls {node.target}, not an aten operator")
    return program


def program_state(program: torch.export.ExportedProgram) -> dict[str, torch.Tensor]:
    """The program's parameters and buffers by their original names (as ``model.state_dict()``)."""
    state = {k: v.detach() for k, v in program.state_dict.items()}
    for k, v in program.constants.items():
        if isinstance(v, torch.Tensor) and k in program.graph_signature.buffers:
            state[k] = v.detach()
    return state


def _one(x: Any) -> Any:
    return x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x


def _pair(x: Any, default: int) -> tuple[int, int]:
    if x is None:
        return (default, default)
    if isinstance(x, int):
        return (x, x)
    return (int(x[0]), int(x[-1]))


# aten operators -> the torch functions that the pruner's dependency graph and the lowering know;
# (function, how many leading positional arguments it takes) - the rest are dropped only when they
# are the defaults, else the aten call stays.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "relu.default": torch.relu,
    "relu_.default": torch.relu,
    "sigmoid.default": torch.sigmoid,
    "tanh.default": torch.tanh,
    "hardswish.default": F.hardswish,
    "hardswish_.default": F.hardswish,
    "hardsigmoid.default": F.hardsigmoid,
    "hardsigmoid_.default": F.hardsigmoid,
    "silu.default": F.silu,
    "silu_.default": F.silu,
    "flatten.using_ints": torch.flatten,
    "cat.default": torch.cat,
    "reshape.default": torch.reshape,
    "view.default": torch.reshape,
    "mean.dim": torch.mean,
    "softmax.int": torch.softmax,
    "adaptive_avg_pool2d.default": F.adaptive_avg_pool2d,
    "max_pool2d.default": F.max_pool2d,
    "avg_pool2d.default": F.avg_pool2d,
    "mul.Tensor": operator.mul,
    "sub.Tensor": operator.sub,
    "div.Tensor": operator.truediv,
}


def _op_name(op: Any) -> str:
    """``conv2d.default``, ``flatten.using_ints``: an aten overload's name as the tables use it."""
    return f"{op._opname}.{op._overloadname}"


def _torch_function(
    node: fx.Node, batch: int | None
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None:
    name = _op_name(node.target)
    args, kwargs = tuple(node.args), dict(node.kwargs)
    if name in ("add.Tensor", "add_.Tensor") and kwargs.get("alpha", 1) == 1 and len(args) == 2:
        return operator.add, args, {}
    if name in ("hardtanh.default", "hardtanh_.default"):
        given = list(args[1:3])
        bounds = [*given, *[-1.0, 1.0][len(given) :]]
        lo, hi = float(bounds[0]), float(bounds[1])  # type: ignore[arg-type]
        if (lo, hi) == (0.0, 6.0):
            return F.relu6, args[:1], {}
        return F.hardtanh, (args[0], lo, hi), {}
    if name == "gelu.default":
        return F.gelu, args[:1], {"approximate": kwargs.get("approximate", "none")}
    fn = _FUNCTIONS.get(name)
    if fn is None:
        return None
    if kwargs:
        return None
    if fn is torch.reshape and batch is not None and len(args) == 2 and isinstance(args[1], (list, tuple)):
        shape = [int(d) for d in args[1]]
        out = node.meta.get("val")
        src = args[0].meta.get("val") if isinstance(args[0], fx.Node) else None
        if (
            isinstance(out, torch.Tensor)
            and isinstance(src, torch.Tensor)
            and src.dim() > 2
            and tuple(out.shape) == (src.shape[0], src[0].numel())
        ):
            return torch.flatten, (args[0], 1), {}  # x.view(x.size(0), -1): the flatten the pruner knows
        if shape and shape[0] == batch and isinstance(out, torch.Tensor) and out.dim() == len(shape):
            args = (args[0], [-1, *(int(d) for d in out.shape[1:])])  # the export's batch in a view: any batch
    return fn, args, {}


_PASSTHROUGH = ("dropout.default", "clone.default", "contiguous.default", "alias.default")


def _owner(nodes: list[Any], attrs: tuple[str, ...]) -> str | None:
    """The module path that holds exactly ``attrs`` (``weight``, ``bias``...) as these get_attr nodes."""
    owner = None
    for node, attr in zip(nodes, attrs, strict=True):
        if node is None:
            continue
        if not isinstance(node, fx.Node) or node.op != "get_attr":
            return None
        path, _, leaf = str(node.target).rpartition(".")
        if leaf != attr or (owner is not None and path != owner):
            return None
        owner = path
    return owner or None


def exported_program(path: str, sha256_hex: str | None = None) -> nn.Module:
    """Rebuild an ``nn.Module`` from a ``torch.export`` program (the factory ``spec.json`` names
    for a ``.pt2`` imported without ``--model``): convs, linears and batch norms become ``nn``
    modules under the original names, the other ``aten`` calls their ``torch`` functions."""
    file = Path(path)
    if sha256_hex is not None and file.is_file() and sha256(file) != sha256_hex:
        raise ModelError(f"{file} is not the program this model was imported from (its SHA-256 changed)")
    program = load_program(file)
    gm = program.module()
    graph: fx.Graph = gm.graph
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise ModelError(f"{file}: the program takes {len(inputs)} inputs; PaKD models take one image tensor")
    example = inputs[0].meta.get("val")
    batch = int(example.shape[0]) if isinstance(example, torch.Tensor) and example.dim() > 0 else None
    for node in list(graph.nodes):
        if node.op == "call_module" and str(node.target).startswith("_guards"):
            graph.erase_node(node)
    for node in list(graph.nodes):
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            continue
        name = _op_name(node.target)
        args = list(node.args)
        module: nn.Module | None = None
        owner: str | None = None
        if name == "conv2d.default" and len(args) >= 2:
            w, b = args[1], args[2] if len(args) > 2 else None
            owner = _owner([w, b], ("weight", "bias"))
            if owner is not None:
                weight = gm.get_parameter(f"{owner}.weight")
                stride, padding, dilation = (
                    _pair(args[i] if len(args) > i else None, d) for i, d in ((3, 1), (4, 0), (5, 1))
                )
                groups = int(args[6]) if len(args) > 6 else 1
                out_c, in_per_group, kh, kw = weight.shape
                conv = nn.Conv2d(
                    in_per_group * groups, out_c, (kh, kw), stride, padding, dilation, groups, bias=b is not None
                )
                module = conv
        elif name == "linear.default" and len(args) >= 2:
            w, b = args[1], args[2] if len(args) > 2 else None
            owner = _owner([w, b], ("weight", "bias"))
            if owner is not None:
                weight = gm.get_parameter(f"{owner}.weight")
                module = nn.Linear(weight.shape[1], weight.shape[0], bias=b is not None)
        elif name == "batch_norm.default" and len(args) >= 8:
            owner = _owner(args[1:5], ("weight", "bias", "running_mean", "running_var"))
            val = args[0].meta.get("val") if isinstance(args[0], fx.Node) else None
            if owner is not None and val is not None and val.dim() in (2, 4) and args[1] is not None:
                channels = gm.get_parameter(f"{owner}.weight").shape[0]
                kind = nn.BatchNorm2d if val.dim() == 4 else nn.BatchNorm1d
                module = kind(channels, eps=float(args[7]), momentum=float(args[6]))
        if module is not None and owner is not None:
            old = gm.get_submodule(owner)
            if any(True for _ in old.children()):
                continue
            old_state = old.state_dict()
            if set(old_state) - set(module.state_dict()):
                continue
            module.load_state_dict(old_state, strict=False)
            _set_submodule(gm, owner, module)
            with graph.inserting_before(node):
                new = graph.call_module(owner, (args[0],))
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            graph.erase_node(node)
            continue
        if name in _PASSTHROUGH and args and isinstance(args[0], fx.Node):
            node.replace_all_uses_with(args[0])
            graph.erase_node(node)
            continue
        mapped = _torch_function(node, batch)
        if mapped is not None:
            fn, new_args, new_kwargs = mapped
            with graph.inserting_before(node):
                new = graph.call_function(fn, new_args, new_kwargs)
            new.meta = dict(node.meta)
            node.replace_all_uses_with(new)
            graph.erase_node(node)
    for node in list(graph.nodes):  # get_attr nodes whose users are now modules
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)
    out = next(n for n in graph.nodes if n.op == "output")
    results = out.args[0]
    while isinstance(results, (list, tuple)) and len(results) == 1:
        results = results[0]
    if not isinstance(results, fx.Node):
        raise ModelError(f"{file}: the program returns several outputs; PaKD models return one logits tensor")
    out.args = (results,)
    graph._codegen = fx.graph.CodeGen()  # a plain forward(x): no pytree specs, no guards
    graph.eliminate_dead_code()
    graph.lint()
    rebuilt = fx.GraphModule(gm, graph, class_name="ImportedProgram")
    for name in [n for n, _ in rebuilt.named_children() if n.startswith("_guards")]:
        delattr(rebuilt, name)
    return rebuilt.train()


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, module)


# -- the import ------------------------------------------------------------------------------
def _zoo_args(model: str, data: Any) -> dict[str, Any]:
    """What a zoo factory gets from the data: channels, classes and (where it takes one) the input size."""
    entry = zoo_entry(model)
    if entry is None:
        return {}
    args: dict[str, Any] = {"in_channels": data.input_shape[0], "num_classes": data.num_classes}
    if "input_size" in inspect.signature(entry.factory).parameters:
        args["input_size"] = data.input_shape[-1]
    return args


def import_teacher(
    weights: str | Path,
    folder: str | Path,
    model: str | None = None,
    model_args: tuple[tuple[str, Any], ...] = (),
    data: str = "fashion-mnist",
    data_dir: str | None = None,
    force: bool = False,
) -> ImportResult:
    """Load ``weights`` (into ``model``, or as the program's own architecture), evaluate it on the
    data's test split and write the teacher folder."""
    weights, folder = Path(weights), Path(folder)
    if not weights.is_file():
        raise ModelError(f"weights file not found: {weights}")
    fmt = weights_format(weights)
    digest = sha256(weights)
    identity = {"model": model, "args": dict(model_args), "data": data, "weights_sha256": digest}
    if (folder / SPEC_FILE).is_file():
        spec = read_spec(folder)
        if spec.get("import", {}).get("identity") == identity and not force:
            net, spec = load_model(folder)
            return ImportResult(folder, net, spec, reused=True)
        if not force:
            raise RunError(
                f"{folder} already holds a teacher made otherwise; choose another --name or pass --force to overwrite it"
            )
    bundle = load_dataset(data, data_dir)  # bad data or weights fail before anything is written
    program = load_program(weights) if fmt == "torch-export" else None
    if model is None and program is None:
        raise ModelError(
            f"{weights} is {fmt} weights without an architecture: give --model (a zoo name or package.module:factory)"
        )
    source = f"weights {weights}"
    if model is not None:
        args = {**_zoo_args(model, bundle), **dict(model_args)}
        net = build_model(model, **args)
        if fmt == "safetensors":
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                state = load_file(str(weights))
            except (SafetensorError, OSError, ValueError) as exc:
                raise ModelError(f"cannot read weights {weights}: not a valid safetensors file ({exc})") from None
        elif fmt == "state-dict":
            state = read_state_dict(weights)
        else:
            assert program is not None
            state = program_state(program)
        load_state(net, state, source)
        if program is not None:
            _check_agreement(net, program, bundle, model)
        name = model
    else:
        assert program is not None
        if model_args:
            raise ModelError("--model-arg needs --model: a .pt2 program alone has no factory arguments")
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / PROGRAM_FILE
        if copy.resolve() != weights.resolve():
            atomic_copy(weights, copy)
        name, args = PROGRAM_FACTORY, {"path": str(copy.resolve()), "sha256_hex": digest}
        net = build_model(name, **args)
        check_state_fits(net, program_state(program), source)
    net.eval()
    x = bundle.test.take(torch.arange(1)).images
    try:
        with torch.no_grad():
            logits = net(x)
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything on the wrong input
        text = " ".join(str(exc).split())
        raise ModelError(
            f"the model does not run on this data's images {tuple(x.shape[1:])}: {type(exc).__name__}: {text[:160]}"
        ) from None
    if logits.dim() != 2 or logits.shape[1] != bundle.num_classes:
        raise ModelError(
            f"the model returns {tuple(logits.shape)} for one image; {bundle.num_classes} class scores expected "
            f"(classes of {bundle.name})"
        )
    t0 = time.perf_counter()
    val_top1, _ = evaluate(net, bundle.val)
    test_top1, test_loss = evaluate(net, bundle.test)
    stats = model_stats(net, bundle.input_shape)
    spec = {
        "model": {"name": name, "args": args},
        "data": bundle.describe(),
        "import": {
            "weights": str(weights.resolve()),
            "format": fmt,
            "sha256": digest,
            "identity": identity,  # what a rerun compares to reuse this teacher
        },
        "metrics": {
            "val_top1": val_top1,
            "test_top1": test_top1,
            "test_loss": test_loss,
            "params": stats.params,
            "nonzeros": stats.nonzeros,
            "macs": stats.macs,
            "dense_fp32_bytes": stats.dense_fp32_bytes,
        },
        "eval_seconds": time.perf_counter() - t0,
        "versions": library_versions(),
        "threads": torch.get_num_threads(),
    }
    (folder / SPEC_FILE).unlink(missing_ok=True)  # --force: the folder is incomplete until save_model ends
    save_model(folder, net, spec)
    return ImportResult(folder, net.eval(), read_spec(folder), reused=False)


def _check_agreement(net: nn.Module, program: torch.export.ExportedProgram, bundle: Any, model: str) -> None:
    """With --model and a .pt2: the factory with the program's weights must compute what the program does."""
    x = bundle.test.images[:4]
    try:
        with torch.no_grad():
            run = program.module()
            outs = [run(x[i : i + 1]) for i in range(len(x))]  # a static program: its export batch of 1
            want = torch.cat([o[0] if isinstance(o, (list, tuple)) else o for o in outs])
            got = net.eval()(x)
    except Exception as exc:  # noqa: BLE001
        text = " ".join(str(exc).split())
        raise ModelError(f"cannot run the program on this data's images {tuple(x.shape[1:])}: {text[:160]}") from None
    if want.shape != got.shape or not torch.allclose(got, want, atol=_AGREE_ATOL, rtol=1e-4):
        diff = (got - want).abs().max().item() if want.shape == got.shape else float("inf")
        raise ModelError(
            f"model {model!r} with the program's weights does not compute what the program does "
            f"(max |logit difference| {diff:.3g} on test images): not the program's architecture"
        )


def import_folder(runs_dir: str | Path, weights: str | Path, data: str, model: str | None, name: str | None) -> Path:
    """Where ``pakd import`` writes: RUNS_DIR/NAME/teacher, NAME = MODEL-DATA (or WEIGHTS-STEM-DATA)."""
    stem = model.replace(":", "-").replace(".", "-") if model else Path(weights).stem
    data_name = re.sub(r"[^\w.-]+", "-", Path(data).stem if ("/" in data or "." in data) else data).strip("-")
    return Path(runs_dir) / (name or f"{stem}-{data_name}") / "teacher"
