"""Scribble edits: the pixels one brush stroke changed, sent to a running training.

A stroke changes a few thousand pixels of what may be a volume of hundreds of millions; sending
those pixels instead of the whole array keeps every update proportional to the stroke. The
training generator (:func:`napari_seglab.core.training.train`) accepts a :class:`ScribbleEdit`, or
a list of them, through ``send()`` and applies them to its copy of the scribbles, its class
counts and its crop sampler.

Label convention: 0 = unlabeled (an edit to 0 erases), 1 = background, 2 = foreground, 3.. more
classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ScribbleEdit"]


def _as_int_array(values, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
    ):
        raise ValueError(f"{what} must hold integers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{what} must hold whole numbers")
        a = a.astype(np.int64)
    return a


@dataclass(frozen=True, eq=False)
class ScribbleEdit:
    """Pixels of the scribbles set to new class ids (what one stroke, fill or erase changed).

    Attributes
    ----------
    indices : tuple of np.ndarray
        One integer array ``(N,)`` per spatial axis of the scribbles, ``(y, x)`` for an image or
        ``(z, y, x)`` for a stack, like the output of ``np.nonzero``.
    values : np.ndarray
        ``(N,)`` new class ids in ``0..K`` (0 erases), or a 0-d array: one id for all N pixels
        (a brush paints one value). When an index appears more than once, its last value counts.

    Only the pixels' new values travel: whoever applies an edit compares them with its own copy
    of the scribbles, so an edit applied twice, or to a copy that already holds it, changes
    nothing more.

    Raises
    ------
    ValueError
        On construction: no index arrays, index arrays that are not 1-D integers of one length,
        or values that are not integers, not of that length nor a single value. The bounds and
        the class ids are checked by :meth:`resolve` against a shape and a class count.

    Examples
    --------
    >>> edit = ScribbleEdit((np.array([0, 0]), np.array([1, 2])), np.array(2))
    >>> flat, values = edit.resolve((4, 4), num_classes=2)
    >>> flat.tolist(), values.tolist()
    ([1, 2], [2, 2])
    """

    indices: tuple[np.ndarray, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if isinstance(self.indices, np.ndarray) or not isinstance(self.indices, (tuple, list)):
            raise ValueError(
                "indices must be a tuple of integer arrays, one per spatial axis "
                f"(like np.nonzero's output), got {type(self.indices).__name__}"
            )
        if len(self.indices) == 0:
            raise ValueError("indices must hold one array per spatial axis, got none")
        idx = tuple(_as_int_array(a, f"indices[{i}]") for i, a in enumerate(self.indices))
        for i, a in enumerate(idx):
            if a.ndim != 1:
                raise ValueError(f"indices[{i}] must be 1-D (N,), got shape {a.shape}")
        lengths = {a.size for a in idx}
        if len(lengths) > 1:
            raise ValueError(
                f"the index arrays differ in length: {[a.size for a in idx]} (one per axis)"
            )
        n = idx[0].size
        values = _as_int_array(self.values, "values")
        if values.ndim > 1 or (values.ndim == 1 and values.size != n):
            raise ValueError(
                f"values must be ({n},) (one class id per index) or a single id, "
                f"got shape {values.shape}"
            )
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "values", values)

    @property
    def size(self) -> int:
        """N, the number of indices (duplicates included)."""
        return int(self.indices[0].size)

    @property
    def ndim(self) -> int:
        """The number of spatial axes the indices address."""
        return len(self.indices)

    @classmethod
    def from_mask(
        cls, offset: tuple[int, ...], mask: np.ndarray | None, value: int, shape=None
    ) -> ScribbleEdit:
        """The pixels of a box set to ``value``: those under ``mask``, or all of them.

        Parameters
        ----------
        offset : tuple of int
            Position of the box's first pixel, one entry per axis of ``mask``.
        mask : np.ndarray or None
            Boolean ``(*box)``; None: every pixel of the box (give its shape as ``shape``).
        value : int
            The new class id.
        shape : tuple of int, optional
            The box's shape when ``mask`` is None.
        """
        if mask is None:
            if shape is None:
                raise ValueError("give the box's shape when there is no mask")
            local = np.nonzero(np.ones(tuple(int(s) for s in shape), dtype=bool))
        else:
            local = np.nonzero(np.asarray(mask, dtype=bool))
        if len(offset) != len(local):
            raise ValueError(
                f"offset {tuple(offset)} needs one entry per axis of the box ({len(local)})"
            )
        indices = tuple(a.astype(np.int64) + int(o) for a, o in zip(local, offset, strict=True))
        return cls(indices, np.asarray(value))

    def resolve(self, shape: tuple[int, ...], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Validate against the scribbles' shape and class count; flat indices and values.

        Parameters
        ----------
        shape : tuple of int
            The scribbles' spatial shape, ``(Y, X)`` or ``(Z, Y, X)``.
        num_classes : int
            K: values must be in ``0..K``.

        Returns
        -------
        flat : np.ndarray
            ``(M,)`` int64 C-order flat indices, each once (M <= N), in increasing order.
        values : np.ndarray
            ``(M,)`` uint8 new class ids (the last one given for a repeated index).

        Raises
        ------
        ValueError
            For an index array per axis that does not match ``shape``, an index out of bounds
            (negative ones included) or a value outside ``0..num_classes``.
        """
        shape = tuple(int(s) for s in shape)
        if self.ndim != len(shape):
            raise ValueError(
                f"the edit has {self.ndim} index arrays but the scribbles have shape {shape} "
                f"({len(shape)} axes)"
            )
        for axis, (a, n) in enumerate(zip(self.indices, shape, strict=True)):
            if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
                bad = int(a.min()) if int(a.min()) < 0 else int(a.max())
                raise ValueError(
                    f"edit index {bad} on axis {axis} is outside the scribbles' shape {shape}"
                )
        v = self.values
        if v.size and (int(v.min()) < 0 or int(v.max()) > num_classes):
            bad = int(v.min()) if int(v.min()) < 0 else int(v.max())
            raise ValueError(
                f"the edit paints label {bad} but the model has {num_classes} classes "
                f"(labels 0..{num_classes}, 0 = erase); start a new training to add a class"
            )
        flat = np.ravel_multi_index(self.indices, shape).astype(np.int64, copy=False)
        values = np.broadcast_to(v, flat.shape).astype(np.uint8)
        if flat.size > 1:
            # each pixel once, with its last value: unique of the reversed order keeps the last
            rev, first = np.unique(flat[::-1], return_index=True)
            flat, values = rev, values[::-1][first]
        return flat, values


def scribble_items(new: Any, ndim: int) -> list[Any]:
    """What was sent to a training generator (one edit, a sequence of edits and full
    ``ndim``-dimensional arrays, or one full array), as a list of edits and arrays, in order."""
    if isinstance(new, ScribbleEdit):
        return [new]
    if isinstance(new, (list, tuple)) and all(
        isinstance(x, ScribbleEdit) or (isinstance(x, np.ndarray) and x.ndim == ndim) for x in new
    ):
        return list(new)
    return [new]
