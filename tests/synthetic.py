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


def painted_pixel_sampler():
    """A 64-px crop sampler (no augmentation) of a 200x200 image with one painted pixel, in
    its middle."""
    from napari_seglab.core.data import Normalization, as_zcyx
    from napari_seglab.core.sampling import CropSampler

    labels = np.zeros((200, 200), np.uint8)
    labels[100, 100] = 1
    view = as_zcyx(np.zeros((200, 200), np.float32), spatial_shape=labels.shape)
    rng = np.random.default_rng(0)
    return CropSampler(view, labels, Normalization.fit(view), 64, 8, rng, augment=False)


def centre_offsets(sampler, n: int = 400) -> np.ndarray:
    """Where the one painted pixel lands in ``n`` crops of ``sampler``: ``(n, 2)`` row and
    column in each crop."""
    out = []
    for _ in range(n):
        _, y = sampler.sample()
        (r,), (c,) = np.nonzero(y == 1)
        out.append((r, c))
    return np.array(out)
