"""What the dock does with model files and with other images: save, load, apply; and the
way back to the model (and overlay) from before the last training.

:class:`ModelActions` is a part of :class:`~napari_seglab._qt.session.Session`, kept in its own
module: it uses the session's trainer, classes, viewer, signals and status line
(``self._say``), and the session's close ends a prediction it started.
"""

from __future__ import annotations

import copy
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QTimer

from napari_seglab._qt import guidance
from napari_seglab._qt import layers as lyr
from napari_seglab._qt.channels import ChannelChoice, check_channel_count
from napari_seglab._qt.classes import SegClass, default_class
from napari_seglab._qt.training import predict_worker

if TYPE_CHECKING:
    from napari.layers import Image

    from napari_seglab.core.inference import Prediction
    from napari_seglab.core.model import SegModel


#: The overlays (prediction and probability layers) of the model before a training are kept for
#: "Undo training" up to this many bytes in all; larger or lazy ones are not (the model is).
UNDO_OVERLAY_BYTES = 512 * 1024**2

#: Overlays larger than this in all are copied off the GUI thread (copies of 320 and 477 MiB
#: held it 1.0 and 1.7 s on a 2-core AMD EPYC, ``benchmarks/bench_undo_copy.py``); smaller
#: ones at once.
UNDO_COPY_IN_THREAD_BYTES = 16 * 1024**2

#: How often held previews look whether the copy is done (ms).
HOLD_POLL_MS = 20

_copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-undo-copy")


def _copies(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [a.copy() for a in arrays]


@dataclass
class Before:
    """What a training may replace, for "Undo training".

    Attributes
    ----------
    model : SegModel
        A deep copy of the model at the start (the training changes the model in place).
    original : SegModel
        The model object itself, to tell whether the training changed anything.
    image : weakref.ref
        The image layer trained on.
    layers : list of weakref.ref
        Its overlay layers made by SegLab; empty when they were too large or lazy (``kept``
        False) or not there (``kept`` True).
    names : list of str
        Their names then: a layer renamed since is the user's to keep, and not written.
    copies : Future
        Of the list of copies of those layers' data, one per layer (:attr:`overlays`). Large
        overlays are copied in a thread: until :attr:`ready`, nothing may write into them
        (the session holds back the training's previews).
    kept : bool
    roles : list of str
        The layers' roles (``"prediction"``, ``"probability"``), to find what the training
        made in their place.
    shown : object
        What the widget showed of the model then (its loss curve), given back with
        ``modelReplaced("undo", shown)``; None until the widget sets it.
    """

    model: SegModel
    original: SegModel
    image: weakref.ref
    layers: list[weakref.ref]
    names: list[str]
    copies: Future = field(repr=False)
    kept: bool
    roles: list[str] = field(default_factory=list)
    shown: object = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        """Whether the overlays have been copied."""
        return self.copies.done()

    @property
    def overlays(self) -> list[tuple[weakref.ref, np.ndarray]]:
        """``(layer, its name then, copy of its data)``; waits for the copies."""
        return list(zip(self.layers, self.names, self.copies.result(), strict=True))


def _overlay_layers(viewer, image: Image) -> list:
    """``image``'s prediction and probability layers, those SegLab made only."""
    found = [lyr.overlay_of(viewer, image, role) for role in ("prediction", "probability")]
    return [x for x in found if x is not None]


def keep_before(viewer, image: Image, model: SegModel | None) -> Before | None:
    """:class:`Before` for a training about to start on ``image`` (None without a model)."""
    if model is None:
        return None
    layers = _overlay_layers(viewer, image)
    arrays = [x.data for x in layers]
    size = sum(a.nbytes if isinstance(a, np.ndarray) else UNDO_OVERLAY_BYTES + 1 for a in arrays)
    kept = size <= UNDO_OVERLAY_BYTES
    if not kept:
        layers, arrays = [], []
    if size > UNDO_COPY_IN_THREAD_BYTES and kept:
        copies = _copier.submit(_copies, arrays)  # numpy copies without the GIL
    else:
        copies = Future()
        copies.set_result(_copies(arrays))
    refs = [weakref.ref(x) for x in layers]
    names = [x.name for x in layers]
    roles = [lyr.role(x) for x in layers]
    return Before(
        copy.deepcopy(model), model, weakref.ref(image), refs, names, copies, kept, roles=roles
    )


def _made_anew(viewer, image: Image, kept: list, roles: list[str]) -> bool:
    """Whether an overlay layer in ``kept`` (``(layer or None, name, data)``, of ``roles``)
    has gone from the viewer and an overlay SegLab made for ``image`` in that role took its
    place: the training made it anew (in another shape for a model of more classes, or after
    the user deleted it)."""
    layers = viewer.layers
    return any(
        (layer is None or layer not in layers) and lyr.overlay_of(viewer, image, role) is not None
        for (layer, _, _), role in zip(kept, roles, strict=True)
    )


def _unchanged(before: Before, model: SegModel | None) -> bool:
    """Whether ``model`` is the model ``before`` was taken of, with the same weights."""
    if model is not before.original:
        return False
    import torch  # imported by then (the widget loads it in the background, not on opening)

    kept, now = before.model.net.state_dict(), model.net.state_dict()
    return kept.keys() == now.keys() and all(torch.equal(kept[k], now[k]) for k in kept)


def _skipped_stores(stores: list[Path]) -> str:
    """What Apply to folder says of the Zarr stores it leaves out ("" for none): it predicts
    image files in memory, and a store, often larger than memory, is for ``seglab predict``,
    which reads it block by block."""
    if not stores:
        return ""
    names = ", ".join(p.name for p in stores[:3]) + (", ..." if len(stores) > 3 else "")
    return (
        f"; skipped {len(stores)} Zarr store(s) ({names}): Apply to folder reads image "
        "files; predict the stores with the model saved (Save model...) and "
        "`seglab predict MODEL.seglab FOLDER -o OUT`"
    )


class PredictionStopped(Exception):
    """Raised in the network's forward pass to abandon a prediction (the session closed)."""


def _reason(exc: BaseException) -> str:
    """What went wrong, for the user: an OS error's cause without the file names it carries
    (which may be an internal temporary file), else the exception's message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class ModelActions:
    """Save, load and apply the session's model, and undo its last training (a part of
    :class:`~napari_seglab._qt.session.Session`)."""

    #: What the last training replaced (:meth:`undo_training`), None when nothing.
    before: Before | None = None
    #: What the running training may replace, until it has changed the model.
    pending_before: Before | None = None
    #: Previews ``(image, prediction, region)`` held back until the overlays they would
    #: write into have been copied for Undo (:meth:`hold_preview`), and that copy.
    _held: tuple[list, Before | None] = ([], None)

    @property
    def busy(self) -> bool:
        """Whether a training or a prediction runs."""
        return self.trainer.running or self.apply_worker is not None

    @property
    def can_undo_training(self) -> bool:
        """Whether :meth:`undo_training` has a model to go back to (and nothing runs)."""
        return self.before is not None and not self.busy

    def settle_undo(self) -> None:
        """At the end of a training: Undo goes back to the model from before it, unless the
        training left the model as it was (it failed or was stopped before changing a
        weight), when Undo keeps what it had."""
        pending, self.pending_before = self.pending_before, None
        if pending is not None and not _unchanged(pending, self.trainer.model):
            self.before = pending

    def _show_prediction(self, image: Image, prediction: Prediction, region=None) -> None:
        """A training's preview into the overlays of ``region`` (or all the image), and the
        uncertainty once it is shown; held back while they are copied for Undo."""
        if self.hold_preview(image, prediction, region):
            return
        if image in self.viewer.layers:
            lyr.show_prediction(self.viewer, image, prediction, self.classes, region=region)
            guidance.refresh(self.viewer, image, region=region)

    def hold_preview(self, image: Image, prediction, region) -> bool:
        """Whether a preview of the training must wait, because the overlays it would write
        into are still being copied for Undo; it is shown, in its turn, once they are."""
        held = self._held[0]
        pending = self.pending_before
        if not held and (pending is None or pending.ready):
            return False
        if not held:
            held = []
            self._held = (held, pending)
            QTimer.singleShot(HOLD_POLL_MS, self._show_held)
        held.append((image, prediction, region))
        return True

    def _show_held(self) -> None:
        held, waiting = self._held
        if not held or self.closed:
            self._held = ([], None)
        elif waiting is not None and not waiting.ready:
            QTimer.singleShot(HOLD_POLL_MS, self._show_held)
        else:
            self._held = ([], None)
            for image, prediction, region in held:
                self._show_prediction(image, prediction, region)

    def undo_training(self) -> SegModel | None:
        """Go back to the model from before the last training, and to its overlay where it
        was kept (:data:`UNDO_OVERLAY_BYTES`), also where the training made an overlay layer
        anew (a third class gives the probabilities a class axis); overlay layers that were
        not there before (the user deleted them, or the training was on another image) are
        emptied, and the status says so. The scribbles stay as they are. One step back: the
        model the training made is dropped. Returns the model, None when there is nothing to
        go back to or a training or prediction runs (``status`` says why, as it says an
        overlay that could not be restored)."""
        before = self.before
        if before is None or self.busy:
            why = "training or predicting" if self.busy else "no training to undo"
            self._say(f"Nothing undone: {why}.", "warning")
            return None
        self.before = None
        self._held = ([], None)  # the undone training's last previews
        self.trainer.model = before.model
        self.model_unsaved = True
        state = "not"
        try:
            state = self._restore_overlays(before)
        finally:
            self._notes.reset()
            self.modelReplaced.emit("undo", before.shown)
            if state == "back":
                self._say("Training undone: the model and its overlay are back.")
            elif state == "emptied":
                self._say(
                    "Training undone: the model is back; overlay layers that were not there "
                    "before the training are emptied (Apply to layer shows its prediction).",
                    "warning",
                )
            else:
                self._say(
                    "Training undone: the model is back, its overlay is not (Apply to layer "
                    "shows it).",
                    "warning",
                )
            self._emit_changed()
        return before.model

    def _restore_overlays(self, before: Before) -> str:
        """Put back the overlays :class:`Before` kept (into the same layers, wherever they are,
        or into those the training made anew in their place), all of them or none, so that the
        prediction and probability layers stay of one model: ``"back"`` when they were. A layer
        renamed since is the user's to keep, as a training leaves it: it is not written, nor
        then the others (``"not"``). Overlay layers that were not there before are emptied
        (``"emptied"``)."""
        layers = self.viewer.layers
        kept = [(ref(), name, data) for ref, name, data in before.overlays]
        image = before.image()
        if (
            before.kept
            and image is not None
            and image in layers
            and _made_anew(self.viewer, image, kept, before.roles)
        ):
            # the training made an overlay anew (for a model of more classes the probabilities
            # gained a class axis): into the overlays SegLab has there now (never a layer of
            # the user's that took the old name), in the old model's shapes
            lyr.ensure_prediction_layers(self.viewer, image, before.model.num_classes, self.classes)
            remade = []
            for (layer, name, data), role in zip(kept, before.roles, strict=True):
                if layer is None or layer not in layers:
                    layer = lyr.overlay_of(self.viewer, image, role)
                    name = name if layer is None else layer.name
                remade.append((layer, name, data))
            kept = remade
        complete = before.kept and all(
            layer is not None
            and layer in layers
            and layer.name == name
            and tuple(layer.data.shape) == data.shape
            for layer, name, data in kept
        )
        if complete:
            for layer, _, data in kept:
                lyr.set_data(layer, data)
        state = "back" if complete else "not"
        if image is None or image not in layers:
            return state
        if before.kept:  # those not there before: the undone training made them
            # there before: by name, or the same layer renamed since (the user's to keep);
            # just put back: a layer the training made anew under another free name
            keep = {id(ref()) for ref in before.layers if ref() is not None}
            if complete:
                keep |= {id(layer) for layer, _, _ in kept}
            for layer in _overlay_layers(self.viewer, image):
                if layer.name in before.names or id(layer) in keep:
                    continue
                if not isinstance(layer.data, np.ndarray):
                    state = "not"
                    continue
                lyr.set_data(layer, np.zeros_like(layer.data))
                state = "emptied" if state == "back" else state
        guidance.refresh(self.viewer, image)
        return state

    def save_model(self, path: str | Path) -> Path | None:
        """Save the current model to ``path`` (the core's safe format); returns the path written.

        A path without a suffix gets ``.seglab``. Failures are said through ``status``.
        """
        from napari_seglab.core import modelio

        model = self.trainer.model
        if self.trainer.running:
            self._say("Model not saved: stop training first.", "warning")
            return None
        if model is None:
            self._say("Model not saved: train or load a model first.", "warning")
            return None
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".seglab")
        model.class_names = [c.name for c in self.classes[: model.num_classes]]
        try:
            modelio.save_model(model, path)
        except Exception as exc:  # noqa: BLE001 (a user sees a message, never a traceback)
            self._say(f"Model not saved to {path}: {_reason(exc)}", "error")
            return None
        if model is self.trainer.model:
            self.model_unsaved = False
        self._say(f"Model saved to {path}")
        return path

    def load_model(self, path: str | Path) -> SegModel | None:
        """Load a model saved by SegLab; the next training continues from it.

        Failures (not a SegLab file, unreadable) are said through ``status``; returns None.
        """
        from napari_seglab.core.modelio import load_model

        if self.trainer.running:
            self._say("Model not loaded: stop training first.", "warning")
            return None
        try:
            model = load_model(path)
        except Exception as exc:  # noqa: BLE001 (a user sees a message, never a traceback)
            self._say(f"Could not load a model from {path}: {_reason(exc)}", "error")
            return None
        self.trainer.model = model
        self.model_unsaved = False
        self.before = None
        k = int(model.num_classes)
        while len(self.classes) < k:
            self.classes.append(default_class(len(self.classes) + 1))
        for i, name in enumerate(model.class_names[:k]):
            self.classes[i] = SegClass(str(name), self.classes[i].color)
        self._apply_classes()
        self._notes.reset()
        self.modelReplaced.emit("load", None)
        self._say(f"Loaded model from {path} ({k} classes).")
        self._emit_changed()
        return model

    def apply_to_layer(self, image: Image | None, device: str):
        """Predict ``image`` with the current model in the background, on ``device``.

        Returns the started worker (or None); the result appears as ``"<image> prediction"``.
        Closing the session abandons the prediction at its next tile.
        """
        model = self.trainer.model
        if image is None or model is None:
            self._say("Not predicted: train or load a model and choose an image.", "warning")
            return None
        if self.busy:
            self._say(
                "Not predicted: wait for training or the running prediction to finish.", "warning"
            )
            return None
        # a lazy layer stays lazy: predicted block by block; the training image with the
        # other layers it was stacked with as channels
        choice = self.channel_choice if image is self.image else ChannelChoice()
        try:
            source = choice.input(image)
            check_channel_count(model, image, choice)
        except ValueError as exc:
            self._say(f"Not predicted: {exc}.", "error")
            return None
        worker = predict_worker(
            model, source if lyr.is_lazy(source) else np.asarray(source), device=device
        )
        # a flag the network checks before every forward pass: set on close, it ends the
        # prediction at its next tile instead of after the whole image
        stop = [False]

        def check(_module, _inputs) -> None:
            if stop[0]:
                raise PredictionStopped("the prediction was stopped")

        self._apply_stop = [model.net.register_forward_pre_hook(check), stop]
        outcome: dict[str, object] = {}
        worker.returned.connect(lambda pred: outcome.__setitem__("prediction", pred))
        worker.errored.connect(lambda exc: outcome.__setitem__("error", exc))
        worker.finished.connect(lambda: self._on_apply_finished(image, outcome))
        self.apply_worker = worker
        how = " block by block" if lyr.is_lazy(source) else ""
        self._say(f"Predicting '{image.name}'{how}…")
        self._emit_changed()
        worker.start()
        return worker

    def apply_to_folder(self, folder: str | Path, out: str | Path, device: str):
        """Predict every image file of ``folder`` into ``out/<name>.tif`` in the background
        (:func:`~napari_seglab.core.batch.predict_files`: existing files are not replaced, a
        bad image is named and the others predicted). ``batchProgress(done, total)`` follows
        it; returns the started worker or None. Closing the session ends it after the image
        it is predicting.
        """
        import threading

        from napari.qt.threading import create_worker

        from napari_seglab.core.batch import image_files, label_targets, predict_files

        model = self.trainer.model
        if model is None or self.busy:
            self._say("Not predicted: train or load a model, and wait for it to finish.", "warning")
            return None
        try:
            listed = image_files(folder, zarr=True)  # files read here, stores left out
        except NotADirectoryError as exc:
            self._say(f"Not predicted: {exc}.", "error")
            return None
        files = [p for p in listed if not p.is_dir()]
        stores = [p for p in listed if p.is_dir()]
        skipped = _skipped_stores(stores)
        if not files:
            self._say(
                f"Not predicted: folder {folder} holds no image (.tif, .png, ...){skipped}.",
                "warning",
            )
            return None
        try:
            label_targets(files, out)
        except ValueError as exc:
            self._say(f"Not predicted: {exc}.", "error")
            return None
        stop, done, failed, noted = [False], threading.Event(), [], []

        def run():
            try:
                yield from predict_files(model, files, out, device=device, stop=lambda: stop[0])
            finally:
                done.set()

        worker = create_worker(run, _start_thread=False, _ignore_errors=True)
        worker.done = done
        self._apply_stop = [None, stop]

        def on_file(result) -> None:
            if result.error is not None:
                failed.append(f"{result.source.name}: {result.error}")
            elif result.notes:
                noted.append(result.source.name)
            self.batchProgress.emit(result.index + 1, result.total)
            self._say(f"Predicting folder: {result.index + 1} of {result.total} images…")

        def on_end() -> None:
            self.apply_worker = None
            self._release_apply()
            if self.closed:
                return
            self.batchProgress.emit(len(files), len(files))
            ok = len(files) - len(failed)
            text = f"Predicted {ok} of {len(files)} images of {folder} into {out}"
            if failed:
                text += f"; not predicted: {'; '.join(failed)}"
            if noted:
                text += f"; constant, its prediction meaningless: {', '.join(noted)}"
            text += skipped
            self._say(f"{text}.", "warning" if failed or noted or stores else "")
            self._emit_changed()

        worker.yielded.connect(on_file)
        worker.errored.connect(lambda exc: failed.append(_reason(exc)))
        worker.finished.connect(on_end)
        self.apply_worker = worker
        self.batchProgress.emit(0, len(files))
        self._say(f"Predicting folder: 0 of {len(files)} images…")
        self._emit_changed()
        worker.start()
        return worker

    def _release_apply(self) -> None:
        """Remove the stop check from the network (after the prediction ended)."""
        handle, self._apply_stop = (self._apply_stop or [None])[0], []
        if handle is not None:
            handle.remove()

    def _on_apply_finished(self, image: Image, outcome: dict) -> None:
        """The end of a prediction, whatever happened: the overlay and the final status."""
        self.apply_worker = None
        self._release_apply()
        if self.closed:
            return
        self._emit_changed()
        error, prediction = outcome.get("error"), outcome.get("prediction")
        if error is not None and not isinstance(error, PredictionStopped):
            why = (
                str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            )
            self._say(f"Prediction of '{image.name}' failed: {why}", "error")
            return
        if prediction is None or image not in self.viewer.layers:
            self._say(f"Not predicted: layer '{image.name}' was removed or the run stopped.")
            return
        lyr.show_prediction(self.viewer, image, prediction, self.classes)
        guidance.refresh(self.viewer, image)  # the uncertainty layer, once it is made
        if prediction.notes:
            self._say(f"Predicted '{image.name}', but {'; '.join(prediction.notes)}", "warning")
            return
        self._say(f"Predicted '{image.name}'.")
