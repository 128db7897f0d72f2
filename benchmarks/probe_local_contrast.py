"""Probe: give the network each object's own contrast as a second input channel.

The errors left on the synthetic nuclei are a rim of false foreground round each nucleus and a
few missed dim nuclei; ``probe_edge_oracle.py`` found that a boundary at a fixed share of each
object's own contrast places it best. Here each grey case of the real-image suite gets a second
channel ``clip((g - floor) / max(top - floor, m), 0, 1)``, with ``g`` the image (normalised
between its 1st and 99.8th percentiles) smoothed by a Gaussian of ``--sigma`` px, ``floor``
its minimum over a ``--floor-window`` px window, ``top`` its maximum over a ``--window`` px
window and ``m`` = ``--min-contrast`` (which keeps flat background from being stretched to
noise). The network sees both channels; the edge-aware term (``losses.edge_aware_potts`` and
``losses.intensity_flux``) still sees the first one only, so only the input changes. The rest of
the run is the real-image suite's, with its arguments (``--no-forest``: the forest of the
suite's own runs on the one-channel image is the baseline).

Run::

    python benchmarks/probe_local_contrast.py --cases nuclei --draws 0 1 2 --folds 0 \\
        --steps 165 --threads 1 --no-forest --variant local --json local_nuclei.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_edge_oracle import normalised

from napari_seglab.core import losses


def local_contrast(
    image: np.ndarray,
    sigma: float = 1.0,
    window: int = 21,
    floor_window: int = 41,
    min_contrast: float = 0.1,
) -> np.ndarray:
    """Each pixel's brightness as a share of its neighbourhood's contrast.

    Parameters
    ----------
    image : np.ndarray
        ``(*spatial)``, any real dtype.
    sigma : float
        Gaussian smoothing, in px.
    window, floor_window : int
        Sides, in px, of the windows of the local maximum and minimum.
    min_contrast : float
        Smallest denominator, as a share of the image's 1st-99.8th percentile range.

    Returns
    -------
    np.ndarray
        ``(*spatial)`` float32 in ``[0, 1]``.
    """
    g = ndi.gaussian_filter(normalised(image), sigma)
    floor = ndi.minimum_filter(g, floor_window)
    top = ndi.maximum_filter(g, window)
    return np.clip((g - floor) / np.maximum(top - floor, min_contrast), 0, 1).astype(np.float32)


def first_channel(term):
    """``term(probs, image, ...)`` given only the first channel of ``image``."""

    def wrapped(probs: torch.Tensor, image: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return term(probs, image[:, :1], *args, **kwargs)

    wrapped.__name__ = term.__name__
    return wrapped


def with_contrast(make, **kw):
    """A case builder whose grey image gains the :func:`local_contrast` channel (last axis)."""

    def build(volume):
        case = make(volume)
        if case is None or case.channel_axis is not None:
            return case
        case.image = np.stack(
            [np.asarray(case.image, np.float32), local_contrast(case.image, **kw)], axis=-1
        )
        case.channel_axis = -1
        return case

    return build


def main(argv=None) -> int:
    import argparse

    import real_suite

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=21)
    ap.add_argument("--floor-window", type=int, default=41)
    ap.add_argument("--min-contrast", type=float, default=0.1)
    ours, rest = ap.parse_known_args(argv)
    kw = {
        "sigma": ours.sigma,
        "window": ours.window,
        "floor_window": ours.floor_window,
        "min_contrast": ours.min_contrast,
    }
    for name, make in list(real_suite.CASES.items()):
        real_suite.CASES[name] = with_contrast(make, **kw)
    # the trainer looks both terms up on the module
    losses.edge_aware_potts = first_channel(losses.edge_aware_potts)
    losses.intensity_flux = first_channel(losses.intensity_flux)
    return real_suite.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
