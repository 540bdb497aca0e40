"""Knowledge distillation: Hinton KD from a teacher, a teacher-assistant or an ensemble,
with an optional feature-hint loss."""

from .kd import DistillConfig, DistillLoss, FeatureHints, ensemble_logits, kd_loss

__all__ = ["DistillConfig", "DistillLoss", "FeatureHints", "ensemble_logits", "kd_loss"]
