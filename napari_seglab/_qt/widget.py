"""The SegLab dock widget: a view of a :class:`~napari_seglab._qt.session.Session`.

The widget builds the controls, forwards the user's choices and clicks to the session, and
shows what the session's signals say; the session owns the state (classes, counts, model, the
current run, the overlays). Its parts live in small modules: layer selectors
(``layer_select``), the live class-weights panel (``weights_panel``), the loss curve
(``loss_plot``), the settings (``settings``) and the training readout (``readout``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_seglab._qt import guidance
from napari_seglab._qt import layers as lyr
from napari_seglab._qt.autosave import AutoSaver, RestoreBanner
from napari_seglab._qt.channels import ChannelPicker, pooled_counts
from napari_seglab._qt.checklist import OtherImagesPicker
from napari_seglab._qt.internals import real_viewer
from napari_seglab._qt.layer_select import LayerComboBox
from napari_seglab._qt.readout import RunReadout
from napari_seglab._qt.session import Session
from napari_seglab._qt.settings import SettingsPanel
from napari_seglab._qt.training import warm_up
from napari_seglab._qt.weights_panel import WeightsPanel

if TYPE_CHECKING:
    import napari

    from napari_seglab._qt.classes import SegClass
    from napari_seglab._qt.training import Trainer
    from napari_seglab._qt.weights_panel import ScribbleCounter
    from napari_seglab.core.model import SegModel

MODEL_FILTER = "SegLab model (*.seglab);;All files (*)"


def _is_input_image(layer) -> bool:
    return lyr.role(layer) not in ("probability", "uncertainty")


def _is_scribbles_candidate(layer) -> bool:
    return lyr.role(layer) != "prediction"


class SegLabWidget(QWidget):
    """Dock widget: paint scribbles, train in the background, watch the overlay.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (injected by napari when docked through the plugin manifest).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        # napari hands plugin widgets a proxy; the widget compares layers by identity
        self.viewer = real_viewer(napari_viewer)
        self.session = Session(self.viewer, parent=self)
        #: saves the scribbles as they are painted and offers them back (``_qt.autosave``)
        self.autosaver = AutoSaver(self.session, parent=self)
        self._closed = False
        self._watched_window = None

        #: background import of what the first training step would import (None: done before)
        self.warm_up_thread = warm_up()
        self._build_ui()
        self._connect()
        self._apply_theme()
        self.weights_panel.set_scheme(self.settings_panel.settings().class_weighting)
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
            auto_select=self.session.may_auto_select,
            placeholder="none: New scribbles, or pick a layer",
        )
        self.channel_picker = ChannelPicker(v, data_box)
        form.addRow("Image", self.image_combo)
        form.addRow(self.channel_picker)
        form.addRow("Scribbles", self.scribbles_combo)
        self.others_picker = OtherImagesPicker(v, data_box)
        form.addRow(self.others_picker)
        row = QHBoxLayout()
        self.new_scribbles_button = QPushButton("New scribbles", data_box)
        self.new_scribbles_button.setToolTip(
            "Add an empty '<image> scribbles' layer: 1 = background, 2 = foreground"
        )
        self.add_class_button = QPushButton("Add class", data_box)
        row.addWidget(self.new_scribbles_button)
        row.addWidget(self.add_class_button)
        form.addRow(row)
        self.restore_banner = RestoreBanner(self.autosaver, data_box)
        form.addRow(self.restore_banner)
        layout.addWidget(data_box)

        weights_box = QGroupBox("Classes and loss weights", self)
        wl = QVBoxLayout(weights_box)
        self.weights_panel = WeightsPanel(weights_box)
        self.weights_panel.set_classes(self.session.classes)
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
        self.undo_button = QPushButton("Undo training", train_box)
        self.undo_button.setToolTip(
            "Go back to the model and overlay from before the last training (one step back; "
            "the scribbles stay as they are)"
        )
        row.addWidget(self.train_button, 2)
        row.addWidget(self.undo_button, 1)
        row.addWidget(self.reset_button, 1)
        tl.addLayout(row)
        self.where_button = QPushButton("Where to paint next", train_box)
        self.where_button.setToolTip(
            "Show where the model is least sure (the uncertainty layer: 1 where the two most "
            "probable classes are tied) and move the view to the most uncertain region not "
            "yet painted"
        )
        tl.addWidget(self.where_button)
        self.readout = RunReadout(self.session, train_box)
        tl.addWidget(self.readout)
        parts = "progress status_label device_label loss_plot recall_label notes_label"
        for part in parts.split():  # the readout's parts, under the names the dock always had
            setattr(self, part, getattr(self.readout, part))
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
        self.folder_button = QPushButton("Apply to folder…", model_box)
        self.folder_button.setToolTip(
            "Predict every image file of a folder into another folder (<name>.tif, class ids); "
            "existing files are not replaced"
        )
        ml.addWidget(self.folder_button)
        self.folder_progress = QProgressBar(model_box)
        self.folder_progress.setFormat("%v of %m images")
        self.folder_progress.hide()
        ml.addWidget(self.folder_progress)
        layout.addWidget(model_box)

        self.settings_panel = SettingsPanel(self)
        layout.addWidget(self.settings_panel)
        layout.addStretch(1)

    def _connect(self) -> None:
        s = self.session
        self.image_combo.layerChanged.connect(s.set_image)
        self.image_combo.layerChanged.connect(self.channel_picker.set_image)
        self.image_combo.layerChanged.connect(self.others_picker.set_image)
        self.channel_picker.changed.connect(self._on_channels_changed)
        self.others_picker.changed.connect(self._on_channels_changed)
        self.scribbles_combo.layerChanged.connect(s.set_scribbles)
        self.new_scribbles_button.clicked.connect(self.new_scribbles)
        self.add_class_button.clicked.connect(self.add_class)
        self.weights_panel.classRenamed.connect(s.rename_class)
        self.settings_panel.schemeChanged.connect(self.weights_panel.set_scheme)
        self.settings_panel.device.currentTextChanged.connect(self._update_device_label)
        self.settings_panel.num_threads.valueChanged.connect(self._update_device_label)
        self.train_button.clicked.connect(self._on_train_clicked)
        self.reset_button.clicked.connect(self.reset_model)
        self.undo_button.clicked.connect(self.undo_training)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)
        self.apply_button.clicked.connect(self.apply_to_layer)
        self.folder_button.clicked.connect(self._on_folder_clicked)
        s.batchProgress.connect(self._show_batch_progress)
        self.where_button.clicked.connect(self.show_me_where)
        s.status.connect(self._on_status)
        s.notice.connect(self._on_notice)
        self.autosaver.failed.connect(lambda text: self._on_notice(text, "warning"))
        s.classesChanged.connect(lambda: self.weights_panel.set_classes(s.classes))
        s.countsChanged.connect(self._show_counts)
        s.scribblesChosen.connect(self._show_scribbles)
        s.changed.connect(self._update_buttons)
        self.viewer.events.theme.connect(self._apply_theme)

    def _apply_theme(self, event=None) -> None:
        self.readout.follow_theme(self.viewer.theme)

    def _select_initial_pair(self) -> None:
        """Choose the image and scribbles found at start-up, and count those scribbles.

        The combo boxes chose their layers while they were built, before any signal was
        connected, so the session is told explicitly instead of through change signals.
        """
        image, scribbles = lyr.find_pair(self.viewer)
        if image is not None:
            self.image_combo.set_layer(image, quiet=True)
            self.scribbles_combo.set_layer(scribbles, quiet=True)
        self.session.set_image(self.image_combo.layer())
        self.channel_picker.set_image(self.image_combo.layer())
        self.others_picker.set_image(self.image_combo.layer())
        self.session.set_scribbles(self.scribbles_combo.layer())

    # ------------------------------------------------------------------------------------
    # what the session says
    # ------------------------------------------------------------------------------------
    def _on_status(self, text: str, level: str) -> None:
        """The status line; with a level (``"info"``, ``"warning"``, ``"error"``) also a
        napari notification: one message per action."""
        if self._closed:
            return
        self.status_label.setText(text)
        if level:
            self._on_notice(text, level)

    def _on_notice(self, text: str, level: str = "info") -> None:
        if not self._closed:
            notify = {"info": show_info, "warning": show_warning, "error": show_error}[level]
            notify(f"SegLab: {text}")

    def _on_channels_changed(self) -> None:
        self.session.channel_choice = self.channel_picker.choice()
        self.session.other_images = self.others_picker.images()
        self._show_counts()

    def _show_counts(self, counts=None) -> None:
        """The class table: the scribbles' counts, pooled with those of the other images
        checked to train with (what the class weights are computed from)."""
        if self._closed:
            return
        counts = self.session.counter.counts if counts is None else counts
        others = [lyr.find_scribbles(self.viewer, i) for i in self.session.other_images]
        # only scribbles that training would take (a negative value or an instance id in
        # another image's layer raised here, or made 65535 classes): Train says what is wrong
        strokes = [o.data for o in others if o is not None and lyr.scribbles_problem(o) is None]
        pooled = pooled_counts(counts, strokes)
        if pooled.size > len(self.session.classes):  # a class painted in another image only
            self.session.ensure_classes(pooled.size)  # (its table row had no name or colour)
        self.weights_panel.set_counts(pooled, images=1 + len(strokes))

    def _show_scribbles(self, layer: Labels | None) -> None:
        if layer is not None and layer not in self.scribbles_combo.layers():
            layer = None
        self.scribbles_combo.set_layer(layer, quiet=True)

    # ------------------------------------------------------------------------------------
    # actions (the session does them)
    # ------------------------------------------------------------------------------------
    @property
    def image_layer(self) -> Image | None:
        """The image to train on."""
        return self.session.image

    @property
    def scribbles_layer(self) -> Labels | None:
        """The Labels layer holding the scribbles."""
        return self.session.scribbles

    @property
    def classes(self) -> list[SegClass]:
        """The classes (``Session.classes``)."""
        return self.session.classes

    @property
    def trainer(self) -> Trainer:
        """The trainer holding the model (``Session.trainer``)."""
        return self.session.trainer

    @property
    def counter(self) -> ScribbleCounter:
        """The scribbles' class counts (``Session.counter``)."""
        return self.session.counter

    def new_scribbles(self) -> Labels | None:
        """Add an empty ``"<image> scribbles"`` layer for the chosen image and select it."""
        return self.session.new_scribbles()

    def add_class(self) -> SegClass:
        """Add class ``K+1`` (named ``class K+1``) and select it for painting."""
        return self.session.add_class()

    def start_training(self) -> bool:
        """Train on the chosen image and scribbles in the background; False if not started."""
        return self.session.start_training(self.settings_panel.settings())

    def stop_training(self) -> None:
        """Ask the training to stop at its next step (the model so far is kept)."""
        self.session.stop_training()

    def _on_train_clicked(self) -> None:
        if self.session.stopping:
            self.session.stop_now()  # "Skip prediction": the final prediction is abandoned
        elif self.session.running:
            self.stop_training()
        else:
            self.start_training()

    def reset_model(self) -> None:
        """Forget the model (not while training)."""
        self.session.reset_model()

    def undo_training(self) -> SegModel | None:
        """Go back to the model (and overlay) from before the last training; None when there
        is none (the status line says why)."""
        return self.session.undo_training()

    def save_model(self, path: str | Path) -> Path | None:
        """Save the current model to ``path``; returns the path written (``.seglab`` added to
        a path without a suffix), None when not saved (the status line says why)."""
        return self.session.save_model(path)

    def load_model(self, path: str | Path) -> SegModel | None:
        """Load a model saved by SegLab (None when it cannot be loaded: the status says why)."""
        return self.session.load_model(path)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "model.seglab", MODEL_FILTER)
        if path:
            self.save_model(path)

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", MODEL_FILTER)
        if path:
            self.load_model(path)

    def apply_to_layer(self, image: Image | None = None):
        """Predict ``image`` (default: the "Apply to" choice) in the background.

        Returns the started worker (or None); the result appears as ``"<image> prediction"``.
        """
        image = image or self.apply_combo.layer()
        return self.session.apply_to_layer(image, self.settings_panel.settings().device)

    def apply_to_folder(self, folder: str | Path, out: str | Path):
        """Predict every image of ``folder`` into ``out`` in the background, with a progress
        bar; returns the started worker (or None: the status line says why)."""
        return self.session.apply_to_folder(folder, out, self.settings_panel.settings().device)

    def _on_folder_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to predict")
        if not folder:
            return
        out = QFileDialog.getExistingDirectory(self, "Folder for the labels", folder)
        if out:
            self.apply_to_folder(folder, out)

    def _show_batch_progress(self, done: int, total: int) -> None:
        if self._closed:
            return
        self.folder_progress.setMaximum(max(1, total))
        self.folder_progress.setValue(done)
        self.folder_progress.setVisible(done < total)

    def show_me_where(self) -> tuple[slice, ...] | None:
        """Show ``"<image> uncertainty"`` and centre the view on the most uncertain region
        that is not painted yet; returns that window (image data coordinates) or None."""
        image = self.image_layer
        if image is None or image not in self.viewer.layers:
            self._on_status("Choose an image first.", "warning")
            return None
        window = guidance.show_me_where(self.viewer, image, self.scribbles_layer)
        if window is None:
            self._on_status("Train first: the uncertainty comes from the prediction.", "warning")
            return None
        plane = f"plane {window[0].start}, " if len(window) == 3 else ""
        ys, xs = window[-2:]
        where = f"{plane}rows {ys.start}-{ys.stop}, columns {xs.start}-{xs.stop}"
        self._on_status(f"Paint here next: {where}", "info")
        return window

    # ------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------
    def _update_device_label(self, *_args) -> None:
        settings = self.settings_panel.settings()
        self.readout.show_device(settings.device, settings.num_threads)

    def _update_buttons(self, *_args) -> None:
        if self._closed:
            return
        s = self.session
        running, busy = s.running, s.busy
        has_model = s.trainer.model is not None
        self.train_button.setText(
            ("Skip prediction" if s.stopping else "Stop") if running else "Train"
        )
        self.train_button.setEnabled(
            running or (s.image is not None and s.scribbles is not None and not busy)
        )
        self.reset_button.setEnabled(has_model and not busy)
        self.undo_button.setEnabled(s.can_undo_training)
        self.save_button.setEnabled(has_model and not busy)
        self.load_button.setEnabled(not busy)
        self.apply_button.setEnabled(has_model and not busy)
        self.folder_button.setEnabled(has_model and not busy)
        self.where_button.setEnabled(has_model or running)  # it reads the latest prediction
        for w in (
            self.image_combo,
            self.channel_picker,
            self.others_picker,
            self.scribbles_combo,
            self.new_scribbles_button,
        ):
            w.setEnabled(not running)
        self.settings_panel.setEnabled(not running)

    # ------------------------------------------------------------------------------------
    # teardown
    # ------------------------------------------------------------------------------------
    def cleanup(self, timeout: float = 10.0) -> None:
        """Stop the workers (waiting for them) and disconnect from the viewer. Idempotent.

        Safe after Qt has deleted the widget's C++ side (the viewer window was closed).
        """
        if self._closed:
            return
        self._closed = True
        self.autosaver.close()  # the last strokes are written before anything is torn down
        self.session.close(timeout)
        # napari-side connections first: they are plain Python and always safe to undo
        for combo in (self.image_combo, self.scribbles_combo, self.apply_combo):
            combo.disconnect_viewer()
        self.channel_picker.disconnect_viewer()
        self.others_picker.disconnect_viewer()
        self.viewer.events.theme.disconnect(self._apply_theme)
        self.readout.stop()
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
