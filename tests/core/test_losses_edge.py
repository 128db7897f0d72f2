"""The edge-aware Potts regulariser and the flux term of napari_seglab.core.losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_seglab.core.losses import edge_aware_potts, intensity_flux, laplacian_of_gaussian


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


@pytest.mark.parametrize("term", [edge_aware_potts, intensity_flux])
def test_bad_input(term):
    with pytest.raises(ValueError, match="does not match"):
        term(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 9))
    with pytest.raises(ValueError, match="spatial dims"):
        term(torch.rand(2, 8), torch.rand(2, 8))
    with pytest.raises(ValueError, match="sigma"):
        term(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8), sigma=0)


# --- the flux term -------------------------------------------------------------------------


def _disk(n: int, radius: float, center: float | None = None) -> np.ndarray:
    c = (n - 1) / 2 if center is None else center
    yy, xx = np.mgrid[:n, :n]
    return (np.hypot(yy - c, xx - c) <= radius).astype(np.float32)


def _probs(fg: np.ndarray) -> torch.Tensor:
    f = torch.as_tensor(fg, dtype=torch.float32)
    return torch.stack([1 - f, f])[None]


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_of_gaussian_agrees_with_scipy(sigma, ndim):
    rng = np.random.default_rng(0)
    x = rng.random((20,) * ndim).astype(np.float32)
    ours = laplacian_of_gaussian(torch.as_tensor(x)[None, None], sigma)[0, 0].numpy()
    ref = sigma**2 * ndi.gaussian_laplace(x.astype(np.float64), sigma, mode="nearest", truncate=4)
    np.testing.assert_allclose(ours, ref, atol=2e-4 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("radius", [6.0, 10.0, 20.0])
@pytest.mark.parametrize("bright", [True, False])
def test_flux_puts_the_boundary_on_a_blurred_edge(bright, radius):
    """A blurred disk, bright or dark: of foregrounds drawn 3 px too small to 3 px too large, the
    flux term prefers one within 2 px outside the true outline (the Laplacian's zero crossing
    lies slightly outside a convex object), while the Potts term prefers the smallest."""
    true = _disk(64, radius)
    image = ndi.gaussian_filter(true, 2.0)
    if not bright:
        image = 1.0 - image
    x = torch.as_tensor(image)[None, None]
    radii = radius + np.arange(-3, 4)
    flux = [intensity_flux(_probs(_disk(64, r)), x).item() for r in radii]
    assert 0 <= radii[int(np.argmin(flux))] - radius <= 2
    # an edge weak for the Potts term's sigma, as on a blurred and noisy image: it prefers the
    # smallest disk, the shrinking bias the flux counters
    potts = [edge_aware_potts(_probs(_disk(64, r)), x, sigma=1.0).item() for r in radii]
    assert int(np.argmin(potts)) == 0


def test_flux_needs_two_classes_and_lets_gradients_flow():
    logits = torch.zeros(1, 3, 16, 16, requires_grad=True)
    value = intensity_flux(torch.softmax(logits, 1), torch.rand(1, 1, 16, 16))
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    logits = torch.randn(2, 2, 16, 16, requires_grad=True)
    value = intensity_flux(torch.softmax(logits, 1), torch.rand(2, 3, 16, 16))  # 3 channels
    assert 0.0 <= value.item() <= 1.0
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_flux_fades_where_the_classes_do_not_differ_in_intensity():
    probs = torch.softmax(torch.randn(1, 2, 16, 16), 1)
    assert intensity_flux(probs, torch.full((1, 1, 16, 16), 0.3)).item() == pytest.approx(
        0.0, abs=1e-6
    )
    # an edge, but both classes spread evenly over it: no contrast between the classes
    image = torch.zeros(1, 1, 16, 16)
    image[..., 8:] = 1.0
    even = torch.full((1, 2, 16, 16), 0.5)
    assert intensity_flux(even, image).item() == pytest.approx(0.0, abs=1e-6)


def test_flux_half_precision_and_bad_input():
    probs = torch.softmax(torch.randn(1, 2, 64, 64), 1).to(torch.bfloat16)
    value = intensity_flux(probs, torch.rand(1, 1, 64, 64).to(torch.bfloat16))
    assert value.dtype == torch.float32 and torch.isfinite(value)
    with pytest.raises(ValueError, match="min_contrast"):
        intensity_flux(torch.rand(1, 2, 8, 8), torch.rand(1, 1, 8, 8), min_contrast=0)
