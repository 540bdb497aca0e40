"""Latency benchmarks: timing statistics, peer engines (PyTorch eager, ONNX Runtime, the native
runtime) and the local ``pakd bench`` run. Remote devices come with pakd/deploy."""

from .engines import (
    BenchError,
    Engine,
    EngineUnavailable,
    ModelRef,
    Runner,
    engine_names,
    get_engine,
    load_module,
    register_engine,
)
from .local import BenchConfig, Row, Target, parse_threads, plan_targets, rows_table, run_local, with_ratios
from .timing import Timing, measure, percentile

__all__ = [
    "BenchConfig",
    "BenchError",
    "Engine",
    "EngineUnavailable",
    "ModelRef",
    "Row",
    "Runner",
    "Target",
    "Timing",
    "engine_names",
    "get_engine",
    "load_module",
    "measure",
    "parse_threads",
    "percentile",
    "plan_targets",
    "register_engine",
    "rows_table",
    "run_local",
    "with_ratios",
]
