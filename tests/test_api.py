"""The curated public API and the compiled module."""

import inspect
import subprocess
import sys

import numpy as np

# One public function per command of the CLI (which only parses, calls it and prints).
COMMANDS = {
    "train": "train_teacher",
    "eval": "evaluate_model",
    "compress": "compress",
    "targets": "list_targets",
    "build": "build",
    "verify": "verify",
    "bench": "bench_models",
    "bench --device": "bench_on_devices",
    "results": "read_rows",
    "report": "make_report",
    "demo": "run_demo",
}


def test_public_api_names_resolve():
    import pakd

    for name in pakd.__all__:
        assert getattr(pakd, name) is not None


def test_public_api_covers_every_command():
    import pakd

    missing = {cmd: name for cmd, name in COMMANDS.items() if name not in pakd.__all__}
    assert missing == {}


def test_public_functions_are_typed():
    import pakd

    untyped = []
    for name in pakd.__all__:
        obj = getattr(pakd, name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            if sig.return_annotation is inspect.Signature.empty or any(
                p.annotation is inspect.Parameter.empty for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD
            ):
                untyped.append(name)
    assert untyped == []


def test_import_pakd_stays_light():
    code = "import sys, pakd; pakd.__all__; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_core_module_imports_and_multiplies():
    import pakd._core as core

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((3, 2), dtype=np.float32)
    np.testing.assert_allclose(core.gemm(a, b), a @ b)
    assert core.best_gemm_kernel() in {k["name"] for k in core.gemm_kernels() if k["supported"]}
