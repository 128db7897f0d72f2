"""The SegLab dock widget: paint scribbles, see class weights live, train in the background.

The widget is thin: it turns layer events and clicks into core calls (through
:class:`~napari_seglab._qt.training.Trainer`) and reports into layer updates. Its parts live in
small modules: layer selectors (``layer_select``), classes (``classes``), the live class-weights
panel (``weights_panel``), the loss curve (``loss_plot``), the settings (``settings``) and the
layer helpers (``layers``).
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_seglab._qt import align, weights_panel
from napari_seglab._qt import layers as lyr
from napari_seglab._qt.classes import (
    SegClass,
    apply_classes,
    classes_from_layer,
    default_class,
    default_classes,
)
from napari_seglab._qt.layer_select import LayerComboBox
from napari_seglab._qt.loss_plot import LossPlot
from napari_seglab._qt.readout import NoteTracker, recall_text
from napari_seglab._qt.scribble_sync import ScribbleSync
from napari_seglab._qt.settings import SettingsPanel
from napari_seglab._qt.training import Trainer, Update, predict_worker, warm_up
from napari_seglab._qt.weights_panel import ScribbleCounter, WeightsPanel

if TYPE_CHECKING:
    import napari

    from napari_seglab.core.model import Prediction, SegModel
    from napari_seglab.core.train import TrainReport

MODEL_FILTER = "SegLab model (*.seglab);;All files (*)"

#: After Stop, images up to this many pixels are predicted once more with the final model (a few
#: seconds at most on a CPU); larger ones keep the last preview until Apply.
REFRESH_AFTER_STOP_LIMIT = 4_000_000


class StatusLabel(QLabel):
    """A one-line label whose size never depends on its text.

    Changing a QLabel's text re-runs the layout of the whole dock; with a constant size hint the
    status can change several times a second during training at no cost to the viewer.
    """

    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 2)

    def sizeHint(self) -> QSize:
        return QSize(100, self.fontMetrics().height() + 2)

    def minimumSizeHint(self) -> QSize:
        return QSize(10, self.fontMetrics().height() + 2)

    def setText(self, text: str) -> None:
        if text != self.text():
            super().setText(text)
            self.setToolTip(text)


def _is_input_image(layer) -> bool:
    return lyr.role(layer) != "probability"


def _is_scribbles_candidate(layer) -> bool:
    return lyr.role(layer) != "prediction"


def _reason(exc: BaseException) -> str:
    """What went wrong, for the user: an OS error's cause without the file names it carries
    (which may be an internal temporary file), else the exception's message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class SegLabWidget(QWidget):
    """Dock widget: paint scribbles, train in the background, watch the overlay.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (injected by napari when docked through the plugin manifest).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        # napari hands plugin widgets a PublicOnlyProxy whose attributes are fresh proxies on
        # every access; the widget compares layers by identity, so it keeps the real viewer.
        self.viewer = getattr(napari_viewer, "__wrapped__", napari_viewer)
        self.classes: list[SegClass] = default_classes(2)
        self.trainer = Trainer(self)
        self.counter = ScribbleCounter(num_classes=len(self.classes), parent=self)
        # the scribbles layer in use (a Labels layer the widget made or the user picked and that
        # looks like scribbles); layers refused as scribbles are never chosen automatically
        self._scribbles: Labels | None = None
        self._refused: list[weakref.ref] = []
        # the layers of the running training (None when idle)
        self._train_image: Image | None = None
        self._train_scribbles: Labels | None = None
        # follows the training scribbles: strokes go to the training as edits
        self._sync: ScribbleSync | None = None
        self._train_classes = 0  # classes of the model being trained
        self._apply_worker = None
        self._closed = False
        self._watched_window = None
        self._budget: tuple[float | None, int | None] = (None, None)
        self._notes = NoteTracker()
        self._status_timer = QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.setInterval(500)
        self._status_timer.timeout.connect(self._show_status)

        #: background import of what the first training step would import (None: done before)
        self.warm_up_thread = warm_up()
        self._build_ui()
        self._connect()
        self._apply_theme()
        self.weights_panel.set_scheme(self.settings_panel.settings().class_weights)
        self._select_initial_pair()
        self._update_device_label()
        self._update_buttons()

    # ------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        v = self.viewer
        layout = QVBoxLayout(self)

        data_box = QGroupBox("Data", self)
        form = QFormLayout(data_box)
        self.image_combo = LayerComboBox(v, Image, data_box, accept=_is_input_image)
        self.scribbles_combo = LayerComboBox(
            v,
            Labels,
            data_box,
            accept=_is_scribbles_candidate,
            auto_select=self._may_auto_select,
            placeholder="none: New scribbles, or pick a layer",
        )
        form.addRow("Image", self.image_combo)
        form.addRow("Scribbles", self.scribbles_combo)
        row = QHBoxLayout()
        self.new_scribbles_button = QPushButton("New scribbles", data_box)
        self.new_scribbles_button.setToolTip(
            "Add an empty '<image> scribbles' layer: 1 = background, 2 = foreground"
        )
        self.add_class_button = QPushButton("Add class", data_box)
        row.addWidget(self.new_scribbles_button)
        row.addWidget(self.add_class_button)
        form.addRow(row)
        layout.addWidget(data_box)

        weights_box = QGroupBox("Classes and loss weights", self)
        wl = QVBoxLayout(weights_box)
        self.weights_panel = WeightsPanel(weights_box)
        self.weights_panel.set_classes(self.classes)
        wl.addWidget(self.weights_panel)
        layout.addWidget(weights_box)

        train_box = QGroupBox("Training", self)
        tl = QVBoxLayout(train_box)
        row = QHBoxLayout()
        self.train_button = QPushButton("Train", train_box)
        self.train_button.setToolTip(
            "Train in the background; click again to stop. A second training continues "
            "from the current model with all current scribbles."
        )
        self.reset_button = QPushButton("Reset model", train_box)
        self.reset_button.setToolTip("Forget the model: the next training starts from scratch")
        row.addWidget(self.train_button, 2)
        row.addWidget(self.reset_button, 1)
        tl.addLayout(row)
        self.progress = QProgressBar(train_box)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        tl.addWidget(self.progress)
        self.status_label = StatusLabel("No model yet: paint both classes, then Train.", train_box)
        tl.addWidget(self.status_label)
        self.device_label = StatusLabel("", train_box)
        self.device_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        tl.addWidget(self.device_label)
        self.loss_plot = LossPlot(train_box, redraw_ms=0)
        tl.addWidget(self.loss_plot)
        # how well the network reproduces the strokes, and what the trainer changed on its own
        self.recall_label = StatusLabel("", train_box)
        self.recall_label.setToolTip(
            "Share of each class's painted pixels that the network predicts as that class"
        )
        tl.addWidget(self.recall_label)
        self.notes_label = StatusLabel("", train_box)
        self.notes_label.setVisible(False)
        tl.addWidget(self.notes_label)
        layout.addWidget(train_box)

        model_box = QGroupBox("Model", self)
        ml = QVBoxLayout(model_box)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save model…", model_box)
        self.load_button = QPushButton("Load model…", model_box)
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        ml.addLayout(row)
        row = QHBoxLayout()
        self.apply_combo = LayerComboBox(v, Image, model_box, accept=_is_input_image)
        self.apply_button = QPushButton("Apply to layer", model_box)
        self.apply_button.setToolTip("Predict the chosen image with the current model")
        row.addWidget(self.apply_combo, 1)
        row.addWidget(self.apply_button)
        ml.addLayout(row)
        layout.addWidget(model_box)

        self.settings_panel = SettingsPanel(self)
        layout.addWidget(self.settings_panel)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.image_combo.layerChanged.connect(self._on_image_changed)
        self.scribbles_combo.layerChanged.connect(self._on_scribbles_changed)
        self.new_scribbles_button.clicked.connect(self.new_scribbles)
        self.add_class_button.clicked.connect(self.add_class)
        self.weights_panel.classRenamed.connect(self._on_class_renamed)
        self.counter.countsChanged.connect(self._on_counts)
        self.counter.invalid.connect(self._on_scribbles_invalid)
        self.settings_panel.schemeChanged.connect(self.weights_panel.set_scheme)
        self.settings_panel.device.currentTextChanged.connect(self._update_device_label)
        self.train_button.clicked.connect(self._on_train_clicked)
        self.reset_button.clicked.connect(self.reset_model)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.apply_button.clicked.connect(self.apply_to_layer)
        self.trainer.reported.connect(self._on_report)
        self.trainer.finished.connect(self._on_training_finished)
        self.viewer.events.theme.connect(self._apply_theme)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.inserted.connect(self._update_buttons)
        self.viewer.layers.events.removed.connect(self._update_buttons)

    def _apply_theme(self, event=None) -> None:
        from napari.utils.theme import get_theme

        try:
            theme = get_theme(self.viewer.theme)
        except (KeyError, ValueError):
            return
        self.loss_plot.set_colors(
            theme.background.as_hex(), theme.foreground.as_hex(), theme.text.as_hex()
        )

    def _select_initial_pair(self) -> None:
        """Choose the image and scribbles found at start-up, and count those scribbles.

        The combo boxes chose their layers while they were built, before any signal was
        connected, so the state is synchronised explicitly instead of through change signals.
        """
        image, scribbles = lyr.find_pair(self.viewer)
        if image is not None:
            self.image_combo.set_layer(image)
            if not self._was_refused(scribbles):
                self.scribbles_combo.set_layer(scribbles)
        self._on_scribbles_changed(self.scribbles_combo.layer())

    def _may_auto_select(self, layer: Labels) -> bool:
        """Layers the scribbles box may choose by itself (see ``lyr.is_scribbles_candidate``)."""
        return (
            self.viewer is not None
            and not self._was_refused(layer)
            and lyr.is_scribbles_candidate(self.viewer, layer)
        )

    def _was_refused(self, layer) -> bool:
        return layer is not None and any(ref() is layer for ref in self._refused)

    def _say(self, text: str, level: str | None = None) -> None:
        """Where every action ends: ``text`` becomes the status line, and with ``level``
        (``"info"``, ``"warning"``, ``"error"``) also a napari notification."""
        if self._closed:
            return
        self.status_label.setText(text)
        if level is not None:
            notify = {"info": show_info, "warning": show_warning, "error": show_error}[level]
            notify(f"SegLab: {text}")

    # ------------------------------------------------------------------------------------
    # layers and classes
    # ------------------------------------------------------------------------------------
    @property
    def image_layer(self) -> Image | None:
        """The image to train on."""
        return self.image_combo.layer()

    @property
    def scribbles_layer(self) -> Labels | None:
        """The Labels layer holding the scribbles."""
        return self.scribbles_combo.layer()

    def new_scribbles(self) -> Labels | None:
        """Add an empty ``"<image> scribbles"`` layer for the chosen image and select it."""
        image = self.image_layer
        if image is None:
            self._say("Open an image first.", "warning")
            return None
        existing = lyr.find_scribbles(self.viewer, image)
        if existing is not None and lyr.scribbles_problem(existing) is None:
            self.scribbles_combo.set_layer(existing)
            self.viewer.layers.selection.active = existing
            existing.mode = "paint"
            self._check_placement()
            return existing
        if self.trainer.running:
            self._say("Stop training before creating a new scribbles layer.", "warning")
            return None
        layer = lyr.new_scribbles_layer(self.viewer, image, self.classes)
        self.scribbles_combo.set_layer(layer)
        self._say(f"Paint in '{layer.name}': 1 = background, 2 = foreground.")
        return layer

    def add_class(self) -> SegClass:
        """Add class ``K+1`` (named ``class K+1``) and select it for painting."""
        cls = default_class(len(self.classes) + 1)
        self.classes.append(cls)
        self._apply_classes()
        self.counter.set_num_classes(len(self.classes))
        scribbles = self.scribbles_layer
        if scribbles is not None:
            scribbles.selected_label = len(self.classes)
        return cls

    def _apply_classes(self) -> None:
        self.weights_panel.set_classes(self.classes)
        targets = [self.scribbles_layer]
        image = self.image_layer
        if image is not None:
            pred = lyr.find_layer(self.viewer, lyr.prediction_name(image), Labels)
            if pred is not None and lyr.role(pred) == "prediction":  # never a user's layer
                targets.append(pred)
        for layer in targets:
            if layer is not None:
                apply_classes(layer, self.classes)

    def _on_class_renamed(self, class_id: int, name: str) -> None:
        self.classes[class_id - 1] = SegClass(name, self.classes[class_id - 1].color)
        self._apply_classes()

    def _on_image_changed(self, image: Image | None) -> None:
        if self.trainer.running and image is not self._train_image:
            self._stop_because("the image selection changed")
        if image is not None:
            scribbles = lyr.find_scribbles(self.viewer, image)
            if (
                scribbles is not None
                and scribbles is not self.scribbles_layer
                and not self._was_refused(scribbles)
            ):
                self.scribbles_combo.set_layer(scribbles)
        self._check_placement()
        self._update_buttons()

    def _placement_problem(self, image: Image | None, scribbles: Labels | None) -> str | None:
        """Why ``scribbles`` would train on other pixels of ``image`` than painted, or None."""
        if image is None or scribbles is None:
            return None
        if tuple(scribbles.data.shape) != lyr.spatial_shape(image):
            return None  # another message (the shapes) applies
        return align.placement_problem(image, scribbles, scribbles.ndim)

    def _check_placement(self) -> None:
        """Say at once (status line) when the chosen pair is not aligned; Train refuses it."""
        scribbles = self.scribbles_layer
        problem = self._placement_problem(self.image_layer, scribbles)
        if problem is not None:
            self.status_label.setText(f"Layer '{scribbles.name}' cannot be trained on: {problem}.")

    def _on_scribbles_changed(self, scribbles: Labels | None) -> None:
        if scribbles is not None and scribbles is not self._scribbles:
            problem = lyr.scribbles_problem(scribbles)
            if problem is not None:
                self._refuse(scribbles, problem)
                return
        if self.trainer.running and scribbles is not self._train_scribbles:
            self._stop_because("the scribbles selection changed")
        self._scribbles = scribbles
        self._refused = [ref for ref in self._refused if ref() not in (None, scribbles)]
        if scribbles is not None:
            stored = classes_from_layer(scribbles)
            if stored:
                self.classes = stored
            else:
                top = int(np.asarray(scribbles.data).max()) if scribbles.data.size else 0
                while len(self.classes) < top:
                    self.classes.append(default_class(len(self.classes) + 1))
                apply_classes(scribbles, self.classes)
            self.weights_panel.set_classes(self.classes)
            self.counter.set_num_classes(len(self.classes))
        self.counter.set_layer(scribbles)
        self._check_placement()
        self._update_buttons()

    def _refuse(self, layer: Labels, problem: str) -> None:
        """Tell the user why ``layer`` is not used as scribbles; go back to the previous choice.

        The layer is left exactly as it was (data, colormap, features, metadata).
        """
        if not self._was_refused(layer):
            self._refused.append(weakref.ref(layer))
        previous = self._scribbles
        if previous is not None and previous not in self.scribbles_combo.layers():
            previous = None
        self.scribbles_combo.set_layer(previous, quiet=True)
        if previous is None:
            self._scribbles = None
            self.counter.set_layer(None)
        self._say(
            f"Layer '{layer.name}' is not used as scribbles: {problem}. "
            "It is left as it is; New scribbles adds a layer to paint in.",
            "warning",
        )
        self._update_buttons()

    def _on_scribbles_invalid(self, message: str) -> None:
        if self._closed:
            return
        self._say(f"{message}.", "warning")

    def _on_counts(self, counts: np.ndarray) -> None:
        if self._closed:
            return
        k = counts.size
        while len(self.classes) < k:
            self.classes.append(default_class(len(self.classes) + 1))
            self._apply_classes()
        self.weights_panel.set_counts(counts)

    def _on_scribbles_edited(self, edits: list) -> None:
        """A stroke in the training scribbles: its pixels go to the training (no array)."""
        if self._closed or not self.trainer.running:
            return
        top = max((int(e.values.max()) for e in edits if e.values.size), default=0)
        low = min((int(e.values.min()) for e in edits if e.values.size), default=0)
        k = self._train_classes
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
        layer = self._train_scribbles
        if self._closed or not self.trainer.running or layer is None:
            return
        self.trainer.send(layer.data)

    # ------------------------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------------------------
    def _on_train_clicked(self) -> None:
        if self.trainer.running:
            self.stop_training()
        else:
            self.start_training()

    def start_training(self) -> bool:
        """Train on the chosen image and scribbles in the background; False if not started."""
        image, scribbles = self.image_layer, self.scribbles_layer
        if self.trainer.running:
            return False
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
            or self._placement_problem(image, scribbles)
        )
        if problem is not None:
            return self._not_started(f"layer '{scribbles.name}' cannot be trained on: {problem}")
        counts = self.counter.counts
        if int(np.count_nonzero(counts)) < 2:
            return self._not_started(
                "paint at least two classes (background and foreground)", "warning"
            )
        model = self.trainer.model
        top = int(np.flatnonzero(counts).max()) + 1  # highest painted class id
        if model is not None and top > model.num_classes:
            show_info(
                f"SegLab: the model has {model.num_classes} classes and the scribbles hold "
                f"class {top}: starting a new model."
            )
            self.trainer.reset()
        if self.trainer.model is None:
            self.loss_plot.clear()
        else:
            self.loss_plot.mark_restart()
        try:
            config = self.settings_panel.settings().train_config()
            # the overlay layers exist from the start (empty), so that previews only write data
            num_classes = self.trainer.model.num_classes if self.trainer.model else max(2, top)
            lyr.ensure_prediction_layers(self.viewer, image, num_classes, self.classes)
            region = lyr.visible_region(image)
            # the layers' arrays as they are (numpy, dask, zarr): the worker copies them
            self.trainer.start(lyr.image_source(image), scribbles.data, config, region=region)
        except (ValueError, TypeError, RuntimeError) as exc:
            return self._not_started(str(exc))
        self._train_image, self._train_scribbles = image, scribbles
        self._train_classes = num_classes
        self._sync = ScribbleSync(scribbles, parent=self)
        self._sync.edited.connect(self._on_scribbles_edited)
        self._sync.replaced.connect(self._on_scribbles_replaced)
        camera = lyr.camera(self.viewer)
        camera.events.center.connect(self._on_view_changed)
        camera.events.zoom.connect(self._on_view_changed)
        self.viewer.dims.events.current_step.connect(self._on_view_changed)
        image.events.name.connect(self._on_training_layer_renamed)
        scribbles.events.name.connect(self._on_training_layer_renamed)
        self._budget = (config.seconds, config.steps)
        self._notes.reset()
        self._show_readout(None)
        self.status_label.setText("Training… (first step)")
        self.progress.setValue(0)
        self._update_buttons()
        return True

    def _not_started(self, problem: str, level: str = "error") -> bool:
        """A refused Train: say why (status line and notification); returns False."""
        self._say(f"Training not started: {problem}.", level)
        return False

    def stop_training(self) -> None:
        """Ask the training to stop at its next step (the model so far is kept)."""
        if self.trainer.running:
            self.trainer.stop()
            self.status_label.setText("Stopping…")
            self.train_button.setEnabled(False)

    def _stop_because(self, reason: str) -> None:
        if self.trainer.running:
            show_info(f"SegLab: training stopped because {reason}.")
            self.stop_training()

    def _on_view_changed(self, event=None) -> None:
        if self._train_image is not None:
            self.trainer.set_region(lyr.visible_region(self._train_image))

    def _close_sync(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()

    def _disconnect_view(self) -> None:
        camera = lyr.camera(self.viewer)
        camera.events.center.disconnect(self._on_view_changed)
        camera.events.zoom.disconnect(self._on_view_changed)
        self.viewer.dims.events.current_step.disconnect(self._on_view_changed)

    def _on_training_layer_renamed(self, event=None) -> None:
        self._stop_because("a training layer was renamed")

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if layer is not None and layer in (self._train_image, self._train_scribbles):
            self._stop_because(f"layer '{layer.name}' was removed")

    def _on_report(self, update: Update) -> None:
        if self._closed:
            return
        report = update.report
        self.loss_plot.append(report.step, report.loss)
        for note in self._notes.new(report):  # each once, not with every later report
            show_info(f"SegLab: {note}")
            self._show_notes()
        if update.prediction is not None and self._train_image is not None:
            self._show_prediction(self._train_image, update.prediction, update.region)
        # labels, progress bar and plot twice a second (a GPU yields hundreds of reports)
        if not self._status_timer.isActive():
            self._status_timer.start()

    def _show_status(self) -> None:
        report = self.trainer.last_report
        if self._closed or report is None or not self.trainer.running:
            return
        seconds, steps = self._budget
        if steps:
            fraction = report.step / steps
        elif seconds:
            fraction = report.elapsed / seconds
        else:
            fraction = 0.0
        # QProgressBar.setValue repaints synchronously; with updates off it joins the next
        # paint together with the label and the plot (one window repaint per tick)
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(int(1000 * min(1.0, fraction)))
        self.progress.setUpdatesEnabled(True)
        self.status_label.setText(
            f"Training… step {report.step} · loss {report.loss:.4f} · {report.elapsed:.1f} s"
        )
        self.device_label.setText(f"Device: {report.device}")
        self._show_readout(report)
        self.loss_plot.redraw()

    def _show_readout(self, report: TrainReport | None) -> None:
        """How well the strokes are reproduced (None: nothing yet), and the run's notes."""
        recall = None if report is None else getattr(report, "stroke_recall", None)
        self.recall_label.setText(recall_text(recall, [c.name for c in self.classes]))
        self._show_notes()

    def _show_notes(self) -> None:
        """The latest thing the trainer changed on its own; all of them in the tooltip."""
        notes = self._notes.shown
        self.notes_label.setText(f"Adjusted at {notes[-1]}" if notes else "")
        self.notes_label.setToolTip("\n".join(notes))
        self.notes_label.setVisible(bool(notes))

    def _show_prediction(
        self, image: Image, prediction: Prediction, region: tuple[slice, ...] | None = None
    ) -> None:
        if image not in self.viewer.layers:
            return
        lyr.show_prediction(self.viewer, image, prediction, self.classes, region=region)

    def _on_training_finished(self, model: SegModel | None) -> None:
        if self._closed:
            return
        for layer in (self._train_image, self._train_scribbles):
            if layer is not None:
                layer.events.name.disconnect(self._on_training_layer_renamed)
        self._disconnect_view()
        self._close_sync()
        image = self._train_image
        self._train_image = self._train_scribbles = None
        self._status_timer.stop()
        self.loss_plot.redraw()
        report = self.trainer.last_report
        if report is not None:
            self.device_label.setText(f"Device: {report.device}")
            self._show_readout(report)
        if self.trainer.error is not None:
            self._say(f"Training failed: {self.trainer.error}", "error")
        elif report is not None:
            state = "Done" if report.done else "Stopped"
            self._say(
                f"{state}: step {report.step} · loss {report.loss:.4f} · {report.elapsed:.1f} s"
            )
            self.status_label.setToolTip(
                "Train again to continue from this model with all current scribbles"
            )
        else:
            self._say("Stopped before the first step.")
        self.progress.setValue(
            1000 if report is not None and report.done else self.progress.value()
        )
        self._update_buttons()
        stopped = report is not None and not report.done and self.trainer.error is None
        if (
            stopped
            and image is not None
            and image in self.viewer.layers
            and np.prod(lyr.spatial_shape(image)) <= REFRESH_AFTER_STOP_LIMIT
        ):
            # the last preview is older than the model: predict the image once more
            self.apply_to_layer(image, quiet=True)

    def reset_model(self) -> None:
        """Forget the model (not while training)."""
        if self.trainer.running:
            return
        self.trainer.reset()
        self.loss_plot.clear()
        self.progress.setValue(0)
        self._notes.reset()
        self._show_readout(None)
        self._say("Model reset: the next training starts from scratch.")
        self._update_buttons()

    # ------------------------------------------------------------------------------------
    # model files and prediction of other layers
    # ------------------------------------------------------------------------------------
    def save_model(self, path: str | Path) -> Path | None:
        """Save the current model to ``path`` (the core's safe format); returns the path written.

        A path without a suffix gets ``.seglab``.
        """
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
            model.save(path)
        except Exception as exc:  # a user sees a message, never a traceback
            self._say(f"Model not saved to {path}: {_reason(exc)}", "error")
            return None
        self._say(f"Model saved to {path}")
        return path

    def load_model(self, path: str | Path) -> SegModel | None:
        """Load a model saved by SegLab; the next training continues from it."""
        from napari_seglab.core.modelio import load_model

        if self.trainer.running:
            self._say("Model not loaded: stop training first.", "warning")
            return None
        try:
            model = load_model(path)
        except Exception as exc:  # a user sees a message, never a traceback
            self._say(f"Could not load a model from {path}: {_reason(exc)}", "error")
            return None
        self.trainer.model = model
        k = int(model.num_classes)
        while len(self.classes) < k:
            self.classes.append(default_class(len(self.classes) + 1))
        for i, name in enumerate(model.class_names[:k]):
            self.classes[i] = SegClass(str(name), self.classes[i].color)
        self._apply_classes()
        self.loss_plot.clear()
        self._notes.reset()
        self._show_readout(None)
        self._say(f"Loaded model from {path} ({k} classes).")
        self._update_buttons()
        return model

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.seglab", MODEL_FILTER)
        if path:
            self.save_model(path)

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", MODEL_FILTER)
        if path:
            self.load_model(path)

    def apply_to_layer(self, image: Image | None = None, *, quiet: bool = False):
        """Predict ``image`` (default: the "Apply to" choice) in the background.

        Returns the started worker (or None); the result appears as ``"<image> prediction"``.
        ``quiet`` (the refresh after a Stop): the status line is left as it is, unless the
        prediction fails.
        """
        image = image or self.apply_combo.layer()
        model = self.trainer.model
        if image is None or model is None:
            if not quiet:
                self._say("Not predicted: train or load a model and choose an image.", "warning")
            return None
        if self.trainer.running or self._apply_worker is not None:
            if not quiet:
                self._say(
                    "Not predicted: wait for training or the running prediction to finish.",
                    "warning",
                )
            return None
        device = self.settings_panel.settings().device
        worker = predict_worker(model, lyr.image_data(image), device=device)
        outcome: dict[str, object] = {}
        worker.returned.connect(lambda pred: outcome.__setitem__("prediction", pred))
        worker.errored.connect(lambda exc: outcome.__setitem__("error", exc))
        worker.finished.connect(lambda: self._on_apply_finished(image, outcome, quiet))
        self._apply_worker = worker
        if not quiet:
            self.status_label.setText(f"Predicting '{image.name}'…")
        self._update_buttons()
        worker.start()
        return worker

    def _on_apply_finished(self, image: Image, outcome: dict, quiet: bool) -> None:
        """The end of a prediction, whatever happened: the overlay and the final status."""
        self._apply_worker = None
        if self._closed:
            return
        self._update_buttons()
        error, prediction = outcome.get("error"), outcome.get("prediction")
        if error is not None:
            self._say(
                f"Prediction of '{image.name}' failed: {type(error).__name__}: {error}", "error"
            )
            return
        if prediction is None or image not in self.viewer.layers:
            if not quiet:
                self._say(f"Not predicted: layer '{image.name}' was removed or the run stopped.")
            return
        try:
            lyr.show_prediction(self.viewer, image, prediction, self.classes)
        except ValueError as exc:  # a layer of the user's has the overlay's name
            self._say(f"Prediction of '{image.name}' not shown: {exc}", "error")
            return
        if not quiet:
            self._say(f"Predicted '{image.name}'.")

    # ------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------
    def _update_device_label(self, *_args) -> None:
        device = self.settings_panel.settings().device
        try:
            from napari_seglab.core.device import describe_device, resolve_device

            text = describe_device(resolve_device(device))
        except Exception:
            text = device
        self.device_label.setText(f"Device: {text}")

    def _update_buttons(self, *_args) -> None:
        if self._closed:
            return
        running = self.trainer.running
        has_model = self.trainer.model is not None
        busy = running or self._apply_worker is not None
        self.train_button.setText("Stop" if running else "Train")
        self.train_button.setEnabled(
            running
            or (self.image_layer is not None and self.scribbles_layer is not None and not busy)
        )
        self.reset_button.setEnabled(has_model and not busy)
        self.save_button.setEnabled(has_model and not busy)
        self.load_button.setEnabled(not busy)
        self.apply_button.setEnabled(has_model and not busy)
        for w in (self.image_combo, self.scribbles_combo, self.new_scribbles_button):
            w.setEnabled(not running)
        self.settings_panel.setEnabled(not running)

    # ------------------------------------------------------------------------------------
    # teardown
    # ------------------------------------------------------------------------------------
    def cleanup(self, timeout: float = 10.0) -> None:
        """Stop the worker (waiting for it) and disconnect from the viewer. Idempotent.

        Safe after Qt has deleted the widget's C++ side (the viewer window was closed).
        """
        if self._closed:
            return
        self._closed = True
        self.trainer.stop_and_wait(timeout)
        if self._apply_worker is not None:
            self._apply_worker.quit()
            self._apply_worker.done.wait(timeout)
        # napari-side connections first: they are plain Python and always safe to undo
        for combo in (self.image_combo, self.scribbles_combo, self.apply_combo):
            combo.disconnect_viewer()
        self.viewer.events.theme.disconnect(self._apply_theme)
        events = self.viewer.layers.events
        events.removed.disconnect(self._on_layer_removed)
        events.inserted.disconnect(self._update_buttons)
        events.removed.disconnect(self._update_buttons)
        for layer in (self._train_image, self._train_scribbles):
            if layer is not None:
                layer.events.name.disconnect(self._on_training_layer_renamed)
        self._disconnect_view()
        self._close_sync()
        self.counter.close()
        with contextlib.suppress(RuntimeError):
            self._status_timer.stop()
        with contextlib.suppress(RuntimeError):  # C++ object already deleted
            self.loss_plot.stop()
        # drop every reference to the viewer and its layers, so that a closed viewer is freed
        # by reference counting even while this widget waits for the garbage collector
        self._train_image = self._train_scribbles = None
        self.viewer = None
        if self._watched_window is not None:
            with contextlib.suppress(RuntimeError):
                self._watched_window.removeEventFilter(self)
            self._watched_window = None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        window = self.window()  # a floating dock is its own window: watch only the main one
        if (
            not self._closed
            and isinstance(window, QMainWindow)
            and window is not self._watched_window
        ):
            window.installEventFilter(self)
            self._watched_window = window

    def eventFilter(self, obj, event) -> bool:
        # the viewer window was closed (a spontaneous hide is only a minimise)
        if (
            obj is self._watched_window
            and event.type() == QEvent.Type.Hide
            and not event.spontaneous()
        ):
            self.cleanup()
        return super().eventFilter(obj, event)

    def event(self, event) -> bool:
        # napari's "close" on a dock (remove_dock_widget) un-parents the widget without closing
        if (
            event.type() == QEvent.Type.ParentChange
            and self.parent() is None
            and self._watched_window is not None
        ):
            self.cleanup()
        return super().event(event)

    def closeEvent(self, event) -> None:
        self.cleanup()
        super().closeEvent(event)
