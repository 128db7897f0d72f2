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

from napari_seglab.core.losses.compound import DiceCELoss, DiceFocalLoss
from napari_seglab.core.losses.consistency import consistency_mse
from napari_seglab.core.losses.dice import DiceLoss, GeneralizedDiceLoss, TverskyLoss
from napari_seglab.core.losses.edge import edge_aware_potts, intensity_flux, laplacian_of_gaussian
from napari_seglab.core.losses.focal import FocalLoss

__all__ = [
    "DiceCELoss",
    "DiceFocalLoss",
    "DiceLoss",
    "FocalLoss",
    "GeneralizedDiceLoss",
    "TverskyLoss",
    "consistency_mse",
    "edge_aware_potts",
    "intensity_flux",
    "laplacian_of_gaussian",
]
