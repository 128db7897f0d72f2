"""The synthetic image the core tests share: bright disks on noise, with sparse scribbles."""

from __future__ import annotations

import numpy as np


def blobs(shape=(96, 96), n=10, seed=0, channels=None, painted=0.03):
    """Bright disks (radius 4-7 px) on noise, uint16 ``shape`` (with ``channels``: ``(*shape, C)``);
    returns the image, the ground truth and scribbles on a ``painted`` share of the pixels
    (1 = background, 2 = foreground)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    gt = np.zeros(shape, bool)
    for _ in range(n):
        cy, cx = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        gt |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(4, 8) ** 2
    image = (gt * 60.0 + rng.normal(100.0, 20.0, shape)).astype(np.uint16)
    if channels:
        image = np.stack([image, image // 2 + 5, rng.integers(0, 50, shape)], -1)[..., :channels]
    scribbles = np.zeros(shape, np.uint8)
    sel = rng.random(shape) < painted
    scribbles[sel & gt] = 2
    scribbles[sel & ~gt] = 1
    return image, gt, scribbles
