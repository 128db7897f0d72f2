"""The masking machinery shared by every loss: input checks, target preparation with
``ignore_index`` and ``mask``, activation, and reductions over counted pixels only.

See :mod:`napari_seglab.core.losses` for the conventions (shapes, what happens when nothing is
counted, errors).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

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
    target = _checked_target(input, target)
    valid = _counted_pixels(input, target, mask, ignore_index)
    onehot, labels = _onehot_target(input, target, valid, to_onehot_y, ignore_index)
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


def _checked_target(input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` on the input's device, after checking its shape against the input's."""
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
    return target


def _counted_pixels(
    input: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, ignore_index: int | None
) -> torch.Tensor | None:
    """``(B, 1, *spatial)`` bool, True where a pixel counts (None: all of them)."""
    n_ch = input.shape[1]
    valid: torch.Tensor | None = None
    if ignore_index is not None:
        if target.shape[1] == 1:
            valid = target != ignore_index
        elif 0 <= ignore_index < n_ch:
            valid = target[:, ignore_index : ignore_index + 1] <= 0
        else:  # a sentinel value: one-hot pixels with no class set are left out
            valid = target.sum(dim=1, keepdim=True) > 0
    if mask is None:
        return valid
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
    return m if valid is None else valid & m


def _onehot_target(
    input: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor | None,
    to_onehot_y: bool,
    ignore_index: int | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target as float32 ``(B, C, *spatial)``, and the int64 labels when it held labels."""
    n_ch = input.shape[1]
    if n_ch == 1:
        if to_onehot_y:
            warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=4)
        onehot = target.to(torch.float32)
        bad = _counted((onehot < 0) | (onehot > 1), valid)
        if bool(bad.any()):
            raise ValueError(
                f"single-channel target of shape {_shape(target)} must hold values in [0, 1] "
                f"(foreground probability) at counted pixels; found {_bad_values(onehot[bad])}"
                + (f" (ignore_index={ignore_index})" if ignore_index is not None else "")
            )
        return onehot, None
    if target.shape[1] == 1:
        if not to_onehot_y:
            raise ValueError(
                f"target shape {_shape(target)} holds labels but input shape {_shape(input)} "
                f"has {n_ch} channels: set to_onehot_y=True or pass a one-hot target"
            )
        bad = (target < 0) | (target >= n_ch)
        if target.is_floating_point():
            bad = bad | (target != torch.round(target))
        bad = _counted(bad, valid)
        if bool(bad.any()):
            raise ValueError(
                f"target labels must be integers in [0, {n_ch}) for input shape "
                f"{_shape(input)}"
                + (f" or equal ignore_index={ignore_index}" if ignore_index is not None else "")
                + f"; found {_bad_values(target[bad])}"
            )
        labels = target.to(torch.int64)
        if valid is not None:
            labels = torch.where(valid, labels, torch.zeros_like(labels))
        return F.one_hot(labels[:, 0], n_ch).movedim(-1, 1).to(torch.float32), labels
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
    return onehot, None


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

    def _set_overlap_options(
        self,
        include_background: bool,
        sigmoid: bool,
        softmax: bool,
        other_act: Callable | None,
        smooth_nr: float,
        smooth_dr: float,
    ) -> None:
        """The activation and smoothing options the overlap (Dice family) losses share."""
        _check_activation(sigmoid, softmax, other_act)
        self.include_background = bool(include_background)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.other_act = other_act
        self.smooth_nr = float(smooth_nr)
        self.smooth_dr = float(smooth_dr)

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
