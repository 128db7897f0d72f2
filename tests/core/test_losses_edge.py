"""The edge-aware Potts regulariser of napari_seglab.core.losses."""

from __future__ import annotations

import pytest
import torch

from napari_seglab.core.losses import edge_aware_potts


def _split(shape: tuple[int, ...], column: int) -> torch.Tensor:
    """Certain two-class probabilities ``(1, 2, *shape)``: class 1 left of ``column``."""
    fg = torch.zeros(shape)
    fg[..., :column] = 1.0
    return torch.stack([1 - fg, fg])[None]


def test_zero_when_one_class_everywhere():
    probs = _split((16, 16), 16)  # all class 1
    image = torch.rand(1, 1, 16, 16)
    assert edge_aware_potts(probs, image).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("shape", [(32,), (16, 16), (4, 8, 8)])
def test_a_boundary_on_an_edge_costs_less_than_one_in_a_flat_region(shape):
    image = torch.zeros(1, 1, *shape)
    image[..., : shape[-1] // 2] = 1.0  # an intensity edge half way
    on_edge = edge_aware_potts(_split(shape, shape[-1] // 2), image)
    off_edge = edge_aware_potts(_split(shape, shape[-1] // 4), image)
    assert 0.0 <= on_edge.item() < 1e-6 < off_edge.item()


def test_uncertain_pixels_cost_and_gradients_flow():
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    loss = edge_aware_potts(torch.softmax(logits, 1), torch.zeros(2, 1, 8, 8))
    # flat image, uniform classes: 1 - 1/3 per neighbour pair, summed over the two axes
    assert loss.item() == pytest.approx(2 * (1 - 1 / 3), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_half_precision_inputs_sum_in_float32():
    probs = torch.softmax(torch.randn(1, 2, 256, 256), 1).to(torch.bfloat16)
    value = edge_aware_potts(probs, torch.rand(1, 1, 256, 256).to(torch.bfloat16))
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        edge_aware_potts(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="spatial dims"):
        edge_aware_potts(torch.rand(2, 8), torch.rand(2, 8))
    with pytest.raises(ValueError, match="sigma"):
        edge_aware_potts(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8), sigma=0)
