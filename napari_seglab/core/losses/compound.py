"""Cross-entropy over the counted pixels, and Dice + CE / Dice + focal (MONAI's ``DiceCELoss``
and ``DiceFocalLoss`` with ``ignore_index`` and ``mask``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from napari_seglab.core.losses.dice import (
    DiceLoss,
)
from napari_seglab.core.losses.focal import (
    FocalLoss,
)
from napari_seglab.core.losses.masking import (
    WeightLike,
    _as_weight,
    _check_reduction,
    _Prepared,
    _SegLoss,
    _shape,
    _zero_like_graph,
)


def _cross_entropy(p: _Prepared, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """Cross-entropy over counted pixels, with ``torch.nn.functional.cross_entropy`` semantics.

    Label target, C > 1: ``sum(w[y] * nll) / sum(w[y])`` ("mean") or ``sum(w[y] * nll)``.
    One-hot target, C > 1: ``-sum_c w_c t_c log p_c`` averaged over counted pixels.
    One channel: binary cross-entropy with logits; a scalar / 1-element ``weight`` is
    ``pos_weight`` (as in MONAI's ``DiceCELoss``); a 2-element weight ``[w_bg, w_fg]`` weights
    the two classes like a two-channel weighted cross-entropy.
    """
    x = p.logits
    vmap = p.weight_map  # (B, 1, *spatial) 0 / 1 or None
    n_counted = x[:, :1].numel() if p.valid is None else int(p.valid.sum())
    if x.shape[1] == 1:
        t = p.onehot
        log_p = F.logsigmoid(x)
        log_q = F.logsigmoid(-x)
        per_w: torch.Tensor | None = None
        if weight is not None and weight.numel() == 2:
            w = weight.to(x)
            per_w = w[1] * t + w[0] * (1.0 - t)
            nll = -(w[1] * t * log_p + w[0] * (1.0 - t) * log_q)
        else:
            if weight is not None and weight.numel() != 1:
                raise ValueError(
                    f"weight for a single-channel input must have 1 (pos_weight) or 2 "
                    f"([background, foreground]) values, got {weight.numel()}"
                )
            pw = 1.0 if weight is None else weight.to(x).reshape(())
            nll = -(pw * t * log_p + (1.0 - t) * log_q)
        if vmap is not None:
            nll = nll * vmap
            per_w = None if per_w is None else per_w * vmap
        if reduction == "sum":
            return nll.sum()
        den = float(n_counted) if per_w is None else per_w.sum()
        if float(den) == 0:
            return _zero_like_graph(x)
        return nll.sum() / den
    log_p = torch.log_softmax(x, dim=1)
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != x.shape[1]):
        raise ValueError(
            f"weight must have {x.shape[1]} values (one per channel), got shape {_shape(weight)}"
        )
    if p.labels is not None:
        nll = -log_p.gather(1, p.labels)  # (B, 1, *spatial)
        w_y = None if weight is None else weight.to(x)[p.labels]
        if vmap is not None:
            w_y = vmap if w_y is None else w_y * vmap
        wnll = nll if w_y is None else w_y * nll
        if reduction == "sum":
            return wnll.sum()
        den = float(n_counted) if w_y is None else w_y.sum()
        if float(den) == 0:
            return _zero_like_graph(x)
        return wnll.sum() / den
    t = p.onehot  # already zero at left-out pixels
    if weight is not None:
        t = t * weight.to(x).view([1, -1] + [1] * (x.ndim - 2))
    nll = -(t * log_p).sum(dim=1, keepdim=True)
    if reduction == "sum":
        return nll.sum()
    if n_counted == 0:
        return _zero_like_graph(x)
    return nll.sum() / n_counted


def _check_lambda(name: str, value: float) -> float:
    value = float(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


class DiceCELoss(_SegLoss):
    """``lambda_dice * Dice + lambda_ce * cross-entropy`` over labeled pixels.

    Same arguments and results as ``monai.losses.DiceCELoss`` when every pixel counts. The
    cross-entropy works on the logits whatever ``sigmoid`` / ``softmax`` say (those select the
    Dice activation): softmax cross-entropy for C > 1, binary cross-entropy with logits for one
    channel. It averages over labeled pixels only, weighted as ``torch.nn.functional.
    cross_entropy(weight=...)`` does: ``sum(w[y] * nll) / sum(w[y])`` for a label target, and
    ``sum(-sum_c w_c * t_c * log p_c) / n_counted`` for a one-hot (probability) target.

    Parameters
    ----------
    include_background, to_onehot_y, sigmoid, softmax, other_act, squared_pred, jaccard
        As in :class:`DiceLoss` (Dice part only; the cross-entropy always uses every channel).
    reduction : {"mean", "sum"}
        Applied to both parts.
    smooth_nr, smooth_dr, batch
        As in :class:`DiceLoss`.
    weight : sequence of float or torch.Tensor, optional
        (C,) class weights for the cross-entropy (torch semantics) and the Dice terms (without
        the background entry when ``include_background=False``). With a single channel: one
        value is BCE's ``pos_weight`` (MONAI), two values are ``[w_background, w_foreground]``
        class weights, so that sigmoid and two-channel softmax agree also when weighted.
    lambda_dice, lambda_ce : float
        Non-negative factors of the two parts.
    ignore_index : int, optional
        As in :class:`DiceLoss`.

    Attributes
    ----------
    last_parts : dict of str to torch.Tensor
        ``{"dice": ..., "ce": ...}``: the unweighted parts of the last call, detached.

    Notes
    -----
    Nothing counted gives a zero attached to the graph. See :class:`DiceLoss` for absent
    classes.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        weight: WeightLike = None,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(_check_reduction(reduction, ("mean", "sum")), ignore_index, to_onehot_y)
        w = _as_weight(weight)
        dice_w = w
        if w is not None and w.ndim == 1 and not include_background and w.shape[0] > 1:
            dice_w = w[1:]
        self.dice = DiceLoss(
            include_background=include_background,
            to_onehot_y=to_onehot_y,
            sigmoid=sigmoid,
            softmax=softmax,
            other_act=other_act,
            squared_pred=squared_pred,
            jaccard=jaccard,
            reduction=reduction,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=dice_w,
            ignore_index=ignore_index,
        )
        self.register_buffer("class_weight", w)
        self.class_weight: torch.Tensor | None
        self.lambda_dice = _check_lambda("lambda_dice", lambda_dice)
        self.lambda_ce = _check_lambda("lambda_ce", lambda_ce)
        self.last_parts: dict[str, torch.Tensor] = {}

    def _loss(self, p: _Prepared) -> torch.Tensor:
        return self._parts(p)[0]

    def _parts(self, p: _Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ce = _cross_entropy(p, self.class_weight, self.reduction)
        dice = self.dice._loss(p)
        self.last_parts = {"dice": dice.detach(), "ce": ce.detach()}
        return self.lambda_dice * dice + self.lambda_ce * ce, dice, ce


class DiceFocalLoss(_SegLoss):
    """``lambda_dice * Dice + lambda_focal * focal`` over labeled pixels.

    Same arguments and results as ``monai.losses.DiceFocalLoss`` when every pixel counts. As in
    MONAI the focal part uses sigmoid probabilities by default whatever ``softmax`` says;
    pass ``use_softmax=True`` for a softmax focal part.

    Parameters
    ----------
    include_background, to_onehot_y, sigmoid, softmax, other_act, squared_pred, jaccard
        As in :class:`DiceLoss` (``include_background`` applies to both parts).
    reduction : {"mean", "sum", "none"}
        Applied to both parts ("none" only when their shapes broadcast).
    smooth_nr, smooth_dr, batch
        As in :class:`DiceLoss`.
    gamma, alpha, use_softmax
        As in :class:`FocalLoss`.
    weight : float or sequence of float or torch.Tensor, optional
        Per-class weights of both parts (length C').
    lambda_dice, lambda_focal : float
        Non-negative factors of the two parts.
    ignore_index : int, optional
        As in :class:`DiceLoss`.

    Attributes
    ----------
    last_parts : dict of str to torch.Tensor
        ``{"dice": ..., "focal": ...}``: the unweighted parts of the last call, detached.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        squared_pred: bool = False,
        jaccard: bool = False,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        gamma: float = 2.0,
        weight: WeightLike = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
        alpha: float | Sequence[float] | None = None,
        use_softmax: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(reduction, ignore_index, to_onehot_y)
        self.dice = DiceLoss(
            include_background=include_background,
            sigmoid=sigmoid,
            softmax=softmax,
            other_act=other_act,
            squared_pred=squared_pred,
            jaccard=jaccard,
            reduction=reduction,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            batch=batch,
            weight=weight,
            ignore_index=ignore_index,
        )
        self.focal = FocalLoss(
            include_background=include_background,
            gamma=gamma,
            alpha=alpha,
            weight=weight,
            reduction=reduction,
            use_softmax=use_softmax,
            ignore_index=ignore_index,
        )
        self.lambda_dice = _check_lambda("lambda_dice", lambda_dice)
        self.lambda_focal = _check_lambda("lambda_focal", lambda_focal)
        self.last_parts: dict[str, torch.Tensor] = {}

    def _loss(self, p: _Prepared) -> torch.Tensor:
        return self._parts(p)[0]

    def _parts(self, p: _Prepared) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dice = self.dice._loss(p)
        focal = self.focal._loss(p)
        self.last_parts = {"dice": dice.detach(), "focal": focal.detach()}
        return self.lambda_dice * dice + self.lambda_focal * focal, dice, focal
