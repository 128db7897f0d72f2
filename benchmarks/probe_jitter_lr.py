"""Probe: do crops that place the strokes anywhere in them, or a lower learning rate, keep the
network from learning only its strokes?

Each crop is centred on a painted pixel of a class chosen uniformly, moved by up to a quarter of
the crop (``CropSampler.sample``). A class with tens of painted pixels in one place is then
always seen near the middle of the crop, with the same surroundings: a network can learn those
pixels rather than what they are (``docs/real-images.md``, "Training seeds"). Variants:

- ``default``: the engine's defaults when this probe ran: the crop moved by up to a quarter of
  its size (pinned here, so that the comparison can be run again);
- ``jitter``: the painted pixel lands anywhere in the crop but its outermost ``JITTER_MARGIN``
  pixels (the shift is up to half the crop; what the engine does since, with
  ``napari_seglab.core.sampling.SHIFT_MARGIN`` = 4);
- ``lr 1.5e-3``: half the default learning rate (crops as ``default``);
- ``jitter lr 1.5e-3``: both.

``--variants`` runs some of them only.

Every variant trains with each seed of ``--seeds``; scores and table as
``probe_forest_teacher.py``.

Run (1 thread each; the two side by side on two cores)::

    python benchmarks/probe_jitter_lr.py --out jl_a.json --cases cell microaneurysms thin \\
        "small dense" --draws 0 1 --seeds 100 101
    python benchmarks/probe_jitter_lr.py --out jl_b.json --cases nuclei retina coins camera \\
        --draws 0 1 --seeds 100 101
    python benchmarks/probe_jitter_lr.py --summary jl_a.json jl_b.json
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_forest_blend import network
from probe_forest_teacher import variants_main

VARIANTS = ("default", "jitter", "lr 1.5e-3", "jitter lr 1.5e-3")
#: Pixels at the crop's edge that the painted pixel a crop is centred on stays clear of.
JITTER_MARGIN = 4


def quarter(edge: int) -> int:
    """The largest shift of a crop of ``edge`` pixels when this probe ran."""
    return edge // 4


def half(edge: int, margin: int = JITTER_MARGIN) -> int:
    """The largest shift of the ``jitter`` variant: half the crop, less ``margin``."""
    return max(edge // 2 - margin, 0)


@contextlib.contextmanager
def crop_shift(shift):
    """Within the block, the crop sampler moves each crop by up to ``shift(edge)`` pixels
    along each axis off the painted pixel it is centred on (``CropSampler.max_shift``)."""
    from napari_seglab.core.sampling import CropSampler

    max_shift = CropSampler.max_shift
    CropSampler.max_shift = lambda self, edge: shift(edge)
    try:
        yield
    finally:
        CropSampler.max_shift = max_shift


def train_labels(case, scribbles, seed, steps, variant, probs=None) -> np.ndarray:
    """Predicted class ids ``(*spatial)`` of the variant after ``steps`` steps (one thread)."""
    settings = {"lr": 1.5e-3} if variant.endswith("lr 1.5e-3") else {}
    with crop_shift(half if variant.startswith("jitter") else quarter):
        return np.asarray(network(case, scribbles, seed, steps, **settings).labels)


def main(argv=None) -> int:
    return variants_main(argv, __doc__, "probe_jitter_lr.json", VARIANTS, train_labels)


if __name__ == "__main__":
    raise SystemExit(main())
