"""Imports point one way, down the path of a model (STYLE.md): every ``import`` / ``from`` in
``pakd/**/*.py``, at module level and inside functions, goes from a module to one in a lower
layer (or to its own sub-package); none goes up, none sideways between two parts of one layer."""

from __future__ import annotations

import ast
from pathlib import Path

PAKD = Path(__file__).resolve().parents[1] / "pakd"

# Top to bottom. A part is a sub-package or a top-level module of pakd; the parts on one line
# form one layer and must not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("__main__",),
    ("cli",),
    ("__init__",),  # the public API: names resolved lazily, on first use
    ("demo",),
    ("report",),
    ("bench",),  # everything that measures: engines, devices, transports, the results store
    ("deploy",),  # builds and verifies bundles
    ("pipeline",),
    ("lower", "train"),
    ("rundir",),  # the run-folder layout, read by pipeline, deploy, bench and report
    ("modelio",),
    ("quant", "prune", "distill"),
    ("metrics",),
    ("models", "data"),
    ("targets", "ui"),
    ("dist", "storage"),  # torch.distributed for data-parallel runs; atomic writes and folder locks
    ("errors", "_version", "_core", "resources"),  # resources: where the data files are (wheel or checkout)
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _module(path: Path) -> str:
    parts = ("pakd", *path.relative_to(PAKD).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    if (PAKD / rel / "__init__.py").is_file():
        return True
    # a source module, or a compiled one (pakd._core: its stub, or the built .so in place)
    return any((PAKD / rel).with_suffix(s).is_file() for s in (".py", ".pyi")) or any(PAKD.glob(f"{rel}.*.so"))


def _imports(path: Path) -> set[str]:
    """Every pakd module ``path`` imports (``from a import b`` counts as a.b when b is a module)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            subs = [f"{name}.{a.name}" for a in node.names if _is_module(f"{name}.{a.name}")]
            out.update(subs or [name])
    return {m for m in out if m == "pakd" or m.startswith("pakd.")}


def _part(module: str) -> str:
    """pakd.bench.local -> bench; pakd (the package's __init__) -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PAKD.rglob("*.py")):
        src = _module(path)
        src_part = "__init__" if path == PAKD / "__init__.py" else _part(src)
        for dst in sorted(_imports(path)):
            dst_part = _part(dst)
            if dst_part != src_part:
                edges.setdefault((src_part, dst_part), []).append(f"{src} -> {dst}")
    return edges


def test_every_part_has_a_layer():
    parts = {"__init__" if p == PAKD / "__init__.py" else _part(_module(p)) for p in PAKD.rglob("*.py")}
    parts |= {dst for (_, dst) in _edges()}
    assert parts - LEVEL.keys() == set(), "add these parts of pakd to LAYERS"


def test_imports_point_down():
    wrong = [
        f"{src} ({LEVEL[src]}) -> {dst} ({LEVEL[dst]}): {', '.join(where)}"
        for (src, dst), where in sorted(_edges().items())
        if src in LEVEL and dst in LEVEL and LEVEL[dst] <= LEVEL[src]
    ]
    assert wrong == [], "imports that point up or sideways:\n" + "\n".join(wrong)


def test_no_cycles_between_parts():
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == [], "import cycles between parts of pakd: " + "; ".join(" -> ".join(c) for c in cycles)
