"""What the overlay shows while a model trains: previews, and the quick forest before them.

A :class:`Previewer` is handed to :func:`napari_seglab.core.training.train`
(``previewer=``). Between two steps the training asks it whether a preview is due; if so the
network predicts, with its averaged weights, the :attr:`Previewer.region` a viewer shows (or
the whole image), band by band so that a stop request (:attr:`Previewer.stopped`) is honoured
within one band.

Before the network's first step, :meth:`Previewer.quick_forest` fits the random forest of
:mod:`napari_seglab.core.forest` (about a second for a 512x512 image on one CPU core) and
predicts the region: the first overlay. The network's previews replace it once it has trained
:data:`HANDOVER_STEPS` steps and its preview reproduces at least :data:`HANDOVER_PAINTED` of
every class's painted pixels in the region (``benchmarks/first_overlay.py`` measures how often
that shows the better of the two). The last prediction of a training always replaces it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from napari_seglab.core.data import ImageView, painted_accuracy
from napari_seglab.core.inference import Prediction, predict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from napari_seglab.core.model import SegModel

#: Steps the network trains before its previews may replace the forest's overlay.
HANDOVER_STEPS = 50
#: The worse class's share of painted pixels a network preview must reproduce to replace it.
HANDOVER_PAINTED = 0.95
#: Trees of the quick forest: half of ilastik's 100, for half the fit and prediction time at
#: about the same accuracy (docs/real-images.md, "The first seconds").
QUICK_TREES = 50


class Previewer:
    """Decides when the training predicts what the viewer shows, and predicts it.

    Parameters
    ----------
    spatial_shape : tuple of int
        The image's spatial shape ``(Y, X)`` or ``(Z, Y, X)``.
    every : float
        Seconds of training between previews (0: none); a preview waits at least twice the
        last one's cost, so previews take at most a third of the time.
    band_pixels : int
        Pixels per band of a preview.

    Attributes
    ----------
    region : tuple of slice or None
        What to preview (one slice per spatial axis; None: everything). Set from any thread;
        replaced atomically.
    finish : threading.Event
        Set to end the training at its next step, as if its budget were spent: the averaged
        weights are kept and :attr:`region` (the whole image when None) is predicted, band by
        band, for the last report. What a Stop button sets.
    stopped : threading.Event
        Set to abandon a preview, the final prediction and the forest's at the next band
        (closing).
    forest_shown : bool
        The quick forest's prediction is on screen and no network preview has replaced it.
    """

    def __init__(
        self, spatial_shape: tuple[int, ...], every: float, band_pixels: int = 1 << 18
    ) -> None:
        self.spatial_shape = tuple(int(n) for n in spatial_shape)
        self.every = float(every)
        self.band_pixels = int(band_pixels)
        self.region: tuple[slice, ...] | None = None
        self.finish = threading.Event()
        self.stopped = threading.Event()
        self.forest_shown = False
        self._last: float | None = None
        self._cost = 0.0

    def start(self) -> None:
        """Start the clock of :meth:`due` (the training calls it when its first step begins)."""
        self._last = time.perf_counter()

    def due(self, step: int) -> bool:
        """Whether a preview is due now (called after every step)."""
        now = time.perf_counter()
        if self._last is None:
            self._last = now
        if self.every <= 0 or self.stopped.is_set():
            return False
        if self.forest_shown and step < HANDOVER_STEPS:
            return False  # it could not replace the forest's overlay yet
        return now - self._last >= max(self.every, 2 * self._cost)

    def predict(
        self,
        model: SegModel,
        image: np.ndarray,
        channel_axis: int | None = None,
        tile: int | None = None,
        region: tuple[slice, ...] | str | None = "view",
    ) -> tuple[Prediction, tuple[slice, ...] | None] | None:
        """Predict band by band; the prediction and its region, None if stopped meanwhile.

        ``image`` is the training image (any layout that
        :func:`napari_seglab.core.inference.predict` takes); ``region`` is :attr:`region` by
        default, else one slice per spatial axis or None (all).
        """
        t0 = time.perf_counter()
        if isinstance(region, str):
            region = self.region
        full = tuple(slice(0, n) for n in self.spatial_shape)
        box = full if region is None else region
        rows, cols = box[-2], box[-1]
        depth = int(np.prod([s.stop - s.start for s in box[:-2]], dtype=np.int64))
        band = max(32, self.band_pixels // max(1, (cols.stop - cols.start) * depth))
        parts = []
        for a in range(rows.start, rows.stop, band):
            if self.stopped.is_set():
                return None
            sub = (*box[:-2], slice(a, min(a + band, rows.stop)), cols)
            parts.append(
                predict(
                    model,
                    image,
                    channel_axis=channel_axis,
                    region=None if sub == full else sub,
                    tile=tile,
                )
            )
        labels = np.concatenate([p.labels for p in parts], axis=-2)
        probs = None
        if all(p.probabilities is not None for p in parts):
            probs = np.concatenate([p.probabilities for p in parts], axis=-2)
        self._last = time.perf_counter()
        self._cost = self._last - t0
        return Prediction(labels=labels, probabilities=probs), region

    def accept(self, prediction: Prediction, scribbles: np.ndarray, step: int) -> bool:
        """Whether a network preview goes on screen (it replaces the forest's overlay only
        once the network is good enough; see the module's text).

        ``scribbles`` are the strokes of the preview's region, ``(*region shape)``.
        """
        if not self.forest_shown:
            return True
        if step < HANDOVER_STEPS:
            return False

        labels = np.asarray(prediction.labels)
        k = int(max(labels.max(initial=0), scribbles.max(initial=0), 2))
        acc = painted_accuracy(labels, np.asarray(scribbles), k)
        if np.isfinite(acc).any() and np.nanmin(acc) < HANDOVER_PAINTED:
            return False
        self.forest_shown = False
        return True

    def quick_forest(
        self,
        image: np.ndarray,
        scribbles: np.ndarray,
        channel_axis: int | None = None,
        n_jobs: int = -1,
        channels: Sequence[int] | None = None,
    ) -> tuple[Prediction, tuple[slice, ...] | None] | None:
        """Fit the quick forest and predict :attr:`region`: the first overlay.

        Returns None (and shows nothing) where :func:`~napari_seglab.core.forest.fit_forest`
        refuses (features over :data:`~napari_seglab.core.forest.MAX_FEATURE_BYTES`, fewer
        than two painted classes) or runs out of memory, or when stopped meanwhile.

        Parameters
        ----------
        n_jobs : int
            Threads for the filters, the fit and the prediction (-1: all cores; the network
            has not started yet).
        channels : sequence of int, optional
            The channels the network sees (``ModelConfig.channels``); default all.
        """
        from napari_seglab.core.forest import fit_forest

        if n_jobs < 0:
            import os

            n_jobs = os.cpu_count() or 1
        try:
            forest = fit_forest(
                image,
                scribbles,
                channel_axis=channel_axis,
                n_estimators=QUICK_TREES,
                heldout_folds=0,
                n_jobs=n_jobs,
                channels=channels,
            )
        except (ValueError, MemoryError):  # too large, one class: the network trains anyway
            return None
        if self.stopped.is_set():
            return None
        region = self.region
        prediction = forest.predict(region)
        self.forest_shown = True
        return prediction, region


def painted_in(
    run, prediction: Prediction | None, region: tuple[slice, ...] | None
) -> np.ndarray | None:
    """``TrainReport.painted_accuracy`` of a report's prediction (of ``region``); ``run`` is
    the training's ``napari_seglab.core.training._Run``."""
    if prediction is None:
        return None
    painted = in_region(run.sampler.labels, run.view, region)
    return painted_accuracy(np.asarray(prediction.labels), painted, run.K)


def report_prediction(
    run, previewer: Previewer | None, final: bool, finishing: bool, step: int
) -> tuple[Prediction | None, tuple[slice, ...] | None]:
    """The prediction a report carries, with the averaged weights of ``run`` (the training's
    ``_Run``): the whole image at the end (the region in view when the user stopped early),
    or a preview the previewer asked for."""
    shown = run.averaged_model()
    image = original_layout(run.view)
    tile = run.config.tile
    if final and previewer is None:
        return predict(shown, image, tile=tile, channel_axis=-1), None
    if final:  # band by band: a stop request is honoured within a band
        got = previewer.predict(shown, image, -1, tile, region="view" if finishing else None)
        previewer.forest_shown = False
        return got if got is not None else (None, None)
    got = previewer.predict(shown, image, channel_axis=-1, tile=tile)
    if got is None:
        return None, None
    prediction, region = got
    if not previewer.accept(prediction, in_region(run.sampler.labels, run.view, region), step):
        return None, None
    return prediction, region


def in_region(labels: np.ndarray, view: ImageView, region: tuple[slice, ...] | None) -> np.ndarray:
    """The sampler's labels as ``(*spatial)``, cut to ``region`` (None: all)."""
    spatial = labels.reshape(view.spatial_shape)
    return spatial if region is None else spatial[region]


def original_layout(view: ImageView) -> np.ndarray:
    """The image in a layout :func:`predict` understands: ``(Z, Y, X, C)`` or ``(Y, X, C)``."""
    data = np.moveaxis(view.data, 1, -1)
    return data if view.is_3d else data[0]
