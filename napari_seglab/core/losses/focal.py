"""Focal loss (Lin et al., ICCV 2017) over the counted pixels."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from napari_seglab.core.losses.masking import (
    WeightLike,
    _as_weight,
    _Prepared,
    _SegLoss,
    _strip_background,
    _zero_like_graph,
)


def _focal_map(
    x: torch.Tensor,
    t: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor | None,
    use_softmax: bool,
) -> torch.Tensor:
    """Per-pixel, per-class focal loss (B, C, *spatial) from float32 logits ``x``."""
    n_cls = t.shape[1]
    bshape = [1, n_cls] + [1] * (x.ndim - 2)
    if use_softmax:
        logp = torch.log_softmax(x, dim=1)
        # clamped so that gamma < 1 gives no NaN gradient where a probability saturates at 1
        one_minus_p = (1.0 - logp.exp()).clamp_min(torch.finfo(torch.float32).tiny)
        loss = -(one_minus_p**gamma) * logp * t
        if alpha is not None:
            if isinstance(alpha, torch.Tensor) and alpha.ndim == 1:
                a = alpha.to(loss)
            else:
                av = float(alpha)
                a = torch.tensor([1.0 - av] + [av] * (n_cls - 1), dtype=loss.dtype)
                a = a.to(loss.device)
            loss = loss * a.view(bshape)
        return loss
    # binary cross-entropy with logits, then the modulating factor (1 - p_t)^gamma written
    # through log-sigmoid to stay finite for large |x|
    bce = F.softplus(x) - x * t
    loss = torch.exp(gamma * F.logsigmoid(-x * (2.0 * t - 1.0))) * bce
    if alpha is not None:
        if isinstance(alpha, torch.Tensor) and alpha.ndim == 1:
            a = alpha.to(loss).view(bshape)
            loss = loss * torch.where(t == 1, a, torch.ones_like(a))
        else:
            av = float(alpha)
            loss = loss * (t * av + (1.0 - t) * (1.0 - av))
    return loss


class FocalLoss(_SegLoss):
    """Focal loss (Lin et al., 2017) averaged over labeled pixels.

    ``FL = -alpha_t * (1 - p_t)**gamma * log(p_t)`` per pixel and class, with sigmoid
    probabilities (default) or softmax ones (``use_softmax=True``). Same arguments and results
    as ``monai.losses.FocalLoss`` when every pixel counts; ``gamma=0`` without ``alpha`` is
    binary cross-entropy with logits.

    Parameters
    ----------
    include_background : bool
        If False, channel 0 is dropped before the activation (as MONAI does); a scalar
        ``alpha`` is then ignored with softmax.
    to_onehot_y : bool
        Convert a label target to one-hot.
    gamma : float
        Focusing exponent.
    alpha : float or sequence of float, optional
        Balancing factor in [0, 1]: for sigmoid, ``alpha`` on positives and ``1 - alpha`` on
        negatives; for softmax, ``1 - alpha`` for channel 0 and ``alpha`` for the others. A
        sequence gives one value per (kept) class.
    weight : float or sequence of float or torch.Tensor, optional
        Per-class multipliers, length C' (kept classes); a scalar scales everything.
    reduction : {"mean", "sum", "none"}
        "mean": sum over counted pixels and classes divided by (number of counted pixels * C');
        "sum": the per-sample, per-class means over counted pixels, summed (MONAI's
        definition); "none": the (B, C', *spatial) map, zero at left-out pixels.
    use_softmax : bool
        Softmax instead of sigmoid probabilities.
    ignore_index : int, optional
        As in :class:`DiceLoss`.

    Notes
    -----
    The mean divides by the number of counted pixels times C', which is MONAI's unmasked mean
    restricted to the labeled pixels (MONAI's own ``ignore_index`` mean divides by the number of
    counted pixels only, C' times larger). Nothing counted gives a zero attached to the graph;
    in "sum" a sample without counted pixels contributes zero.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        weight: WeightLike = None,
        reduction: str = "mean",
        use_softmax: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(reduction, ignore_index, to_onehot_y)
        self.include_background = bool(include_background)
        self.gamma = float(gamma)
        self.alpha: float | torch.Tensor | None
        if alpha is None:
            self.alpha = None
        elif isinstance(alpha, (float, int)):
            self.alpha = float(alpha)
        else:
            self.alpha = torch.as_tensor(alpha, dtype=torch.float32)
        self.use_softmax = bool(use_softmax)
        self.register_buffer("class_weight", _as_weight(weight))
        self.class_weight: torch.Tensor | None

    def _loss(self, p: _Prepared) -> torch.Tensor:
        x, t = _strip_background(p.logits, p.onehot, self.include_background)
        n_cls = t.shape[1]
        alpha = self.alpha
        if isinstance(alpha, torch.Tensor) and alpha.ndim == 1 and alpha.shape[0] != n_cls:
            raise ValueError(f"alpha has {alpha.shape[0]} values but the loss has {n_cls} classes")
        if self.use_softmax and not self.include_background and isinstance(alpha, float):
            warnings.warn(
                "`include_background=False`, scalar `alpha` ignored when using softmax.",
                stacklevel=3,
            )
            alpha = None
        loss = _focal_map(x, t, self.gamma, alpha, self.use_softmax)
        w = self.class_weight
        if w is not None:
            if w.ndim == 1:
                if w.shape[0] != n_cls:
                    raise ValueError(
                        f"weight has {w.shape[0]} values but the loss has {n_cls} classes"
                    )
                loss = loss * w.to(loss).view([1, n_cls] + [1] * (loss.ndim - 2))
            else:
                loss = loss * w.to(loss)
        if p.weight_map is not None:
            loss = loss * p.weight_map
        return _reduce_pixelwise(loss, p.valid, self.reduction, p.logits)


def _reduce_pixelwise(
    loss: torch.Tensor, valid: torch.Tensor | None, reduction: str, anchor: torch.Tensor
) -> torch.Tensor:
    """Reduce a (B, C, *spatial) loss map that is zero at left-out pixels (focal convention)."""
    if reduction == "none":
        return loss
    spatial = list(range(2, loss.ndim))
    if valid is None:
        if reduction == "mean":
            return loss.mean()
        return loss.mean(dim=spatial).sum()
    n_b = valid.flatten(1).sum(dim=1).to(loss.dtype)  # (B,) counted pixels per sample
    if reduction == "mean":
        n = n_b.sum()
        if float(n) == 0:
            return _zero_like_graph(anchor) + loss.sum() * 0.0
        return loss.sum() / (n * loss.shape[1])
    per = loss.sum(dim=spatial) / n_b.clamp(min=1.0)[:, None]
    return per.sum()
