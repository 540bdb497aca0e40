"""What leaves the host: builds and bundles, emulation. Targets live in pakd.targets (re-exported here)."""

from ..targets import Compiler, Target, TargetError, list_targets, load_target
from .bundle import Bundle, BundleError, open_bundle

__all__ = ["Bundle", "BundleError", "Compiler", "Target", "TargetError", "list_targets", "load_target", "open_bundle"]
