"""Where the model is unsure, and where to paint next.

The uncertainty of a pixel is computed from its class probabilities ``(K, *spatial)``:

- ``"margin"`` (the default, ilastik's "uncertainty" overlay): one minus the gap between the two
  most probable classes, ``1 - (p_(1) - p_(2))``: 0 when one class has all the probability, 1
  when the two best are tied;
- ``"entropy"``: the Shannon entropy of the probabilities divided by ``log K``, so also in 0..1.

:func:`most_uncertain_window` finds the window, among those not yet painted, whose unpainted
pixels are the most uncertain on average: where a stroke teaches the model most (uncertainty
sampling, Settles, *Active Learning Literature Survey*, 2009, section 3.1).
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
from scipy import ndimage as ndi

Kind = Literal["margin", "entropy"]
KINDS: tuple[str, ...] = get_args(Kind)


def uncertainty(probabilities: np.ndarray, kind: Kind = "margin") -> np.ndarray:
    """Per-pixel uncertainty in 0..1 from class probabilities.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(K, *spatial)`` class probabilities (K >= 2; each pixel's sum 1).
    kind : {"margin", "entropy"}

    Returns
    -------
    np.ndarray
        ``(*spatial)`` float32 in 0..1; 1 = most uncertain.

    Raises
    ------
    ValueError
        Fewer than 2 classes, or an unknown kind.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim < 2 or p.shape[0] < 2:
        raise ValueError(f"probabilities must be (K, ...) with K >= 2 classes, got {p.shape}")
    if kind == "margin":
        top2 = np.partition(p, p.shape[0] - 2, axis=0)[-2:]
        out = 1.0 - (top2[1] - top2[0])
    elif kind == "entropy":
        q = np.clip(p, 1e-12, 1.0)
        out = -(p * np.log(q)).sum(axis=0) / np.log(p.shape[0])
    else:
        raise ValueError(f"unknown uncertainty kind {kind!r}; choose one of {', '.join(KINDS)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def most_uncertain_window(
    uncert: np.ndarray, painted: np.ndarray | None, size: int = 64
) -> tuple[slice, ...]:
    """The ``size`` x ``size`` window whose unpainted pixels are the most uncertain on average.

    Parameters
    ----------
    uncert : np.ndarray
        ``(Y, X)`` or ``(Z, Y, X)`` uncertainty (:func:`uncertainty`).
    painted : np.ndarray or None
        Same shape, True (non-zero) where pixels are painted; they count as certain.
    size : int
        Window edge in pixels (in Y and X; a stack's windows are one plane thick).

    Returns
    -------
    tuple of slice
        The window, inside the image: ``(Y, X)`` or ``(Z, Y, X)`` slices.

    Raises
    ------
    ValueError
        Shapes that differ, or an image that is not 2D or 3D.
    """
    u = np.asarray(uncert, dtype=np.float32)
    if u.ndim not in (2, 3):
        raise ValueError(f"uncertainty must be (Y, X) or (Z, Y, X), got {u.shape}")
    if painted is not None:
        painted = np.asarray(painted) != 0
        if painted.shape != u.shape:
            raise ValueError(f"painted {painted.shape} and uncertainty {u.shape} differ in shape")
        u = np.where(painted, 0.0, u)
    size = max(1, int(size))
    window = (1,) * (u.ndim - 2) + (size, size)
    mean = ndi.uniform_filter(u, size=window, mode="constant")
    center = np.unravel_index(int(np.argmax(mean)), u.shape)
    slices = []
    for c, n, w in zip(center, u.shape, window, strict=True):
        w = min(w, n)
        start = min(max(int(c) - w // 2, 0), n - w)
        slices.append(slice(start, start + w))
    return tuple(slices)
