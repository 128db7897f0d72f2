"""Regulariser for the unlabeled pixels: agreement with a teacher's prediction."""

from __future__ import annotations

import torch

from napari_seglab.core.losses.masking import _no_autocast, _shape


def consistency_mse(
    probs: torch.Tensor, teacher_probs: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared difference between the class probabilities of a network and of its
    teacher, on the pixels ``mask`` selects (the consistency cost of the mean teacher:
    Tarvainen and Valpola, "Mean teachers are better role models", NeurIPS 2017).

    The teacher's probabilities carry no gradient (they are detached here), so the term only
    pulls the network towards the teacher. Summed in float32, even under autocast.

    Parameters
    ----------
    probs : torch.Tensor
        The network's class probabilities ``(B, K, *spatial)``.
    teacher_probs : torch.Tensor
        The teacher's, same shape.
    mask : torch.Tensor, optional
        ``(B, *spatial)`` or ``(B, 1, *spatial)``, non-zero = counted (e.g. the unpainted
        pixels); None counts every pixel.

    Returns
    -------
    torch.Tensor
        A scalar: the mean over the counted pixels of ``sum_k (p_k - q_k)**2`` (0 to 2); 0,
        attached to the graph, when no pixel is counted.

    Raises
    ------
    ValueError
        If the shapes do not match.
    """
    if probs.shape != teacher_probs.shape or probs.dim() < 3:
        raise ValueError(
            f"probs {_shape(probs)} and teacher_probs {_shape(teacher_probs)} must both be "
            "(B, K, *spatial)"
        )
    with _no_autocast(probs.device):
        diff = ((probs.float() - teacher_probs.detach().float()) ** 2).sum(1)
        if mask is None:
            return diff.mean()
        m = mask.squeeze(1) if mask.dim() == probs.dim() and mask.shape[1] == 1 else mask
        if m.shape != diff.shape:
            raise ValueError(
                f"mask {_shape(mask)} does not match probs {_shape(probs)} in batch and spatial "
                "dims"
            )
        m = m.to(diff.dtype)
        return (diff * m).sum() / m.sum().clamp(min=1.0)
