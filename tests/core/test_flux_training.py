"""The flux term (``TrainConfig.edge_flux``) in training, the way a user meets it: blurred
nuclei painted with a short stroke through a few of them come out the wrong size with the edge
term alone (here too large: the blur spreads them), and closer to their true size with the
flux term at its default weight."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_seglab.core import TrainConfig, predict, train
from napari_seglab.core.config import DEFAULT_EDGE_FLUX

FAST = {"device": "cpu", "num_threads": 1}


def _blurred_nuclei(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``(128, 128)`` float32 image of 9 blurred, noisy disks (radius 7-10 px), their mask,
    and scribbles: a 5 px stroke in the middle of 4 disks (2) and 4 lines far from any (1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:128, :128]
    truth = np.zeros((128, 128), bool)
    centres = [(22 + 40 * i, 22 + 40 * j) for i in range(3) for j in range(3)]
    for k, (cy, cx) in enumerate(centres):
        truth |= np.hypot(yy - cy, xx - cx) <= 7 + k % 4
    image = ndi.gaussian_filter(truth.astype(np.float32), 2.0)
    image = rng.poisson(50 + 150 * image).astype(np.float32)
    scribbles = np.zeros((128, 128), np.uint8)
    for cy, cx in centres[::2]:
        scribbles[cy, cx - 2 : cx + 3] = 2
    for r in (2, 42, 82, 122):
        scribbles[r, 4:124] = 1
    scribbles[truth & (scribbles == 1)] = 0
    return image, truth, scribbles


def _foreground(edge_flux: float) -> np.ndarray:
    image, _, scribbles = _blurred_nuclei()
    config = TrainConfig(steps=120, seed=0, edge_flux=edge_flux, final_prediction=False, **FAST)
    report = list(train(image, scribbles, config))[-1]
    return np.asarray(predict(report.model, image).labels) == 2


def test_the_flux_term_brings_blurred_nuclei_closer_to_their_size():
    _, truth, _ = _blurred_nuclei()
    without, with_flux = _foreground(0.0), _foreground(DEFAULT_EDGE_FLUX)

    def iou(fg):
        return (fg & truth).sum() / (fg | truth).sum()

    assert abs(with_flux.sum() - truth.sum()) < abs(without.sum() - truth.sum())
    assert iou(with_flux) > iou(without)


def test_bad_flux_settings_are_refused():
    with pytest.raises(ValueError, match="edge_flux must be >= 0"):
        TrainConfig(edge_flux=-1.0)
    with pytest.raises(ValueError, match="edge_flux_sigma must be positive"):
        TrainConfig(edge_flux_sigma=0.0)


def test_the_model_records_the_flux_weight_it_trained_with():
    """Two classes: the weight asked for; three: none (the term needs two classes)."""
    image, truth, scribbles = _blurred_nuclei()
    three = scribbles.copy()
    three[60:64, 4:30] = 3  # a third class, in the background
    three[truth & (three == 3)] = 0
    for labels, used in ((scribbles, 8.0), (three, 0.0)):
        config = TrainConfig(steps=2, edge_flux=8.0, final_prediction=False, **FAST)
        settings = list(train(image, labels, config))[-1].model.train_settings
        assert settings["edge_flux"] == 8.0 and settings["edge_flux_used"] == used
