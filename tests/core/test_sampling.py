"""Training crops: painted pixels in every crop, padding to the network's multiple."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import centre_offsets, painted_pixel_sampler

from napari_seglab.core.data import Normalization, as_zcyx, pad_end
from napari_seglab.core.inference import _tile
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


@pytest.mark.parametrize("shape", [(13, 21), (21, 13), (3, 40, 30), (5, 70, 13)])
def test_a_small_image_is_cropped_as_prediction_tiles_it(shape):
    """An image (or one axis of it) smaller than the training crop: the crop the network learns
    from holds the image where prediction's tile does, padded the same way, pixel for pixel.
    Crops once padded both sides while prediction padded after the image, and a 61 x 57 pixel
    volume's painted pixels on its first columns were not reproduced."""
    rng = np.random.default_rng(3)
    image = rng.random(shape).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    labels[(0,) * len(shape)] = 2  # a painted pixel in the corner
    labels[(-1,) * len(shape)] = 1
    view = as_zcyx(image, spatial_shape=labels.shape)
    norm = Normalization.fit(view)
    sampler = CropSampler(view, labels, norm, 64, 8, rng, augment=False)
    ch, cw = sampler.crop
    for z in range(view.data.shape[0]):
        crop, lab = sampler._crop(z, 0, 0)
        assert crop.shape[1:] == (ch, cw)
        tile = _tile(view.data[z], norm, 0, 0, ch, cw)
        np.testing.assert_array_equal(crop, tile)
        # the strokes sit at their own pixels, unpainted past the image
        h, w = min(shape[-2], ch), min(shape[-1], cw)
        np.testing.assert_array_equal(lab[:h, :w], labels.reshape(-1, *shape[-2:])[z, :h, :w])
        assert not lab[h:].any() and not lab[:, w:].any()


def test_pad_end():
    tile = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    # mirrored past the end without repeating the last row/column ...
    np.testing.assert_array_equal(
        pad_end(tile, 3, 4)[0], [[0, 1, 2, 1], [3, 4, 5, 4], [0, 1, 2, 1]]
    )
    # ... and with it where a pad is not smaller than the tile
    assert pad_end(tile, 4, 3)[0, 2:].tolist() == [[3, 4, 5], [0, 1, 2]]
    assert pad_end(tile, 2, 3) is tile
    with pytest.raises(ValueError, match="does not fit"):
        pad_end(tile, 1, 3)
