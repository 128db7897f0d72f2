"""A random-forest pixel classifier on filter features: the quick first overlay.

The classic scribble tools (ilastik's pixel classification, APOC, Labkit) fit a random forest
(Breiman, 2001) on per-pixel filter responses: smoothed intensity, gradient magnitude and Hessian
eigenvalues at several scales. It needs no training loop: on a 512x512 image it is fitted and
predicts in about a second on one CPU core, while the CNN needs tens of steps to reach the same
quality. The widget shows the forest's prediction as the first overlay and replaces it with the
CNN's once the CNN does better (:mod:`napari_seglab.core.preview`).

Features come from :func:`skimage.feature.multiscale_basic_features` and the classifier from
:class:`sklearn.ensemble.RandomForestClassifier` through :func:`skimage.future.fit_segmenter`
(which, like SegLab, reads label 0 as unlabeled).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_seglab.core.data import (
    ImageView,
    Normalization,
    as_zcyx,
    check_scribbles,
    painted_accuracy,
    select_channels,
)
from napari_seglab.core.inference import Prediction

#: Feature scales (sigma in pixels), the ilastik-like set the benchmarks' forest uses.
SIGMA_MIN, SIGMA_MAX, NUM_SIGMA = 0.3, 10.0, 7
#: Trees of the forest (ilastik's default is 100).
N_ESTIMATORS = 100
#: The largest feature array (bytes, float32) the quick forest builds; larger images get no
#: forest overlay (:func:`forest_fits`). 2D grey 1448x1448 or RGB 836x836 at the default scales.
MAX_FEATURE_BYTES = 256 * 2**20


def feature_count(view: ImageView) -> int:
    """Features per pixel of :func:`forest_features`: per channel and scale, intensity, edges and
    the Hessian eigenvalues (2 in 2D, 3 in 3D)."""
    per_scale = 1 + 1 + len(view.spatial_shape)
    return view.channels * NUM_SIGMA * per_scale


def forest_fits(view: ImageView) -> bool:
    """Whether the features of ``view`` stay within :data:`MAX_FEATURE_BYTES`."""
    n = int(np.prod(view.spatial_shape, dtype=np.int64))
    return n * feature_count(view) * 4 <= MAX_FEATURE_BYTES


def forest_features(
    view: ImageView, norm: Normalization | None = None, workers: int = 1
) -> np.ndarray:
    """ilastik-style filter features of every pixel.

    Parameters
    ----------
    view : ImageView
        The image as ``(Z, C, Y, X)``; a stack is filtered in 3D, as ilastik does for volumes.
    norm : Normalization, optional
        Applied first (in float64 statistics, so offsets of large integer images survive);
        fitted on ``view`` when omitted.
    workers : int
        Threads for the filters.

    Returns
    -------
    np.ndarray
        float32 ``(*spatial, F)`` with ``F = feature_count(view)``.
    """
    from skimage.feature import multiscale_basic_features

    norm = norm or Normalization.fit(view)
    x = norm.apply(view.data, channel_axis=1)  # (Z, C, Y, X) float32
    x = x[0] if not view.is_3d else x  # (C, Y, X) or (Z, C, Y, X)
    x = np.moveaxis(x, -3, -1)  # channels last
    feats = multiscale_basic_features(
        x,
        intensity=True,
        edges=True,
        texture=True,
        sigma_min=SIGMA_MIN,
        sigma_max=SIGMA_MAX,
        num_sigma=NUM_SIGMA,
        channel_axis=-1,
        workers=workers,
    )
    return feats.astype(np.float32, copy=False)


@dataclass
class PixelForest:
    """A fitted forest and what it was fitted on.

    Attributes
    ----------
    classifier : sklearn.ensemble.RandomForestClassifier
    features : np.ndarray
        float32 ``(*spatial, F)`` features of the image it was fitted on.
    num_classes : int
        K: probabilities have K channels for classes 1..K.
    heldout_accuracy : np.ndarray
        ``(K,)`` per class, the share of painted pixels predicted right by forests fitted on the
        other strokes (:func:`stroke_folds`, 3 folds); NaN for a class with too few strokes.
    seconds : float
        Wall time of features and fit.
    """

    classifier: Any
    features: np.ndarray
    num_classes: int
    heldout_accuracy: np.ndarray
    seconds: float

    def predict(self, region: tuple[slice, ...] | None = None, chunk: int = 1 << 18) -> Prediction:
        """Class ids and probabilities of ``region`` (one slice per spatial axis; None: all).

        Returns
        -------
        Prediction
            ``labels`` uint8 ``(*region shape)``, ``probabilities`` float32
            ``(K, *region shape)``; a class never painted has probability 0.
        """
        feats = self.features if region is None else self.features[region]
        shape = feats.shape[:-1]
        flat = feats.reshape(-1, feats.shape[-1])
        probs = np.zeros((self.num_classes, flat.shape[0]), np.float32)
        rows = np.asarray(self.classifier.classes_, np.int64) - 1
        for a in range(0, flat.shape[0], chunk):
            probs[rows, a : a + chunk] = self.classifier.predict_proba(flat[a : a + chunk]).T
        labels = (probs.argmax(axis=0) + 1).astype(np.uint8)
        return Prediction(labels.reshape(shape), probs.reshape(self.num_classes, *shape))


def stroke_folds(scribbles: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Deal the strokes of each class to ``folds`` folds.

    A stroke is a connected component (pixels sharing a face) of one class's painted pixels;
    strokes are dealt round-robin in a random order fixed by ``seed``.

    Returns
    -------
    np.ndarray
        int16 ``(*spatial)`` fold index of every painted pixel, -1 where unpainted.
    """
    out = np.full(scribbles.shape, -1, np.int16)
    rng = np.random.default_rng(seed)
    for cls in np.unique(scribbles[scribbles > 0]):
        lab, n = ndi.label(scribbles == cls)
        fold_of = np.empty(n + 1, np.int16)
        fold_of[0] = -1
        fold_of[1 + rng.permutation(n)] = np.arange(n) % folds
        painted = lab > 0
        out[painted] = fold_of[lab[painted]]
    return out


def _classifier(n_estimators: int, seed: int, n_jobs: int):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)


def _heldout_accuracy(
    features: np.ndarray, labels: np.ndarray, num_classes: int, folds: int, seed: int, n_jobs: int
) -> np.ndarray:

    fold = stroke_folds(labels, folds, seed)
    painted = labels > 0
    feats, truth, fold = features[painted], labels[painted].astype(np.int64), fold[painted]
    predicted = np.zeros_like(truth)
    scored = np.zeros_like(truth)  # the painted classes of the folds that were predicted
    for k in range(folds):
        test = fold == k
        train = ~test
        if not test.any() or len(np.unique(truth[train])) < 2:
            continue
        clf = _classifier(N_ESTIMATORS // 2, seed, n_jobs).fit(feats[train], truth[train])
        predicted[test] = clf.predict(feats[test])
        scored[test] = truth[test]
    return painted_accuracy(predicted, scored, num_classes)


def fit_forest(
    image: np.ndarray,
    scribbles: np.ndarray,
    *,
    channel_axis: int | None = None,
    n_estimators: int = N_ESTIMATORS,
    heldout_folds: int = 3,
    seed: int = 0,
    n_jobs: int = 1,
    channels: Sequence[int] | None = None,
) -> PixelForest:
    """Fit a random forest on the filter features of the painted pixels.

    Parameters
    ----------
    image : np.ndarray
        As for :func:`napari_seglab.core.training.train`: ``(Y, X)``, ``(Z, Y, X)``, either with a
        channel axis.
    scribbles : np.ndarray
        Integer ``(*spatial)``, 0 = unlabeled, 1 = background, 2 = foreground, 3.. = more.
    channel_axis : int, optional
        The image's channel axis (detected from the shapes when omitted).
    n_estimators : int
        Trees.
    heldout_folds : int
        Folds of strokes for :attr:`PixelForest.heldout_accuracy` (0: not measured, NaN).
    seed : int
    n_jobs : int
        Threads for the filters, the fit and the prediction.
    channels : sequence of int, optional
        The channels to compute features on (a model's ``ModelConfig.channels``); default all.

    Returns
    -------
    PixelForest

    Raises
    ------
    ValueError
        Fewer than two classes painted, shapes that do not match, or an image whose features
        would exceed :data:`MAX_FEATURE_BYTES`.
    """
    t0 = time.perf_counter()
    view = as_zcyx(np.asarray(image), channel_axis=channel_axis, spatial_shape=np.shape(scribbles))
    if channels is not None:
        view = select_channels(view, channels)
    labels = check_scribbles(np.asarray(scribbles), view.spatial_shape)
    classes = np.unique(labels[labels > 0])
    if len(classes) < 2:
        raise ValueError("paint at least two classes (1 = background, 2 = foreground)")
    if not forest_fits(view):
        need = int(np.prod(view.spatial_shape, dtype=np.int64)) * feature_count(view) * 4
        raise ValueError(
            f"the forest's features of a {view.spatial_shape} image with {view.channels} "
            f"channel(s) would take {need / 2**20:.0f} MiB (limit {MAX_FEATURE_BYTES / 2**20:.0f})"
        )
    from skimage.future import fit_segmenter

    features = forest_features(view, workers=n_jobs)
    num_classes = max(2, int(classes.max()))
    clf = fit_segmenter(labels, features, _classifier(n_estimators, seed, n_jobs))
    heldout = (
        _heldout_accuracy(features, labels, num_classes, heldout_folds, seed, n_jobs)
        if heldout_folds > 1
        else np.full(num_classes, np.nan)
    )
    return PixelForest(clf, features, num_classes, heldout, time.perf_counter() - t0)
