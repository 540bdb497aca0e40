"""Distillation loss numerics."""

import math

import pytest
import torch
import torch.nn.functional as F

from pakd.distill import DistillConfig, DistillLoss, ensemble_logits, kd_loss
from pakd.errors import PakdError


def test_kd_loss_matches_hinton_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(5, 10), torch.randn(5, 10), torch.randint(0, 10, (5,))
    T, alpha = 3.0, 0.6
    p_t = F.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()
    expected = alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)
    assert kd_loss(s, t, y, T, alpha).item() == pytest.approx(expected.item(), rel=1e-5)


def test_identical_logits_leave_only_the_hard_term():
    s, y = torch.randn(4, 10), torch.randint(0, 10, (4,))
    assert kd_loss(s, s.clone(), y, 4.0, 0.5).item() == pytest.approx(0.5 * F.cross_entropy(s, y).item(), rel=1e-5)


def test_alpha_zero_is_plain_cross_entropy():
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    assert torch.equal(kd_loss(s, t, y, 4.0, 0.0), F.cross_entropy(s, y))


def test_soft_gradient_scale_is_temperature_independent():
    """The T^2 factor keeps soft-target gradients comparable across temperatures (Hinton 2015)."""
    torch.manual_seed(0)
    t, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    norms = []
    for T in (2.0, 8.0):
        s = torch.randn(64, 10, generator=torch.Generator().manual_seed(1)).requires_grad_()
        kd_loss(s, t, y, T, 1.0).backward()
        norms.append(s.grad.norm().item())
    assert 0.2 < norms[0] / norms[1] < 5


def test_ensemble_averages_logits():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.allclose(ensemble_logits([a, b], x), (a(x) + b(x)) / 2)


def test_distill_loss_runs_the_teacher_and_freezes_it():
    teacher, student = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    loss = DistillLoss(DistillConfig(teachers=("teacher",), alpha=1.0, temperature=1.0), [teacher])
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    value = loss(student(x), x, y)
    value.backward()
    assert teacher.weight.grad is None and student.weight.grad is not None
    assert math.isfinite(value.item())


@pytest.mark.parametrize("bad", [dict(alpha=1.5), dict(temperature=0.0), dict(teachers=(), alpha=0.5)])
def test_bad_config_is_refused(bad):
    with pytest.raises(PakdError):
        DistillConfig(**bad)
