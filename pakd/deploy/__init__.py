"""What leaves the host: board definitions (targets), builds and bundles, emulation, devices."""

from .targets import Target, TargetError, list_targets, load_target

__all__ = ["Target", "TargetError", "list_targets", "load_target"]
