"""The U-Net keeps the input's size for any size, and its configuration is checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_seglab.core.data import Normalization
from napari_seglab.core.model import ModelConfig, SegModel, UNet


@pytest.mark.parametrize("size", [(1, 1), (7, 9), (16, 16), (33, 47), (64, 31)])
@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(depth=2, width=4, norm="group", upsampling="bilinear"),
        ModelConfig(depth=1, width=4, norm="none"),
        ModelConfig(depth=4, width=2, norm="instance"),
    ],
)
def test_output_size_equals_input_size(size, config):
    torch.manual_seed(0)
    net = UNet(3, 5, config).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 5, *size)


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": 0}, {"width": 0}, {"norm": "layer"}, {"binary_mode": "x"}, {"upsampling": "nn"}],
)
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        ModelConfig(**kwargs)


def test_config_round_trip():
    c = ModelConfig(depth=2, width=8, norm="group", binary_mode="sigmoid")
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**c.to_dict(), "heads": 3})


def test_segmodel_sigmoid_and_probabilities():
    norm = Normalization((0.0,), (1.0,))
    m = SegModel.create(2, 1, norm, ModelConfig(width=4, binary_mode="sigmoid"))
    assert m.net.out_channels == 1 and m.sigmoid
    p = m.probabilities(torch.zeros(1, 1, 4, 4))
    assert p.shape == (1, 2, 4, 4)
    assert torch.allclose(p.sum(1), torch.ones(1, 4, 4))
    m3 = SegModel.create(3, 1, norm, ModelConfig(width=4, binary_mode="sigmoid"))
    assert m3.net.out_channels == 3  # more classes always use softmax
    assert m3.class_names == ["background", "foreground", "class 3"]
    with pytest.raises(ValueError, match="at least 2"):
        SegModel.create(1, 1, norm)
    with pytest.raises(ValueError, match="channels"):
        SegModel.create(2, 3, norm)


def test_same_seed_same_weights():
    norm = Normalization((0.0,), (1.0,))
    a = SegModel.create(2, 1, norm, seed=3)
    b = SegModel.create(2, 1, norm, seed=3)
    for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert np.array_equal(pa.detach().numpy(), pb.detach().numpy())
