"""What leaves the host: board definitions (targets), builds and bundles, emulation, devices."""

from .bundle import Bundle, BundleError, open_bundle
from .targets import Compiler, Target, TargetError, list_targets, load_target

__all__ = ["Bundle", "BundleError", "Compiler", "Target", "TargetError", "list_targets", "load_target", "open_bundle"]
