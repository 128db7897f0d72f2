"""The state behind the SegLab dock widget: classes, counts, model, the current run, overlays.

:class:`Session` owns everything the dock shows and does: the classes, the scribbles counter,
the trainer and its model, the running training (its layers, budget and the sync that sends
strokes to it), the prediction of other layers, and the overlay layers. It turns layer events
and requests into core calls (through :class:`~napari_seglab._qt.training.Trainer`) and
training updates into layer updates, and says what happened through Qt signals. The widget
(:mod:`~napari_seglab._qt.widget`) is a view: it builds the controls, forwards choices and
clicks here, and shows what the signals say.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import QObject, Signal

from napari_seglab._qt import align, weights_panel
from napari_seglab._qt import layers as lyr
from napari_seglab._qt.channels import ChannelChoice, pooled_counts, training_inputs
from napari_seglab._qt.classes import (
    SegClass,
    apply_classes,
    classes_from_layer,
    default_class,
    default_classes,
)
from napari_seglab._qt.model_actions import ModelActions, keep_before
from napari_seglab._qt.readout import NoteTracker
from napari_seglab._qt.scribble_sync import ScribbleSync
from napari_seglab._qt.training import Run, Trainer, Update
from napari_seglab._qt.weights_panel import ScribbleCounter

if TYPE_CHECKING:
    import napari

    from napari_seglab._qt.settings import Settings
    from napari_seglab.core.model import SegModel


class Session(ModelActions, QObject):
    """What the SegLab dock works on: classes, counts, model, the current run, its overlays.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are read and written.

    Signals
    -------
    status(str, str)
        The final word of an action, for the status line; the level (``"info"``,
        ``"warning"``, ``"error"``) asks for a notification too, ``""`` for none.
    notice(str)
        Something to notify without changing the status line (a note of the trainer).
    classesChanged()
        :attr:`classes` changed (added, renamed, read from a layer or a model).
    countsChanged(object)
        Painted pixels per class, ``(K,)`` int64, of the scribbles in use.
    scribblesChosen(object)
        The session chose the scribbles layer itself (or refused a choice): the layer or None.
    changed()
        What is possible changed (a run started or ended, a model, a layer came or went).
    started(bool)
        A training started; True when it continues the current model.
    reported(object)
        A ``TrainReport`` of the running training, after its preview was shown.
    finished(object)
        The training ended; its last ``TrainReport`` or None.
    modelReplaced(str, object)
        The model was reset (``"reset"``), loaded (``"load"``) or the last training undone
        (``"undo"``, with what the widget showed of the model that is back:
        ``Before.shown``): the loss curve and readout start over, or show that curve.
    """

    status = Signal(str, str)
    notice = Signal(str)
    classesChanged = Signal()
    countsChanged = Signal(object)
    scribblesChosen = Signal(object)
    changed = Signal()
    started = Signal(bool)
    reported = Signal(object)
    finished = Signal(object)
    modelReplaced = Signal(str, object)
    batchProgress = Signal(int, int)  # images of a folder predicted, of how many

    def __init__(self, viewer: napari.Viewer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.classes: list[SegClass] = default_classes(2)
        self.trainer = Trainer(self)
        self.counter = ScribbleCounter(num_classes=len(self.classes), parent=self)
        #: the running training (None when idle)
        self.run: Run | None = None
        #: the running prediction of a layer (None when idle)
        self.apply_worker = None
        #: what the overlay of the running (or last) training shows: "forest" (the quick
        #: forest, before the network does better), "cnn", or None (nothing yet)
        self.overlay_source: str | None = None
        self.closed = False
        #: the model trained since it was last saved or loaded: kept on close (see close)
        self.model_unsaved = False
        self._image: Image | None = None
        #: the channels the model sees, and other images to train on with the image (each
        #: with its "<image> scribbles" layer); the widget's pickers set them
        self.channel_choice = ChannelChoice()
        self.other_images: list[Image] = []
        # the scribbles layer in use (a Labels layer made here or picked by the user and that
        # looks like scribbles); layers refused as scribbles are never chosen automatically
        self._scribbles: Labels | None = None
        self._refused: list[weakref.ref] = []
        self._notes = NoteTracker()
        self._stop_reason: str | None = None
        self._training_checks = False
        self._apply_stop: list = []  # hook handle and stop flag of the running prediction
        self.trainer.reported.connect(self._on_update)
        self.trainer.finished.connect(self._on_training_finished)
        self.counter.countsChanged.connect(self._on_counts)
        self.counter.invalid.connect(self._on_scribbles_invalid)
        events = viewer.layers.events
        events.removed.connect(self._on_layer_removed)
        events.inserted.connect(self._emit_changed)

    # --- state ---
    @property
    def image(self) -> Image | None:
        """The image to train on."""
        return self._image

    @property
    def scribbles(self) -> Labels | None:
        """The Labels layer holding the scribbles."""
        return self._scribbles

    @property
    def running(self) -> bool:
        """Whether a training runs (also while it is stopping)."""
        return self.trainer.running

    @property
    def stopping(self) -> bool:
        """Whether the running training was asked to stop."""
        return self.trainer.running and self._stop_reason is not None

    @property
    def notes(self) -> list[str]:
        """What the trainer changed on its own in this run, oldest first."""
        return list(self._notes.shown)

    def progress(self) -> float:
        """Share of the running training's budget used, 0..1 (0 when idle or unbounded)."""
        report, run = self.trainer.last_report, self.run
        if report is None or run is None:
            return 0.0
        if run.steps:
            fraction = report.step / run.steps
        elif run.seconds:
            fraction = report.elapsed / run.seconds
        else:
            fraction = 0.0
        return min(1.0, fraction)

    def _emit_changed(self, *_args) -> None:
        if not self.closed:
            self.changed.emit()

    def _say(self, text: str, level: str = "") -> None:
        """Where every action ends: the status line, and with ``level`` a notification."""
        if not self.closed:
            self.status.emit(text, level)

    # --- layers and classes ---
    def may_auto_select(self, layer: Labels) -> bool:
        """Whether ``layer`` may become the scribbles without the user picking it (see
        ``layers.is_scribbles_candidate``); never a layer refused before."""
        if (
            self.viewer is None
            or self.was_refused(layer)
            or not lyr.is_scribbles_candidate(self.viewer, layer)
        ):
            return False
        image = self._image  # another image's scribbles only where they fit this one
        return (
            image is None
            or layer.name == lyr.scribbles_name(image)
            or tuple(layer.data.shape) == lyr.spatial_shape(image)
        )

    def was_refused(self, layer) -> bool:
        """Whether ``layer`` was refused as scribbles (and not repaired and picked since)."""
        return layer is not None and any(ref() is layer for ref in self._refused)

    def set_image(self, image: Image | None) -> None:
        """Train on ``image``; its ``"<image> scribbles"`` layer becomes the scribbles."""
        self._image = image
        if self.trainer.running and self.run is not None and image is not self.run.image:
            self._stop_because("the image selection changed")
        if image is not None:
            scribbles = lyr.find_scribbles(self.viewer, image)
            if (
                scribbles is not None
                and scribbles is not self._scribbles
                and not self.was_refused(scribbles)
            ):
                self.set_scribbles(scribbles)
                self.scribblesChosen.emit(self._scribbles)
        self._check_placement()
        self._emit_changed()

    def set_scribbles(self, scribbles: Labels | None) -> None:
        """Use ``scribbles`` (None: none); a layer that is no scribbles is refused, untouched,
        and the previous choice stays (announced through ``scribblesChosen``)."""
        if scribbles is not None and scribbles is not self._scribbles:
            problem = lyr.scribbles_problem(scribbles)
            if problem is not None:
                self._refuse(scribbles, problem)
                return
        if self.trainer.running and self.run is not None and scribbles is not self.run.scribbles:
            self._stop_because("the scribbles selection changed")
        self._scribbles = scribbles
        self._refused = [ref for ref in self._refused if ref() not in (None, scribbles)]
        if scribbles is not None:
            stored = classes_from_layer(scribbles)
            if stored:
                self.classes = stored
            else:
                top = int(np.asarray(scribbles.data).max()) if scribbles.data.size else 0
                # a plain layer's classes: as many as it holds (the names of those kept stay)
                self.classes = self.classes[: max(2, top)]
                while len(self.classes) < top:
                    self.classes.append(default_class(len(self.classes) + 1))
                apply_classes(scribbles, self.classes)
            self.classesChanged.emit()
        self.counter.set_layer(scribbles, None if scribbles is None else len(self.classes))
        self._check_placement()
        self._emit_changed()

    def _refuse(self, layer: Labels, problem: str) -> None:
        """Say why ``layer`` is not used as scribbles; go back to the previous choice.

        The layer is left exactly as it was (data, colormap, features, metadata).
        """
        if not self.was_refused(layer):
            self._refused.append(weakref.ref(layer))
        if self._scribbles is not None and self._scribbles not in self.viewer.layers:
            self._scribbles = None
            self.counter.set_layer(None)
        self.scribblesChosen.emit(self._scribbles)
        self._say(
            f"Layer '{layer.name}' is not used as scribbles: {problem}. "
            "It is left as it is; New scribbles adds a layer to paint in.",
            "warning",
        )
        self._emit_changed()

    def new_scribbles(self) -> Labels | None:
        """Add an empty ``"<image> scribbles"`` layer for the image and use it.

        An existing usable ``"<image> scribbles"`` layer is selected instead of adding one.
        """
        image = self._image
        if image is None:
            self._say("Open an image first.", "warning")
            return None
        existing = lyr.find_scribbles(self.viewer, image)
        if existing is not None and lyr.scribbles_problem(existing) is None:
            self.set_scribbles(existing)
            self.scribblesChosen.emit(existing)
            self.viewer.layers.selection.active = existing
            existing.mode = "paint"
            self._check_placement()
            return existing
        if self.trainer.running:
            self._say("Stop training before creating a new scribbles layer.", "warning")
            return None
        layer = lyr.new_scribbles_layer(self.viewer, image, self.classes)
        self.set_scribbles(layer)
        self.scribblesChosen.emit(layer)
        self._say(f"Paint in '{layer.name}': 1 = background, 2 = foreground.")
        return layer

    def add_class(self) -> SegClass:
        """Add class ``K+1`` (named ``class K+1``) and select it for painting."""
        cls = default_class(len(self.classes) + 1)
        self.classes.append(cls)
        self._apply_classes()
        self.counter.set_num_classes(len(self.classes))
        if self._scribbles is not None:
            self._scribbles.selected_label = len(self.classes)
        return cls

    def rename_class(self, class_id: int, name: str) -> None:
        """Call class ``class_id`` (1-based) ``name`` in every layer made here."""
        self.classes[class_id - 1] = SegClass(name, self.classes[class_id - 1].color)
        self._apply_classes()

    def _apply_classes(self) -> None:
        self.classesChanged.emit()
        targets = [self._scribbles]
        if self._image is not None:
            pred = lyr.overlay_of(self.viewer, self._image, "prediction")
            if pred is not None:  # never a user's layer
                targets.append(pred)
        for layer in targets:
            if layer is not None:
                apply_classes(layer, self.classes)

    def placement_problem(self, image: Image | None, scribbles: Labels | None) -> str | None:
        """Why ``scribbles`` would train on other pixels of ``image`` than painted (another
        shape, or another placement in the viewer), or None."""
        if image is None or scribbles is None:
            return None
        shape, spatial = tuple(scribbles.data.shape), lyr.spatial_shape(image)
        if shape != spatial:
            return f"its shape {shape} is not the spatial shape of '{image.name}', {spatial}"
        return align.placement_problem(image, scribbles, scribbles.ndim)

    def _check_placement(self) -> None:
        """Say at once (status line) when the chosen pair does not fit (shapes) or is not
        aligned; Train refuses it."""
        problem = self.placement_problem(self._image, self._scribbles)
        if problem is not None:
            self._say(f"Layer '{self._scribbles.name}' cannot be trained on: {problem}.")

    def _on_scribbles_invalid(self, message: str) -> None:
        # during Train's own checks the refusal says it (one message per action)
        if not self._training_checks:
            self._say(f"{message}.", "warning")

    def ensure_classes(self, n: int) -> None:
        """At least ``n`` classes: a class painted (here, or in another image trained with this
        one) gets its default name and colour."""
        if len(self.classes) >= n:
            return
        while len(self.classes) < n:
            self.classes.append(default_class(len(self.classes) + 1))
        self._apply_classes()

    def _on_counts(self, counts: np.ndarray) -> None:
        if self.closed:
            return
        self.ensure_classes(counts.size)
        self.countsChanged.emit(counts)

    # --- strokes during training ---
    def _on_scribbles_edited(self, edits: list) -> None:
        """A stroke in the training scribbles: its pixels go to the training (no array)."""
        if self.closed or self.run is None or not self.trainer.running:
            return
        top = max((int(e.values.max()) for e in edits if e.values.size), default=0)
        low = min((int(e.values.min()) for e in edits if e.values.size), default=0)
        k = self.run.num_classes
        if low < 0:
            self._stop_because("a negative label was painted")
        elif top > k:
            self._stop_because(
                f"class {top} was painted and the model has {k} classes; "
                "press Train to start a model with the new class"
            )
        elif not self.counter.counts.any():
            self._stop_because("every stroke was erased")
        else:
            self.trainer.send(edits)

    def _on_scribbles_replaced(self) -> None:
        """Undo, redo or a new data array: the training gets the whole array (the worker
        copies and checks it; scribbles it cannot train on end the run with the reason)."""
        if self.closed or self.run is None or not self.trainer.running:
            return
        self.trainer.send(self.run.scribbles.data)

    # --- training ---
    @contextlib.contextmanager
    def _checking_for_training(self) -> Iterator[None]:
        self._training_checks = True
        try:
            yield
        finally:
            self._training_checks = False

    def start_training(self, settings: Settings) -> bool:
        """Train on the image and scribbles in the background; False if not started (the
        reason is in ``status``). Continues from the current model when it has classes enough.
        """
        image, scribbles = self._image, self._scribbles
        if self.trainer.running:
            return False
        if self.apply_worker is not None:
            return self._not_started("wait for the running prediction to finish", "warning")
        if image is None or scribbles is None:
            return self._not_started(
                "choose an image and a scribbles layer (New scribbles)", "warning"
            )
        if tuple(scribbles.data.shape) != lyr.spatial_shape(image):
            return self._not_started(
                f"scribbles shape {tuple(scribbles.data.shape)} does not match image "
                f"'{image.name}' spatial shape {lyr.spatial_shape(image)}"
            )
        # nothing here reads every pixel: the counter's counts and range check are kept up to
        # date stroke by stroke; the worker checks its own copy again
        with self._checking_for_training():
            if self.counter.layer is not scribbles:
                self.counter.set_layer(scribbles)  # counts it
            elif (
                self.counter.recount_pending
                and np.prod(scribbles.data.shape) <= weights_panel.FULL_RECOUNT_LIMIT
            ):
                self.counter.recount()  # the data were just replaced
        problem = (
            lyr.scribbles_problem(scribbles, read_values=False)
            or self.counter.problem
            or self.placement_problem(image, scribbles)
        )
        if problem is not None:
            return self._not_started(f"layer '{scribbles.name}' cannot be trained on: {problem}")
        model, choice = self.trainer.model, self.channel_choice
        try:
            data, others, names = training_inputs(self.viewer, image, choice, self.other_images)
        except ValueError as exc:
            return self._not_started(str(exc))
        counts = pooled_counts(self.counter.counts, [strokes for _, strokes in others])
        if int(np.count_nonzero(counts)) < 2:
            why = "paint at least two classes (background and foreground)"
            return self._not_started(why, "warning")
        top = int(np.flatnonzero(counts).max()) + 1  # highest painted class id
        other_channels = model is not None and not choice.matches(model, image)
        fresh = model is None or top > model.num_classes or other_channels
        num_classes = max(2, top) if fresh else model.num_classes
        try:
            config = choice.config(settings.train_config())
            before = keep_before(self.viewer, image, model)  # for Undo training
            # the overlay layers exist from the start (empty), so that previews only write data
            made: list = []
            lyr.ensure_prediction_layers(
                self.viewer, image, num_classes, self.classes, created=made
            )
            region = lyr.visible_region(image)
            if fresh and model is not None:
                self.trainer.reset()
            # the layers' arrays as they are (numpy, dask, zarr): the worker copies them
            self.trainer.start(data, scribbles.data, config, region, others=others, names=names)
        except (ValueError, TypeError, RuntimeError) as exc:
            return self._not_started(str(exc))
        self.pending_before = before
        sync = ScribbleSync(scribbles, parent=self)
        sync.edited.connect(self._on_scribbles_edited)
        sync.replaced.connect(self._on_scribbles_replaced)
        budget = (config.seconds, config.steps)
        self.run = Run(
            image,
            scribbles,
            sync,
            num_classes,
            *budget,
            settings.device,
            len(others),
            made,
            inputs=(*choice.extra, *self.other_images),
        )
        self._stop_reason = None
        self.overlay_source = None
        self._connect_run(self.run)
        self._notes.reset()
        self.started.emit(not fresh)
        if fresh and model is not None:
            why = f"it took {model.input_note()}, now {choice.describe(image)}"
            if not other_channels:
                whose = "the scribbles of the images" if others else "the scribbles"
                why = f"the model had {model.num_classes} classes and {whose} hold {top}"
            back = (
                "Undo training brings the model before it back"
                if other_channels
                else f"Undo training brings the {model.num_classes}-class model back"
            )
            self._say(f"Training a new model: {why} ({back}).", "info")
        else:
            self._say("Training… (first step)")
        self._emit_changed()
        return True

    def _not_started(self, problem: str, level: str = "error") -> bool:
        """A refused Train: say why (status line and notification); returns False."""
        self._say(f"Training not started: {problem}.", level)
        return False

    def stop_training(self) -> None:
        """Ask the training to stop at its next step: the model so far is kept and the region
        in view is predicted with it (the core's final prediction; :meth:`stop_now` or closing
        abandons it)."""
        if self.trainer.running and self._stop_reason is None:
            self._stop_reason = ""
            self.trainer.stop()
            self._say("Stopping… (predicting the view with the model so far)")
            self._emit_changed()

    def stop_now(self) -> None:
        """End the run at once, without its final prediction (the overlay keeps the last
        preview; Apply to layer predicts the image later)."""
        if self.trainer.running:
            if self._stop_reason is None:
                self._stop_reason = ""
            self.trainer.abort()
            self._say("Stopping… (prediction skipped: Apply to layer predicts the image)")
            self._emit_changed()

    def _stop_because(self, reason: str, abort: bool = False) -> None:
        """Stop the run and say why, once per run (several events may ask for it). ``abort``:
        without the final prediction (the layers it was for are gone or renamed)."""
        if self.trainer.running and self._stop_reason is None:
            self.stop_training()
            if abort:
                self.trainer.abort()
            self._stop_reason = reason
            self._say(f"Training stopped because {reason}.", "info")

    def _connect_run(self, run: Run) -> None:
        camera = lyr.camera(self.viewer)
        camera.events.center.connect(self._on_view_changed)
        camera.events.zoom.connect(self._on_view_changed)
        self.viewer.dims.events.current_step.connect(self._on_view_changed)
        for layer in (run.image, run.scribbles, *run.inputs):
            layer.events.name.connect(self._on_training_layer_renamed)
        for layer in (run.image, *run.inputs):
            layer.events.data.connect(self._on_training_image_replaced)

    def _end_run(self) -> Run | None:
        """Disconnect the run from the viewer and forget it; returns it."""
        run, self.run = self.run, None
        if run is None:
            return None
        for layer in (run.image, run.scribbles, *run.inputs):
            layer.events.name.disconnect(self._on_training_layer_renamed)
        for layer in (run.image, *run.inputs):
            layer.events.data.disconnect(self._on_training_image_replaced)
        if self.viewer is not None:
            camera = lyr.camera(self.viewer)
            camera.events.center.disconnect(self._on_view_changed)
            camera.events.zoom.disconnect(self._on_view_changed)
            self.viewer.dims.events.current_step.disconnect(self._on_view_changed)
        run.sync.close()
        return run

    def _on_view_changed(self, event=None) -> None:
        if self.run is not None:
            self.trainer.set_region(lyr.visible_region(self.run.image))

    def _on_training_layer_renamed(self, event=None) -> None:
        source = getattr(event, "source", None)
        now = f" (now '{source.name}')" if source is not None else ""
        self._stop_because(f"a training layer was renamed{now}", abort=True)

    def _on_training_image_replaced(self, event=None) -> None:
        # the run trains on a copy of the old pixels, and its overlay would not fit a new shape
        source = getattr(event, "source", None)
        run = self.run
        what = "the image's data"
        if run is not None and source is not None and source is not run.image:
            what = f"the data of layer '{source.name}'"
        self._stop_because(f"{what} was replaced; press Train to train on the new data", abort=True)

    def _on_layer_removed(self, event) -> None:
        layer, run = event.value, self.run
        if (
            run is not None
            and layer is not None
            and any(layer is x for x in (run.image, run.scribbles, *run.inputs))
        ):
            self._stop_because(f"layer '{layer.name}' was removed", abort=True)
        self._emit_changed()

    def _on_update(self, update: Update) -> None:
        """One ``Update`` of the training worker: its preview into the overlay, its report and
        the trainer's new notes out through the signals."""
        if self.closed:
            return
        report = update.report
        fresh = [] if report is None else self._notes.new(report)  # each once per run
        if update.prediction is not None and self.run is not None:
            self._show_prediction(self.run.image, update.prediction, update.region)
            self.overlay_source = update.source
            if update.source == "forest":
                self._say("Training… (first step; forest overlay)")
        if report is not None:
            self.reported.emit(report)
        for note in fresh:
            self.notice.emit(note)

    def _on_training_finished(self, model: SegModel | None) -> None:
        if self.closed:
            return
        run = self._end_run()
        report = self.trainer.last_report
        if self.trainer.model is not None and report is not None:
            self.model_unsaved = True
        self.settle_undo()
        error = self.trainer.error
        if error is not None:
            if run is not None and self.overlay_source is None:
                # failed before its first preview (a NaN found in the image): no empty layers
                for layer in run.made:
                    if layer in self.viewer.layers:
                        self.viewer.layers.remove(layer)
            self._say(f"Training failed: {error}", "error")
        elif report is not None:
            state = "Stopped" if report.stopped or not report.done else "Done"
            if self._stop_reason:  # the reason stays on the status line, not in a toast only
                state = f"Stopped because {self._stop_reason}"
            self._say(
                f"{state}: step {report.step} · loss {report.loss:.4f} · {report.elapsed:.1f} s"
            )
        else:
            why = f" because {self._stop_reason}" if self._stop_reason else ""
            self._say(f"Stopped before the first step{why}.")
        self._stop_reason = None
        self.finished.emit(report)
        self._emit_changed()
        if run is not None and run.others and model is not None and report is not None:
            self.apply_to_layer(run.image, run.device)  # no previews: the image, predicted

    def reset_model(self) -> None:
        """Forget the model (not while training)."""
        if self.trainer.running:
            return
        self.trainer.reset()
        self.before = None
        self.model_unsaved = False
        self._notes.reset()
        self.modelReplaced.emit("reset", None)
        self._say("Model reset: the next training starts from scratch.")
        self._emit_changed()

    # --- teardown ---
    def _keep_unsaved_model(self) -> Path | None:
        """A model trained and not saved is written to ``<user data folder>/models`` when the
        dock closes (it was dropped without a word), and a notification names the file."""
        model = self.trainer.model
        if model is None or not self.model_unsaved:
            return None
        import time

        import platformdirs
        from napari.utils.notifications import show_warning

        from napari_seglab.core.modelio import save_model

        folder = platformdirs.user_data_path("napari-seglab", appauthor=False) / "models"
        image = self._image.name if self._image is not None else "model"
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in image)
        path = folder / f"{name[:60]}-{time.strftime('%Y%m%d-%H%M%S')}.seglab"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            save_model(model, path)
        except (OSError, ValueError) as exc:
            show_warning(f"SegLab: the trained model was not saved and could not be kept: {exc}")
            return None
        self.model_unsaved = False
        show_warning(f"SegLab: the trained model was not saved; it is kept in {path} (Load model)")
        return path

    def close(self, timeout: float = 10.0) -> None:
        """Stop the training and the prediction (waiting up to ``timeout`` s for each) and
        let go of the viewer and its layers. Idempotent; says nothing more afterwards."""
        if self.closed:
            return
        self.closed = True
        self.trainer.stop_and_wait(timeout)
        self._keep_unsaved_model()
        worker = self.apply_worker
        if worker is not None:
            if self._apply_stop:
                self._apply_stop[1][0] = True
            worker.done.wait(timeout)
            if worker.done.is_set():
                self._release_apply()
        events = self.viewer.layers.events
        events.removed.disconnect(self._on_layer_removed)
        events.inserted.disconnect(self._emit_changed)
        self._end_run()
        self.counter.close()
        # drop every reference to the viewer and its layers, so that a closed viewer is freed
        # by reference counting even while this object waits for the garbage collector
        self._image = self._scribbles = None
        self._refused = []
        self.viewer = None
