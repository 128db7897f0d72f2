"""Image layouts, normalisation and scribble checks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seglab.core.data import (
    Normalization,
    as_zcyx,
    check_finite,
    check_scribbles,
    present_classes,
)

LAYOUT_CASES = [
    # image shape, channel_axis, spatial hint, in_channels, expected (Z, C, Y, X), spatial
    ((30, 40), None, (30, 40), None, (1, 1, 30, 40), (30, 40)),
    ((30, 40, 3), None, (30, 40), None, (1, 3, 30, 40), (30, 40)),
    ((3, 30, 40), 0, (30, 40), None, (1, 3, 30, 40), (30, 40)),
    ((30, 40, 2), None, (30, 40), None, (1, 2, 30, 40), (30, 40)),
    ((5, 30, 40), None, (5, 30, 40), None, (5, 1, 30, 40), (5, 30, 40)),
    ((5, 30, 40, 2), None, (5, 30, 40), None, (5, 2, 30, 40), (5, 30, 40)),
    ((2, 30, 40), 0, None, None, (1, 2, 30, 40), (30, 40)),
    ((30, 40, 3), None, None, None, (1, 3, 30, 40), (30, 40)),
    ((7, 30, 40), None, None, None, (7, 1, 30, 40), (7, 30, 40)),
    ((30, 40, 3), None, None, 3, (1, 3, 30, 40), (30, 40)),
    ((4, 30, 40), None, None, 4, (1, 4, 30, 40), (30, 40)),
    ((3, 30, 40), None, None, 1, (3, 1, 30, 40), (3, 30, 40)),
]


@pytest.mark.parametrize(("shape", "axis", "spatial", "inch", "zcyx", "expected"), LAYOUT_CASES)
def test_layouts(shape, axis, spatial, inch, zcyx, expected):
    image = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    view = as_zcyx(image, channel_axis=axis, spatial_shape=spatial, in_channels=inch)
    assert view.data.shape == zcyx
    assert view.spatial_shape == expected


def test_channel_values_follow_axis():
    image = np.stack([np.full((4, 5), i, np.float32) for i in range(3)], axis=-1)
    view = as_zcyx(image, spatial_shape=(4, 5))
    for c in range(3):
        assert np.all(view.data[0, c] == c)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((30, 40), {"spatial_shape": (30, 41)}, "does not match"),
        ((30, 40, 3), {"spatial_shape": (40, 30)}, "does not match"),
        ((30, 40), {"in_channels": 3}, "expects 3 channels"),
        ((30, 40, 5), {"in_channels": 3}, "no axis"),
        ((2, 3, 4, 5, 6), {}, "not supported"),
        ((30,), {}, "not supported"),
        ((30,), {"channel_axis": 0}, "spatial dimensions"),
        ((30, 40), {"channel_axis": 4}, "out of range"),
    ],
)
def test_bad_layouts(shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        as_zcyx(np.zeros(shape, np.float32), **kwargs)


def test_complex_dtype_refused():
    with pytest.raises(ValueError, match="dtype"):
        as_zcyx(np.zeros((4, 4), np.complex64))


def test_check_finite():
    a = np.zeros((10, 10), np.float32)
    check_finite(a)
    a[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_finite(a)
    a[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_finite(a)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_normalization_maps_percentiles(dtype):
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64)) * 200).astype(dtype)
    view = as_zcyx(image)
    norm = Normalization.fit(view, (1.0, 99.0))
    out = norm.apply(view.data[0])
    assert out.dtype == np.float32
    assert np.quantile(out, 0.01) == pytest.approx(0.0, abs=0.02)
    assert np.quantile(out, 0.99) == pytest.approx(1.0, abs=0.02)
    assert Normalization.from_dict(norm.to_dict()) == norm


def test_normalization_constant_image():
    view = as_zcyx(np.full((8, 8), 7, np.uint8))
    norm = Normalization.fit(view)
    assert np.all(np.isfinite(norm.apply(view.data[0])))


def test_check_scribbles():
    s = check_scribbles(np.array([[0, 1], [2, 3]], np.int64), (2, 2))
    assert s.dtype == np.uint8
    assert list(present_classes(s)) == [1, 2, 3]
    assert check_scribbles(np.array([[0.0, 2.0]]), None).dtype == np.uint8
    with pytest.raises(ValueError, match="does not match"):
        check_scribbles(np.zeros((2, 3), np.uint8), (2, 2))
    with pytest.raises(ValueError, match="negative"):
        check_scribbles(np.array([[-1, 1]]))
    with pytest.raises(ValueError, match="whole-number"):
        check_scribbles(np.array([[0.5, 1]]))
    with pytest.raises(ValueError, match="label 300"):
        check_scribbles(np.array([[300, 1]]))


@pytest.mark.parametrize("label", [33, 254, 255])
def test_labels_above_the_class_limit_are_refused_clearly(label):
    """A 0/255 mask is the common mistake: say what the labels mean, never wrap a uint8."""
    s = np.array([[0, 1, label]], np.uint8)
    with pytest.raises(ValueError, match=rf"label {label}; labels are 0 = unlabeled.*0/255"):
        check_scribbles(s)


def test_the_largest_class_id_is_accepted():
    from napari_seglab.core.data import MAX_CLASSES

    s = np.zeros((16, 16), np.uint8)
    s[2, 2], s[8, 8] = 1, MAX_CLASSES
    assert check_scribbles(s).max() == MAX_CLASSES


@pytest.mark.parametrize(
    ("dtype", "offset"), [(np.uint32, 2**31), (np.int64, -(2**40)), (np.float64, 1e12)]
)
def test_normalization_keeps_grey_levels_past_float32(dtype, offset):
    """911 grey levels on a large offset stay 911 levels (float32 alone would merge them)."""
    levels = np.arange(911)
    image = (levels.reshape(1, 1, 911) + offset).astype(dtype)
    from napari_seglab.core.data import as_zcyx

    view = as_zcyx(image[0])
    norm = Normalization.fit(view, (0.0, 100.0))
    out = norm.apply(view.data)
    assert out.dtype == np.float32
    assert len(np.unique(out)) == 911
    np.testing.assert_allclose(out.ravel(), levels / 910, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 30, 40), (3, 30, 40), (30, 5, 40)])
def test_channels_or_planes_are_never_guessed(shape):
    """A 3D image painted in 2D: its extra axis may be channels or planes; unless it is the
    last one, the caller must say which (the message names the shapes and the option)."""
    axis = shape.index(next(s for s in shape if s not in (30, 40)))
    with pytest.raises(ValueError, match=rf"--channel-axis {axis}.*channel_axis={axis}") as err:
        as_zcyx(np.zeros(shape, np.float32), spatial_shape=(30, 40))
    assert str(shape) in str(err.value) and "(30, 40)" in str(err.value)
    view = as_zcyx(np.zeros(shape, np.float32), channel_axis=axis, spatial_shape=(30, 40))
    assert view.data.shape == (1, shape[axis], 30, 40)


def test_a_no_data_margin_is_refused_with_its_cause():
    """-3.4e38 around a float image (a GIS/microscopy no-data value) would map every real pixel
    to one grey level: refused, naming the value and its share."""
    image = np.random.default_rng(0).normal(100, 10, (128, 128)).astype(np.float32)
    image[:, :20] = -3.4e38
    with pytest.raises(ValueError, match=r"-3\.4e\+38 on 15\.6% of its pixels.*no-data"):
        Normalization.fit(as_zcyx(image))
    image[:, :20] = image[:, 20:40]  # replaced by real values: fine
    Normalization.fit(as_zcyx(image))


@pytest.mark.parametrize(
    ("dtype", "outliers"),
    [(np.float32, (3.4e38, -3.4e38)), (np.float64, (1e300, -1e300)), (np.float64, (1e300,))],
)
def test_outliers_beyond_float32_stay_finite(dtype, outliers):
    """A few values beyond float32 (or at its bounds) are clipped after normalisation instead of
    becoming inf and then NaN inside the network; the other pixels are untouched."""
    image = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(dtype)
    for i, value in enumerate(outliers):
        image[0, i] = value
    view = as_zcyx(image)
    norm = Normalization.fit(view)
    out = norm.apply(view.data, channel_axis=1)
    assert np.isfinite(out).all()
    ref = (image[1:].astype(np.float64) - norm.low[0]) / (norm.high[0] - norm.low[0])
    np.testing.assert_allclose(out[0, 0, 1:], ref, rtol=1e-5, atol=1e-6)


def test_values_wider_than_float64_are_refused():
    image = np.zeros((32, 32))
    image[:16] = -1.7e308
    image[16:] = 1.7e308
    with pytest.raises(ValueError, match="wider than a float64"):
        Normalization.fit(as_zcyx(image), (0.0, 100.0))


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_scribbles_for_a_colour_image_are_refused(channels):
    """Strokes saved as an RGB(A) picture have the colour image's own shape: read as given they
    would turn the image into a stack of 64 planes 3 pixels wide."""
    image = np.zeros((64, 48, channels), np.uint8)
    with pytest.raises(ValueError, match=r"colour \(RGB\).*shape \(64, 48\)"):
        as_zcyx(image, spatial_shape=image.shape)
    assert as_zcyx(image, spatial_shape=(64, 48)).data.shape == (1, channels, 64, 48)
