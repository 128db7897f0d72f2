"""The random forest as a teacher of the classes painted on few pixels.

A class painted on a few pixels (``skimage.data.cell()``'s 11-pixel foreground stroke, a fold of
immunohistochemistry's strokes that keeps 11 foreground pixels) gives the network little to learn
from: it can reproduce those pixels and miss every other object of the class, while the random
forest of :mod:`napari_seglab.core.forest`, fitted on the same strokes,
generalises from them by colour, intensity and texture. For those
classes only, the forest's confident pixels (probability at least :data:`TEACHER_CONFIDENCE`)
become cross-entropy targets on the unpainted pixels of each training crop, added to the loss
with weight
``TrainConfig.forest_teacher`` for the whole run: knowledge distillation from a fixed teacher
(Hinton, Vinyals and Dean, "Distilling the knowledge in a neural network", 2015), with hard
labels. The strokes keep the last word where they are painted.

Taught everywhere, the forest's errors are learnt along with what it gets right (thin structures,
crowded nuclei and coins lost 10-25% of their IoU). Restricted to the classes painted on fewer
than ``TrainConfig.forest_teacher_painted`` pixels it reaches only the runs that lack evidence
(``benchmarks/probe_forest_teacher.py``, ``benchmarks/results/probe_forest_teacher.md``), and
only where the forest finds at least :data:`TEACHER_MIN_SPREAD` times as many pixels of the
class as were painted.

The forest is fitted once, when training starts, on the region the training crops can reach
(the painted pixels' bounding box with a crop's margin), for the classes sparse then: a class
painted later in the run, or one that falls under the threshold later (a stroke erased), is
not taught; one painted on more pixels later is no longer taught. Runs in which every class
is painted on at least ``forest_teacher_painted`` pixels are the same with or without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from napari_seglab.core.data import ImageView
from napari_seglab.core.forest import fit_forest

if TYPE_CHECKING:
    from napari_seglab.core.config import TrainConfig

#: The forest's probability a class needs at a pixel to be taught there.
TEACHER_CONFIDENCE = 0.7
#: Trees of the teacher forest (ilastik's default).
TEACHER_TREES = 100
#: A class is taught only where the forest finds at least this many times as many pixels of
#: it (confidently) as were painted: where it finds little more than the strokes, teaching
#: would only weigh the strokes again (on the nuclei volume's 61x57 plane, with 8 painted
#: foreground pixels, that lowered the network's IoU; ``docs/real-images.md``).
TEACHER_MIN_SPREAD = 10
#: Slices above and below the painted ones that the forest of a stack sees (its filters are 3D).
Z_MARGIN = 4


def sparse_classes(counts: np.ndarray, below: int) -> np.ndarray:
    """Class ids (1..K) painted on at least one and fewer than ``below`` pixels.

    ``counts`` is ``(K,)``, the painted pixels of classes 1..K.
    """
    counts = np.asarray(counts)
    return (np.flatnonzero((counts > 0) & (counts < int(below))) + 1).astype(np.int64)


def teacher_region(labels: np.ndarray, margin: int, z_margin: int = 0) -> tuple[slice, ...]:
    """The bounding box of the painted pixels of ``labels`` (``(Z, Y, X)``), grown by
    ``margin`` pixels in Y and X and ``z_margin`` slices in Z (clipped): where training crops
    can reach, with the slices around them that 3D filters need."""
    z, y, x = (np.flatnonzero(np.any(labels > 0, axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    d, h, w = labels.shape
    return (
        slice(max(0, int(z[0]) - z_margin), min(d, int(z[-1]) + 1 + z_margin)),
        slice(max(0, int(y[0]) - margin), min(h, int(y[-1]) + 1 + margin)),
        slice(max(0, int(x[0]) - margin), min(w, int(x[-1]) + 1 + margin)),
    )


def fit_teacher(
    view: ImageView, labels: np.ndarray, margin: int, seed: int | None, n_jobs: int
) -> np.ndarray:
    """The forest's confident classes where training crops can reach.

    Parameters
    ----------
    view : ImageView
        The training image, ``(Z, C, Y, X)``.
    labels : np.ndarray
        ``(Z, Y, X)`` scribbles (0 = unlabeled).
    margin : int
        Pixels around the painted pixels' bounding box the teacher covers (a crop's edge).
    seed : int or None
    n_jobs : int
        Threads for the forest's features, fit and prediction.

    Returns
    -------
    np.ndarray
        ``(Z, Y, X)`` uint8: class id 1..K where the forest's probability is at least
        :data:`TEACHER_CONFIDENCE`, 0 elsewhere (and outside the region).

    Raises
    ------
    ValueError
        From :func:`~napari_seglab.core.forest.fit_forest`: the region's features would not
        fit in :data:`~napari_seglab.core.forest.MAX_FEATURE_BYTES`.
    """
    region = teacher_region(labels, margin, Z_MARGIN if view.is_3d else 0)
    part = np.asarray(view.data[region[0], :, region[1], region[2]])  # (z, C, y, x)
    strokes = labels[region]
    if view.is_3d:
        image, scribbles, channel_axis = part, strokes, 1
    else:
        image, scribbles, channel_axis = part[0], strokes[0], 0
    forest = fit_forest(
        image,
        scribbles,
        channel_axis=channel_axis,
        n_estimators=TEACHER_TREES,
        heldout_folds=0,
        seed=0 if seed is None else int(seed),
        n_jobs=n_jobs,
    )
    probs = forest.predict().probabilities.reshape(forest.num_classes, *strokes.shape)
    out = np.zeros(labels.shape, np.uint8)
    out[region] = np.where(probs.max(0) >= TEACHER_CONFIDENCE, probs.argmax(0) + 1, 0)
    return out


def prepare(
    view: ImageView,
    labels: np.ndarray,
    counts: Sequence[int],
    config: TrainConfig,
    margin: int,
    n_jobs: int,
    class_names: Sequence[str],
) -> tuple[np.ndarray | None, str | None]:
    """The teacher of a training, and what to say about it.

    The classes painted on fewer than ``config.forest_teacher_painted`` pixels are taught where
    :func:`fit_teacher`'s forest finds at least :data:`TEACHER_MIN_SPREAD` times as many
    pixels of them as were painted.

    Parameters
    ----------
    view, labels, margin, n_jobs
        As for :func:`fit_teacher`.
    counts : sequence of int
        ``(K,)`` painted pixels of classes 1..K.
    config : TrainConfig
        ``forest_teacher`` (0: no teacher), ``forest_teacher_painted``, ``seed``.
    class_names : sequence of str
        Names of classes 1..K, for the note.

    Returns
    -------
    teacher : np.ndarray or None
        ``(Z, Y, X)`` uint8, the taught classes' pixels (0 elsewhere); None: no class taught.
    note : str or None
        For ``TrainReport.notes``: which classes are taught, or why none is.
    """
    counts = np.asarray(counts)
    sparse = sparse_classes(counts, config.forest_teacher_painted)
    if config.forest_teacher <= 0 or not len(sparse):
        return None, None
    try:
        teacher = fit_teacher(view, labels, margin, config.seed, n_jobs)
    except (ValueError, MemoryError) as exc:
        region = teacher_region(labels, margin, Z_MARGIN if view.is_3d else 0)
        span = "x".join(str(s.stop - s.start) for s in region[int(not view.is_3d) :])
        why = "too many for the random forest"
        if min(s.stop - s.start for s in region[int(not view.is_3d) :]) < 3:
            why = "too thin for the random forest's filters"  # 3 pixels along every axis
        return None, (
            f"no forest teacher: the strokes and a {margin}-pixel margin span {span} pixels, "
            f"{why} ({exc})"
        )
    found = np.bincount(teacher.ravel(), minlength=len(counts) + 1)
    kept = [int(k) for k in sparse if found[k] >= TEACHER_MIN_SPREAD * counts[k - 1]]
    teacher[~np.isin(teacher, kept)] = 0
    if not kept:
        said = named(sparse, counts, class_names)
        return (
            None,
            f"no forest teacher: the random forest finds little more of {said} than the strokes",
        )
    return teacher, f"the random forest teaches {named(kept, counts, class_names)}"


def named(classes: Sequence[int], counts: Sequence[int], class_names: Sequence[str]) -> str:
    """``"foreground (11 painted pixels), ..."`` for class ids (1..K) ``classes``, for notes."""
    return ", ".join(f"{class_names[k - 1]} ({counts[k - 1]} painted pixels)" for k in classes)


def teacher_loss(
    logits: torch.Tensor,
    teacher: torch.Tensor,
    taught: torch.Tensor,
    painted: torch.Tensor,
    sigmoid: bool,
) -> torch.Tensor | None:
    """Mean cross-entropy of the network against the teacher's classes on the unpainted pixels
    where the teacher gives one of the ``taught`` classes.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, K, *spatial)`` (``(B, 1, *spatial)`` for a sigmoid model).
    teacher : torch.Tensor
        ``(B, 1, *spatial)`` integer class ids 1..K, 0 = none.
    taught : torch.Tensor
        ``(T,)`` class ids taught.
    painted : torch.Tensor
        ``(B, 1, *spatial)`` bool, the painted pixels (never taught).
    sigmoid : bool

    Returns
    -------
    torch.Tensor or None
        A scalar; None when no pixel of the batch is taught.
    """
    chosen = torch.isin(teacher, taught) & ~painted
    if not bool(chosen.any()):
        return None
    if sigmoid:
        log_p = torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
    else:
        log_p = F.log_softmax(logits, dim=1)
    target = torch.where(chosen, teacher - 1, torch.full_like(teacher, -100))[:, 0]
    return F.nll_loss(log_p, target, ignore_index=-100)
