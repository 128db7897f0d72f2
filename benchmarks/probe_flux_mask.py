"""Probe: the flux term only where the network is unsure.

The flux term (:func:`napari_seglab.core.losses.intensity_flux`) lifts the synthetic nuclei
when it is strong, and costs ``coins()``, whose relief gives it edges inside the coins
(``benchmarks/results/probe_edge_weight_*.md``). Here each pixel's flux is weighted by
``1 - |2 p_fg - 1|`` (detached): 1 where the network is undecided, 0 where it is sure, so
that the term moves boundaries and leaves alone what the network already holds. The rest of
the run is the real-image suite's, with its arguments.

Run::

    python benchmarks/probe_flux_mask.py --cases nuclei coins --draws 0 1 2 --folds 0 \\
        --steps 165 --threads 1 --no-forest --variant m_l4f8 lambda_edge=4 edge_flux=8 \\
        --variant m_l6f12 lambda_edge=6 edge_flux=12 \\
        --markdown benchmarks/results/probe_flux_mask.md \\
        --json benchmarks/results/probe_flux_mask.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from napari_seglab.core import losses
from napari_seglab.core.losses.edge import flux_map


def unsure_flux(
    probs: torch.Tensor, image: torch.Tensor, sigma: float = 1.0, min_contrast: float = 0.05
) -> torch.Tensor:
    """:func:`~napari_seglab.core.losses.intensity_flux` with each pixel weighted by
    ``1 - |2 p_fg - 1|``; per pixel ``u * (p_fg relu(L) + p_bg relu(-L)) >= 0``."""
    p = probs.float()
    if p.shape[1] != 2:
        return (p * 0).sum()
    lap = flux_map(p, image, sigma, min_contrast)
    unsure = 1.0 - (2.0 * p[:, 1:].detach() - 1.0).abs()
    return (p[:, 1:] * lap * unsure).mean() + (torch.relu(-lap) * unsure).mean()


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import real_suite

    losses.intensity_flux = unsure_flux  # the trainer looks it up on the module
    return real_suite.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
