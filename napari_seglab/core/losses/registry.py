"""The engine's losses by name: what ``TrainConfig.loss``, ``seglab train --loss`` and the
widget's Loss list choose from.

Each entry of :data:`LOSSES` is a factory ``factory(weight, sigmoid, lambda_dice=1.0,
lambda_ce=1.0) -> nn.Module``:

* ``weight``: ``(K,)`` class weights or None. For a softmax model the targets are one-hot
  encoded from class indices; for a sigmoid binary model (one output channel compared with the
  foreground indicator) the weights reach the cross-entropy part only
  (``[w_background, w_foreground]``).
* ``lambda_dice``, ``lambda_ce``: the mix of the compound losses (``lambda_ce`` weighs the
  focal part of ``"dice_focal"``).

Every module returned takes ``(logits (B, C, *spatial), target (B, 1, *spatial) class indices,
mask=(B, 1, *spatial) bool)``: pixels outside the mask (unlabeled) are left out.

The Tversky loss is not among them. With MONAI's default ``alpha = beta = 0.5`` it is the Dice
loss; with the paper's weights (Salehi et al., 2017: false positives 0.3, false negatives 0.7,
foreground channel) it turned a short run on ``skimage.data.cell()``'s strokes into all
foreground, and neither the guard's class weights (which it has none of) nor the edge term's
removal brought the background back. :class:`~napari_seglab.core.losses.TverskyLoss` is in
the losses package for those who want it: ``train(..., loss_fn=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from napari_seglab.core.losses.compound import DiceCELoss, DiceFocalLoss
from napari_seglab.core.losses.dice import DiceLoss, GeneralizedDiceLoss
from napari_seglab.core.losses.focal import FocalLoss

LossFactory = Callable[..., nn.Module]
#: The names of :data:`LOSSES`, for type checkers.
LossName = Literal["dice_ce", "ce", "dice", "focal", "generalized_dice", "dice_focal"]


def _activation(sigmoid: bool) -> dict[str, Any]:
    return {"sigmoid": True} if sigmoid else {"softmax": True, "to_onehot_y": True}


def _dice_ce(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return DiceCELoss(
        **_activation(sigmoid), weight=weight, lambda_dice=lambda_dice, lambda_ce=lambda_ce
    )


def _ce(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return DiceCELoss(**_activation(sigmoid), weight=weight, lambda_dice=0.0, lambda_ce=1.0)


def _dice(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return DiceLoss(**_activation(sigmoid), weight=None if sigmoid else weight)


def _focal(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return FocalLoss(
        use_softmax=not sigmoid, to_onehot_y=not sigmoid, weight=None if sigmoid else weight
    )


def _generalized_dice(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return GeneralizedDiceLoss(**_activation(sigmoid))


def _dice_focal(weight, sigmoid, lambda_dice=1.0, lambda_ce=1.0) -> nn.Module:
    return DiceFocalLoss(
        **_activation(sigmoid),
        use_softmax=not sigmoid,
        weight=None if sigmoid else weight,
        lambda_dice=lambda_dice,
        lambda_focal=lambda_ce,
    )


#: The engine's losses by name (the first is the default), each a :data:`LossFactory`.
LOSSES: dict[str, LossFactory] = {
    "dice_ce": _dice_ce,
    "ce": _ce,
    "dice": _dice,
    "focal": _focal,
    "generalized_dice": _generalized_dice,
    "dice_focal": _dice_focal,
}


def build_loss(
    name: str,
    weight: torch.Tensor | None = None,
    sigmoid: bool = False,
    *,
    lambda_dice: float = 1.0,
    lambda_ce: float = 1.0,
) -> nn.Module:
    """The loss module registered as ``name`` in :data:`LOSSES`.

    Raises
    ------
    ValueError
        For a name that is not registered.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[name](weight, sigmoid, lambda_dice=lambda_dice, lambda_ce=lambda_ce)
