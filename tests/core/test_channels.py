"""The channels a model sees (ModelConfig.channels): trained on, stored, used by every
prediction path, and refused clearly where an image has other channels."""

from __future__ import annotations

import numpy as np
import pytest
import synthetic

from napari_seglab.core.blockwise import predict_dask
from napari_seglab.core.data import Normalization
from napari_seglab.core.forest import fit_forest
from napari_seglab.core.inference import predict
from napari_seglab.core.model import ModelConfig, SegModel
from napari_seglab.core.modelio import load_model, save_model
from napari_seglab.core.training import TrainConfig, train


def _signal_in(channel: int, seed: int = 0, shape=(64, 72)):
    """A 3-channel image whose disks are in ``channel`` only (noise elsewhere)."""
    image, gt, scribbles = synthetic.blobs(shape, n=6, seed=seed, painted=0.05)
    rng = np.random.default_rng(seed + 1)
    noise = rng.normal(100, 20, (*shape, 3)).astype(np.float32)
    noise[..., channel] = image
    return noise, gt, scribbles


def _train(image, scribbles, channels, steps=30, **kw):
    config = TrainConfig(
        steps=steps,
        seed=0,
        num_threads=1,
        preview_every=0,
        model=ModelConfig(width=8, channels=channels),
        **kw,
    )
    reports = list(train(image, scribbles, config))
    return reports[-1].model


def test_the_model_sees_only_its_channels_on_every_path(tmp_path):
    image, gt, scribbles = _signal_in(1)
    model = _train(image, scribbles, (1,))
    assert model.in_channels == 3 and model.config.channels == (1,)
    assert model.net.encoder[0][0].in_channels == 1
    got = predict(model, image)
    # the other channels do not matter
    other = image.copy()
    other[..., 0] = np.random.default_rng(5).normal(300, 80, other.shape[:2])
    other[..., 2] = 0
    np.testing.assert_allclose(predict(model, other).probabilities, got.probabilities, atol=1e-6)
    # saved and loaded, and block by block
    path = save_model(model, tmp_path / "m.seglab")
    loaded = load_model(path)
    assert loaded.config.channels == (1,)
    np.testing.assert_allclose(predict(loaded, image).probabilities, got.probabilities, atol=1e-6)
    lazy = predict_dask(loaded, image, block=32)
    np.testing.assert_array_equal(np.asarray(lazy.labels), got.labels)
    # and it learnt from the channel it sees
    fg = got.labels == 2
    assert (fg & gt).sum() / (fg | gt).sum() > 0.5


def test_a_model_of_other_channels_learns_nothing_from_a_channel_it_does_not_see():
    image, gt, scribbles = _signal_in(1)
    blind = predict(_train(image, scribbles, (0, 2)), image).labels == 2
    seeing = predict(_train(image, scribbles, (1,)), image).labels == 2
    iou = lambda p: (p & gt).sum() / max(1, (p | gt).sum())  # noqa: E731
    assert iou(seeing) > iou(blind) + 0.3


def test_a_stack_picks_the_channels_of_every_slice_it_sees():
    rng = np.random.default_rng(0)
    stack = rng.normal(0, 1, (5, 32, 32, 2)).astype(np.float32)
    scribbles = np.zeros((5, 32, 32), np.uint8)
    scribbles[2, 4:8, 4:8], scribbles[2, 20:24, 20:24] = 1, 2
    model = _train(stack, scribbles, (1,), steps=2)
    zw = model.config.z_window
    assert zw > 1 and model.net.encoder[0][0].in_channels == zw
    got = predict(model, stack).probabilities
    other = stack.copy()
    other[..., 0] = 5.0  # the channel it does not see, in every slice
    np.testing.assert_allclose(predict(model, other).probabilities, got, atol=1e-6)


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        ((), "distinct channel indices"),
        ((-1,), "distinct channel indices"),
        ((0, 0), "distinct channel indices"),
        (("a",), "channel indices"),
        ((64,), "beyond the 64 channels"),
    ],
)
def test_bad_channel_lists_are_refused(channels, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(channels=channels)


def test_a_channel_the_image_lacks_is_refused_before_training():
    image, _gt, scribbles = _signal_in(1)
    with pytest.raises(
        ValueError, match=r"channel 3 is not in the image: it has 3 channels \(0-2\)"
    ):
        _train(image, scribbles, (0, 3))
    norm = Normalization(low=(0.0,), high=(1.0,))
    with pytest.raises(ValueError, match=r"channel 1 is not in the image: it has 1 channel \(0\)"):
        SegModel.create(2, 1, norm, ModelConfig(channels=(1,)))


def test_an_image_with_other_channels_is_refused_with_the_models_channels(tmp_path):
    image, _gt, scribbles = _signal_in(1)
    model = _train(image, scribbles, (0, 1), steps=2)
    for run in (lambda im: predict(model, im), lambda im: predict_dask(model, im)):
        with pytest.raises(ValueError, match=r"trained on channel\(s\) 0, 1 of 3-channel"):
            run(image[..., :2])
    # continuing its training with other channels needs a new model
    config = TrainConfig(steps=1, preview_every=0, model=ModelConfig(width=8, channels=(2,)))
    with pytest.raises(ValueError, match=r"channels \[2\] need a new model"):
        next(train(image, scribbles, config, model=model))


def test_the_forest_computes_features_on_the_chosen_channels_only():
    image, _gt, scribbles = _signal_in(1)
    every = fit_forest(image, scribbles, heldout_folds=0, n_estimators=5)
    one = fit_forest(image, scribbles, heldout_folds=0, n_estimators=5, channels=[1])
    assert one.features.shape[-1] * 3 == every.features.shape[-1]
    with pytest.raises(ValueError, match="channel 4 is not in the image"):
        fit_forest(image, scribbles, heldout_folds=0, channels=[4])


def test_models_saved_before_channels_existed_use_every_channel(tmp_path):
    image, _gt, scribbles = _signal_in(1)
    model = _train(image, scribbles, None, steps=2)
    assert model.config.channels is None and model.net.encoder[0][0].in_channels == 3
    d = model.config.to_dict()
    del d["channels"]
    assert ModelConfig.from_dict(d).channels is None
