"""Distillation losses.

Hinton et al. (2015): loss = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).
The T^2 factor keeps the soft-target gradients on the scale of the hard-label ones.
Teacher-assistant chains (Mirzadeh et al. 2019) and ensembles (averaged logits) only change
*which* logits are the target; the stage runner picks the teachers named in the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidField, PakdError


@dataclass(frozen=True)
class DistillConfig:
    """``teachers``: any of "teacher", "previous" or model-folder paths; several = ensemble.
    ``alpha`` = 0 disables KD (plain fine-tuning on labels), so the KD gain is measurable."""

    teachers: tuple[str, ...] = ("teacher",)
    alpha: float = 0.7
    temperature: float = 4.0
    hint_weight: float = 0.0
    hint_layers: tuple[tuple[str, str], ...] = ()  # (student module, teacher module) pairs

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidField(f"distill alpha must be in [0, 1], got {self.alpha}", "alpha", self.alpha, "in [0, 1]")
        if not self.temperature > 0:
            raise InvalidField(
                f"distill temperature must be > 0, got {self.temperature}", "temperature", self.temperature, "> 0"
            )
        if not self.hint_weight >= 0:
            raise InvalidField(
                f"distill hint weight must be >= 0, got {self.hint_weight}", "hint_weight", self.hint_weight, ">= 0"
            )
        if self.alpha > 0 and not self.teachers:
            raise PakdError("distillation with alpha > 0 needs at least one teacher")
        if self.hint_weight < 0:
            raise PakdError(f"hint weight must be >= 0, got {self.hint_weight}")

    @property
    def enabled(self) -> bool:
        return self.alpha > 0 or self.hint_weight > 0


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float, alpha: float
) -> torch.Tensor:
    hard = F.cross_entropy(student_logits, labels)
    if alpha == 0:
        return hard
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits / t, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (t * t)
    return alpha * soft + (1.0 - alpha) * hard


def ensemble_logits(teachers: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Average logits of several teachers (Asif et al. 2019: ensemble knowledge distillation)."""
    with torch.no_grad():
        return torch.stack([t(x) for t in teachers]).mean(0)


class FeatureHints:
    """FitNets-style hint loss: MSE between named student and teacher activations, through a
    learned 1x1 conv adapter when the channel counts differ. Hooks are removed by ``close``."""

    def __init__(self, student: nn.Module, teacher: nn.Module, pairs: tuple[tuple[str, str], ...]) -> None:
        self._feats: dict[str, torch.Tensor] = {}
        self._handles = []
        s_mods, t_mods = dict(student.named_modules()), dict(teacher.named_modules())
        for s_name, t_name in pairs:
            if s_name not in s_mods or t_name not in t_mods:
                raise PakdError(f"hint layers {s_name!r}/{t_name!r} not found in student/teacher")
            self._handles.append(s_mods[s_name].register_forward_hook(self._save(f"s:{s_name}")))
            self._handles.append(t_mods[t_name].register_forward_hook(self._save(f"t:{t_name}")))
        self.pairs = pairs
        self.adapters = nn.ModuleDict()

    def _save(self, key: str):
        def hook(_m, _i, out):
            self._feats[key] = out

        return hook

    def loss(self) -> torch.Tensor:
        total = torch.zeros(())
        for s_name, t_name in self.pairs:
            s, t = self._feats[f"s:{s_name}"], self._feats[f"t:{t_name}"].detach()
            if s.shape[1] != t.shape[1]:
                key = s_name.replace(".", "_")
                if key not in self.adapters:
                    self.adapters[key] = nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
                s = self.adapters[key](s)
            total = total + F.mse_loss(s, t)
        return total

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


class DistillLoss:
    """The stage's loss: ``loss(student_logits, x, y)``; runs the teacher(s) on ``x`` itself."""

    def __init__(self, cfg: DistillConfig, teachers: list[nn.Module], hints: FeatureHints | None = None) -> None:
        self.cfg = cfg
        self.teachers = [t.eval() for t in teachers]
        for t in self.teachers:
            t.requires_grad_(False)
        self.hints = hints

    def __call__(self, student_logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.cfg.enabled or not self.teachers:
            return F.cross_entropy(student_logits, y)
        target = ensemble_logits(self.teachers, x)
        loss = kd_loss(student_logits, target, y, self.cfg.temperature, self.cfg.alpha)
        if self.hints is not None and self.cfg.hint_weight > 0:
            loss = loss + self.cfg.hint_weight * self.hints.loss()
        return loss
