"""The local-contrast probe: a second channel with each object's own contrast."""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_local_contrast as probe
import real_suite


def test_a_dim_and_a_bright_object_reach_the_same_contrast():
    image = np.full((64, 64), 10.0)
    image[10:20, 10:20] = 20.0  # dim
    image[40:50, 40:50] = 200.0  # bright
    c = probe.local_contrast(image, sigma=0.5, window=11, floor_window=31, min_contrast=0.01)
    assert c.dtype == np.float32 and c.shape == image.shape
    assert c.min() >= 0 and c.max() <= 1
    # the raw image puts the dim object at 5% of the bright one; the channel at about the same
    assert c[15, 15] > 0.9 and c[45, 45] > 0.9
    # unless its contrast is below min_contrast: 5% of the range over 10%
    dimmed = probe.local_contrast(image, sigma=0.5, window=11, floor_window=31, min_contrast=0.1)
    assert 0.45 < dimmed[15, 15] < 0.6 and dimmed[45, 45] > 0.9
    assert c[30, 30] < 0.05 and c[2, 2] < 0.05


def test_flat_background_is_not_stretched_to_noise():
    rng = np.random.default_rng(0)
    image = 100 + rng.normal(0, 0.5, (64, 64))
    image[20:40, 20:40] = 1000.0
    c = probe.local_contrast(image, min_contrast=0.1)
    # far from the object the window holds noise only: 0.5 / 900 of the range, far below 0.1
    assert c[:5, :5].max() < 0.05


def test_the_edge_term_sees_the_first_channel_only():
    seen = []
    wrapped = probe.first_channel(lambda p, x, sigma=1.0: seen.append((x, sigma)) or x.sum())
    image = torch.arange(8.0).view(1, 2, 1, 4)
    assert wrapped(torch.zeros(1, 2, 1, 4), image, sigma=0.3) == 6.0
    assert seen[0][0].shape == (1, 1, 1, 4) and seen[0][1] == 0.3


def test_grey_cases_gain_the_channel_and_colour_cases_do_not():
    build = probe.with_contrast(real_suite.CASES["coins"])
    case = build(None)
    assert case.image.shape == (*case.reference.shape, 2) and case.channel_axis == -1
    np.testing.assert_array_equal(case.image[..., 0], real_suite.CASES["coins"](None).image)
    colour = probe.with_contrast(real_suite.CASES["astronaut"])(None)
    assert colour.image.shape == (*colour.reference.shape, 3)
