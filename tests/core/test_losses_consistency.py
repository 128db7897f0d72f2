"""The mean-teacher consistency term of napari_seglab.core.losses."""

from __future__ import annotations

import pytest
import torch

from napari_seglab.core.losses import consistency_mse


def test_the_mean_squared_difference_of_the_counted_pixels():
    student = torch.zeros(1, 2, 2, 2)
    student[:, 0] = 1.0  # certain of class 0 everywhere
    teacher = student.clone()
    teacher[0, :, 0, 0] = torch.tensor([0.0, 1.0])  # disagrees on one pixel: (1 + 1) there
    assert consistency_mse(student, teacher).item() == pytest.approx(2.0 / 4)
    mask = torch.tensor([[[True, False], [False, False]]])  # (B, *spatial): that pixel only
    assert consistency_mse(student, teacher, mask).item() == pytest.approx(2.0)
    assert consistency_mse(student, teacher, ~mask).item() == 0.0
    assert consistency_mse(student, teacher, mask[:, None]).item() == pytest.approx(2.0)


def test_only_the_student_gets_gradients_and_nothing_counted_is_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher_logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = consistency_mse(logits.softmax(1), teacher_logits.softmax(1))
    loss.backward()
    assert logits.grad.abs().sum() > 0 and teacher_logits.grad is None
    none = consistency_mse(logits.softmax(1), teacher_logits.softmax(1), torch.zeros(2, 4, 4))
    assert none.item() == 0.0 and none.requires_grad


def test_mismatched_shapes_are_value_errors():
    p = torch.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="teacher_probs"):
        consistency_mse(p, torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="mask"):
        consistency_mse(p, p, torch.ones(1, 3, 3, dtype=torch.bool))
