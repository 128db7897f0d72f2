"""Training crops: painted pixels in every crop, padding to the network's multiple."""

from __future__ import annotations

import numpy as np
from synthetic import centre_offsets, painted_pixel_sampler

from napari_seglab.core.data import Normalization, as_zcyx
from napari_seglab.core.sampling import CropSampler


def test_sampler_crops_hold_labels_and_use_labeled_slices():
    rng = np.random.default_rng(0)
    image = rng.random((6, 50, 70)).astype(np.float32)
    labels = np.zeros((6, 50, 70), np.uint8)
    labels[2, 10, 10] = 1
    labels[4, 40, 60] = 2
    view = as_zcyx(image, spatial_shape=labels.shape)
    sampler = CropSampler(view, labels, Normalization.fit(view), 32, 8, rng)
    x, y = sampler.batch(16)
    assert x.shape == (16, 1, 32, 32)
    assert y.shape == (16, 1, 32, 32)
    for i in range(16):
        assert (y[i] > 0).any()
    # Both classes are drawn (class-balanced choice), though each has one pixel.
    assert {1, 2} <= set(np.unique(y).tolist())


def test_sampler_small_image_is_padded_to_multiple():
    rng = np.random.default_rng(1)
    image = rng.random((13, 21)).astype(np.float32)
    labels = np.zeros((13, 21), np.uint8)
    labels[5, 5] = 1
    labels[6, 15] = 2
    view = as_zcyx(image, spatial_shape=labels.shape)
    sampler = CropSampler(view, labels, Normalization.fit(view), 128, 8, rng)
    x, y = sampler.batch(3)
    assert x.shape == (3, 1, 16, 24)
    assert y.sum() > 0
    assert np.isfinite(x).all()


def test_the_painted_pixel_lands_anywhere_in_the_crop_but_its_margin():
    """A class painted in one place must not always sit in the middle of the crop (runs then
    learnt the pixels, not the objects): the crop moves by up to half its size."""
    from napari_seglab.core.sampling import SHIFT_MARGIN

    for where in centre_offsets(painted_pixel_sampler()).T:  # rows, then columns
        assert min(where) == SHIFT_MARGIN and max(where) == 64 - SHIFT_MARGIN
        # spread over the crop, not piled up in its middle
        assert np.mean(np.abs(np.array(where) - 32) > 16) > 0.3
