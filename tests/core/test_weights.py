"""Class counts over labeled pixels and the class-weight schemes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seglab.core.weights import DEFAULT_FLOOR, SCHEMES, ClassCounts, class_weights

# ----------------------------------------------------------------------------------------------
# ClassCounts
# ----------------------------------------------------------------------------------------------


def test_counts_ignore_unlabeled_and_accumulate():
    cc = ClassCounts(3)
    cc.add(np.array([[0, 1, 1], [2, 0, 1]], dtype=np.uint8))
    np.testing.assert_array_equal(cc.counts, [3, 1, 0])
    cc.add(np.zeros((4, 4, 4), dtype=np.int32))  # nothing labeled: no change
    cc.add([3, 3, 2])
    np.testing.assert_array_equal(cc.counts, [3, 2, 2])
    assert cc.total == 7
    np.testing.assert_allclose(cc.fractions, [3 / 7, 2 / 7, 2 / 7])
    assert cc.counts.dtype == np.int64


def test_counts_are_a_copy():
    cc = ClassCounts(2)
    cc.add([1, 2])
    c = cc.counts
    c[:] = 100
    np.testing.assert_array_equal(cc.counts, [1, 1])


def test_from_labels_over_several_slices_equals_stack():
    rng = np.random.default_rng(0)
    slices = [rng.integers(0, 4, size=(16, 16)) for _ in range(5)]
    a = ClassCounts.from_labels(slices, 3)
    b = ClassCounts.from_labels(np.stack(slices), 3)
    np.testing.assert_array_equal(a.counts, b.counts)


def test_fractions_without_labels_are_zero():
    cc = ClassCounts(2)
    np.testing.assert_array_equal(cc.fractions, [0.0, 0.0])
    assert cc.total == 0


def test_incremental_strokes_equal_full_recount():
    rng = np.random.default_rng(1)
    labels = np.zeros((64, 64), dtype=np.uint8)
    cc = ClassCounts(4)
    cc.add(labels)
    for _ in range(50):
        y, x = rng.integers(0, 60, size=2)
        value = int(rng.integers(0, 5))  # 0 = eraser
        idx = np.s_[y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)]
        old = labels[idx].copy()
        labels[idx] = value
        cc.update(old.ravel(), labels[idx].ravel())
        np.testing.assert_array_equal(cc.counts, ClassCounts.from_labels(labels, 4).counts)


def test_update_accepts_a_scalar_new_value_and_napari_style_indices():
    labels = np.zeros((8, 8), dtype=np.int32)
    labels[:2] = 1
    cc = ClassCounts.from_labels(labels, 2)
    # a paint event gives the indices of the changed pixels, their old values and the new value
    idx = (np.array([0, 1, 5]), np.array([0, 0, 5]))
    old = labels[idx]
    labels[idx] = 2
    cc.update(old, 2)
    np.testing.assert_array_equal(cc.counts, ClassCounts.from_labels(labels, 2).counts)


def test_update_errors_leave_counts_unchanged():
    cc = ClassCounts.from_labels(np.array([1, 1, 2]), 2)
    with pytest.raises(ValueError, match=r"shape \(2,\) does not match.*\(3,\)"):
        cc.update(np.array([1, 1]), np.array([2, 2, 2]))
    with pytest.raises(ValueError, match=r"class ids \[2\] negative"):
        cc.update(np.array([2, 2]), np.array([1, 1]))  # only one pixel of class 2 was counted
    with pytest.raises(ValueError, match=r"class ids \[5\] outside \[0, 2\]"):
        cc.update(np.array([1]), np.array([5]))
    np.testing.assert_array_equal(cc.counts, [2, 1])


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.array([0, 3]), r"\[3\] outside \[0, 2\]"),
        (np.array([-1, 1]), r"\[-1\] outside"),
        (np.array([0.5, 1.0]), r"non-integer"),
        (np.array(["a"]), r"integer class ids"),
    ],
)
def test_add_rejects_bad_labels(labels, match):
    cc = ClassCounts(2)
    with pytest.raises(ValueError, match=match):
        cc.add(labels)


def test_bad_num_classes():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_classes"):
            ClassCounts(bad)


def test_copy_is_independent_and_repr_shows_the_counts():
    cc = ClassCounts.from_labels(np.array([1, 2, 2, 3]), 3)
    other = cc.copy()
    cc.add([3, 3])
    np.testing.assert_array_equal(cc.counts, [1, 2, 3])
    np.testing.assert_array_equal(other.counts, [1, 2, 1])
    assert "counts=[1, 2, 3]" in repr(cc)


# ----------------------------------------------------------------------------------------------
# class_weights
# ----------------------------------------------------------------------------------------------


def test_schemes_tuple():
    assert SCHEMES == ("inverse_frequency", "median_frequency", "effective_number", "none")


def test_inverse_frequency_is_normalised_to_mean_one():
    w = class_weights([60, 30, 10], "inverse_frequency", floor=0.01)
    raw = np.array([1 / 0.6, 1 / 0.3, 1 / 0.1])
    np.testing.assert_allclose(w, raw / raw.mean())
    assert w.mean() == pytest.approx(1.0)
    assert w.dtype == np.float64 and w.shape == (3,)


def test_median_frequency():
    # Eigen & Fergus: median(f) / f_c; the median class weighs 1
    w = class_weights([60, 30, 10], "median_frequency", floor=0.01)
    np.testing.assert_allclose(w, [0.3 / 0.6, 1.0, 0.3 / 0.1])


def test_effective_number_follows_cui_et_al():
    counts = np.array([5000, 200, 20])
    beta = 0.999
    w = class_weights(counts, "effective_number", beta=beta, floor=1e-6)
    eff = (1 - beta**counts) / (1 - beta)
    raw = 1 / eff
    np.testing.assert_allclose(w, raw / raw.mean())
    # beta near 1 behaves like inverse frequency, beta = 0 like no weighting
    near = class_weights(counts, "effective_number", beta=1 - 1e-9, floor=1e-6)
    np.testing.assert_allclose(
        near, class_weights(counts, "inverse_frequency", floor=1e-6), rtol=1e-4
    )
    np.testing.assert_allclose(class_weights(counts, "effective_number", beta=0.0), [1, 1, 1])


def test_none_scheme_is_all_ones():
    np.testing.assert_array_equal(class_weights([5, 0, 100], "none"), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("scheme", ["inverse_frequency", "median_frequency", "effective_number"])
def test_floor_caps_the_weight_ratio(scheme):
    counts = [100_000, 1]  # a barely painted class
    w = class_weights(counts, scheme, beta=0.9999)
    assert w.max() / w.min() == pytest.approx(1 / DEFAULT_FLOOR)
    w = class_weights(counts, scheme, beta=0.9999, floor=0.5)
    assert w.max() / w.min() == pytest.approx(2.0)
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_absent_classes_weigh_one_and_empty_counts_give_ones(scheme):
    w = class_weights([10, 0, 30], scheme)
    assert w[1] == 1.0
    np.testing.assert_array_equal(class_weights([0, 0], scheme), [1.0, 1.0])


def test_accepts_class_counts():
    cc = ClassCounts.from_labels(np.array([1, 1, 1, 2]), 2)
    np.testing.assert_allclose(class_weights(cc), class_weights([3, 1]))


def test_balanced_counts_give_equal_weights():
    for scheme in SCHEMES:
        np.testing.assert_allclose(class_weights([7, 7, 7], scheme), [1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"counts": [1, 2], "scheme": "log"}, "scheme must be one of"),
        ({"counts": [1, -2]}, r"counts must be finite and >= 0"),
        ({"counts": [1, np.nan]}, r"counts must be finite"),
        ({"counts": [[1, 2]]}, r"1-D array.*\(1, 2\)"),
        ({"counts": []}, r"non-empty"),
        ({"counts": [1, 2], "beta": 1.0}, r"beta must be in \[0, 1\)"),
        ({"counts": [1, 2], "floor": 0.0}, r"floor must be in \(0, 1\]"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        class_weights(**kwargs)


def test_counting_in_chunks(monkeypatch):
    import napari_seglab.core.weights as weights_module

    monkeypatch.setattr(weights_module, "_CHUNK", 7)
    labels = np.random.default_rng(2).integers(0, 4, size=(5, 9, 3))
    cc = ClassCounts.from_labels(labels, 3)
    np.testing.assert_array_equal(cc.counts, np.bincount(labels.ravel(), minlength=4)[1:])
    labels.flat[-1] = 9  # a bad value in the last chunk is still found
    with pytest.raises(ValueError, match=r"\[9\]"):
        ClassCounts.from_labels(labels, 3)
