"""Scribble edits: validation, and incremental counts and crop lists equal to a full recount."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seglab.core.data import Normalization, as_zcyx
from napari_seglab.core.edits import ScribbleEdit
from napari_seglab.core.sampling import CropSampler
from napari_seglab.core.training import TrainConfig, train
from napari_seglab.core.weights import ClassCounts

FAST = {"device": "cpu", "num_threads": 1, "crop_size": 32, "batch_size": 2}


def _sampler(labels: np.ndarray) -> CropSampler:
    image = np.random.default_rng(0).random(labels.shape).astype(np.float32)
    view = as_zcyx(image, spatial_shape=labels.shape)
    return CropSampler(
        view, labels, Normalization.fit(view), 32, 8, np.random.default_rng(0), augment=False
    )


def _assert_same_as_recount(sampler: CropSampler, counts: ClassCounts, truth: np.ndarray):
    np.testing.assert_array_equal(sampler.labels.reshape(truth.shape), truth)
    np.testing.assert_array_equal(
        counts.counts, np.bincount(truth.ravel(), minlength=counts.num_classes + 1)[1:]
    )
    fresh = _sampler(truth)
    assert sorted(sampler.coords) == sorted(fresh.coords)
    for k in fresh.coords:
        np.testing.assert_array_equal(sampler.coords[k], fresh.coords[k], err_msg=f"class {k}")
    np.testing.assert_array_equal(sampler.classes, fresh.classes)


def _random_edit(rng, shape, num_classes, n=50, scalar=False) -> ScribbleEdit:
    indices = tuple(rng.integers(0, s, n) for s in shape)  # repeats on purpose
    values = rng.integers(0, num_classes + 1, n) if not scalar else rng.integers(0, num_classes + 1)
    return ScribbleEdit(indices, np.asarray(values))


EDIT_CASES = [((40, 48), 2), ((5, 24, 32), 3)]


@pytest.mark.parametrize(("shape", "num_classes"), EDIT_CASES, ids=["2d", "3d"])
def test_edits_keep_counts_and_sampler_equal_to_a_recount(shape, num_classes):
    rng = np.random.default_rng(1)
    truth = np.zeros(shape, np.uint8)
    truth[(0,) * (len(shape) - 1) + (slice(0, 3),)] = 1
    truth[(-1,) * (len(shape) - 1) + (slice(0, 3),)] = 2
    sampler = _sampler(truth)
    counts = ClassCounts.from_labels(truth, num_classes)
    for i in range(30):
        edit = _random_edit(rng, shape, num_classes, scalar=i % 3 == 0)
        flat, values = edit.resolve(shape, num_classes)
        expected = truth.copy().reshape(-1)
        expected[flat] = values
        if not expected.any():
            continue
        counts.update(*sampler.apply_edit(edit, num_classes))
        truth = expected.reshape(shape)
        _assert_same_as_recount(sampler, counts, truth)


def test_overwrite_erase_and_repeat():
    truth = np.zeros((16, 16), np.uint8)
    truth[2, 2:6] = 1
    truth[10, 2:6] = 2
    sampler = _sampler(truth)
    counts = ClassCounts.from_labels(truth, 2)
    steps = [
        ScribbleEdit((np.array([2, 2]), np.array([2, 3])), np.array(2)),  # overwrite 1 -> 2
        ScribbleEdit((np.array([10, 10]), np.array([2, 3])), np.array(0)),  # erase 2 -> 0
        ScribbleEdit((np.array([10, 10]), np.array([2, 3])), np.array(0)),  # again: no change
        ScribbleEdit((np.array([5, 5, 5]), np.array([5, 5, 6])), np.array([1, 2, 1])),  # last wins
    ]
    for edit in steps:
        counts.update(*sampler.apply_edit(edit, 2))
    truth[2, 2:4] = 2
    truth[10, 2:4] = 0
    truth[5, 5] = 2
    truth[5, 6] = 1
    _assert_same_as_recount(sampler, counts, truth)
    assert counts.counts.tolist() == [3, 5]


def test_erasing_every_stroke_is_refused_and_changes_nothing():
    truth = np.zeros((8, 8), np.uint8)
    truth[1, 1], truth[2, 2] = 1, 2
    sampler = _sampler(truth)
    with pytest.raises(ValueError, match="erases every painted pixel"):
        sampler.apply_edit(ScribbleEdit((np.array([1, 2]), np.array([1, 2])), np.array(0)), 2)
    np.testing.assert_array_equal(sampler.labels[0], truth)
    assert sorted(sampler.coords) == [1, 2]


def test_sampler_never_writes_the_array_it_was_given():
    truth = np.zeros((8, 8), np.uint8)
    truth[1, 1], truth[2, 2] = 1, 2
    given = truth.copy()
    sampler = _sampler(given)
    sampler.apply_edit(ScribbleEdit((np.array([3]), np.array([3])), np.array(2)), 2)
    np.testing.assert_array_equal(given, truth)


def test_from_mask():
    mask = np.array([[True, False], [False, True]])
    edit = ScribbleEdit.from_mask((3, 4), mask, 2)
    assert [a.tolist() for a in edit.indices] == [[3, 4], [4, 5]]
    full = ScribbleEdit.from_mask((0, 1), None, 1, shape=(2, 2))
    assert full.size == 4
    with pytest.raises(ValueError, match="shape"):
        ScribbleEdit.from_mask((0, 0), None, 1)


BAD_EDITS = [
    (lambda: ScribbleEdit(np.array([1, 2]), np.array(1)), "tuple of integer arrays"),
    (lambda: ScribbleEdit((), np.array(1)), "one array per spatial axis"),
    (lambda: ScribbleEdit((np.array([1.5]), np.array([1])), np.array(1)), "whole numbers"),
    (lambda: ScribbleEdit((np.array([1, 2]), np.array([1])), np.array(1)), "differ in length"),
    (lambda: ScribbleEdit((np.array([[1]]), np.array([[1]])), np.array(1)), "must be 1-D"),
    (lambda: ScribbleEdit((np.array([1]), np.array([1])), np.array([1, 2])), r"\(1,\)"),
    (lambda: ScribbleEdit((np.array([1]), np.array([1])), np.array([True])), "integers"),
]


@pytest.mark.parametrize(("make", "message"), BAD_EDITS)
def test_malformed_edits_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


RESOLVE_ERRORS = [
    (ScribbleEdit((np.array([1]), np.array([1])), np.array(1)), (4, 4, 4), "2 index arrays"),
    (ScribbleEdit((np.array([4]), np.array([1])), np.array(1)), (4, 4), "index 4 on axis 0"),
    (ScribbleEdit((np.array([0]), np.array([-1])), np.array(1)), (4, 4), "index -1 on axis 1"),
    (ScribbleEdit((np.array([0]), np.array([0])), np.array(3)), (4, 4), "label 3 .* 2 classes"),
    (ScribbleEdit((np.array([0]), np.array([0])), np.array(-1)), (4, 4), "label -1"),
]


@pytest.mark.parametrize(("edit", "shape", "message"), RESOLVE_ERRORS)
def test_edits_outside_the_scribbles_raise(edit, shape, message):
    with pytest.raises(ValueError, match=message):
        edit.resolve(shape, 2)


def _square_and_strokes(shape=(48, 48)):
    """A bright square and two strokes of known size (40 background, 12 foreground pixels)."""
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, shape).astype(np.float32)
    image[10:20, 10:20] += 80
    scribbles = np.zeros(shape, np.uint8)
    scribbles[12:18, 12:14] = 2
    scribbles[30:34, 30:40] = 1
    return image, scribbles


def test_training_applies_sent_edits_incrementally():
    image, scribbles = _square_and_strokes()
    given = scribbles.copy()
    gen = train(image, given, TrainConfig(steps=6, **FAST))
    first = next(gen)
    assert first.counts.tolist() == [40, 12]
    stroke = ScribbleEdit.from_mask((40, 2), np.ones((2, 5), bool), 2)
    erase = ScribbleEdit((np.array([30, 30]), np.array([30, 31])), np.array(0))
    report = gen.send(stroke)
    assert report.counts.tolist() == [40, 22]
    report = gen.send([erase, stroke])  # a list, applied in order; the stroke again: no change
    assert report.counts.tolist() == [38, 22]
    full = scribbles.copy()
    full[0, :5] = 1
    report = gen.send(full)  # a full array still replaces everything (e.g. after an undo)
    assert report.counts.tolist() == [45, 12]
    report = gen.send([full, stroke])  # a full array then an edit
    assert report.counts.tolist() == [45, 22]
    np.testing.assert_array_equal(given, scribbles)  # the caller's array is never written
    with pytest.raises(ValueError, match="label 3"):
        gen.send(ScribbleEdit((np.array([0]), np.array([0])), np.array(3)))


def test_training_refuses_an_edit_that_erases_everything():
    image, scribbles = _square_and_strokes()
    gen = train(image, scribbles, TrainConfig(steps=5, **FAST))
    next(gen)
    with pytest.raises(ValueError, match="erases every painted pixel"):
        gen.send(ScribbleEdit(np.nonzero(scribbles), np.array(0)))
