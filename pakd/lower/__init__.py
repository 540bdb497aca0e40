"""Lowering: the .pakd model file (weights part here; the op graph comes with the native runtime)."""
