"""The mean-teacher consistency term of a training (``TrainConfig.consistency``)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from synthetic import blobs

from napari_seglab.core.inference import predict
from napari_seglab.core.training import TrainConfig, train

# without the flux term, which moves the boundaries near the unpainted pixels by design: these
# tests measure how far the consistency term holds those pixels
FAST = {"device": "cpu", "num_threads": 1, "crop_size": 32, "batch_size": 4, "edge_flux": 0.0}


def _last(gen):
    return list(gen)[-1]


def test_off_by_default_and_reported_when_on():
    image, _, scribbles = blobs((48, 48))
    assert TrainConfig().consistency == 0.0
    plain = _last(train(image, scribbles, TrainConfig(steps=3, **FAST)))
    assert "consistency" not in plain.parts
    on = _last(train(image, scribbles, TrainConfig(steps=3, consistency=1.0, **FAST)))
    assert on.parts["consistency"] >= 0.0
    assert on.model.train_settings["consistency"] == 1.0
    for bad in ({"consistency": -1.0}, {"consistency_ema": 1.0}, {"consistency_ema": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)


def test_a_continued_training_stays_nearer_the_model_it_continues():
    """The teacher of a continued training starts from the model it continues: with a strong
    consistency term, the unpainted pixels' probabilities move less from that model's than
    without it, over the same steps from the same seed."""
    image, _, scribbles = blobs((48, 48))
    first = _last(train(image, scribbles, TrainConfig(steps=15, final_prediction=False, **FAST)))
    before = predict(first.model, image).probabilities
    unpainted = scribbles == 0
    moved = {}
    for weight in (0.0, 100.0):
        model = copy.deepcopy(first.model)
        config = TrainConfig(steps=15, seed=7, lr=1e-2, consistency=weight, **FAST)
        again = _last(train(image, scribbles, config, model=model))
        after = predict(again.model, image).probabilities
        moved[weight] = float(np.abs(after - before)[..., unpainted].mean())
    assert moved[100.0] < 0.75 * moved[0.0]


def test_the_teachers_decay_changes_nothing_while_the_term_is_off():
    image, _, scribbles = blobs((48, 48))
    nets = []
    for config in (
        TrainConfig(steps=4, final_prediction=False, **FAST),
        TrainConfig(steps=4, final_prediction=False, consistency_ema=0.5, **FAST),
    ):
        model = _last(train(image, scribbles, config)).model
        nets.append([p.detach().clone() for p in model.net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*nets, strict=True))
