"""Probe: the edge-aware term on the square root of the image.

Photon (Poisson) noise grows with the square root of the intensity, and the square root
makes it about even across intensities (the variance-stabilising transform behind Anscombe,
Biometrika 1948). The edge-aware term's Potts weights and its flux term
(``losses.edge_aware_potts``, ``losses.intensity_flux``) then see the edges of dim
objects more strongly, and differences inside bright ones (a coin's
relief) less. Here both terms are given ``sqrt(max(x, 0))`` of the normalised crop instead of
the crop (``--terms potts`` or ``--terms flux``: one of them only); the network's input,
the Potts term's ``sigma`` (measured on the image) and everything else are unchanged. The
rest of the run is the real-image suite's, with its arguments.

Run::

    python benchmarks/probe_edge_sqrt.py --cases nuclei coins --draws 0 1 2 --folds 0 \\
        --steps 165 --threads 1 --no-forest --variant sqrt --variant sqrt_l4f8 \\
        lambda_edge=4 edge_flux=8 --markdown benchmarks/results/probe_edge_sqrt.md \\
        --json benchmarks/results/probe_edge_sqrt.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from napari_seglab.core import losses


def on_sqrt(term):
    """``term(probs, image, ...)`` given ``sqrt(max(image, 0))`` for ``image``."""

    def wrapped(probs: torch.Tensor, image: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return term(probs, image.float().clamp_min(0).sqrt(), *args, **kwargs)

    wrapped.__name__ = term.__name__
    return wrapped


def main(argv=None) -> int:
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import real_suite

    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--terms", choices=("both", "potts", "flux"), default="both")
    ours, rest = ap.parse_known_args(argv)
    # the trainer looks both terms up on the module
    if ours.terms in ("both", "potts"):
        losses.edge_aware_potts = on_sqrt(losses.edge_aware_potts)
    if ours.terms in ("both", "flux"):
        losses.intensity_flux = on_sqrt(losses.intensity_flux)
    return real_suite.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
