"""Class weights from painted-pixel counts.

Label convention: 0 = unlabeled (never counted), 1 = background, 2 = foreground, 3.. more
classes; a model with K classes has classes 1..K and ``counts[k]`` is the count of class id
``k + 1``.

:class:`ClassCounts` accumulates counts over several images or slices (the usual advice is to
estimate class frequencies over many images rather than one) and updates them incrementally from
the pixels one brush stroke changed, which costs time proportional to the stroke, not the image.
:func:`class_weights` turns counts into per-class loss weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["DEFAULT_FLOOR", "SCHEMES", "ClassCounts", "Scheme", "class_weights"]

Scheme = Literal["inverse_frequency", "median_frequency", "effective_number", "none"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
"""Names accepted by :func:`class_weights`."""

DEFAULT_FLOOR = 0.05
"""Default ``floor``: no present class weighs more than 1 / 0.05 = 20 times another."""


_CHUNK = 1 << 20


def _bincount(values: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    """Counts of class ids 1..num_classes in ``values`` (0 ignored) as int64 (num_classes,)."""
    v = np.asarray(values)
    if v.size == 0:
        return np.zeros(num_classes, dtype=np.int64)
    if v.dtype == bool:
        v = v.astype(np.uint8)
    if not np.issubdtype(v.dtype, np.integer):
        if not np.issubdtype(v.dtype, np.floating) or not np.all(np.isfinite(v)):
            raise ValueError(f"{what} must hold integer class ids, got dtype {v.dtype}")
        if np.any(v != np.round(v)):
            raise ValueError(f"{what} must hold integer class ids, got non-integer values")
    v = v.reshape(-1)  # a view for contiguous arrays
    counts = np.zeros(num_classes + 1, dtype=np.int64)
    # in chunks: bincount converts its input to intp, 8 bytes a value
    for start in range(0, v.size, _CHUNK):
        part = v[start : start + _CHUNK]
        if part.min() < 0 or part.max() > num_classes:
            bad = np.unique(part[(part < 0) | (part > num_classes)])[:8].tolist()
            raise ValueError(
                f"{what} holds class ids {bad} outside [0, {num_classes}] "
                f"(0 = unlabeled, 1..{num_classes} = classes)"
            )
        counts += np.bincount(part.astype(np.intp, copy=False), minlength=num_classes + 1)
    return counts[1:]


class ClassCounts:
    """Per-class painted-pixel counts over labeled pixels (label 0 is not counted).

    Parameters
    ----------
    num_classes : int
        Number of classes K; class ids are 1..K.

    Attributes
    ----------
    counts : np.ndarray
        (K,) int64, ``counts[k]`` = number of pixels with class id ``k + 1`` (a copy).
    fractions : np.ndarray
        (K,) float64 share of each class among labeled pixels (zeros when none is labeled).

    Examples
    --------
    >>> cc = ClassCounts(2)
    >>> cc.add(np.array([[0, 1, 1], [2, 0, 1]]))
    >>> cc.counts
    array([3, 1])
    >>> cc.update(old_values=np.array([1, 0]), new_values=np.array([2, 2]))
    >>> cc.counts
    array([2, 3])
    """

    def __init__(self, num_classes: int) -> None:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self._num_classes = int(num_classes)
        self._counts = np.zeros(self._num_classes, dtype=np.int64)

    @classmethod
    def from_labels(cls, labels: ArrayLike | Sequence[ArrayLike], num_classes: int) -> ClassCounts:
        """Counts of one labels array, or of several (a list of images or slices).

        Parameters
        ----------
        labels : array_like or sequence of array_like
            Integer label arrays of any shape (0 = unlabeled).
        num_classes : int
            Number of classes K.

        Returns
        -------
        ClassCounts
        """
        cc = cls(num_classes)
        if isinstance(labels, (list, tuple)):
            for item in labels:
                cc.add(item)
        else:
            cc.add(labels)
        return cc

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return self._num_classes

    @property
    def counts(self) -> np.ndarray:
        """(K,) int64 counts of class ids 1..K (a copy)."""
        return self._counts.copy()

    @property
    def total(self) -> int:
        """Number of labeled pixels."""
        return int(self._counts.sum())

    @property
    def fractions(self) -> np.ndarray:
        """(K,) float64 class shares among labeled pixels; zeros when nothing is labeled."""
        total = self._counts.sum()
        if total == 0:
            return np.zeros(self._num_classes, dtype=np.float64)
        return self._counts / float(total)

    def add(self, labels: ArrayLike) -> None:
        """Add the labeled pixels of an array (any shape) to the counts.

        Parameters
        ----------
        labels : array_like
            Integer class ids in [0, K]; 0 is ignored.

        Raises
        ------
        ValueError
            If a value is outside [0, K] or not an integer.
        """
        self._counts += _bincount(np.asarray(labels), self._num_classes, "labels")

    def update(self, old_values: ArrayLike, new_values: ArrayLike) -> None:
        """Incremental update from the pixels one stroke changed.

        Costs O(number of changed pixels), independent of the image size.

        Parameters
        ----------
        old_values : array_like
            (N,) (or any shape) class ids of the changed pixels before the stroke.
        new_values : array_like or int
            Class ids after the stroke, same shape as ``old_values`` or a scalar (a brush
            paints one value).

        Raises
        ------
        ValueError
            If shapes differ, a value is outside [0, K], or a count would become negative
            (``old_values`` do not match what was counted); the counts are then unchanged.
        """
        old = np.asarray(old_values)
        new = np.asarray(new_values)
        delta = -_bincount(old, self._num_classes, "old_values")
        if new.ndim == 0:  # one value painted over all changed pixels
            delta += _bincount(new.reshape(1), self._num_classes, "new_values") * old.size
        elif old.shape != new.shape:
            raise ValueError(
                f"old_values shape {old.shape} does not match new_values shape {new.shape}"
            )
        else:
            delta += _bincount(new, self._num_classes, "new_values")
        self._apply(delta)

    def _apply(self, delta: np.ndarray) -> None:
        updated = self._counts + delta
        if np.any(updated < 0):
            neg = (np.nonzero(updated < 0)[0] + 1).tolist()
            raise ValueError(
                f"update would make the counts of class ids {neg} negative: "
                "the old values do not match the counted pixels"
            )
        self._counts = updated

    def copy(self) -> ClassCounts:
        """An independent copy."""
        cc = ClassCounts(self._num_classes)
        cc._counts = self._counts.copy()
        return cc

    def __repr__(self) -> str:
        return f"ClassCounts(num_classes={self._num_classes}, counts={self._counts.tolist()})"


def class_weights(
    counts: ArrayLike | ClassCounts,
    scheme: str = "inverse_frequency",
    beta: float = 0.999,
    floor: float = DEFAULT_FLOOR,
) -> np.ndarray:
    """Per-class loss weights from painted-pixel counts.

    Parameters
    ----------
    counts : array_like or ClassCounts
        (K,) non-negative counts of class ids 1..K over labeled pixels.
    scheme : {"inverse_frequency", "median_frequency", "effective_number", "none"}
        * ``"inverse_frequency"``: ``w_c = 1 / f_c`` (``f_c`` = share of class c among labeled
          pixels), normalised to mean 1 over the present classes.
        * ``"median_frequency"``: ``w_c = median(f) / f_c`` over the present classes (Eigen &
          Fergus, ICCV 2015); the median class weighs 1.
        * ``"effective_number"``: ``w_c = 1 / E_c`` with the effective number of samples
          ``E_c = (1 - beta**n_c) / (1 - beta)`` (Cui et al., "Class-Balanced Loss Based on
          Effective Number of Samples", CVPR 2019), normalised to mean 1 over the present
          classes. ``E_c`` saturates at ``1 / (1 - beta)``: with pixel counts in the thousands
          a ``beta`` nearer 1 (0.9999) separates the classes more.
        * ``"none"``: all ones.
    beta : float
        ``beta`` of the effective number, in [0, 1).
    floor : float
        In (0, 1]. Before inverting, each present class's size (frequency, or effective number)
        is raised to at least ``floor`` times the largest class's size. This caps the ratio
        between the weights of any two present classes at ``1 / floor`` (20 with the default
        0.05), so a class painted with a few pixels cannot take over the loss.

    Returns
    -------
    np.ndarray
        (K,) float64 weights. Classes with zero count get weight 1.0 (neutral: they have no
        pixel in the cross-entropy, and in a Dice term they only penalise false positives);
        all ones when nothing is counted.

    Raises
    ------
    ValueError
        On an unknown scheme, negative or non-finite counts, or ``beta`` / ``floor`` out of
        range.
    """
    if isinstance(counts, ClassCounts):
        counts = counts.counts
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array (K,), got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"counts must be finite and >= 0, got {c.tolist()}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must be in (0, 1], got {floor}")
    weights = np.ones_like(c)
    present = c > 0
    if scheme == "none" or not present.any():
        return weights
    if scheme == "effective_number":
        # (1 - beta**n) computed as -expm1(n * log(beta)) stays accurate for beta near 1
        if beta > 0:
            size = -np.expm1(c[present] * np.log(beta)) / (1.0 - beta)
        else:  # beta = 0: every present class counts as one sample
            size = np.ones(int(present.sum()))
    else:
        size = c[present] / c.sum()
    size = np.maximum(size, floor * size.max())
    w = 1.0 / size
    w = w * np.median(size) if scheme == "median_frequency" else w / w.mean()
    weights[present] = w
    return weights
