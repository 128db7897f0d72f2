"""Segmentation losses that honour sparse labels.

The classes follow MONAI's argument names and semantics (``monai.losses``): with every pixel
labeled they agree with MONAI to float32 precision. On top of that each loss accepts

* ``ignore_index`` (constructor): target pixels carrying this label are left out, and
* ``mask`` (``forward`` keyword): a ``(B, 1, *spatial)`` bool / 0-1 tensor, True = counted.

Left-out pixels are removed **after** the activation (sigmoid / softmax), from every Dice sum
and from every cross-entropy / focal average, so that the loss with ignored pixels is the loss of
the labeled pixels alone, and the logits of ignored pixels receive exactly zero gradient.
(MONAI's ``MaskedDiceLoss`` masks before the activation and its ``DiceCELoss`` has no ignore
index; smp's soft CE averages over ignored pixels too.)

All reductions run in float32 with autocast disabled, whatever the dtype of the logits, so
fp16 / bf16 logits of large images give finite losses.

Shapes
------
input : (B, C, *spatial) logits (probabilities when no activation is chosen), 1 to 3 spatial dims.
target : (B, 1, *spatial) integer labels in ``[0, C)`` (any dtype holding integers), or
    (B, C, *spatial) one-hot / soft labels in ``[0, 1]``. With C == 1 the target is the
    foreground probability ``(B, 1, *spatial)`` in ``[0, 1]``.
mask : (B, 1, *spatial) or (1, 1, *spatial), bool or numeric; non-zero = counted.

Choices where nothing is labeled
--------------------------------
* Nothing counted in the whole batch: every loss returns 0 still attached to the graph of the
  logits (``backward`` works and gives zero gradients).
* A sample without counted pixels (Dice family, ``batch=False``): dropped from the mean.
* A class absent from the labeled pixels: its Dice term stays and only penalises false
  positives; a zero denominator counts as agreement (loss 0), never NaN.

Bad input (mismatched shapes, wrong dims, labels outside ``[0, C)`` other than
``ignore_index``, NaN or infinite logits) raises ``ValueError`` naming the shapes or values.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "TverskyLoss",
    "edge_aware_potts",
]

_REDUCTIONS = ("none", "mean", "sum")
_W_TYPES = ("square", "simple", "uniform")

WeightLike = Sequence[float] | float | int | torch.Tensor | None


# ----------------------------------------------------------------------------------------------
# input checking and target preparation
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Logits and targets after checking, one-hot conversion and masking.

    Attributes
    ----------
    logits : torch.Tensor
        (B, C, *spatial) float32 logits.
    onehot : torch.Tensor
        (B, C, *spatial) float32 target, zero at left-out pixels.
    valid : torch.Tensor or None
        (B, 1, *spatial) bool, True where a pixel counts; None when every pixel counts.
    weight_map : torch.Tensor or None
        ``valid`` as float32 0 / 1, for masking by multiplication (exact, since the logits are
        checked finite); None when every pixel counts.
    labels : torch.Tensor or None
        (B, 1, *spatial) int64 class indices (0 at left-out pixels) when the target was given
        as labels and C > 1; otherwise None.
    """

    logits: torch.Tensor
    onehot: torch.Tensor
    valid: torch.Tensor | None
    weight_map: torch.Tensor | None
    labels: torch.Tensor | None

    @property
    def spatial_dims(self) -> list[int]:
        return list(range(2, self.logits.ndim))


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that disables autocast on ``device`` (a no-op where autocast is unsupported)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # pragma: no cover - device types without autocast support
        return contextlib.nullcontext()


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_reduction(reduction: str, allowed: tuple[str, ...] = _REDUCTIONS) -> str:
    reduction = str(getattr(reduction, "value", reduction))
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _check_activation(sigmoid: bool, softmax: bool, other_act: Callable | None) -> None:
    if other_act is not None and not callable(other_act):
        raise TypeError(f"other_act must be None or callable, got {type(other_act).__name__}")
    if int(bool(sigmoid)) + int(bool(softmax)) + int(other_act is not None) > 1:
        raise ValueError("choose at most one of sigmoid=True, softmax=True and other_act")


def _check_ignore_index(ignore_index: int | None) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise ValueError(f"ignore_index must be an int or None, got {ignore_index!r}")
    return int(ignore_index)


def _as_weight(weight: WeightLike, name: str = "weight") -> torch.Tensor | None:
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=torch.float32).detach().clone()
    if w.ndim > 1:
        raise ValueError(f"{name} must be a scalar or a 1-D sequence, got shape {_shape(w)}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} values must be finite and >= 0, got {w.tolist()}")
    return w


def _check_input(input: torch.Tensor) -> None:
    if not isinstance(input, torch.Tensor):
        raise ValueError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not 3 <= input.ndim <= 5:
        raise ValueError(
            "input must have shape (B, C, *spatial) with 1 to 3 spatial dims, "
            f"got shape {_shape(input)}"
        )
    if not input.is_floating_point():
        raise ValueError(f"input must be a floating point tensor of logits, got {input.dtype}")
    finite = torch.isfinite(input)
    if not bool(finite.all()):
        n_nan = int(torch.isnan(input).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"input of shape {_shape(input)} contains {n_nan} NaN and {n_inf} infinite values"
        )


def _bad_values(values: torch.Tensor, limit: int = 8) -> list[float | int]:
    vals = torch.unique(values.detach()).cpu()[:limit].tolist()
    return [int(v) if float(v).is_integer() else v for v in vals]


def _prepare(
    input: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    to_onehot_y: bool,
    ignore_index: int | None,
) -> _Prepared:
    """Check shapes and values, build the float32 one-hot target and the counted-pixel mask."""
    _check_input(input)
    if not isinstance(target, torch.Tensor):
        raise ValueError(f"target must be a torch.Tensor, got {type(target).__name__}")
    n_ch = input.shape[1]
    if target.ndim != input.ndim:
        raise ValueError(
            f"target shape {_shape(target)} does not match input shape {_shape(input)}: "
            "expected (B, 1, *spatial) labels or (B, C, *spatial) one-hot"
        )
    if target.shape[0] != input.shape[0] or target.shape[2:] != input.shape[2:]:
        raise ValueError(
            f"target shape {_shape(target)} does not match input shape {_shape(input)} "
            "in the batch or spatial dims"
        )
    if target.shape[1] not in (1, n_ch):
        raise ValueError(
            f"target shape {_shape(target)} has {target.shape[1]} channels; expected 1 "
            f"(labels) or {n_ch} (one-hot) for input shape {_shape(input)}"
        )
    target = target.to(input.device)
    if target.is_floating_point() and not bool(torch.isfinite(target).all()):
        raise ValueError(f"target of shape {_shape(target)} contains NaN or infinite values")

    # --- which pixels count ---------------------------------------------------------------
    valid: torch.Tensor | None = None
    if ignore_index is not None:
        if target.shape[1] == 1:
            valid = target != ignore_index
        elif 0 <= ignore_index < n_ch:
            valid = target[:, ignore_index : ignore_index + 1] <= 0
        else:  # a sentinel value: one-hot pixels with no class set are left out
            valid = target.sum(dim=1, keepdim=True) > 0
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(mask, device=input.device)
        expected = (input.shape[0], 1, *input.shape[2:])
        ok = mask.ndim == input.ndim and mask.shape[1] == 1
        ok = ok and all(m in (1, e) for m, e in zip(mask.shape, expected, strict=True))
        if not ok:
            raise ValueError(
                f"mask shape {_shape(mask)} does not match {expected} (B, 1, *spatial) "
                f"for input shape {_shape(input)}"
            )
        m = mask.to(input.device)
        m = (m if m.dtype == torch.bool else m != 0).expand(expected)
        valid = m if valid is None else valid & m

    # --- target as float32 (B, C, *spatial) --------------------------------------------------
    labels: torch.Tensor | None = None
    if n_ch == 1:
        if to_onehot_y:
            warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=3)
        onehot = target.to(torch.float32)
        bad = _counted((onehot < 0) | (onehot > 1), valid)
        if bool(bad.any()):
            raise ValueError(
                f"single-channel target of shape {_shape(target)} must hold values in [0, 1] "
                f"(foreground probability) at counted pixels; found {_bad_values(onehot[bad])}"
                + (f" (ignore_index={ignore_index})" if ignore_index is not None else "")
            )
    elif target.shape[1] == 1:
        if not to_onehot_y:
            raise ValueError(
                f"target shape {_shape(target)} holds labels but input shape {_shape(input)} "
                f"has {n_ch} channels: set to_onehot_y=True or pass a one-hot target"
            )
        lab = target
        bad = (lab < 0) | (lab >= n_ch)
        if lab.is_floating_point():
            bad = bad | (lab != torch.round(lab))
        bad = _counted(bad, valid)
        if bool(bad.any()):
            raise ValueError(
                f"target labels must be integers in [0, {n_ch}) for input shape "
                f"{_shape(input)}"
                + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
                + f"; found {_bad_values(lab[bad])}"
            )
        labels = lab.to(torch.int64)
        if valid is not None:
            labels = torch.where(valid, labels, torch.zeros_like(labels))
        onehot = F.one_hot(labels[:, 0], n_ch).movedim(-1, 1).to(torch.float32)
    else:
        if to_onehot_y:
            raise ValueError(
                f"to_onehot_y=True expects a (B, 1, *spatial) label target, got shape "
                f"{_shape(target)} for input shape {_shape(input)}"
            )
        onehot = target.to(torch.float32)
        bad = _counted((onehot < 0) | (onehot > 1), valid)
        if bool(bad.any()):
            raise ValueError(
                f"one-hot target of shape {_shape(target)} must hold values in [0, 1]; "
                f"found {_bad_values(onehot[bad])}"
            )
    weight_map = None
    if valid is not None:
        weight_map = valid.to(torch.float32)
        onehot = onehot * weight_map
    return _Prepared(
        logits=input.to(torch.float32),
        onehot=onehot,
        valid=valid,
        weight_map=weight_map,
        labels=labels,
    )


def _counted(bad: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``bad`` restricted to counted pixels (``valid`` broadcasts over channels)."""
    return bad if valid is None else bad & valid


def _activate(
    x: torch.Tensor, sigmoid: bool, softmax: bool, other_act: Callable | None
) -> torch.Tensor:
    """Apply the chosen activation to float32 logits ``x`` (B, C, *spatial)."""
    if sigmoid:
        x = torch.sigmoid(x)
    if softmax:
        if x.shape[1] == 1:
            warnings.warn("single channel prediction, `softmax=True` ignored.", stacklevel=4)
        else:
            x = torch.softmax(x, dim=1)
    if other_act is not None:
        x = other_act(x)
    return x


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A float32 zero that stays attached to the graph of ``x`` (so ``backward`` works)."""
    return x.sum() * 0.0


def _samples_present(p: _Prepared) -> torch.Tensor | None:
    """(B,) bool: which samples have at least one counted pixel; None when all pixels count."""
    if p.valid is None:
        return None
    return p.valid.flatten(1).any(dim=1)


def _reduce_scores(
    f: torch.Tensor,
    reduction: str,
    present: torch.Tensor | None,
    batch: bool,
) -> torch.Tensor:
    """Reduce per-(sample, class) scores ``f``: (B, C), or (C,) / (1,) with ``batch``.

    Samples without a counted pixel (``present`` False) are dropped from the mean and are zero
    in "sum" / "none"; with nothing counted at all the result is a zero still attached to the
    graph of ``f``.
    """
    if present is not None:
        if batch:
            if not bool(present.any()):
                f = f * 0.0
        else:
            n = int(present.sum())
            f = torch.where(present[:, None], f, 0.0)
            if reduction == "mean" and n < f.shape[0]:
                if n == 0:
                    return f.sum() * 0.0
                return f.sum() / (n * f.shape[1])
    if reduction == "sum":
        return f.sum()
    if reduction == "mean":
        return f.mean()
    return f


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else 1 (perfect agreement of two empty sets)."""
    nz = den != 0
    return torch.where(nz, num / torch.where(nz, den, torch.ones_like(den)), 1.0)


def _strip_background(
    p: torch.Tensor, t: torch.Tensor, include_background: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if include_background:
        return p, t
    if p.shape[1] == 1:
        warnings.warn(
            "single channel prediction, `include_background=False` ignored.", stacklevel=4
        )
        return p, t
    return p[:, 1:], t[:, 1:]


def _mask_probs(p: torch.Tensor, weight_map: torch.Tensor | None) -> torch.Tensor:
    """Zero the left-out pixels of ``p`` (B, C, *spatial) after the activation."""
    if weight_map is None:
        return p
    return p * weight_map


class _SegLoss(nn.Module):
    """Common base: stores ``reduction`` and ``ignore_index`` and runs ``_prepare``."""

    def __init__(self, reduction: str, ignore_index: int | None, to_onehot_y: bool) -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.to_onehot_y = bool(to_onehot_y)

    def _prepare(
        self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
    ) -> _Prepared:
        return _prepare(
            input, target, mask, to_onehot_y=self.to_onehot_y, ignore_index=self.ignore_index
        )

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        input : torch.Tensor
            (B, C, *spatial) logits, 1 to 3 spatial dims, any float dtype.
        target : torch.Tensor
            (B, 1, *spatial) integer labels or (B, C, *spatial) one-hot target.
        mask : torch.Tensor, optional
            (B, 1, *spatial) bool / 0-1 tensor, True = counted. Combined (AND) with
            ``ignore_index``.

        Returns
        -------
        torch.Tensor
            float32 loss, a scalar unless ``reduction="none"``.

        Raises
        ------
        ValueError
            On mismatched shapes, wrong dims, NaN logits or labels outside ``[0, C)``.
        """
        with _no_autocast(input.device):
            return self._loss(self._prepare(input, target, mask))

    def _loss(self, p: _Prepared) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# Dice
# ----------------------------------------------------------------------------------------------


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
        _check_activation(sigmoid, softmax, other_act)
        self.include_background = bool(include_background)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.squared_pred = bool(squared_pred)
        self.jaccard = bool(jaccard)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
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
        _check_activation(sigmoid, softmax, other_act)
        w_type = str(getattr(w_type, "value", w_type))
        if w_type not in _W_TYPES:
            raise ValueError(f"w_type must be one of {_W_TYPES}, got {w_type!r}")
        self.include_background = bool(include_background)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.w_type = w_type
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
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
        _check_activation(sigmoid, softmax, other_act)
        self.include_background = bool(include_background)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)
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


# ----------------------------------------------------------------------------------------------
# Focal
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# Cross-entropy and the compound losses
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# regulariser for the unlabeled pixels
# ----------------------------------------------------------------------------------------------


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
