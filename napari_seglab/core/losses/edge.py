"""Regulariser for the unlabeled pixels: the edge-aware Potts term."""

from __future__ import annotations

import torch

from napari_seglab.core.losses.masking import (
    _no_autocast,
    _shape,
)


def edge_aware_potts(probs: torch.Tensor, image: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """Edge-aware Potts regulariser: class changes between neighbours cost less across edges.

    A relaxation of the pairwise term of a CRF (Tang et al., "On Regularized Losses for
    Weakly-supervised CNN Segmentation", ECCV 2018), on the 4- (2D) or 6- (3D) neighbourhood:
    for each spatial axis the mean over neighbouring pixels ``i, j`` along it of
    ``w_ij * (1 - sum_k p_ik p_jk)``, summed over the axes, with
    ``w_ij = exp(-mean_c (x_ic - x_jc)**2 / (2 sigma**2))``. It uses no labels, so it reaches the
    pixels no scribble covers and pulls class boundaries onto intensity edges. Summed in
    float32, even under autocast.

    Parameters
    ----------
    probs : torch.Tensor
        Class probabilities ``(B, K, *spatial)`` (after the softmax or sigmoid), 1-3 spatial dims.
    image : torch.Tensor
        The network's input ``(B, C_in, *spatial)``, normalised (intensities of about 0-1).
    sigma : float
        Intensity difference at which a neighbour pair counts ``exp(-1/2)`` as much as in a flat
        region.

    Returns
    -------
    torch.Tensor
        A scalar, 0 when every pixel is certain of one class shared with its neighbours.
    """
    if probs.dim() < 3 or probs.dim() > 5:
        raise ValueError(
            f"probs must be (B, K, *spatial) with 1-3 spatial dims, got {_shape(probs)}"
        )
    if image.shape[0] != probs.shape[0] or image.shape[2:] != probs.shape[2:]:
        raise ValueError(
            f"image shape {_shape(image)} does not match probs shape {_shape(probs)} "
            "in batch and spatial dims"
        )
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    with _no_autocast(probs.device):
        p = probs.float()
        x = image.float()
        total = p.new_zeros(())
        for dim in range(2, p.dim()):
            n = p.shape[dim]
            if n < 2:
                continue
            pa, pb = p.narrow(dim, 0, n - 1), p.narrow(dim, 1, n - 1)
            xa, xb = x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1)
            w = torch.exp(-((xa - xb) ** 2).mean(1, keepdim=True) / (2.0 * sigma**2))
            total = total + (w * (1.0 - (pa * pb).sum(1, keepdim=True))).mean()
        return total
