"""Sample data contributed to napari: a real fluorescence image shipped with scikit-image."""

from __future__ import annotations

from typing import Any

import numpy as np


def coins_image() -> np.ndarray:
    """Return the Greek coins photograph, ``(303, 384)`` uint8.

    The image is ``skimage.data.coins`` (Greek coins from Pompeii, Brooklyn Museum collection,
    public domain), shipped inside scikit-image's wheel, so no download is needed. Coins on a
    textured background with uneven lighting: a small two-class task where a global threshold
    fails.
    """
    from skimage import data

    return data.coins()


def sample_coins() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """napari sample-data hook: one image layer named ``coins``."""
    return [(coins_image(), {"name": "coins", "colormap": "gray"}, "image")]
