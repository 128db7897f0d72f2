"""Training from sparse scribbles, as a generator that yields a report every step.

Typical use::

    gen = train(image, scribbles, TrainConfig(seconds=20))
    for report in gen:          # or report = gen.send(new_scribbles) to update the scribbles
        print(report.step, report.loss)
    model = report.model

``new_scribbles`` is a :class:`~napari_seglab.core.edits.ScribbleEdit` (the pixels a stroke
changed: applied at a cost proportional to the stroke), a list of them, or a full array (e.g.
after an undo; the scribbles are then counted again).

The generator's return value (``StopIteration.value``) is the trained :class:`SegModel`.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from napari_seglab.core import losses, weights
from napari_seglab.core.data import (
    DEFAULT_PERCENTILES,
    CropSampler,
    ImageView,
    Normalization,
    as_zcyx,
    check_finite,
    check_scribbles,
    present_classes,
)
from napari_seglab.core.device import (
    default_num_threads,
    describe_device,
    release_memory,
    resolve_device,
)
from napari_seglab.core.edits import ScribbleEdit
from napari_seglab.core.model import ModelConfig, SegModel
from napari_seglab.core.predict import Prediction, predict
from napari_seglab.core.preview import Previewer

LOSSES = ("dice_ce", "ce", "dice", "focal", "tversky", "generalized_dice", "dice_focal")
DEFAULT_LOSS = "dice_ce"
#: No class weighting by default: the loss study (docs/which-loss.md) found that weighting by
#: inverse frequency over-segments the rare class and lowers IoU, with dense labels and scribbles.
DEFAULT_CLASS_WEIGHTS = "none"
#: Weight of the edge-aware term (see ``TrainConfig.lambda_edge``); shared by the CLI and widget.
DEFAULT_LAMBDA_EDGE = 2.0
#: Neighbouring slices on each side that a network trained on a stack sees (2.5D): on the
#: nuclei volume, 4 reached IoU 0.69 in 5 s where 1 reached 0.61 (``benchmarks/results/``).
DEFAULT_Z_CONTEXT = 4


#: What ``send()`` accepts: one edit, a list of edits and full arrays, or a full array.
ScribbleUpdate = ScribbleEdit | Sequence[ScribbleEdit | np.ndarray] | np.ndarray


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes
    ----------
    loss : str
        One of :data:`LOSSES`; ``"dice_ce"`` (Dice + cross-entropy) by default.
    class_weights : str
        Scheme of :func:`napari_seglab.core.weights.class_weights` computed from the painted
        pixel counts: ``"none"`` (default; see the loss study in the docs for why),
        ``"inverse_frequency"``, ``"median_frequency"`` or ``"effective_number"``.
    lambda_dice, lambda_ce : float
        Mix of the two parts of the combined losses (``lambda_ce`` weighs the CE or focal part).
    seconds, steps : float or int, optional
        Budget; training stops at whichever is reached first. Both None: until ``close()``.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    seed : int, optional
        Seeds the weights, the crop sampling and augmentation; CPU runs with the same seed,
        thread count and step budget are identical.
    model : ModelConfig
        Architecture of a new model (ignored when warm-starting).
    preview_every : float
        Seconds between full predictions attached to reports (0 = none during training).
    final_prediction : bool
        Attach a full prediction to the last report.
    channel_axis : int, optional
        The image's channel axis; detected from the scribbles' shape when None.
    num_threads : int, optional
        Torch CPU threads while training (default: CPU count - 1, leaving a core for the GUI).
    crop_size, batch_size : int
        Edge of the training crops in pixels, and crops per step.
    lr, weight_decay : float
        Adam settings.
    lr_decay : bool
        With a budget, keep ``lr`` for the first ``1 - LR_DECAY_SHARE`` of it, then lower it
        along a cosine to 5% of ``lr`` at its end (a "warm-stable-decay" schedule). A cosine over
        the whole budget left a 27-step run of ``skimage.data.cell()`` (an 11-pixel foreground
        stroke) with no foreground in 2 of 3 seeds: the rate had fallen before the rare class
        was learnt.
    ema : float
        Decay of the exponential moving average of the weights that previews, the final model
        and the returned model use (0 = use the raw weights). Averaging removes the step-to-step
        jitter of a small network trained on few pixels.
    augment : bool
        Random flips and 90 degree rotations of the crops.
    lambda_edge : float or None
        Weight of the edge-aware Potts regulariser
        (:func:`napari_seglab.core.losses.edge_aware_potts`) added to the loss on every crop,
        unlabeled pixels included; 0 switches it off, None (default) means
        ``DEFAULT_LAMBDA_EDGE`` for 2D images and 0 for stacks (see :func:`edge_weight`). It
        places class boundaries on intensity edges where no scribble reaches, and keeps longer
        training from spreading a class into unpainted regions: on synthetic nuclei with 1%
        painted, 30 s of CPU training reached 1.15x the random forest's IoU with it (weight 2;
        ``benchmarks/results/synthetic.md``) where it had reached 0.92x without it.
    edge_ramp : int
        The edge-aware term's weight rises linearly over this many steps, from 0 to
        ``lambda_edge``: at full weight from the first step, before the network has learnt the
        strokes, it pulls the prediction towards one class (0 = no ramp).
    guard : bool
        Watch, while training, how well the network reproduces the painted pixels of each class
        (the running recall on the training crops, ``TrainReport.stroke_recall``); when a class's
        falls below ``GUARD_RECALL`` after ``GUARD_WARMUP`` steps, switch the edge-aware term
        off, and if that is not enough, double that class's loss weight (up to
        ``GUARD_MAX_BOOST`` times), each action said in ``TrainReport.notes``. This is what
        keeps a regulariser or a loss from driving the network away from the strokes to a
        one-class output.
    edge_sigma : float or None
        Intensity difference (of the normalised image) at which a neighbour pair counts
        ``exp(-1/2)`` as much as in a flat region. None (default): ``EDGE_NOISE_FACTOR`` times
        the image's noise level (:func:`noise_level`), at least ``EDGE_SIGMA_MIN``.
    intensity_augment : float
        Strength of random contrast/brightness/gamma/noise changes (0 = none, 1 = strong).
        Off by default: absolute intensity is often what tells the classes apart.
    percentiles : tuple of float
        Normalisation percentiles of a new model.
    amp : bool
        Mixed precision on CUDA.
    class_weight_beta : float
        ``beta`` of the ``"effective_number"`` scheme.
    tile : int, optional
        Tile size of the previews and the final prediction.
    """

    loss: str = DEFAULT_LOSS
    class_weights: str = DEFAULT_CLASS_WEIGHTS
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    lambda_edge: float | None = None
    edge_ramp: int = 20
    guard: bool = True
    edge_sigma: float | None = None
    seconds: float | None = None
    steps: int | None = None
    device: str = "auto"
    seed: int | None = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    preview_every: float = 0.0
    final_prediction: bool = True
    channel_axis: int | None = None
    num_threads: int | None = None
    crop_size: int = 64
    batch_size: int = 4
    lr: float = 3e-3
    weight_decay: float = 0.0
    lr_decay: bool = True
    ema: float = 0.9
    augment: bool = True
    intensity_augment: float = 0.0
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    amp: bool = True
    class_weight_beta: float = 0.999
    tile: int | None = None

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.class_weights not in weights.SCHEMES:
            raise ValueError(
                f"unknown class-weight scheme {self.class_weights!r}; choose one of "
                f"{', '.join(weights.SCHEMES)}"
            )
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds must be a positive number, got {self.seconds}")
        for name in ("steps", "crop_size", "batch_size", "tile", "num_threads", "edge_ramp"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral)
            ):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}")
        if self.tile is not None and self.tile < 8:
            raise ValueError(f"tile {self.tile} is too small (at least 8 pixels)")
        if self.preview_every < 0:
            raise ValueError(f"preview_every must be >= 0, got {self.preview_every}")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.batch_size < 1 or self.crop_size < 8:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be >= 1 and crop_size ({self.crop_size}) >= 8"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.lambda_dice < 0 or self.lambda_ce < 0 or (self.lambda_edge or 0) < 0:
            raise ValueError("lambda_dice, lambda_ce and lambda_edge must be >= 0")
        if int(self.edge_ramp) < 0:
            raise ValueError(f"edge_ramp must be >= 0 steps, got {self.edge_ramp}")
        if self.edge_sigma is not None and not self.edge_sigma > 0:
            raise ValueError(f"edge_sigma must be positive, got {self.edge_sigma}")
        if not isinstance(self.device, torch.device):
            dev = str(self.device).split(":", 1)[0].lower()
            if dev not in ("auto", "cpu", "cuda", "mps"):
                raise ValueError(f"unknown device {self.device!r}; choose auto, cpu, cuda or mps")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        return d


@dataclass(frozen=True)
class TrainReport:
    """What the training generator yields after every step.

    Attributes
    ----------
    step : int
        Optimisation steps done so far in this run (1-based).
    loss : float
        The loss of this step.
    parts : dict of str to float
        The loss's parts, e.g. ``{"dice": .., "ce": ..}``.
    class_weights : np.ndarray
        ``(K,)`` weights the loss uses, for class ids 1..K.
    counts : np.ndarray
        ``(K,)`` painted pixels per class.
    elapsed : float
        Seconds since training started (after the set-up: model on the device, optimiser).
    device : str
        E.g. ``"CPU, 2 threads"`` or ``"CUDA: NVIDIA H100"``.
    prediction : Prediction or None
        A prediction with the averaged weights: a preview of ``region`` when the previewer
        asked for one, and on the last report of the whole image (of the previewer's region
        when the run was stopped early).
    model : SegModel
        The model being trained (the same object in every report).
    done : bool
        True on the last report.
    stopped : bool
        The run ended before its budget, at a finish request
        (:attr:`napari_seglab.core.preview.Previewer.finish`: the user's Stop).
    stroke_recall : np.ndarray or None
        ``(K,)`` running share of each class's painted pixels that the network predicts as that
        class (on its training crops; NaN for a class not seen yet); None with ``guard`` off.
    notes : tuple of str
        What the trainer changed on its own during this run, in words (e.g. the edge-aware term
        switched off because the strokes were not reproduced), oldest first.
    painted_accuracy : np.ndarray or None
        ``(K,)`` share of each class's painted pixels that ``prediction`` gives that class (NaN
        for an unpainted class); None when the report has no prediction. Unlike
        ``stroke_recall`` this is measured on the prediction the user sees (of ``region``).
    region : tuple of slice or None
        The part of the image ``prediction`` covers (one slice per spatial axis); None: all.
    """

    step: int
    loss: float
    parts: dict[str, float]
    class_weights: np.ndarray
    counts: np.ndarray
    elapsed: float
    device: str
    prediction: Prediction | None
    model: SegModel
    done: bool
    stopped: bool = False
    stroke_recall: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    painted_accuracy: np.ndarray | None = None
    region: tuple[slice, ...] | None = None


def painted_accuracy(predicted: np.ndarray, scribbles: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class 1..K, the share of its painted pixels that ``predicted`` labels as it.

    Parameters
    ----------
    predicted, scribbles : np.ndarray
        Class ids of the same shape ``(*spatial)``; 0 in ``scribbles`` = unpainted.
    num_classes : int

    Returns
    -------
    np.ndarray
        ``(K,)`` float64; NaN for a class with no painted pixel.
    """
    if predicted.shape != scribbles.shape:
        raise ValueError(f"prediction shape {predicted.shape} != scribbles {scribbles.shape}")
    painted = scribbles > 0
    truth = scribbles[painted].astype(np.int64)
    k1 = int(num_classes) + 1
    seen = np.bincount(truth, minlength=k1)[1:k1]
    right = np.bincount(truth[predicted[painted] == truth], minlength=k1)[1:k1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, right / np.maximum(seen, 1), np.nan)


def make_loss(config: TrainConfig, weight: torch.Tensor | None, sigmoid: bool) -> torch.nn.Module:
    """The loss module for ``config.loss`` from :mod:`napari_seglab.core.losses`.

    ``weight`` holds the (K,) class weights. For softmax models the targets are one-hot encoded
    from class indices; for a sigmoid binary model the single channel is compared with the
    foreground indicator and the class weights reach the cross-entropy part only
    (``[w_background, w_foreground]``).
    """
    name = config.loss
    if sigmoid:
        act: dict[str, Any] = {"sigmoid": True}
        other_weight = None
    else:
        act = {"softmax": True, "to_onehot_y": True}
        other_weight = weight
    if name == "dice_ce":
        return losses.DiceCELoss(
            **act, weight=weight, lambda_dice=config.lambda_dice, lambda_ce=config.lambda_ce
        )
    if name == "ce":
        return losses.DiceCELoss(**act, weight=weight, lambda_dice=0.0, lambda_ce=1.0)
    if name == "dice":
        return losses.DiceLoss(**act, weight=other_weight)
    if name == "focal":
        return losses.FocalLoss(
            use_softmax=not sigmoid, to_onehot_y=not sigmoid, weight=other_weight
        )
    if name == "tversky":
        return losses.TverskyLoss(**act)
    if name == "generalized_dice":
        return losses.GeneralizedDiceLoss(**act)
    if name == "dice_focal":
        return losses.DiceFocalLoss(
            **act,
            use_softmax=not sigmoid,
            weight=other_weight,
            lambda_dice=config.lambda_dice,
            lambda_focal=config.lambda_ce,
        )
    raise ValueError(f"unknown loss {name!r}")


def _loss_parts(
    loss_fn: torch.nn.Module, name: str, total: float, edge: torch.Tensor | None = None
) -> dict[str, float]:
    """The parts of a combined loss (its ``last_parts``, else ``{name: total}``), plus the
    edge-aware regulariser's value under ``"edge"`` when it is on."""
    parts = getattr(loss_fn, "last_parts", None)
    if isinstance(parts, dict) and parts:
        out = {str(k): float(v) for k, v in parts.items()}
    else:
        out = {name: total}
    if edge is not None:
        out["edge"] = float(edge.detach())
    return out


class _WeightAverage:
    """Exponential moving average of a network's floating-point parameters.

    Buffers (batch-norm statistics) are not averaged: they are running averages already.
    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` so early steps are not held back.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.net = net
        self.decay = decay
        self.n = 0
        self.shadow = [p.detach().clone() for p in net.parameters()]

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        params = [p.detach() for p in self.net.parameters()]
        torch._foreach_lerp_(self.shadow, params, 1.0 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the averaged and the live weights (call twice to swap back)."""
        for s, p in zip(self.shadow, self.net.parameters(), strict=True):
            tmp = p.detach().clone()
            p.copy_(s)
            s.copy_(tmp)


@torch.no_grad()
def recalibrate_batchnorm(net: torch.nn.Module, batches: list[torch.Tensor]) -> None:
    """Re-measure batch-norm running statistics for the current weights.

    The running statistics collected during training lag behind the weights (and do not belong
    to averaged weights at all); a few forward passes with a cumulative average fix that.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = net.training
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    try:
        for x in batches:
            net(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.train(was_training)


#: A class whose running recall on its own painted pixels is below this ...
GUARD_RECALL = 0.6
#: ... after this many steps of a run (and this many since the guard last acted) makes the
#: guard act (``TrainConfig.guard``).
GUARD_WARMUP = 30
GUARD_COOLDOWN = 15
#: The guard raises a class's loss weight at most to this multiple.
GUARD_MAX_BOOST = 8.0


#: The edge-aware term is fully on once every painted class's running stroke recall reaches
#: the upper bound and off below the lower one (linear between): see :func:`edge_gate`.
EDGE_GATE = (0.5, 0.9)


def edge_gate(recall: np.ndarray) -> float:
    """Factor 0..1 on the edge-aware term from the running stroke recall ``(K,)`` of the
    painted classes: the regulariser may only act where the strokes are already learnt.

    A class not seen yet (NaN) counts as 0. On ``skimage.data.cell()`` with an 11-pixel
    foreground stroke the ramped term alone kept the foreground from being learnt in the first
    30 steps; gated, it waits until the stroke is reproduced.
    """
    if len(recall) == 0:
        return 1.0
    worst = float(np.min(np.nan_to_num(recall, nan=0.0)))
    lo, hi = EDGE_GATE
    return float(np.clip((worst - lo) / (hi - lo), 0.0, 1.0))


class StrokeMonitor:
    """Running per-class recall of the painted pixels on the training crops.

    Each step adds the crops' painted pixels, counted per class (right / all), to sums that
    decay by ``decay`` per step, so the recall follows the last ten or so steps. Counting on
    the training crops costs one ``argmax`` of logits the step computed anyway.

    Parameters
    ----------
    num_classes : int
        K; classes are ids 1..K.
    decay : float
    """

    def __init__(self, num_classes: int, decay: float = 0.9) -> None:
        self.num_classes = int(num_classes)
        self.decay = float(decay)
        self.right = np.zeros(self.num_classes)
        self.seen = np.zeros(self.num_classes)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor, sigmoid: bool) -> None:
        """Add one batch: ``logits (B, C_out, *spatial)``, ``labels (B, 1, *spatial)`` int
        (0 = unlabeled, 1..K classes)."""
        if sigmoid:
            pred = (logits[:, 0] > 0).long() + 1
        else:
            pred = logits.argmax(1) + 1
        y = labels[:, 0]
        painted = y > 0
        k1 = self.num_classes + 1
        seen = torch.bincount(y[painted].flatten(), minlength=k1)[1:k1]
        right = torch.bincount(y[painted & (pred == y)].flatten(), minlength=k1)[1:k1]
        self.seen = self.decay * self.seen + seen.cpu().numpy()
        self.right = self.decay * self.right + right.cpu().numpy()

    def recall(self) -> np.ndarray:
        """``(K,)`` running recall per class; NaN for a class with no painted pixels seen."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seen > 1e-6, self.right / np.maximum(self.seen, 1e-12), np.nan)


#: The automatic ``edge_sigma`` is this many times the image's noise level ...
EDGE_NOISE_FACTOR = 1.2
#: ... and at least this much (normalised intensity), for nearly noise-free images.
EDGE_SIGMA_MIN = 0.01


def edge_weight(config: TrainConfig, stack: bool) -> float:
    """The edge-aware term's weight for a run: ``config.lambda_edge``, or when it is None
    ``DEFAULT_LAMBDA_EDGE`` for a 2D image and 0 for a stack.

    Stacks leave it off: on the nuclei volume with scribbles from a second, sparser simulator
    (few foreground voxels on three planes; ``benchmarks/results/sparse_scribbles.md``),
    weight 2 fell to IoU 0.29-0.31 after 30 s where 0 reached 0.51-0.57, and one run ended
    with no foreground at all.
    """
    if config.lambda_edge is not None:
        return float(config.lambda_edge)
    return 0.0 if stack else DEFAULT_LAMBDA_EDGE


def noise_level(x: np.ndarray) -> float:
    """Robust noise standard deviation of images ``(B, C, H, W)``: the median absolute
    deviation of differences between horizontal neighbours, divided by sqrt(2)."""
    d = np.diff(np.asarray(x, np.float64), axis=-1).ravel()
    mad = np.median(np.abs(d - np.median(d)))
    return max(float(1.4826 * mad / math.sqrt(2.0)), 1e-3)


#: Share of a budget, at its end, over which the learning rate decays (``TrainConfig.lr_decay``).
LR_DECAY_SHARE = 0.3


def lr_factor(fraction: float) -> float:
    """Learning-rate factor at ``fraction`` (0..1) of the budget: 1, then a cosine to 0.05 over
    the last ``LR_DECAY_SHARE``."""
    t = (fraction - (1.0 - LR_DECAY_SHARE)) / LR_DECAY_SHARE
    t = min(1.0, max(0.0, t))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def _budget_fraction(config: TrainConfig, step: int, elapsed: float) -> float | None:
    """How much of the budget is used, 0..1; None without a budget."""
    parts = []
    if config.steps is not None:
        parts.append(step / config.steps)
    if config.seconds is not None:
        parts.append(elapsed / config.seconds)
    return min(1.0, max(parts)) if parts else None


def _prepare(
    image: np.ndarray,
    scribbles: np.ndarray,
    config: TrainConfig,
    model: SegModel | None,
) -> tuple[ImageView, np.ndarray, SegModel]:
    scribbles = np.asarray(scribbles)
    image = np.asarray(image)
    view = as_zcyx(image, channel_axis=config.channel_axis, spatial_shape=scribbles.shape)
    check_finite(view.data)
    labels = check_scribbles(scribbles, view.spatial_shape)
    classes = present_classes(labels)
    if len(classes) == 0:
        raise ValueError(
            "scribbles hold no labels; paint background (1) and foreground (2) strokes"
        )
    if len(classes) < 2:
        raise ValueError(
            f"scribbles hold only class {int(classes[0])}; paint at least two classes "
            "(1 = background, 2 = foreground)"
        )
    k_max = int(classes.max())
    if model is not None:
        if model.in_channels != view.channels:
            raise ValueError(
                f"the model expects {model.in_channels} channel(s) but the image has "
                f"{view.channels} (shape {image.shape})"
            )
        if k_max > model.num_classes:
            raise ValueError(
                f"scribbles hold label {k_max} but the model has {model.num_classes} classes"
            )
    else:
        norm = Normalization.fit(view, config.percentiles)
        model_config = config.model
        if model_config.z_context is None:
            model_config = replace(model_config, z_context=DEFAULT_Z_CONTEXT if view.is_3d else 0)
        model = SegModel.create(max(2, k_max), view.channels, norm, model_config, seed=config.seed)
    return view, labels, model


def train(
    image: np.ndarray,
    scribbles: np.ndarray,
    config: TrainConfig | None = None,
    model: SegModel | None = None,
    previewer: Previewer | None = None,
) -> Generator[TrainReport, ScribbleUpdate | None, SegModel]:
    """Train a model from sparse scribbles; a generator yielding a :class:`TrainReport` per step.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Y, X, C)`` / ``(C, Y, X)`` (channel axis from ``config.channel_axis`` or
        detected from the scribbles' shape), ``(Z, Y, X)`` or ``(Z, Y, X, C)``; any int/float dtype.
    scribbles : np.ndarray
        The image's spatial shape; 0 = unlabeled, 1 = background, 2 = foreground, 3.. more
        classes. At least two classes must be painted. For stacks, any slices may be painted.
    config : TrainConfig, optional
    model : SegModel, optional
        Warm start: continue training this model (in place) instead of a new one.
    previewer : Previewer, optional
        Decides when the averaged-weight network predicts what a viewer shows, and which
        region (:class:`~napari_seglab.core.preview.Previewer`); default: the whole image every
        ``config.preview_every`` seconds (none when 0). Its ``finish`` event ends the run at
        the next step with a final prediction of its region (a Stop that keeps the work); its
        ``stopped`` event abandons previews and that prediction.

    Returns
    -------
    Generator
        Yields reports; ``send(new_scribbles)`` updates the scribbles and returns the next
        report: a :class:`~napari_seglab.core.edits.ScribbleEdit` or a list of them (indices and
        new class ids of the changed pixels; the counts and crop sampler are updated from those
        pixels only), or a full array of the same shape that replaces them (a list may mix
        both, applied in order). The scribbles given are copied, never written to.
        ``close()`` stops. Returns the model.

    Raises
    ------
    ValueError
        Immediately, for bad inputs or settings (mismatched shapes, no or one class, labels above
        the warm-start model's classes, NaN/inf pixels, an unavailable device).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    view, labels, model = _prepare(image, scribbles, config, model)
    if previewer is None and config.preview_every > 0:
        previewer = Previewer(view.spatial_shape, config.preview_every)
    return _run(view, labels, model, config, device, previewer)


def _run(
    view: ImageView,
    labels: np.ndarray,
    model: SegModel,
    config: TrainConfig,
    device: torch.device,
    previewer: Previewer | None,
) -> Generator[TrainReport, ScribbleUpdate | None, SegModel]:
    K = model.num_classes
    net = model.net
    previous_threads = torch.get_num_threads()
    threads = previous_threads
    optimizer = None
    ema: _WeightAverage | None = None
    try:
        if device.type == "cpu":
            threads = int(config.num_threads or default_num_threads())
            torch.set_num_threads(threads)
        description = describe_device(device, threads)
        seed = config.seed
        rng = np.random.default_rng(seed)
        if seed is not None:
            torch.manual_seed(seed)
        net.to(device)
        net.train()
        optimizer = torch.optim.Adam(
            net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        ema = _WeightAverage(net, config.ema) if config.ema > 0 else None
        use_amp = bool(config.amp and device.type == "cuda")
        amp_dtype = torch.float16
        if use_amp and torch.cuda.is_bf16_supported():
            amp_dtype = torch.bfloat16
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

        sampler = CropSampler(
            view,
            labels,
            model.normalization,
            config.crop_size,
            model.config.multiple,
            rng,
            augment=config.augment,
            intensity=config.intensity_augment,
            z_context=int(model.config.z_context or 0),
        )
        counts_obj = weights.ClassCounts(K)
        counts_obj.add(labels)
        monitor = StrokeMonitor(K) if config.guard else None
        boost = np.ones(K, np.float32)  # the guard's extra loss weight per class
        notes: list[str] = []
        edge_scale = 1.0  # the guard's factor on the edge-aware term
        last_action = 0
        lambda_edge = edge_weight(config, view.is_3d)
        edge_sigma = config.edge_sigma
        if edge_sigma is None and lambda_edge > 0:
            edge_sigma = max(
                EDGE_SIGMA_MIN, EDGE_NOISE_FACTOR * noise_level(sampler.uniform_batch(8))
            )

        def class_weights() -> tuple[np.ndarray, np.ndarray, torch.nn.Module]:
            counts = np.asarray(counts_obj.counts, dtype=np.int64).copy()
            w = np.asarray(
                weights.class_weights(
                    counts, scheme=config.class_weights, beta=config.class_weight_beta
                ),
                dtype=np.float32,
            )
            w = w * boost
            wt = torch.as_tensor(w, device=device)
            return counts, w, make_loss(config, wt, model.sigmoid)

        counts, cw, loss_fn = class_weights()

        has_batchnorm = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()
        )

        def recalibrate() -> None:
            if not has_batchnorm:
                return
            batches = [
                torch.from_numpy(sampler.uniform_batch(config.batch_size)).to(device)
                for _ in range(4)
            ]
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                recalibrate_batchnorm(net, batches)

        model.train_settings = {
            **config.to_dict(),
            "device": description,
            "image_shape": list(view.spatial_shape),
            "channels": view.channels,
            "edge_sigma_used": None if edge_sigma is None else round(float(edge_sigma), 5),
            "lambda_edge_used": lambda_edge,
        }
        step = 0
        # The clock starts after the set-up (the first optimiser of a process imports
        # torch._dynamo, seconds on a small CPU), so a budget buys training steps.
        t0 = time.perf_counter()
        if previewer is not None:
            previewer.start()
        while True:
            x, y = sampler.batch(config.batch_size)
            xt = torch.from_numpy(x).to(device, non_blocking=True)
            yt = torch.from_numpy(y).to(device, non_blocking=True)
            mask = yt > 0
            target = (yt - 1).clamp_(min=0)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = net(xt)
            loss = loss_fn(logits.float(), target, mask=mask)
            edge = None
            edge_now = lambda_edge * edge_scale
            if config.edge_ramp > 0:
                edge_now *= min(1.0, (step + 1) / config.edge_ramp)
            if monitor is not None and edge_now > 0:
                edge_now *= edge_gate(monitor.recall()[counts > 0])
            if lambda_edge * edge_scale > 0:
                # Measured (and reported) whenever the term is on, also while the ramp or the
                # gate holds its weight at 0, so that the reports' parts stay the same.
                edge = losses.edge_aware_potts(model.probabilities(logits), xt, sigma=edge_sigma)
                if edge_now > 0:
                    loss = loss + edge_now * edge
            if monitor is not None:
                monitor.update(logits.detach(), yt, model.sigmoid)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update()
            step += 1
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"training diverged: loss is {loss_value} at step {step}")
            if (
                monitor is not None
                and step >= GUARD_WARMUP
                and step - last_action >= GUARD_COOLDOWN
            ):
                recall = monitor.recall()
                present = np.flatnonzero(counts > 0)
                worst = int(present[np.nanargmin(recall[present])]) if len(present) else 0
                if len(present) and recall[worst] < GUARD_RECALL:
                    name = model.class_names[worst] if worst < len(model.class_names) else ""
                    what = f"{recall[worst]:.0%} of the painted {name or f'class {worst + 1}'}"
                    if lambda_edge * edge_scale > 0:
                        # A regulariser that keeps the strokes from being learnt has no
                        # place in this run: halving it only delays the recovery.
                        edge_scale = 0.0
                        notes.append(
                            f"step {step}: edge-aware term switched off (only {what} pixels "
                            "reproduced)"
                        )
                        last_action = step
                    elif boost[worst] < GUARD_MAX_BOOST:
                        boost[worst] *= 2
                        counts, cw, loss_fn = class_weights()
                        notes.append(
                            f"step {step}: loss weight of {name or f'class {worst + 1}'} raised "
                            f"{boost[worst]:g}x (only {what} pixels reproduced)"
                        )
                        last_action = step
            now = time.perf_counter()
            elapsed = now - t0
            finishing = previewer is not None and previewer.finish.is_set()
            done = (
                finishing
                or (config.steps is not None and step >= config.steps)
                or (config.seconds is not None and elapsed >= config.seconds)
            )
            prediction = None
            region = None
            final = done and config.final_prediction
            want_preview = previewer is not None and not final and previewer.due(step)
            if done and ema is not None:
                ema.swap()  # the model ends with the averaged weights
                ema = None
            if done:
                recalibrate()
            if config.lr_decay:
                fraction = _budget_fraction(config, step, elapsed)
                if fraction is not None:
                    factor = lr_factor(fraction)
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * factor
            if final or want_preview:
                if ema is not None:
                    ema.swap()  # previews show the averaged weights, as the model ends with
                    recalibrate()
                try:
                    if final and previewer is None:
                        prediction = predict(
                            model, _original_layout(view), tile=config.tile, channel_axis=-1
                        )
                    elif final:  # band by band: a stop request is honoured within a band
                        # at the budget's end the whole image; stopped early (finish), the
                        # region in view: the user waits for it
                        got = previewer.predict(
                            model,
                            _original_layout(view),
                            -1,
                            config.tile,
                            region="view" if finishing else None,
                        )
                        if got is not None:
                            prediction, region = got
                        previewer.forest_shown = False
                    else:
                        got = previewer.predict(
                            model, _original_layout(view), channel_axis=-1, tile=config.tile
                        )
                        if got is not None:
                            prediction, region = got
                            if not previewer.accept(
                                prediction, _in_region(sampler.labels, view, region), step
                            ):
                                prediction = region = None
                finally:
                    if ema is not None:
                        ema.swap()
            model.train_settings["steps_done"] = step
            model.train_settings["seconds_done"] = round(elapsed, 3)
            if notes:
                model.train_settings["lambda_edge_used"] = lambda_edge * edge_scale
                model.train_settings["guard_notes"] = list(notes)
            report = TrainReport(
                step=step,
                loss=loss_value,
                parts=_loss_parts(loss_fn, config.loss, loss_value, edge),
                class_weights=cw.copy(),
                counts=counts.copy(),
                elapsed=elapsed,
                device=description,
                prediction=prediction,
                region=region,
                model=model,
                done=done,
                stopped=finishing,
                stroke_recall=None if monitor is None else monitor.recall(),
                notes=tuple(notes),
                painted_accuracy=None
                if prediction is None
                else painted_accuracy(
                    np.asarray(prediction.labels), _in_region(sampler.labels, view, region), K
                ),
            )
            new_scribbles = yield report
            if done:
                break
            if new_scribbles is not None:
                # edits cost time in proportion to the stroke; a full array to the image
                for item in _scribbles_items(new_scribbles, len(view.spatial_shape)):
                    if isinstance(item, ScribbleEdit):
                        counts_obj.update(*sampler.apply_edit(item, K))
                        continue
                    new = check_scribbles(item, view.spatial_shape)
                    k_new = present_classes(new)
                    if len(k_new) == 0:
                        raise ValueError("the new scribbles hold no labels")
                    if int(k_new.max()) > K:
                        raise ValueError(
                            f"the new scribbles hold label {int(k_new.max())} but the model "
                            f"has {K} classes; start a new training to add a class"
                        )
                    counts_obj = weights.ClassCounts(K)
                    counts_obj.add(new)
                    sampler.set_labels(new)
                counts, cw, loss_fn = class_weights()
    finally:
        if ema is not None:
            ema.swap()  # stopped early (close() or an error): keep the averaged weights
        net.eval()
        if device.type != "cpu":
            net.to("cpu")
        del optimizer
        release_memory(device)
        if torch.get_num_threads() != previous_threads:
            torch.set_num_threads(previous_threads)
    return model


def _scribbles_items(new: Any, ndim: int) -> list[Any]:
    """What was sent to the generator, as a list of edits and full arrays, in order."""
    if isinstance(new, ScribbleEdit):
        return [new]
    if isinstance(new, (list, tuple)) and all(
        isinstance(x, ScribbleEdit) or (isinstance(x, np.ndarray) and x.ndim == ndim) for x in new
    ):
        return list(new)
    return [new]


def _in_region(labels: np.ndarray, view: ImageView, region: tuple[slice, ...] | None) -> np.ndarray:
    """The sampler's labels as ``(*spatial)``, cut to ``region`` (None: all)."""
    spatial = labels.reshape(view.spatial_shape)
    return spatial if region is None else spatial[region]


def _original_layout(view: ImageView) -> np.ndarray:
    """The image in a layout :func:`predict` understands: ``(Z, Y, X, C)`` or ``(Y, X, C)``."""
    data = np.moveaxis(view.data, 1, -1)
    return data if view.is_3d else data[0]


def train_to_end(
    image: np.ndarray,
    scribbles: np.ndarray,
    config: TrainConfig | None = None,
    model: SegModel | None = None,
) -> tuple[SegModel, TrainReport]:
    """Run :func:`train` to its end; returns the model and the last report.

    The config must have a ``seconds`` or ``steps`` budget.
    """
    config = config or TrainConfig()
    if config.seconds is None and config.steps is None:
        config = replace(config, seconds=30.0)
    last = None
    for report in train(image, scribbles, config, model):
        last = report
    assert last is not None
    return last.model, last
