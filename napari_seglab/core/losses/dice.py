"""Dice and generalised Dice (Sudre et al., 2017) over the counted pixels."""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_seglab.core.losses.masking import (
    _W_TYPES,
    WeightLike,
    _activate,
    _as_weight,
    _mask_probs,
    _Prepared,
    _reduce_scores,
    _safe_ratio,
    _samples_present,
    _SegLoss,
    _strip_background,
)


class DiceLoss(_SegLoss):
    """Soft Dice (or Jaccard) loss over labeled pixels.

    Per sample and class: ``1 - (2 * sum(p * t) + smooth_nr) / (sum(p) + sum(t) + smooth_dr)``
    (with ``squared_pred`` the denominator sums ``p**2`` and ``t**2``; with ``jaccard`` it is
    ``sum(p) + sum(t) - sum(p * t)`` and the numerator ``sum(p * t)``, both doubled). Sums run
    over the counted pixels only, in float32. Same arguments and results as ``monai.losses.
    DiceLoss`` (Milletari et al., 2016, V-Net) when every pixel counts.

    Parameters
    ----------
    include_background : bool
        If False, channel 0 (background) is left out of the Dice terms.
    to_onehot_y : bool
        Convert a (B, 1, *spatial) label target to one-hot with C = ``input.shape[1]`` classes.
    sigmoid, softmax : bool
        Activation applied to the logits (at most one of them, or ``other_act``).
    other_act : callable, optional
        Any other activation, e.g. ``torch.tanh``.
    squared_pred : bool
        Use squared predictions and targets in the denominator.
    jaccard : bool
        Compute the soft Jaccard (IoU) loss instead of Dice.
    reduction : {"mean", "sum", "none"}
        "mean" averages over samples and classes, "sum" adds them, "none" returns
        (B, C', 1, ...) per-sample, per-class losses (C' = classes kept).
    smooth_nr, smooth_dr : float
        Added to numerator and denominator.
    batch : bool
        Sum over the batch before dividing (one Dice per class).
    weight : float or sequence of float or torch.Tensor, optional
        Per-class multipliers of the Dice terms, length C' (without background when
        ``include_background=False``); ignored for a single channel.
    ignore_index : int, optional
        Target value (label target) or channel / sentinel (one-hot target) to leave out: with a
        one-hot target, an index in ``[0, C)`` leaves out the pixels of that class and any other
        value leaves out pixels whose one-hot vector is all zero.

    Notes
    -----
    Left-out pixels are removed after the activation, so the loss equals the loss computed on
    the labeled pixels alone and their logits get zero gradient.

    A class absent from a sample's labeled pixels keeps its Dice term: it then measures only
    false positives (``1 - smooth_nr / (sum(p) + smooth_dr)``), pushing that class's probability
    down on the labeled pixels; it is never NaN (a zero denominator counts as agreement, loss 0).
    With ``batch=False`` a sample with no counted pixel is dropped from the mean (and is zero in
    "sum" / "none"); when nothing at all is counted the loss is a zero attached to the graph.
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
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(reduction, ignore_index, to_onehot_y)
        self._set_overlap_options(
            include_background, sigmoid, softmax, other_act, smooth_nr, smooth_dr
        )
        self.squared_pred = bool(squared_pred)
        self.jaccard = bool(jaccard)
        self.batch = bool(batch)
        self.register_buffer("class_weight", _as_weight(weight))
        self.class_weight: torch.Tensor | None

    def _loss(self, p: _Prepared) -> torch.Tensor:
        probs = _activate(p.logits, self.sigmoid, self.softmax, self.other_act)
        probs = _mask_probs(probs, p.weight_map)
        pred, tgt = _strip_background(probs, p.onehot, self.include_background)
        axes = p.spatial_dims
        if self.batch:
            axes = [0, *axes]
        inter = (pred * tgt).sum(dim=axes)
        if self.squared_pred:
            pred_sum = (pred * pred).sum(dim=axes)
            tgt_sum = (tgt * tgt).sum(dim=axes)
        else:
            pred_sum = pred.sum(dim=axes)
            tgt_sum = tgt.sum(dim=axes)
        if self.jaccard:
            num = 2.0 * inter + self.smooth_nr
            den = 2.0 * (pred_sum + tgt_sum - inter) + self.smooth_dr
        else:
            num = 2.0 * inter + self.smooth_nr
            den = pred_sum + tgt_sum + self.smooth_dr
        f = 1.0 - _safe_ratio(num, den)
        n_cls = tgt.shape[1]
        w = self.class_weight
        if w is not None and n_cls != 1:
            if w.ndim == 1 and w.shape[0] != n_cls:
                raise ValueError(
                    f"weight has {w.shape[0]} values but the Dice term has {n_cls} classes"
                    + ("" if self.include_background else " (background excluded)")
                )
            f = f * w.to(f)
        out = _reduce_scores(f, self.reduction, _samples_present(p), self.batch)
        if self.reduction == "none":
            out = out.view(list(out.shape[0:2]) + [1] * (p.logits.ndim - 2))
        return out


class GeneralizedDiceLoss(_SegLoss):
    """Generalised Dice loss (Sudre et al., 2017) over labeled pixels.

    Class terms are weighted by ``1 / n_c**2`` ("square"), ``1 / n_c`` ("simple") or 1
    ("uniform"), where ``n_c`` is the class's target volume among the counted pixels; an absent
    class (infinite weight) gets the largest finite weight of its sample (of the batch with
    ``batch=True``), as in ``monai.losses.GeneralizedDiceLoss``, whose arguments and results
    this class shares when every pixel counts.

    Parameters
    ----------
    include_background, to_onehot_y, sigmoid, softmax, other_act, smooth_nr, smooth_dr, batch
        As in :class:`DiceLoss`.
    w_type : {"square", "simple", "uniform"}
        How target volumes become class weights.
    reduction : {"mean", "sum", "none"}
        "none" returns (B, 1, 1, ...) per-sample losses ((1, 1, ...) with ``batch``).
    ignore_index : int, optional
        As in :class:`DiceLoss`.

    Notes
    -----
    Left-out pixels are removed after the activation. A sample with no counted pixel is
    dropped from the mean; when nothing is counted the loss is a zero attached to the graph.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        w_type: str = "square",
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(reduction, ignore_index, to_onehot_y)
        self._set_overlap_options(
            include_background, sigmoid, softmax, other_act, smooth_nr, smooth_dr
        )
        w_type = str(getattr(w_type, "value", w_type))
        if w_type not in _W_TYPES:
            raise ValueError(f"w_type must be one of {_W_TYPES}, got {w_type!r}")
        self.w_type = w_type
        self.batch = bool(batch)

    def _loss(self, p: _Prepared) -> torch.Tensor:
        probs = _activate(p.logits, self.sigmoid, self.softmax, self.other_act)
        probs = _mask_probs(probs, p.weight_map)
        pred, tgt = _strip_background(probs, p.onehot, self.include_background)
        axes = p.spatial_dims
        if self.batch:
            axes = [0, *axes]
        inter = (pred * tgt).sum(dim=axes)
        volume = tgt.sum(dim=axes)
        den_c = pred.sum(dim=axes) + volume
        with torch.no_grad():
            vol = volume.detach()
            if self.w_type == "square":
                w = torch.reciprocal(vol * vol)
            elif self.w_type == "simple":
                w = torch.reciprocal(vol)
            else:
                w = torch.ones_like(vol)
            inf = torch.isinf(w)
            w = torch.where(inf, torch.zeros_like(w), w)
            fill = w.max() if self.batch else w.max(dim=-1, keepdim=True).values
            w = torch.where(inf, fill.expand_as(w), w)
        cls_dim = 0 if self.batch else 1
        num = 2.0 * (inter * w).sum(cls_dim, keepdim=True) + self.smooth_nr
        den = (den_c * w).sum(cls_dim, keepdim=True) + self.smooth_dr
        f = 1.0 - _safe_ratio(num, den)
        out = _reduce_scores(f, self.reduction, _samples_present(p), self.batch)
        if self.reduction == "none":
            out = out.view(list(out.shape[0:2]) + [1] * (p.logits.ndim - 2))
        return out


class TverskyLoss(_SegLoss):
    """Tversky loss (Salehi et al., 2017) over labeled pixels.

    Per sample and class: ``1 - (TP + smooth_nr) / (TP + alpha * FP + beta * FN + smooth_dr)``
    with ``TP = sum(p * t)``, ``FP = sum(p * (1 - t))``, ``FN = sum((1 - p) * t)`` over the
    counted pixels. Same arguments and results as ``monai.losses.TverskyLoss`` when every pixel
    counts; ``alpha = beta = 0.5`` is the Dice loss.

    Parameters
    ----------
    include_background, to_onehot_y, sigmoid, softmax, other_act, smooth_nr, smooth_dr, batch
        As in :class:`DiceLoss`.
    alpha, beta : float
        Weights of false positives and false negatives.
    reduction : {"mean", "sum", "none"}
        "none" returns the (B, C') scores ((C',) with ``batch``), as MONAI does.
    ignore_index : int, optional
        As in :class:`DiceLoss`.

    Notes
    -----
    Absent classes and empty samples are handled as in :class:`DiceLoss`.
    """

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        other_act: Callable | None = None,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str = "mean",
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(reduction, ignore_index, to_onehot_y)
        self._set_overlap_options(
            include_background, sigmoid, softmax, other_act, smooth_nr, smooth_dr
        )
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.batch = bool(batch)

    def _loss(self, p: _Prepared) -> torch.Tensor:
        probs = _activate(p.logits, self.sigmoid, self.softmax, self.other_act)
        probs = _mask_probs(probs, p.weight_map)
        pred, tgt = _strip_background(probs, p.onehot, self.include_background)
        axes = p.spatial_dims
        if self.batch:
            axes = [0, *axes]
        tp = (pred * tgt).sum(dim=axes)
        fp = (pred * (1.0 - tgt)).sum(dim=axes)
        fn = ((1.0 - pred) * tgt).sum(dim=axes)  # pred and tgt are 0 at left-out pixels
        num = tp + self.smooth_nr
        den = tp + self.alpha * fp + self.beta * fn + self.smooth_dr
        f = 1.0 - _safe_ratio(num, den)
        return _reduce_scores(f, self.reduction, _samples_present(p), self.batch)
