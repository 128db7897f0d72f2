"""The random forest teaches the classes painted on few pixels (core/forest_teacher.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_seglab.core import forest_teacher as ft
from napari_seglab.core.config import TrainConfig
from napari_seglab.core.data import Normalization, as_zcyx
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.sampling import CropSampler
from napari_seglab.core.training import train


def blobs(n: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright disks (r = 5) on a dark noisy background and their mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    mask = np.zeros((n, n), bool)
    for cy in range(12, n - 8, 24):
        for cx in range(12, n - 8, 24):
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 25
    image = (0.2 + 0.6 * mask + rng.normal(0, 0.05, (n, n))).astype(np.float32)
    return image, mask


def few_strokes(n: int = 128) -> np.ndarray:
    """Background lines between the disks, and 11 foreground pixels in one disk."""
    s = np.zeros((n, n), np.uint8)
    for row in range(24, n - 8, 48):
        s[row, 4 : n - 4] = 1
    s[4 : n - 4, 48] = 1
    s[12, 7:18] = 2  # through the disk at (12, 12): 11 pixels
    return s


def ihc_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A corner of ``skimage.data.immunohistochemistry()``: 11 foreground pixels painted in
    one brown (DAB-stained) patch, four background lines away from the stain; and the stain
    (colour deconvolution's DAB channel over Otsu's threshold, as the benchmark suite's silver
    standard)."""
    from scipy import ndimage as ndi
    from skimage import color, data, filters, morphology

    image = data.immunohistochemistry()[:256, :256]
    dab = filters.gaussian(color.rgb2hed(image)[..., 2], 2)
    stain = morphology.remove_small_objects(dab > filters.threshold_otsu(dab), max_size=100)
    inner = ndi.binary_erosion(stain, iterations=4)
    ys, xs = np.nonzero(inner)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    s = np.zeros(stain.shape, np.uint8)
    s[y, x - 5 : x + 6] = np.where(inner[y, x - 5 : x + 6], 2, 0)
    away = ~ndi.binary_dilation(stain, iterations=4)
    for row in (20, 90, 160, 230):
        line = np.zeros(stain.shape, bool)
        line[row, 5:250] = True
        s[line & away] = 1
    return image, s, stain


def _run(image, scribbles, steps=60, width=8, **settings):
    config = TrainConfig(
        steps=steps, seed=0, num_threads=1, model=ModelConfig(width=width, depth=2), **settings
    )
    return list(train(image, scribbles, config))[-1]


@pytest.mark.parametrize(
    ("counts", "below", "expected"),
    [([100, 11, 0, 49, 50], 50, [2, 4]), ([100, 11], 0, []), ([3, 200], 50, [1])],
)
def test_sparse_classes_are_those_painted_on_fewer_pixels(counts, below, expected):
    assert ft.sparse_classes(np.array(counts), below).tolist() == expected


def test_the_teacher_region_is_the_painted_box_grown_by_a_margin_and_clipped():
    labels = np.zeros((3, 50, 60), np.uint8)
    labels[1, 10, 20] = 1
    labels[2, 30, 55] = 2
    assert ft.teacher_region(labels, 8) == (slice(1, 3), slice(2, 39), slice(12, 60))


def test_the_forest_teaches_the_disks_it_was_shown_one_of_and_nothing_outside_its_region():
    image, mask = blobs()
    view = as_zcyx(image)
    labels = few_strokes()[None]
    taught = ft.fit_teacher(view, labels, margin=200, seed=0, n_jobs=1)[0]
    assert taught.dtype == np.uint8 and taught.shape == image.shape
    far = ~mask & (np.hypot(*np.gradient(mask.astype(float))) == 0)
    assert np.mean(taught[mask] == 2) > 0.8  # every disk, not only the painted one
    assert np.mean(taught[far] == 2) < 0.01
    corner = np.zeros_like(labels)  # strokes in a corner: the forest sees that corner only
    corner[0, 12, 7:18] = 2
    corner[0, 24, 4:40] = 1
    small = ft.fit_teacher(view, corner, margin=8, seed=0, n_jobs=1)[0]
    assert ft.teacher_region(corner, 8) == (slice(0, 1), slice(4, 33), slice(0, 48))
    assert small[4:33, :48].any() and not small[33:].any() and not small[:, 48:].any()


def test_the_teacher_loss_counts_unpainted_pixels_of_taught_classes_only():
    logits = torch.randn(1, 3, 2, 3)
    teacher = torch.tensor([[[[2, 0, 3], [1, 2, 3]]]])
    painted = torch.tensor([[[[False, False, False], [False, True, False]]]])
    taught = torch.tensor([2, 3])
    ce = F.cross_entropy(logits, (teacher - 1).clamp(min=0)[:, 0], reduction="none")[0]
    expected = (ce[0, 0] + ce[0, 2] + ce[1, 2]) / 3  # (1, 1) painted, (1, 0) class 1
    got = ft.teacher_loss(logits, teacher, taught, painted, sigmoid=False)
    torch.testing.assert_close(got, expected)
    assert ft.teacher_loss(logits, teacher, torch.tensor([1]), teacher == 1, False) is None
    # one sigmoid output: the cross-entropy of its two-class probabilities
    one = torch.randn(1, 1, 2, 3)
    two = torch.cat([torch.zeros_like(one), one], dim=1)  # softmax([0, z]) = [1 - s, s]
    t2 = torch.tensor([[[[2, 1, 2], [2, 2, 1]]]])
    none = torch.zeros_like(painted)
    torch.testing.assert_close(
        ft.teacher_loss(one, t2, torch.tensor([1, 2]), none, sigmoid=True),
        ft.teacher_loss(two, t2, torch.tensor([1, 2]), none, sigmoid=False),
    )


def test_the_sampler_crops_and_flips_the_teacher_with_the_strokes():
    # every pixel's intensity is its column: a crop tells where each pixel came from
    image = np.tile(np.arange(48, dtype=np.float32), (40, 1))
    labels = np.zeros((40, 48), np.uint8)
    labels[5:35, 10] = 1
    labels[20, 20:40] = 2
    view = as_zcyx(image, spatial_shape=labels.shape)
    norm = Normalization.fit(view)
    teacher = np.where(image < 24, 1, 2).astype(np.uint8)
    plain = CropSampler(view, labels, norm, 32, 8, np.random.default_rng(1))
    taught = CropSampler(view, labels, norm, 32, 8, np.random.default_rng(1))
    taught.set_teacher(teacher)
    edge = norm.apply(np.full((1, 1, 1), 23.5, np.float32))[0, 0, 0]
    for _ in range(5):
        x0, y0 = plain.batch(4)
        x, y = taught.batch(4)  # flips and transposes: augment is on
        assert y.shape == (4, 2, 32, 32) and y0.shape == (4, 1, 32, 32)
        np.testing.assert_array_equal(x, x0)  # the same crops: the teacher draws no numbers
        np.testing.assert_array_equal(y[:, :1], y0)
        np.testing.assert_array_equal(y[:, 1:], np.where(x < edge, 1, 2))
    small = np.zeros((10, 12), np.float32)  # smaller than a crop: padded, teacher with 0
    s_labels = np.zeros((10, 12), np.uint8)
    s_labels[5, 5], s_labels[2, 2] = 1, 2
    v = as_zcyx(small, spatial_shape=s_labels.shape)
    sampler = CropSampler(v, s_labels, Normalization.fit(v), 16, 8, np.random.default_rng(0))
    sampler.set_teacher(np.full((10, 12), 2, np.uint8))
    _, y = sampler.batch(2)
    assert y.shape == (2, 2, 16, 16) and (y[:, 1] == 2).sum() == 2 * 10 * 12


def test_a_class_painted_on_eleven_pixels_is_learnt_where_the_forest_generalises():
    """The way a user meets it: one short stroke in one stained patch and lines of background.
    Without the teacher the network learns little more than those 11 pixels; with it (the
    default) it finds much of the stain; the report says that the forest taught."""
    image, strokes, stain = ihc_case()
    taught = _run(image, strokes, steps=150, width=16, channel_axis=-1)
    alone = _run(image, strokes, steps=150, width=16, channel_axis=-1, forest_teacher=0.0)
    assert any("random forest teaches foreground (11 painted pixels)" in n for n in taught.notes)
    assert not any("forest" in n for n in alone.notes)

    def recall(report):
        fg = np.asarray(report.prediction.labels) == 2
        return np.mean(fg[stain & (strokes == 0)])

    assert recall(taught) > 0.45
    assert recall(taught) > recall(alone) + 0.25
    assert taught.model.train_settings["forest_teacher"] == 0.3
    assert taught.model.train_settings["forest_taught"]
    assert not alone.model.train_settings["forest_taught"]


def sampler_teacher(gen) -> np.ndarray:
    """The teacher array of a running training's crop sampler (the generator's frame)."""
    return gen.gi_frame.f_locals["run"].sampler.teacher


def test_a_class_painted_on_enough_pixels_during_training_is_taught_no_more_and_said():
    image, _ = blobs(64)
    strokes = few_strokes(64)
    config = TrainConfig(steps=6, seed=0, num_threads=1, model=ModelConfig(width=8, depth=2))
    gen = train(image, strokes, config)
    first = next(gen)
    assert first.notes == ("the random forest teaches foreground (11 painted pixels)",)
    more = strokes.copy()
    more[36:40, 4:60] = 2  # 224 pixels of foreground now
    report = gen.send(more)
    assert (
        report.notes[-1]
        == "step 1: the random forest no longer teaches foreground (235 painted pixels)"
    )
    assert not np.isin(2, sampler_teacher(gen))  # for good:
    report = gen.send(strokes)  # the strokes erased again: 11 pixels, still not taught
    assert not np.isin(2, sampler_teacher(gen))
    last = list(gen)[-1]
    assert sum("no longer" in n for n in last.notes) == 1  # said once
    assert last.model.train_settings["forest_taught"]


def test_runs_with_every_class_painted_enough_are_the_same_with_or_without_the_teacher():
    image, mask = blobs(64)
    strokes = np.zeros(mask.shape, np.uint8)
    strokes[mask & (np.arange(64)[None, :] < 40)] = 2  # > 50 pixels of each class
    strokes[24, 4:60] = 1
    strokes[48, 4:60] = 1
    on = _run(image, strokes)
    off = _run(image, strokes, forest_teacher=0.0)
    for a, b in zip(on.model.net.parameters(), off.model.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not any("forest" in n for n in on.notes)


def test_a_stack_is_taught_with_slices_around_the_painted_one():
    """A stack's forest filters in 3D: it sees the slices around the painted ones."""
    image, _ = blobs(64)
    stack = np.stack([image, image[::-1], image, image[:, ::-1], image, image, image])
    strokes = np.zeros(stack.shape, np.uint8)
    strokes[1] = few_strokes(64)[::-1]
    assert ft.teacher_region(strokes, 8, ft.Z_MARGIN)[0] == slice(0, 6)
    report = _run(stack, strokes, crop_size=32)
    assert any("random forest teaches" in n for n in report.notes)


def test_a_class_the_forest_finds_little_more_of_than_its_strokes_is_not_taught():
    """One small disk, painted: the forest finds it and nothing else, so teaching would only
    weigh those pixels again; the note says why nothing is taught."""
    yy, xx = np.mgrid[:64, :64]
    image = (0.2 + 0.6 * ((yy - 30) ** 2 + (xx - 30) ** 2 <= 9)).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.05, image.shape).astype(np.float32)
    strokes = np.zeros(image.shape, np.uint8)
    strokes[30, 28:33] = 2
    strokes[29:32, 30] = 2
    strokes[10, 4:60] = 1
    strokes[50, 4:60] = 1
    view = as_zcyx(image)
    config = TrainConfig()
    teacher, note = ft.prepare(view, strokes[None], [112, 7], config, 64, 1, ["bg", "fg"])
    assert teacher is None
    assert note == (
        "no forest teacher: the random forest finds little more of fg (7 painted pixels) "
        "than the strokes"
    )
    wide = ft.fit_teacher(view, strokes[None], 64, 0, 1)
    assert 0 < np.count_nonzero(wide == 2) < ft.TEACHER_MIN_SPREAD * 7
    assert ft.prepare(
        view,
        strokes[None],
        [112, 7],
        dataclasses.replace(config, forest_teacher=0),
        64,
        1,
        ["bg", "fg"],
    ) == (None, None)


def test_a_region_too_large_for_the_forest_is_said_and_the_network_trains(monkeypatch):
    from napari_seglab.core import forest

    monkeypatch.setattr(forest, "MAX_FEATURE_BYTES", 1024)
    image, _ = blobs(64)
    report = _run(image, few_strokes(64))
    assert report.step == 60
    said = [n for n in report.notes if n.startswith("no forest teacher")]
    assert said == [
        "no forest teacher: the strokes and a 64-pixel margin span 64x64 pixels, too many for "
        "the random forest (the forest's features of a (64, 64) image with 1 channel(s) would "
        "take 0 MiB (limit 0))"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("forest_teacher", -0.1), ("forest_teacher", float("nan")), ("forest_teacher_painted", 1.5)],
)
def test_bad_teacher_settings_are_refused(name, value):
    with pytest.raises(ValueError, match=name):
        dataclasses.replace(TrainConfig(), **{name: value})


def test_a_strip_one_pixel_high_says_it_is_too_thin_for_the_forest():
    """The note said "too many for the random forest" of a 1 x 334 region."""
    from napari_seglab.core.training import TrainConfig, train

    image = np.random.default_rng(0).random((1, 384)).astype(np.float32)
    image[0, 200:] += 2
    strokes = np.zeros((1, 384), np.uint8)
    strokes[0, 10:30] = 1
    strokes[0, 250:270] = 2
    config = TrainConfig(steps=2, num_threads=1, final_prediction=False)
    (note,) = list(train(image, strokes, config))[-1].notes
    assert "span 1x334 pixels, too thin for the random forest's filters" in note
