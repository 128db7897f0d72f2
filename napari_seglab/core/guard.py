"""What keeps a run on its strokes: the running stroke recall, the guard that acts on it, and
the weight and gate of the edge-aware term.

The guard (``TrainConfig.guard``) watches, per class, the share of the painted pixels of the
training crops that the network gives back (:class:`StrokeMonitor`). When a class stays below
:data:`GUARD_RECALL`, it switches the edge-aware term off, then raises that class's loss weight;
the report's ``notes`` say so. Why: ``docs/real-images.md`` (a regulariser and a class weight
that drove runs on ``skimage.data.cell()`` and ``astronaut()`` to one class).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from napari_seglab.core.training import TrainConfig

#: Weight of the edge-aware term (see ``TrainConfig.lambda_edge``); shared by the CLI and widget.
DEFAULT_LAMBDA_EDGE = 2.0

#: A class whose running recall on its own painted pixels is below this ...
GUARD_RECALL = 0.6
#: ... after this many steps of a run (and this many since the guard last acted) makes the
#: guard act (``TrainConfig.guard``).
GUARD_WARMUP = 30
GUARD_COOLDOWN = 15
#: The guard raises a class's loss weight at most to this multiple.
GUARD_MAX_BOOST = 8.0


#: The edge-aware term is fully on once every painted class's running stroke recall reaches
#: the upper bound and off below the lower one (linear between): see :func:`edge_gate`.
EDGE_GATE = (0.5, 0.9)


def edge_gate(recall: np.ndarray) -> float:
    """Factor 0..1 on the edge-aware term from the running stroke recall ``(K,)`` of the
    painted classes: the regulariser may only act where the strokes are already learnt.

    A class not seen yet (NaN) counts as 0. On ``skimage.data.cell()`` with an 11-pixel
    foreground stroke the ramped term alone kept the foreground from being learnt in the first
    30 steps; gated, it waits until the stroke is reproduced.
    """
    if len(recall) == 0:
        return 1.0
    worst = float(np.min(np.nan_to_num(recall, nan=0.0)))
    lo, hi = EDGE_GATE
    return float(np.clip((worst - lo) / (hi - lo), 0.0, 1.0))


class StrokeMonitor:
    """Running per-class recall of the painted pixels on the training crops.

    Each step adds the crops' painted pixels, counted per class (right / all), to sums that
    decay by ``decay`` per step, so the recall follows the last ten or so steps. Counting on
    the training crops costs one ``argmax`` of logits the step computed anyway.

    Parameters
    ----------
    num_classes : int
        K; classes are ids 1..K.
    decay : float
    """

    def __init__(self, num_classes: int, decay: float = 0.9) -> None:
        self.num_classes = int(num_classes)
        self.decay = float(decay)
        self.right = np.zeros(self.num_classes)
        self.seen = np.zeros(self.num_classes)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, sigmoid: bool) -> None:
        """Add one batch: ``logits (B, C_out, *spatial)``, ``labels (B, 1, *spatial)`` int
        (0 = unlabeled, 1..K classes)."""
        pred = (logits[:, 0] > 0).long() + 1 if sigmoid else logits.argmax(1) + 1
        y = labels[:, 0]
        painted = y > 0
        k1 = self.num_classes + 1
        seen = torch.bincount(y[painted].flatten(), minlength=k1)[1:k1]
        right = torch.bincount(y[painted & (pred == y)].flatten(), minlength=k1)[1:k1]
        self.seen = self.decay * self.seen + seen.cpu().numpy()
        self.right = self.decay * self.right + right.cpu().numpy()

    def recall(self) -> np.ndarray:
        """``(K,)`` running recall per class; NaN for a class with no painted pixels seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seen > 1e-6, self.right / np.maximum(self.seen, 1e-12), np.nan)


#: The automatic ``edge_sigma`` is this many times the image's noise level ...
EDGE_NOISE_FACTOR = 1.2
#: ... and at least this much (normalised intensity), for nearly noise-free images.
EDGE_SIGMA_MIN = 0.01


def sparse_class_factor(counts: np.ndarray, min_painted: int) -> float:
    """Factor 0..1 on the edge-aware term from the painted pixels per class ``counts`` ``(K,)``:
    ``min(1, n / min_painted)`` for ``n`` the painted pixels of the least-painted class that is
    painted at all; 1 when ``min_painted`` is 0 (``TrainConfig.edge_min_painted``).

    The Potts term pays for the length of class boundaries, so it favours the smallest region
    a class can keep: for a class painted on a few pixels, those pixels (the "shrinking bias"
    of graph-cut segmentation; Vicente, Kolmogorov and Rother, CVPR 2008).
    """
    painted = np.asarray(counts)[np.asarray(counts) > 0]
    if min_painted <= 0 or len(painted) == 0:
        return 1.0
    return float(min(1.0, painted.min() / min_painted))


def lambda_edge_for(config: TrainConfig, stack: bool) -> float:
    """The edge-aware term's weight for a run: ``config.lambda_edge``, or when it is None
    ``DEFAULT_LAMBDA_EDGE`` for a 2D image and 0 for a stack.

    Stacks leave it off: on the nuclei volume with sparse scribbles on a few planes it lowered
    the IoU and could end a run with no foreground at all
    (``benchmarks/results/sparse_scribbles.md``).
    """
    if config.lambda_edge is not None:
        return float(config.lambda_edge)
    return 0.0 if stack else DEFAULT_LAMBDA_EDGE


def noise_level(x: np.ndarray) -> float:
    """Robust noise standard deviation of images ``(B, C, H, W)``: the median absolute
    deviation of differences between horizontal neighbours, divided by sqrt(2)."""
    d = np.diff(np.asarray(x, np.float64), axis=-1).ravel()
    mad = np.median(np.abs(d - np.median(d)))
    return max(float(1.4826 * mad / math.sqrt(2.0)), 1e-3)
