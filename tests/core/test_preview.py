"""Previews while training: the quick forest first, the network once it does better."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import blobs
from test_train import FAST

from napari_seglab.core import forest as forest_mod
from napari_seglab.core import preview as preview_mod
from napari_seglab.core.inference import predict
from napari_seglab.core.preview import Previewer
from napari_seglab.core.training import TrainConfig, train


def _shown(reports):
    return [r.step for r in reports if r.prediction is not None]


def test_quick_forest_then_network_previews_after_the_handover(monkeypatch):
    monkeypatch.setattr(preview_mod, "HANDOVER_STEPS", 4)
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=1e-9)
    prediction, region = previewer.quick_forest(image, scribbles, n_jobs=1)
    assert region is None and prediction.labels.shape == image.shape
    assert previewer.forest_shown
    reports = list(train(image, scribbles, TrainConfig(steps=8, **FAST), previewer=previewer))
    shown = _shown(reports)
    # nothing replaces the forest before the handover step; the last prediction always does
    assert shown and min(shown) >= 4 and shown[-1] == 8
    assert not previewer.forest_shown
    assert reports[-1].painted_accuracy is not None


def test_a_network_preview_that_misses_strokes_does_not_replace_the_forest(monkeypatch):
    monkeypatch.setattr(preview_mod, "HANDOVER_STEPS", 1)
    monkeypatch.setattr(preview_mod, "HANDOVER_PAINTED", 1.01)  # no preview is good enough
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=1e-9)
    previewer.forest_shown = True
    reports = list(train(image, scribbles, TrainConfig(steps=5, **FAST), previewer=previewer))
    assert _shown(reports) == [5]  # the final prediction only


def test_region_previews_and_painted_accuracy_of_the_region():
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=1e-9)
    previewer.region = (slice(10, 60), slice(0, 96))
    reports = list(train(image, scribbles, TrainConfig(steps=3, **FAST), previewer=previewer))
    previews = [r for r in reports if r.prediction is not None and not r.done]
    assert previews
    for r in previews:
        assert r.region == previewer.region
        assert r.prediction.labels.shape == (50, 96)
        assert r.painted_accuracy.shape == (2,)
    assert reports[-1].region is None and reports[-1].prediction.labels.shape == image.shape


def test_stop_abandons_the_final_prediction():
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=0.0, band_pixels=96 * 32)
    gen = train(image, scribbles, TrainConfig(steps=2, **FAST), previewer=previewer)
    first = next(gen)
    assert first.prediction is None
    previewer.stopped.set()  # asked to stop during the last step
    last = gen.send(None)
    assert last.done and last.prediction is None
    gen.close()


@pytest.mark.parametrize("region", [None, (slice(10, 60), slice(0, 96))])
def test_finish_ends_the_run_with_the_final_prediction_of_the_averaged_model(region):
    """What Stop asks: the run ends at its next step, long before its budget, keeping the
    averaged weights, and the last report predicts the region in view with them (the whole
    image when there is no region)."""
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=0.0, band_pixels=96 * 32)
    previewer.region = region
    gen = train(image, scribbles, TrainConfig(steps=1000, **FAST), previewer=previewer)
    reports = [next(gen), gen.send(None)]
    assert not reports[-1].done and not reports[-1].stopped
    previewer.finish.set()
    reports.append(gen.send(None))
    with pytest.raises(StopIteration) as end:
        gen.send(None)
    last = reports[-1]
    assert last.step == 3 and last.done and last.stopped
    model = end.value.value
    assert model is last.model
    assert last.region == region
    box = (slice(None),) * 2 if region is None else region
    assert last.prediction.labels.shape == image[box].shape
    whole = predict(model, image).labels[box]
    if region is None:
        np.testing.assert_array_equal(last.prediction.labels, whole)
    else:  # predicted with the region's own tiles: the same up to a few border pixels
        assert np.mean(last.prediction.labels == whole) > 0.99
    assert model.train_settings["steps_done"] == 3


def test_quick_forest_steps_aside_where_it_cannot_help(monkeypatch):
    image, _gt, scribbles = blobs()
    previewer = Previewer(image.shape, every=1.0)
    assert previewer.quick_forest(image, np.where(scribbles == 2, 0, scribbles)) is None
    monkeypatch.setattr(forest_mod, "MAX_FEATURE_BYTES", 1000)
    assert previewer.quick_forest(image, scribbles) is None
    assert not previewer.forest_shown


@pytest.mark.parametrize("every", [0.0, 1e-9])
def test_previewer_cadence(every):
    previewer = Previewer((10, 10), every=every)
    previewer.start()
    assert previewer.due(1) == (every > 0)
    previewer.stopped.set()
    assert not previewer.due(2)
