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

One step: a batch of crops centred on painted pixels (:mod:`napari_seglab.core.sampling`),
the loss on the painted pixels only (:mod:`napari_seglab.core.losses`) plus the edge-aware term
on all of them (and, for a class painted on few pixels, the random forest's teaching:
:mod:`napari_seglab.core.forest_teacher`), an Adam step, and an update of the exponential
moving average of the weights (``torch.optim.swa_utils.AveragedModel``) that previews and the
final model use. The guard of
:mod:`napari_seglab.core.guard` watches the strokes' recall and acts when a class is lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, update_bn

from napari_seglab.core import forest_teacher, losses, preview, weights
from napari_seglab.core.config import (
    DEFAULT_Z_CONTEXT,
    TrainConfig,
    TrainReport,
    budget_fraction,
    lr_factor,
)
from napari_seglab.core.data import (
    ImageView,
    Normalization,
    as_zcyx,
    check_finite,
    check_not_constant,
    check_scribbles,
    present_classes,
)
from napari_seglab.core.device import (
    default_num_threads,
    describe_device,
    release_memory,
    resolve_device,
)
from napari_seglab.core.edits import ScribbleEdit, scribble_items
from napari_seglab.core.guard import (
    EDGE_NOISE_FACTOR,
    EDGE_SIGMA_MIN,
    GUARD_COOLDOWN,
    GUARD_MAX_BOOST,
    GUARD_RECALL,
    GUARD_WARMUP,
    StrokeMonitor,
    edge_gate,
    lambda_edge_for,
    noise_level,
    sparse_class_factor,
)
from napari_seglab.core.losses.registry import LossFactory, build_loss
from napari_seglab.core.model import SegModel
from napari_seglab.core.optim import (
    build_optimizer,
    build_teacher,
    copy_parameters,
    ema_with_warmup,
    kept_state,
)
from napari_seglab.core.preview import Previewer
from napari_seglab.core.sampling import CropSampler

#: What ``send()`` accepts: one edit, a list of edits and full arrays, or a full array.
ScribbleUpdate = ScribbleEdit | Sequence[ScribbleEdit | np.ndarray] | np.ndarray


def make_loss(config: TrainConfig, weight: torch.Tensor | None, sigmoid: bool) -> torch.nn.Module:
    """The loss module for ``config.loss`` (:data:`~napari_seglab.core.losses.registry.LOSSES`)
    with the mix ``config.lambda_dice`` / ``config.lambda_ce``; ``weight`` holds the ``(K,)``
    class weights (see :mod:`napari_seglab.core.losses.registry`)."""
    return build_loss(
        config.loss, weight, sigmoid, lambda_dice=config.lambda_dice, lambda_ce=config.lambda_ce
    )


def _loss_parts(
    loss_fn: torch.nn.Module,
    name: str,
    total: float,
    edge: torch.Tensor | None = None,
    consistency: torch.Tensor | None = None,
) -> dict[str, float]:
    """The parts of a combined loss (its ``last_parts``, else ``{name: total}``), plus the
    edge-aware regulariser's value under ``"edge"`` and the consistency term's under
    ``"consistency"`` when they are on."""
    parts = getattr(loss_fn, "last_parts", None)
    if isinstance(parts, dict) and parts:
        out = {str(k): float(v) for k, v in parts.items()}
    else:
        out = {name: total}
    for key, value in (("edge", edge), ("consistency", consistency)):
        if value is not None:
            out[key] = float(value.detach())
    return out


def _release(net: torch.nn.Module, device: torch.device, previous_threads: int) -> None:
    """The end of every run: the network in eval mode on the CPU, the device's cached memory
    returned, torch's thread count as it was."""
    net.eval()
    if device.type != "cpu":
        net.to("cpu")
    release_memory(device)
    if torch.get_num_threads() != previous_threads:
        torch.set_num_threads(previous_threads)


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
    seen = (model.config if model is not None else config.model).channels
    check_not_constant(view.data, channels=seen)
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
        model.check_continued(view.channels, image.shape, config.model.channels, k_max)
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
    *,
    loss_fn: LossFactory | None = None,
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
    loss_fn : callable, optional
        Replaces the loss of ``config.loss``: called as ``loss_fn(weight, sigmoid)`` with the
        ``(K,)`` class-weight tensor (None-free) and whether the model has one sigmoid output,
        each time the weights change; returns a module called as ``loss(logits, target,
        mask=mask)`` (the contract of :data:`~napari_seglab.core.losses.registry.LOSSES`).
        The model's ``train_settings["loss"]`` then names it.

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
    if loss_fn is None:

        def factory(weight: torch.Tensor | None, sigmoid: bool) -> torch.nn.Module:
            return make_loss(config, weight, sigmoid)

        return _run(view, labels, model, config, device, previewer, factory, config.loss)
    if isinstance(loss_fn, torch.nn.Module) or not callable(loss_fn):
        raise TypeError(
            "loss_fn must be a factory (weight, sigmoid) -> loss module, called again whenever "
            f"the class weights change; got {type(loss_fn).__name__}: wrap a module as "
            "loss_fn=lambda weight, sigmoid: module"
        )
    name = getattr(loss_fn, "__qualname__", None) or type(loss_fn).__name__
    return _run(view, labels, model, config, device, previewer, loss_fn, f"custom: {name}")


class _Run:
    """One call of :func:`train` between steps: the network, its optimiser and average, the
    crops, the class counts and weights, the guard's state."""

    def __init__(
        self,
        view: ImageView,
        labels: np.ndarray,
        model: SegModel,
        config: TrainConfig,
        device: torch.device,
        loss_factory: LossFactory,
    ) -> None:
        self.view, self.model, self.config, self.device = view, model, config, device
        self.K = model.num_classes
        self.net = net = model.net
        self.loss_factory = loss_factory
        self.threads = torch.get_num_threads()
        if device.type == "cpu":
            self.threads = int(config.num_threads or default_num_threads())
            torch.set_num_threads(self.threads)
        self.description = describe_device(device, self.threads)
        rng = np.random.default_rng(config.seed)
        if config.seed is not None:
            torch.manual_seed(config.seed)
        net.to(device)
        net.train()
        continued = bool(model.train_settings.get("steps_done"))
        self.lr = config.lr_for(continued)
        self.optimizer = build_optimizer(net, config, self.lr, model.optimizer_state)
        self.teacher: AveragedModel | None = None
        if config.consistency > 0:
            self.teacher = build_teacher(net, config.consistency_ema, continued)
        if config.lr_warmup:
            self.decay_lr(0, 0.0)
        self.average: AveragedModel | None = None
        if config.ema > 0:
            self.average = AveragedModel(net, multi_avg_fn=ema_with_warmup(config.ema))
            self.average.update_parameters(net)  # starts from the current weights
        self.use_amp = bool(config.amp and device.type == "cuda")
        self.amp_dtype = torch.float16
        if self.use_amp and torch.cuda.is_bf16_supported():
            self.amp_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self.amp_dtype == torch.float16
        )
        self.sampler = CropSampler(
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
        self.counter = weights.ClassCounts(self.K)
        self.counter.add(labels)
        self.monitor = StrokeMonitor(self.K) if config.guard else None
        self.boost = np.ones(self.K, np.float32)  # the guard's extra loss weight per class
        self.notes: list[str] = []
        self.edge_scale = 1.0  # the guard's factor on the edge-aware term
        self.last_action = 0
        self.lambda_edge = lambda_edge_for(config, view.is_3d)
        self.edge_sigma = config.edge_sigma
        if self.edge_sigma is None and self.lambda_edge > 0:
            noise = noise_level(self.sampler.uniform_batch(8))
            self.edge_sigma = max(EDGE_SIGMA_MIN, EDGE_NOISE_FACTOR * noise)
        self.edge_flux = config.edge_flux if self.K == 2 else 0.0  # two classes only
        self.fit_forest_teacher()
        self.has_batchnorm = any(
            isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules()
        )
        self.set_loss()

    def fit_forest_teacher(self) -> None:
        """Fit the forest that teaches the classes painted on few pixels, when there are any
        (:func:`napari_seglab.core.forest_teacher.prepare`)."""
        sampler = self.sampler
        taught, note = forest_teacher.prepare(
            self.view, sampler.labels, self.counter.counts, self.config, max(sampler.crop),
            self.threads, self.model.class_names,
        )  # fmt: skip
        if note:
            self.notes.append(note)
        sampler.set_teacher(taught)
        self.teach(set() if taught is None else {int(k) for k in np.unique(taught) if k})

    def teach(self, classes: set[int]) -> None:
        """The class ids the forest teaches from now on: ``forest_classes``, and ``taught``
        (the same as a tensor); none: the sampler stops cropping the teacher."""
        self.forest_classes = classes
        self.taught = torch.as_tensor(sorted(classes), dtype=torch.int64, device=self.device)
        if not classes:
            self.sampler.set_teacher(None)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp)

    def set_loss(self) -> None:
        """Class weights from the counts (and the guard's boosts), and the loss built on them."""
        config = self.config
        self.counts = np.asarray(self.counter.counts, dtype=np.int64).copy()
        w = weights.class_weights(
            self.counts, scheme=config.class_weighting, beta=config.class_weight_beta
        )
        self.class_weights = np.asarray(w, dtype=np.float32) * self.boost
        self.edge_sparse = sparse_class_factor(self.counts, config.edge_min_painted)
        weight = torch.as_tensor(self.class_weights, device=self.device)
        self.loss_fn = self.loss_factory(weight, self.model.sigmoid)

    def step(self, step: int) -> tuple[float, torch.Tensor | None, torch.Tensor | None]:
        """One optimisation step (``step`` done before it); the loss, the edge term and the
        consistency term (None when off)."""
        config, net, model = self.config, self.net, self.model
        x, y = self.sampler.batch(config.batch_size)
        xt = torch.from_numpy(x).to(self.device, non_blocking=True)
        yt = torch.from_numpy(y).to(self.device, non_blocking=True)
        yt, taught_t = yt[:, :1], yt[:, 1:]  # the forest teacher's classes, if it teaches
        mask = yt > 0
        target = (yt - 1).clamp_(min=0)
        with self.autocast():
            logits = net(xt)
        loss = self.loss_fn(logits.float(), target, mask=mask)
        if taught_t.shape[1]:
            term = forest_teacher.teacher_loss(
                logits.float(), taught_t, self.taught, mask, model.sigmoid
            )
            if term is not None:
                loss = loss + config.forest_teacher * term
        edge = None
        edge_now = self.lambda_edge * self.edge_scale * self.edge_sparse
        if config.edge_ramp > 0:
            edge_now *= min(1.0, (step + 1) / config.edge_ramp)
        if self.monitor is not None and edge_now > 0:
            edge_now *= edge_gate(self.monitor.recall()[self.counts > 0])
        if self.lambda_edge * self.edge_scale > 0:
            # Measured (and reported) whenever the term is on, also while the ramp or the
            # gate holds its weight at 0, so that the reports' parts stay the same.
            probs = model.probabilities(logits)
            edge = losses.edge_aware_potts(probs, xt, sigma=self.edge_sigma)
            if self.edge_flux > 0:
                flux = losses.intensity_flux(probs, xt, sigma=config.edge_flux_sigma)
                edge = edge + self.edge_flux * flux
            if edge_now > 0:
                loss = loss + edge_now * edge
        consistency = None
        if self.teacher is not None:
            with torch.no_grad(), self.autocast():
                taught = model.probabilities(self.teacher(xt))
            # its own probabilities (not the edge term's): one graph branch per term, as the
            # runs in benchmarks/results/probe_optimizer.md were trained
            consistency = losses.consistency_mse(model.probabilities(logits), taught, ~mask)
            loss = loss + config.consistency * consistency
        if self.monitor is not None:
            self.monitor.update(logits.detach(), yt, model.sigmoid)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update_parameters(net)
        if self.teacher is not None:
            self.teacher.update_parameters(net)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training diverged: loss is {loss_value} at step {step + 1}")
        return loss_value, edge, consistency

    def guard(self, step: int) -> None:
        """After ``step`` steps: switch the edge term off, then boost a class whose painted
        pixels the network does not give back (``TrainConfig.guard``)."""
        if self.monitor is None or step < GUARD_WARMUP or step - self.last_action < GUARD_COOLDOWN:
            return
        recall = self.monitor.recall()
        present = np.flatnonzero(self.counts > 0)
        if not len(present):
            return
        worst = int(present[np.nanargmin(recall[present])])
        if recall[worst] >= GUARD_RECALL:
            return
        names = self.model.class_names
        name = (names[worst] if worst < len(names) else "") or f"class {worst + 1}"
        what = f"{recall[worst]:.0%} of the painted {name}"
        if self.lambda_edge * self.edge_scale > 0:
            # A regulariser that keeps the strokes from being learnt has no place in this
            # run: halving it only delays the recovery.
            self.edge_scale = 0.0
            self.notes.append(
                f"step {step}: edge-aware term switched off (only {what} pixels reproduced)"
            )
            self.last_action = step
        elif self.boost[worst] < GUARD_MAX_BOOST:
            self.boost[worst] *= 2
            self.set_loss()
            self.notes.append(
                f"step {step}: loss weight of {name} raised {self.boost[worst]:g}x (only {what} "
                "pixels reproduced)"
            )
            self.last_action = step

    def decay_lr(self, step: int, elapsed: float) -> None:
        """The learning rate for the step after ``step``: the warm-up, then the budget's decay."""
        factor = 1.0
        if self.config.lr_decay:
            fraction = budget_fraction(self.config, step, elapsed)
            if fraction is not None:
                factor = lr_factor(fraction)
        if self.config.lr_warmup:
            factor *= min(1.0, (step + 1) / self.config.lr_warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * factor

    def recalibrate(self, net: torch.nn.Module) -> None:
        """Re-measure batch-norm statistics for ``net``'s weights (torch's ``update_bn``): the
        running ones lag behind the weights and do not belong to averaged weights at all."""
        if not self.has_batchnorm:
            return
        batches = [
            torch.from_numpy(self.sampler.uniform_batch(self.config.batch_size)).to(self.device)
            for _ in range(4)
        ]
        with self.autocast():
            update_bn(batches, net)

    def finish(self) -> None:
        """The model ends with the averaged weights (also when stopped early)."""
        if self.average is not None:
            copy_parameters(self.average.module, self.net)
            self.average = None

    def averaged_model(self) -> SegModel:
        """The model with the averaged weights (batch norm recalibrated), for a prediction."""
        if self.average is None:
            return self.model
        self.recalibrate(self.average.module)
        return replace(self.model, net=self.average.module)

    def apply(self, new_scribbles: Any, step: int = 0) -> None:
        """Scribbles sent to the generator after ``step`` steps; edits cost time in proportion
        to the stroke, a full array in proportion to the image. A class the forest taught that
        is now painted on enough pixels is taught no more (and a note says so)."""
        K, spatial = self.K, self.view.spatial_shape
        for item in scribble_items(new_scribbles, len(spatial)):
            if isinstance(item, ScribbleEdit):
                self.counter.update(*self.sampler.apply_edit(item, K))
                continue
            new = check_scribbles(item, spatial)
            k_new = present_classes(new)
            if len(k_new) == 0:
                raise ValueError("the new scribbles hold no labels")
            if int(k_new.max()) > K:
                raise ValueError(
                    f"the new scribbles hold label {int(k_new.max())} but the model has {K} "
                    "classes; start a new training to add a class"
                )
            self.counter = weights.ClassCounts(K)
            self.counter.add(new)
            self.sampler.set_labels(new)
        self.set_loss()
        sparse = forest_teacher.sparse_classes(self.counts, self.config.forest_teacher_painted)
        gone = sorted(self.forest_classes - set(sparse.tolist()))
        if gone:  # for good: the set only shrinks, so erased strokes do not bring it back
            self.teach(self.forest_classes - set(gone))
            said = forest_teacher.named(gone, self.counts, self.model.class_names)
            self.notes.append(f"step {step}: the random forest no longer teaches {said}")

    def close(self, previous_threads: int) -> None:
        self.finish()  # stopped early (close() or an error): keep the averaged weights
        self.model.optimizer_state = kept_state(self.optimizer, self.config)
        del self.optimizer
        self.teacher = None  # its weights leave the device's memory with the optimiser's
        _release(self.net, self.device, previous_threads)


def _run(
    view: ImageView,
    labels: np.ndarray,
    model: SegModel,
    config: TrainConfig,
    device: torch.device,
    previewer: Previewer | None,
    loss_factory: LossFactory,
    loss_name: str,
) -> Generator[TrainReport, ScribbleUpdate | None, SegModel]:
    previous_threads = torch.get_num_threads()
    run: _Run | None = None
    try:
        run = _Run(view, labels, model, config, device, loss_factory)
        model.train_settings = {
            **config.to_dict(),
            "device": run.description,
            "image_shape": list(view.spatial_shape),
            "channels": view.channels,
            "edge_sigma_used": None if run.edge_sigma is None else round(float(run.edge_sigma), 5),
            "lambda_edge_used": run.lambda_edge,
            "edge_flux_used": run.edge_flux,
            "forest_taught": bool(run.forest_classes),
            "lr_used": run.lr,
        }
        if loss_name != config.loss:  # a loss of one's own: its factory and what it built
            model.train_settings["loss"] = f"{loss_name} -> {type(run.loss_fn).__name__}"
        step = 0
        # The clock starts after the set-up (the first optimiser of a process imports
        # torch._dynamo, seconds on a small CPU), so a budget buys training steps.
        t0 = time.perf_counter()
        if previewer is not None:
            previewer.start()
        while True:
            loss_value, edge, consistency = run.step(step)
            step += 1
            run.guard(step)
            elapsed = time.perf_counter() - t0
            finishing = previewer is not None and previewer.finish.is_set()
            done = (
                finishing
                or (config.steps is not None and step >= config.steps)
                or (config.seconds is not None and elapsed >= config.seconds)
            )
            final = done and config.final_prediction
            want_preview = previewer is not None and not final and previewer.due(step)
            if done:
                run.finish()
                run.recalibrate(run.net)
            run.decay_lr(step, elapsed)
            prediction, region = None, None
            if final or want_preview:
                prediction, region = preview.report_prediction(
                    run, previewer, final, finishing, step
                )
            model.train_settings["steps_done"] = step
            model.train_settings["seconds_done"] = round(elapsed, 3)
            if run.notes:
                model.train_settings["lambda_edge_used"] = run.lambda_edge * run.edge_scale
                model.train_settings["guard_notes"] = list(run.notes)
            report = TrainReport(
                step=step,
                loss=loss_value,
                parts=_loss_parts(run.loss_fn, loss_name, loss_value, edge, consistency),
                class_weights=run.class_weights.copy(),
                counts=run.counts.copy(),
                elapsed=elapsed,
                device=run.description,
                prediction=prediction,
                region=region,
                model=model,
                done=done,
                stopped=finishing,
                stroke_recall=None if run.monitor is None else run.monitor.recall(),
                notes=tuple(run.notes),
                painted_accuracy=preview.painted_in(run, prediction, region),
            )
            new_scribbles = yield report
            if done:
                break
            if new_scribbles is not None:
                run.apply(new_scribbles, step)
    finally:
        if run is not None:
            run.close(previous_threads)
        else:  # the set-up failed: the network leaves the device all the same
            _release(model.net, device, previous_threads)
    return model
