"""Regularisers for the unlabeled pixels: the edge-aware Potts term and the flux term."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from napari_seglab.core.losses.masking import (
    _no_autocast,
    _shape,
)


def _check_inputs(probs: torch.Tensor, image: torch.Tensor, sigma: float) -> None:
    """Raise ``ValueError`` unless ``probs`` is ``(B, K, *spatial)`` with 1-3 spatial dims,
    ``image`` ``(B, C, *spatial)`` with the same batch and spatial sizes, and ``sigma > 0``."""
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
    _check_inputs(probs, image, sigma)
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


def _gaussian_kernels(sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled Gaussian (sums to 1) and its second derivative, radius ``ceil(4 sigma)``."""
    r = max(1, math.ceil(4.0 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-(t**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return g, g * (t**2 - sigma**2) / sigma**4


def _filter_along(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """``x`` ``(B, 1, *spatial)`` correlated with the 1-D ``kernel`` along spatial ``axis``
    (0-based), edges replicated."""
    n = x.dim() - 2
    r = (kernel.numel() - 1) // 2
    pad = [0, 0] * n
    pad[2 * (n - 1 - axis)] = pad[2 * (n - 1 - axis) + 1] = r
    shape = [1, 1] + [1] * n
    shape[2 + axis] = kernel.numel()
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return conv(F.pad(x, pad, mode="replicate"), kernel.to(x).view(shape))


def laplacian_of_gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Scale-normalised Laplacian of Gaussian ``sigma**2 * (d2/dx1**2 + ... ) (G_sigma * x)``
    of ``x`` ``(B, 1, *spatial)`` (1-3 spatial dims, the same ``sigma`` in pixels along each),
    by separable filtering with the edges replicated; the same shape back. Its zero crossings
    are the edges of Marr and Hildreth (1980); it is negative on the bright side of an edge.
    """
    g, g2 = _gaussian_kernels(sigma)
    n = x.dim() - 2
    out = torch.zeros_like(x)
    for axis in range(n):
        y = x
        for other in range(n):
            y = _filter_along(y, g2 if other == axis else g, other)
        out = out + y
    return sigma**2 * out


def intensity_flux(
    probs: torch.Tensor, image: torch.Tensor, sigma: float = 1.0, min_contrast: float = 0.05
) -> torch.Tensor:
    """Flux term: foreground is cheaper on the side of an edge where the foreground's
    intensity lies.

    The Potts term pays for the length of a boundary, so it draws convex objects too small (the
    "shrinking bias" of graph-cut segmentation); a flux term counters it by rewarding a
    boundary for lying across the image gradient (Vasilevskiy and Siddiqi, "Flux maximizing
    geometric flows", PAMI 2002; Kolmogorov and Boykov, "What metrics can be approximated by
    geo-cuts, or global optimization of length/area and flux", ICCV 2005). By the divergence
    theorem the gradient's flux out of the foreground is the integral of the Laplacian over
    it, so the term is the mean over pixels of ``p_fg * L`` (plus the constant ``relu(-L)``,
    which makes it ``p_fg * relu(L) + p_bg * relu(-L)``, never negative) with

    ``L = clamp(sigma**2 * LoG_sigma(x_proj) / c, -1, 1)``, ``x_proj = sum_k x_k d_k / c``,

    ``d = m_fg - m_bg`` the difference between the class means of the image (per channel ``k``,
    weighted by the probabilities, over the batch) and ``c = max(|d|, min_contrast)``: edges
    measured across the direction that separates the classes, in units of the contrast between
    them, shrinking towards 0 where the classes' mean intensities differ by less than
    ``min_contrast``. It is lowest when the
    foreground fills the side of each edge where the image looks like the foreground, with its
    boundary on the Laplacian's zero crossing; ``d`` and ``c`` carry no gradient. Summed in
    float32, even under autocast.

    Parameters
    ----------
    probs : torch.Tensor
        Class probabilities ``(B, 2, *spatial)``, background then foreground, 1-3 spatial
        dims. Other class counts give 0: the projection needs two classes.
    image : torch.Tensor
        The network's input ``(B, C_in, *spatial)``, normalised (intensities of about 0-1).
    sigma : float
        Scale of the Laplacian of Gaussian, in pixels.
    min_contrast : float
        Floor of ``c`` (normalised intensity).

    Returns
    -------
    torch.Tensor
        A scalar in ``[0, 1]``, attached to the graph of ``probs``; 0 when every pixel is
        certain of the class on whose side of the edges it lies, or the image is flat.
    """
    _check_inputs(probs, image, sigma)
    if not min_contrast > 0:
        raise ValueError(f"min_contrast must be positive, got {min_contrast}")
    with _no_autocast(probs.device):
        p = probs.float()
        if p.shape[1] != 2:
            return (p * 0).sum()
        lap = flux_map(p, image, sigma, min_contrast)
        # + mean(relu(-L)), a constant: per pixel p_fg * relu(L) + p_bg * relu(-L), >= 0
        return (p[:, 1:] * lap).mean() + torch.relu(-lap).mean()


@torch.no_grad()
def flux_map(
    probs: torch.Tensor, image: torch.Tensor, sigma: float = 1.0, min_contrast: float = 0.05
) -> torch.Tensor:
    """The map ``L`` of :func:`intensity_flux`, ``(B, 1, *spatial)`` float32 in ``[-1, 1]``,
    for two-class ``probs`` ``(B, 2, *spatial)``; no gradient."""
    x = image.float()
    _, _, d, delta = class_contrast(probs, x, min_contrast)
    x_proj = (x * (d / delta).view(1, -1, *[1] * (x.dim() - 2))).sum(1, keepdim=True)
    return (laplacian_of_gaussian(x_proj, sigma) / delta).clamp_(-1.0, 1.0)


@torch.no_grad()
def class_contrast(
    probs: torch.Tensor, image: torch.Tensor, min_contrast: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The classes' mean intensities over the batch, weighted by two-class ``probs``
    ``(B, 2, *spatial)``: ``m_fg``, ``m_bg`` (``(C_in,)`` each, for ``image``
    ``(B, C_in, *spatial)``), their difference ``d`` and the contrast
    ``c = max(|d|, min_contrast)`` (a scalar tensor) of :func:`intensity_flux`; no gradient."""
    p = probs.detach().float()
    x = image.float()
    dims = [0, *range(2, x.dim())]
    pb, pf = p[:, :1], p[:, 1:]
    m_fg = (pf * x).sum(dims) / pf.sum().clamp_min(1e-6)
    m_bg = (pb * x).sum(dims) / pb.sum().clamp_min(1e-6)
    d = m_fg - m_bg
    return m_fg, m_bg, d, d.norm().clamp_min(min_contrast)
