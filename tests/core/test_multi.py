"""One model from several images (core.multi): the montage, pooled counts, and a model that
learns what no single image's strokes could teach."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from napari_seglab.core.inference import predict
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.multi import montage, train_many
from napari_seglab.core.training import TrainConfig, train


def _iou(a, b) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


def test_2d_images_of_different_sizes_become_padded_planes():
    a = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    b = np.full((25, 10), 7, np.uint16)
    sa, sb = np.zeros((20, 30), np.uint8), np.zeros((25, 10), np.uint8)
    sa[3, 3], sb[24, 9] = 1, 2
    m = montage([a, b], [sa, sb])
    assert m.image.shape == (2, 25, 30, 1) and m.scribbles.shape == (2, 25, 30)
    assert m.planes == [(0, 1), (1, 2)] and m.shapes == [(20, 30), (25, 10)] and not m.is_3d
    np.testing.assert_array_equal(m.image[0, :20, :, 0], a)
    np.testing.assert_array_equal(m.image[0, 20:, :, 0], np.repeat(a[-1:], 5, axis=0))  # edge
    assert (m.image[1, :, 10:, 0] == 7).all()
    assert m.scribbles[0, 3, 3] == 1 and m.scribbles[1, 24, 9] == 2
    assert m.scribbles.sum() == 3  # padding is never painted


def test_stacks_are_separated_by_repeats_of_their_end_slices():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 8)), rng.random((2, 8, 8))
    sa, sb = np.zeros((3, 8, 8), np.uint8), np.zeros((2, 8, 8), np.uint8)
    sa[0, 1, 1], sb[1, 2, 2] = 1, 2
    m = montage([a, b], [sa, sb], z_context=2)
    assert m.is_3d and m.planes == [(2, 5), (9, 11)] and m.image.shape[0] == 13
    img = m.image[..., 0]
    np.testing.assert_array_equal(img[2:5], a)
    np.testing.assert_array_equal(img[9:11], b)
    # each stack between two copies of its end slices: a slice's z context never reaches the
    # other stack
    for z, expected in ((0, a[0]), (1, a[0]), (5, a[-1]), (6, a[-1]), (7, b[0]), (8, b[0])):
        np.testing.assert_array_equal(img[z], expected)
    for z in (11, 12):
        np.testing.assert_array_equal(img[z], b[-1])
    assert m.scribbles[2, 1, 1] == 1 and m.scribbles[10, 2, 2] == 2 and m.scribbles.sum() == 3


@pytest.mark.parametrize(
    ("images", "scribbles", "message"),
    [
        ([], [], "no images"),
        ([np.zeros((8, 8))], [], "1 images but 0 scribbles"),
        (
            [np.zeros((8, 8)), np.zeros((3, 8, 8))],
            [np.zeros((8, 8)), np.zeros((3, 8, 8))],
            "not both",
        ),
        (
            [np.zeros((8, 8, 3)), np.zeros((8, 8, 2))],
            [np.zeros((8, 8)), np.zeros((8, 8))],
            r"different channel counts \(a: 3, b: 2\)",
        ),
        ([np.zeros((8, 8)), np.zeros((8, 8))], [np.zeros((8, 8)), np.zeros((9, 8))], "^b: "),
    ],
)
def test_bad_sets_of_images_are_refused_naming_the_image(images, scribbles, message):
    with pytest.raises(ValueError, match=message):
        montage(
            images, [np.asarray(s, np.uint8) for s in scribbles], names=["a", "b"][: len(images)]
        )


def _two_halves(seed=0):
    """Two images; the first painted only foreground, the second only background."""
    out = []
    for i, s in enumerate((seed, seed + 1)):
        image, gt, scribbles = synthetic.blobs((64, 72), n=6, seed=s, painted=0.08)
        keep = 2 if i == 0 else 1
        out.append((image, gt, np.where(scribbles == keep, scribbles, 0).astype(np.uint8)))
    return out


def test_one_model_learns_classes_painted_in_different_images():
    pairs = _two_halves()
    images, truths, strokes = zip(*pairs, strict=True)
    # either image alone cannot be trained on: one class each
    for image, s in zip(images, strokes, strict=True):
        with pytest.raises(ValueError, match="only class"):
            train(image, s, TrainConfig(steps=1, preview_every=0))
    config = TrainConfig(
        steps=60,
        seed=0,
        num_threads=1,
        model=ModelConfig(width=8),
        class_weighting="inverse_frequency",
    )
    reports = list(train_many(list(images), list(strokes), config, names=["fg.tif", "bg.tif"]))
    last = reports[-1]
    model = last.model
    # pooled counts: each class from the image where it was painted
    counts = np.array([(strokes[1] == 1).sum(), (strokes[0] == 2).sum()])
    np.testing.assert_array_equal(np.asarray(last.counts), counts)
    w = np.asarray(last.class_weights)
    assert (w[0] > w[1]) == (counts[0] < counts[1])
    assert last.prediction is None
    assert model.config.z_context == 0 and model.train_settings["images"] == 2
    assert model.train_settings["image_names"] == ["fg.tif", "bg.tif"]
    assert model.train_settings["lambda_edge_used"] > 0  # the 2D default, not the stacks' 0
    # neither the forest teacher (its filters would mix the images) nor the flux term
    assert model.train_settings["forest_teacher"] == model.train_settings["edge_flux"] == 0.0
    for image, truth in zip(images, truths, strict=True):
        fg = predict(model, image).labels == 2
        assert _iou(fg, truth) > 0.5


def test_a_warm_start_continues_on_several_images():
    pairs = _two_halves(seed=3)
    images, _truths, strokes = zip(*pairs, strict=True)
    config = TrainConfig(steps=3, num_threads=1, model=ModelConfig(width=8))
    model = list(train_many(list(images), list(strokes), config))[-1].model
    again = list(train_many(list(images), list(strokes), config, model=model))[-1].model
    assert again is model and model.train_settings["steps_done"] == 3


def test_strokes_sent_for_the_first_image_reach_the_run():
    from napari_seglab.core.edits import ScribbleEdit

    pairs = _two_halves(seed=5)
    images, _truths, strokes = zip(*pairs, strict=True)
    config = TrainConfig(steps=4, num_threads=1, model=ModelConfig(width=8))
    gen = train_many(list(images), list(strokes), config)
    first = next(gen)
    n_fg = int(first.counts[1])
    # a background stroke on the first image (which had only foreground)
    edit = ScribbleEdit((np.array([1, 1, 1]), np.array([5, 6, 7])), np.array(1))
    report = gen.send(edit)
    assert int(report.counts[0]) == int(first.counts[0]) + 3
    # a whole array for the first image: its foreground erased, one pixel of class 2 kept
    new = np.zeros_like(strokes[0])
    new[10, 10] = 2
    report = gen.send(new)
    assert int(report.counts[1]) == 1 and n_fg > 1
    with pytest.raises(ValueError, match="outside the first image"):
        gen.send(ScribbleEdit((np.array([64]), np.array([0])), np.array(1)))
    gen.close()


def test_a_constant_image_among_several_is_named():
    image, _, scribbles = synthetic.blobs((48, 48))
    with pytest.raises(ValueError, match=r"^image 2: the image is constant"):
        train_many([image, np.zeros_like(image)], [scribbles, scribbles], TrainConfig(steps=2))
