"""The settings of a training run (:class:`TrainConfig`) and what it reports after every step
(:class:`TrainReport`); the defaults that the API, the command line and the widget share."""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_seglab.core import weights
from napari_seglab.core.data import DEFAULT_PERCENTILES
from napari_seglab.core.losses.registry import LOSSES, LossName
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.weights import Scheme

if TYPE_CHECKING:
    from napari_seglab.core.inference import Prediction
    from napari_seglab.core.model import SegModel

DEFAULT_LOSS = "dice_ce"
#: What ``loss="tversky"`` (offered until 0.2) says now, in the API and the command line.
TVERSKY_GONE = (
    "loss 'tversky' is no longer offered: with alpha = beta = 0.5 it was the Dice loss "
    "(loss='dice'); for other weights give train(..., loss_fn=lambda weight, sigmoid: "
    "TverskyLoss(softmax=True, to_onehot_y=True, include_background=False, alpha=.., beta=..))"
)
#: No class weighting by default: the loss study (docs/which-loss.md) found that weighting by
#: inverse frequency over-segments the rare class and lowers IoU, with dense labels and scribbles.
DEFAULT_CLASS_WEIGHTS = "none"
#: Neighbouring slices on each side that a network trained on a stack sees (2.5D); chosen on
#: the nuclei volume (``benchmarks/results/nuclei3d.md``).
DEFAULT_Z_CONTEXT = 4
#: Weight of the forest's teaching of classes painted on few pixels
#: (:mod:`napari_seglab.core.forest_teacher`).
DEFAULT_FOREST_TEACHER = 0.3
#: Weight of the flux term within the edge-aware term, relative to its Potts part
#: (:func:`napari_seglab.core.losses.intensity_flux`).
DEFAULT_EDGE_FLUX = 4.0


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes
    ----------
    loss : str
        One of :data:`LOSSES`; ``"dice_ce"`` (Dice + cross-entropy) by default.
    class_weighting : str
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
    amsgrad : bool
        Adam's AMSGrad variant (``torch.optim.Adam(amsgrad=True)``; Reddi, Kale and Kumar,
        ICLR 2018): the step size of each weight never grows back once its gradients shrink.
    lr_warmup : int
        Steps over which the learning rate rises linearly to its value (``lr``, or
        ``lr_continued``) at the start of a training (0 = none), times the decay of
        ``lr_decay``. Neither ``amsgrad`` nor this is on by default:
        ``benchmarks/results/probe_optimizer.md`` has what they did to long and continued
        trainings.
    lr_continued : float or None
        Adam's learning rate when the training continues a model that has been trained
        (``train(model=...)``: a second click on Train, ``seglab train --init``); None
        (default): ``lr``. A tenth of ``lr`` kept a good model of
        ``skimage.data.microaneurysms()`` from losing its vessels in a second training with the
        same strokes, but fixed a poor one less after strokes were added
        (``benchmarks/results/probe_optimizer.md``).
    resume_optimizer : bool
        A training that continues a model (``train(model=...)``, a second click on Train)
        resumes the Adam state (moments and step count) the model's last training ended with
        (``SegModel.optimizer_state``) instead of starting a fresh optimiser, when that training
        also had this option and the same ``amsgrad``; on by default. The state is kept in
        memory only (``seglab train --init``, which loads a file, starts a fresh one); the
        learning rate and its schedule start again. A first training is the same either way.
        With a fresh Adam at the full rate, a second training of
        ``skimage.data.microaneurysms()`` with the same strokes lost most of the vessels in 3 of
        4 seeds (resumed: 1 of 4), and one after added strokes lowered ``skimage.data.cell()``
        from 0.95 to 0.54 IoU (resumed: 0.90) (``benchmarks/results/probe_optimizer.md``).
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
    consistency : float
        Weight of a mean-teacher consistency term
        (:func:`napari_seglab.core.losses.consistency_mse`) on the unpainted pixels of every
        crop: the squared difference between the network's class probabilities and those of a
        slower moving average of its weights (the teacher, decay ``consistency_ema``), which
        keeps the prediction away from the strokes from jumping in a few steps (Tarvainen and
        Valpola, NeurIPS 2017). A continued training's teacher starts from the model it
        continues. 0 (default) = off. When on, each step costs one more forward pass (the
        teacher's).
    consistency_ema : float
        Decay of the teacher's average, in (0, 1); in a first training it warms up as the
        ``ema`` average does.
    augment : bool
        Random flips and 90 degree rotations of the crops.
    lambda_edge : float or None
        Weight of the edge-aware Potts regulariser
        (:func:`napari_seglab.core.losses.edge_aware_potts`) added to the loss on every crop,
        unlabeled pixels included; 0 switches it off, None (default) means
        ``DEFAULT_LAMBDA_EDGE`` for 2D images and 0 for stacks (see :func:`lambda_edge_for`). It
        places class boundaries on intensity edges where no scribble reaches, and keeps longer
        training from spreading a class into unpainted regions (docs/which-loss.md, "Beyond the
        loss: an edge-aware term", has the evidence).
    edge_ramp : int
        The edge-aware term's weight rises linearly over this many steps, from 0 to
        ``lambda_edge``: at full weight from the first step, before the network has learnt the
        strokes, it pulls the prediction towards one class (0 = no ramp).
    edge_flux : float
        Weight, relative to the Potts term's, of the flux term
        (:func:`napari_seglab.core.losses.intensity_flux`) that the edge-aware term also holds:
        it moves boundaries onto the zero crossings of the image's Laplacian of Gaussian, on
        the side where the foreground's intensity lies, against the Potts term's pull towards
        short boundaries where edges are weak. It shares the Potts term's weight, ramp,
        gate and guard; two-class runs only. 0 = off. Default ``DEFAULT_EDGE_FLUX``.
    edge_flux_sigma : float
        Scale of the flux term's Laplacian of Gaussian, in pixels (default 1).
    edge_min_painted : int
        The edge-aware term's weight is multiplied, for the whole run, by
        ``min(1, n / edge_min_painted)``, ``n`` the painted pixels of the least-painted class
        among those painted at all (:func:`napari_seglab.core.guard.sparse_class_factor`);
        0 (default) = off.
    forest_teacher : float
        Weight of the random forest's teaching (:mod:`napari_seglab.core.forest_teacher`): for the
        classes painted on fewer than ``forest_teacher_painted`` pixels, a forest fitted on the
        strokes when training starts gives its confident pixels as cross-entropy targets on
        the unpainted pixels of each crop. 0 = off. Default 0.3.
    forest_teacher_painted : int
        A class painted on fewer pixels than this is taught by the forest (default 50).
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

    loss: LossName = DEFAULT_LOSS
    class_weighting: Scheme = DEFAULT_CLASS_WEIGHTS
    lambda_dice: float = 1.0
    lambda_ce: float = 1.0
    lambda_edge: float | None = None
    edge_ramp: int = 20
    edge_min_painted: int = 0
    edge_flux: float = DEFAULT_EDGE_FLUX
    edge_flux_sigma: float = 1.0
    forest_teacher: float = DEFAULT_FOREST_TEACHER
    forest_teacher_painted: int = 50
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
    amsgrad: bool = False
    lr_warmup: int = 0
    resume_optimizer: bool = True
    lr_continued: float | None = None
    lr_decay: bool = True
    ema: float = 0.9
    consistency: float = 0.0
    consistency_ema: float = 0.99
    augment: bool = True
    intensity_augment: float = 0.0
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES
    amp: bool = True
    class_weight_beta: float = 0.999
    tile: int | None = None

    def __post_init__(self) -> None:
        self._check_choices()
        self._check_counts()
        self._check_rates()

    def _check_choices(self) -> None:
        if self.loss == "tversky":
            raise ValueError(TVERSKY_GONE)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.class_weighting not in weights.SCHEMES:
            raise ValueError(
                f"unknown class-weight scheme {self.class_weighting!r}; choose one of "
                f"{', '.join(weights.SCHEMES)}"
            )
        if not isinstance(self.device, torch.device):
            dev = str(self.device).split(":", 1)[0].lower()
            if dev not in ("auto", "cpu", "cuda", "mps"):
                raise ValueError(f"unknown device {self.device!r}; choose auto, cpu, cuda or mps")

    def _check_counts(self) -> None:
        names = (
            "steps",
            "crop_size",
            "batch_size",
            "tile",
            "num_threads",
            "edge_ramp",
            "lr_warmup",
            "edge_min_painted",
            "forest_teacher_painted",
        )
        for name in names:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, numbers.Integral)
            ):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.steps is not None and int(self.steps) < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps}")
        if self.tile is not None and self.tile < 8:
            raise ValueError(f"tile {self.tile} is too small (at least 8 pixels)")
        if self.num_threads is not None and int(self.num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.batch_size < 1 or self.crop_size < 8:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be >= 1 and crop_size ({self.crop_size}) >= 8"
            )
        for name in ("edge_ramp", "lr_warmup", "edge_min_painted", "forest_teacher_painted"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0 steps, got {getattr(self, name)}")

    def _check_rates(self) -> None:
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds must be a positive number, got {self.seconds}")
        if self.preview_every < 0:
            raise ValueError(f"preview_every must be >= 0, got {self.preview_every}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_continued is not None and not self.lr_continued > 0:
            raise ValueError(f"lr_continued must be positive, got {self.lr_continued}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not 0 < self.consistency_ema < 1:
            raise ValueError(f"consistency_ema must be in (0, 1), got {self.consistency_ema}")
        if not self.consistency >= 0:
            raise ValueError(f"consistency must be >= 0, got {self.consistency}")
        if not (self.forest_teacher >= 0 and math.isfinite(self.forest_teacher)):
            raise ValueError(f"forest_teacher must be >= 0, got {self.forest_teacher}")
        if self.lambda_dice < 0 or self.lambda_ce < 0 or (self.lambda_edge or 0) < 0:
            raise ValueError("lambda_dice, lambda_ce and lambda_edge must be >= 0")
        if not (self.edge_flux >= 0 and math.isfinite(self.edge_flux)):
            raise ValueError(f"edge_flux must be >= 0, got {self.edge_flux}")
        if not (self.edge_flux_sigma > 0 and math.isfinite(self.edge_flux_sigma)):
            raise ValueError(f"edge_flux_sigma must be positive, got {self.edge_flux_sigma}")
        if self.edge_sigma is not None and not self.edge_sigma > 0:
            raise ValueError(f"edge_sigma must be positive, got {self.edge_sigma}")

    def lr_for(self, continued: bool) -> float:
        """Adam's learning rate for a training of a new model, or of one that continues a
        trained model (``continued``): ``lr_continued`` there if set, else ``lr``."""
        if continued and self.lr_continued is not None:
            return float(self.lr_continued)
        return float(self.lr)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        return d


def _accept_old_names(init: Any) -> Any:
    """``TrainConfig(class_weights=...)``, the scheme's name before 0.2, still works (with a
    DeprecationWarning) until 0.3: the name now belongs to ``TrainReport.class_weights``, the
    weights themselves."""

    @functools.wraps(init)
    def __init__(self: TrainConfig, *args: Any, class_weights: Any = None, **kwargs: Any) -> None:
        if class_weights is not None:
            if "class_weighting" in kwargs:
                raise TypeError("give class_weighting only (class_weights is its old name)")
            warnings.warn(
                "TrainConfig(class_weights=...) is deprecated and will be removed in 0.3; use "
                "TrainConfig(class_weighting=...)",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs.setdefault("class_weighting", class_weights)
        init(self, *args, **kwargs)

    return __init__


TrainConfig.__init__ = _accept_old_names(TrainConfig.__init__)  # type: ignore[method-assign]


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


#: Share of a budget, at its end, over which the learning rate decays (``TrainConfig.lr_decay``).
LR_DECAY_SHARE = 0.3


def lr_factor(fraction: float) -> float:
    """Learning-rate factor at ``fraction`` (0..1) of the budget: 1, then a cosine to 0.05 over
    the last ``LR_DECAY_SHARE``."""
    t = (fraction - (1.0 - LR_DECAY_SHARE)) / LR_DECAY_SHARE
    t = min(1.0, max(0.0, t))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


def budget_fraction(config: TrainConfig, step: int, elapsed: float) -> float | None:
    """How much of the budget is used, 0..1; None without a budget."""
    parts = []
    if config.steps is not None:
        parts.append(step / config.steps)
    if config.seconds is not None:
        parts.append(elapsed / config.seconds)
    return min(1.0, max(parts)) if parts else None
