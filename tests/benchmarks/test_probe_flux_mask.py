"""The masked-flux probe: the flux term where the network is unsure, nothing where it is sure."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_flux_mask as probe

from napari_seglab.core.losses import intensity_flux


def _image() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    return (((yy - 12) ** 2 + (xx - 12) ** 2) < 36).float().view(1, 1, 24, 24)


def test_a_network_as_unsure_everywhere_gets_that_share_of_the_flux_term():
    image = _image()
    fg = (0.4 + 0.2 * image).requires_grad_()  # 0.6 in the disk, 0.4 outside: unsure 0.8
    probs = torch.cat([1 - fg, fg], 1)
    got = probe.unsure_flux(probs, image)
    assert got > 0
    assert torch.allclose(got, 0.8 * intensity_flux(probs, image))
    got.backward()
    assert fg.grad.abs().sum() > 0


def test_sure_pixels_get_none_and_three_classes_give_zero():
    image = _image()
    fg = torch.rand(1, 1, 24, 24).round()  # every pixel sure, right or wrong
    probs = torch.cat([1 - fg, fg], 1)
    assert intensity_flux(probs, image) > 0
    assert probe.unsure_flux(probs, image) == 0
    assert probe.unsure_flux(torch.full((1, 3, 24, 24), 1 / 3), image) == 0
