"""Everything that measures: timing statistics, peer engines (PyTorch eager, ONNX Runtime, the
native runtime), the local ``pakd bench`` run, devices and their transports (local, SSH), bundles
benchmarked on devices (``remote``) and the results store (``results``)."""

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
from .local import BenchCase, BenchConfig, Row, parse_threads, plan_cases, rows_table, run_local, with_ratios
from .timing import Timing, measure, percentile

__all__ = [
    "BenchCase",
    "BenchConfig",
    "BenchError",
    "Engine",
    "EngineUnavailable",
    "ModelRef",
    "Row",
    "Runner",
    "Timing",
    "engine_names",
    "get_engine",
    "load_module",
    "measure",
    "parse_threads",
    "percentile",
    "plan_cases",
    "register_engine",
    "rows_table",
    "run_local",
    "with_ratios",
]
