"""The quick random forest: fitted on strokes, predicts what a person would expect."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seglab.core import forest as forest_mod
from napari_seglab.core.forest import fit_forest, stroke_folds


def _disks(shape=(96, 96), channels=None, seed=0):
    """Bright disks on a dark noisy background; strokes inside two disks and in the gaps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, bool)
    for cy, cx in [(25, 25), (25, 70), (70, 30), (70, 72)]:
        truth |= (yy - cy) ** 2 + (xx - cx) ** 2 < 12**2
    image = (truth * 100 + 20 + rng.normal(0, 8, shape)).astype(np.float32)
    if channels:
        image = np.stack([image * (c + 1) for c in range(channels)], axis=-1)
    scribbles = np.zeros(shape, np.uint8)
    scribbles[24:27, 18:32] = 2  # a stroke inside the first disk
    scribbles[69:72, 66:78] = 2  # and the last
    scribbles[2:5, 5:90] = 1  # background along the top
    scribbles[45:48, 5:90] = 1  # and across the middle
    return image, scribbles, truth


def test_forest_segments_unpainted_disks():
    image, scribbles, truth = _disks()
    forest = fit_forest(image, scribbles)
    pred = forest.predict()
    assert pred.labels.shape == truth.shape and pred.labels.dtype == np.uint8
    assert pred.probabilities.shape == (2, *truth.shape)
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-5)
    unpainted = scribbles == 0
    assert np.mean((pred.labels == 2)[unpainted] == truth[unpainted]) > 0.95
    # the two disks without a stroke are found too
    assert np.mean(pred.labels[60:80, 20:40][truth[60:80, 20:40]] == 2) > 0.9
    assert forest.heldout_accuracy.shape == (2,)
    assert np.all(np.isfinite(forest.heldout_accuracy))
    assert forest.seconds > 0


def test_region_is_the_same_part_of_the_full_prediction():
    image, scribbles, _ = _disks()
    forest = fit_forest(image, scribbles)
    region = (slice(10, 50), slice(30, 90))
    part = forest.predict(region)
    full = forest.predict()
    np.testing.assert_array_equal(part.labels, full.labels[region])
    np.testing.assert_allclose(part.probabilities, full.probabilities[(slice(None), *region)])


def test_unpainted_class_between_painted_ones_has_no_probability():
    image, scribbles, _ = _disks()
    scribbles[scribbles == 2] = 3  # classes 1 and 3 painted, no 2
    pred = fit_forest(image, scribbles).predict()
    assert pred.probabilities.shape[0] == 3
    assert np.all(pred.probabilities[1] == 0)
    assert set(np.unique(pred.labels)) <= {1, 3}


def test_rgb_and_stack_layouts():
    image, scribbles, truth = _disks(channels=3)
    pred = fit_forest(image, scribbles, channel_axis=-1).predict()
    assert pred.labels.shape == truth.shape
    assert np.mean((pred.labels == 2) == truth) > 0.9
    stack = np.stack([_disks(seed=s)[0] for s in range(4)])
    strokes = np.zeros(stack.shape, np.uint8)
    strokes[1] = scribbles
    pred3 = fit_forest(stack, strokes).predict()
    assert pred3.labels.shape == stack.shape
    assert np.mean((pred3.labels[2] == 2) == truth) > 0.9


def test_large_integer_offset_keeps_its_grey_levels():
    """Features are computed after a float64 normalisation, so a 2**31 offset is harmless."""
    image, scribbles, _ = _disks()
    small = image.clip(0).astype(np.uint32)
    big = small + np.uint32(2**31)
    np.testing.assert_array_equal(
        fit_forest(big, scribbles).predict().labels, fit_forest(small, scribbles).predict().labels
    )


def test_bad_input_is_refused(monkeypatch):
    image, scribbles, _ = _disks()
    with pytest.raises(ValueError, match="at least two classes"):
        fit_forest(image, np.where(scribbles == 2, 0, scribbles))
    with pytest.raises(ValueError, match="does not match"):
        fit_forest(image, scribbles[:50])
    monkeypatch.setattr(forest_mod, "MAX_FEATURE_BYTES", 1000)
    with pytest.raises(ValueError, match="MiB"):
        fit_forest(image, scribbles)


def test_stroke_folds_deal_whole_strokes():
    s = np.zeros((20, 40), np.uint8)
    for i in range(6):
        s[2 + 3 * i, 2:10] = 1
        s[2 + 3 * i, 20:30] = 2
    fold = stroke_folds(s, 3)
    assert np.all(fold[s == 0] == -1)
    for i in range(6):  # every stroke lies in one fold
        assert len(np.unique(fold[2 + 3 * i, 2:10])) == 1
    for cls in (1, 2):  # each class's 6 strokes are dealt 2 per fold
        per_fold = [
            len(np.unique(np.flatnonzero(np.any((fold == k) & (s == cls), 1)))) for k in range(3)
        ]
        assert per_fold == [2, 2, 2]
