"""Live class statistics: painted pixels, share and loss weight per class.

``ScribbleCounter`` keeps per-class counts of a Labels layer up to date from the pixels each
stroke changed (``events.paint``), so painting never triggers a full recount of a large volume;
``WeightsPanel`` shows them with the weights the loss will use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_seglab._qt.classes import MAX_CLASSES, SegClass
from napari_seglab._qt.layers import label_range_problem
from napari_seglab.core.train import DEFAULT_CLASS_WEIGHTS
from napari_seglab.core.weights import ClassCounts, class_weights

if TYPE_CHECKING:
    import napari.layers

#: Layers up to this many pixels are fully recounted after undo/redo or a data refresh;
#: larger ones rely on the incremental counts from paint events only.
FULL_RECOUNT_LIMIT = 16_000_000


def _atom_old_new(atom: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(old_values, new_values)``, both 1-D, of one napari paint-history atom.

    napari stores either a mask atom ``(slice_key, mask, old_values, new_value)`` (where
    ``mask is None`` means every pixel of the box changed and ``old_values`` is the whole box)
    or a ``(indices, old_values, new_values)`` tuple from ``Labels.data_setitem``.
    """
    if hasattr(atom, "slice_key"):
        old = np.asarray(atom.old_values).ravel()
        new = np.full(old.shape, atom.new_value, dtype=old.dtype)
        return old, new
    _indices, old, new = atom
    old = np.asarray(old).ravel()
    new = np.broadcast_to(np.asarray(new), old.shape).ravel()
    return old, new


class ScribbleCounter(QObject):
    """Per-class painted-pixel counts of one Labels layer, updated stroke by stroke.

    ``countsChanged`` is emitted (debounced by ``delay_ms``) with the counts array
    ``(num_classes,)`` for class ids ``1..num_classes``. When the layer holds a negative value
    or an id above ``MAX_CLASSES``, ``invalid`` is emitted with the reason and nothing is
    counted.

    Parameters
    ----------
    num_classes : int
        Number of classes K (grows by itself when a larger id is painted).
    delay_ms : int
        Debounce delay of ``countsChanged``.
    """

    countsChanged = Signal(object)
    invalid = Signal(str)

    def __init__(self, num_classes: int = 2, delay_ms: int = 100, parent=None) -> None:
        super().__init__(parent)
        self._layer: napari.layers.Labels | None = None
        self._num_classes = max(1, int(num_classes))
        self._counts = ClassCounts(self._num_classes)
        self._problem: str | None = None
        self._emit_timer = QTimer(self)
        self._emit_timer.setSingleShot(True)
        self._emit_timer.setInterval(delay_ms)
        self._emit_timer.timeout.connect(self._emit)
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(max(delay_ms, 250))
        self._recount_timer.timeout.connect(self.recount)

    @property
    def layer(self) -> napari.layers.Labels | None:
        """The layer being counted."""
        return self._layer

    @property
    def counts(self) -> np.ndarray:
        """Counts ``(num_classes,)`` for class ids ``1..num_classes``."""
        return np.asarray(self._counts.counts)

    @property
    def problem(self) -> str | None:
        """Why the layer cannot be counted (negative values, an id above ``MAX_CLASSES``) as
        found by the last full count, else None."""
        return self._problem

    @property
    def recount_pending(self) -> bool:
        """Whether a full count is scheduled (the data were replaced or refreshed)."""
        try:
            return self._recount_timer.isActive()
        except RuntimeError:
            return False

    @property
    def num_classes(self) -> int:
        """Number of classes counted."""
        return self._num_classes

    def set_num_classes(self, num_classes: int) -> None:
        """Count ``num_classes`` classes (a full recount)."""
        num_classes = max(1, int(num_classes))
        if num_classes != self._num_classes:
            self._num_classes = num_classes
            self.recount()

    def set_layer(self, layer: napari.layers.Labels | None) -> None:
        """Count ``layer`` (None to stop counting)."""
        if layer is self._layer:
            return
        if self._layer is not None:
            self._disconnect(self._layer)
        self._layer = layer
        if layer is not None:
            layer.events.paint.connect(self._on_paint)
            layer.events.data.connect(self._on_data)
            layer.events.set_data.connect(self._on_set_data)
        self.recount()

    def close(self) -> None:
        """Stop counting and stop the timers (safe after Qt deleted them)."""
        if self._layer is not None:
            self._disconnect(self._layer)
            self._layer = None
        try:
            self._emit_timer.stop()
            self._recount_timer.stop()
        except RuntimeError:  # C++ objects already deleted with the viewer window
            pass

    def _disconnect(self, layer: napari.layers.Labels) -> None:
        layer.events.paint.disconnect(self._on_paint)
        layer.events.data.disconnect(self._on_data)
        layer.events.set_data.disconnect(self._on_set_data)

    def recount(self) -> None:
        """Count every pixel of the layer again and emit the counts now."""
        self._recount_timer.stop()
        data = None if self._layer is None else np.asarray(self._layer.data)
        problem = None
        if data is not None and data.size:
            low, top = int(data.min()), int(data.max())
            problem = label_range_problem(low, top)
            if problem is None:
                self._num_classes = max(self._num_classes, top)
        self._counts = ClassCounts(self._num_classes)
        self._problem = problem
        if problem is not None:
            self.invalid.emit(f"layer '{self._layer.name}' cannot be counted: {problem}")
        elif data is not None and data.size:
            self._counts.add(data)
        self._emit_timer.stop()
        self._emit()

    def _on_paint(self, event) -> None:
        atoms = event.value or []
        top = 0
        for atom in atoms:
            old, new = _atom_old_new(atom)
            if new.size:
                top = max(top, int(new.max()))
                if int(new.min()) < 0:
                    top = MAX_CLASSES + 1  # not countable: the recount says why
        if top > self._num_classes:
            self.recount()
            return
        try:
            for atom in atoms:
                old, new = _atom_old_new(atom)
                self._counts.update(old, new)
        except ValueError:  # counts out of step with the layer (an edit we did not see)
            self.recount()
            return
        # a paint replaces a pending refresh recount: the counts are exact again
        self._recount_timer.stop()
        self._emit_timer.start()

    def _on_data(self, event=None) -> None:
        self._recount_timer.start()

    def _on_set_data(self, event=None) -> None:
        # undo/redo and other in-place edits only refresh the layer; recount small layers
        layer = self._layer
        if layer is not None and np.prod(layer.data.shape) <= FULL_RECOUNT_LIMIT:
            self._recount_timer.start()

    def _emit(self) -> None:
        self.countsChanged.emit(self.counts.copy())


def _fmt_count(n: int) -> str:
    return f"{n:,}"


class WeightsPanel(QWidget):
    """Table of classes: colour, name (editable), painted pixels, share, loss weight.

    Signals
    -------
    classRenamed(int, str)
        A class name was edited: class id (1-based) and new name.
    """

    classRenamed = Signal(int, str)

    COLUMNS = ("", "class", "pixels", "share", "weight")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._classes: list[SegClass] = []
        self._counts = np.zeros(0, dtype=np.int64)
        self._scheme = DEFAULT_CLASS_WEIGHTS
        self._weights = np.zeros(0)
        self._updating = False

        self.table = QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.table.itemChanged.connect(self._on_item_changed)

        self.scheme_label = QLabel(self)
        self.warning_label = QLabel(self)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #e69f00;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addWidget(self.scheme_label)
        layout.addWidget(self.warning_label)
        self._refresh()

    # -- state ---------------------------------------------------------------------------
    @property
    def counts(self) -> np.ndarray:
        """Counts shown, ``(K,)``."""
        return self._counts.copy()

    @property
    def weights(self) -> np.ndarray:
        """Weights shown, ``(K,)``."""
        return self._weights.copy()

    def set_classes(self, classes: Sequence[SegClass]) -> None:
        """Show these classes (ids ``1..len(classes)``)."""
        self._classes = list(classes)
        self._refresh()

    def set_counts(self, counts: np.ndarray) -> None:
        """Show new counts ``(K,)`` for class ids ``1..K``."""
        self._counts = np.asarray(counts, dtype=np.int64).ravel()
        self._refresh()

    def set_scheme(self, scheme: str) -> None:
        """Compute weights with ``scheme`` (one of ``core.weights.SCHEMES``)."""
        self._scheme = scheme
        self._refresh()

    def missing_classes(self) -> list[str]:
        """Names of the classes without any painted pixel."""
        counts = self._padded_counts()
        return [c.name for c, n in zip(self._classes, counts, strict=False) if n == 0]

    # -- display -------------------------------------------------------------------------
    def _padded_counts(self) -> np.ndarray:
        k = max(len(self._classes), self._counts.size)
        counts = np.zeros(k, dtype=np.int64)
        counts[: self._counts.size] = self._counts
        return counts

    def _refresh(self) -> None:
        counts = self._padded_counts()
        k = counts.size
        total = int(counts.sum())
        self._weights = (
            np.asarray(class_weights(counts, scheme=self._scheme), dtype=float)
            if k
            else np.zeros(0)
        )
        self._updating = True
        try:
            self.table.setRowCount(k)
            for row in range(k):
                cls = self._classes[row] if row < len(self._classes) else None
                name = cls.name if cls is not None else f"class {row + 1}"
                swatch = QTableWidgetItem("")
                swatch.setFlags(Qt.ItemFlag.ItemIsEnabled)
                if cls is not None:
                    swatch.setBackground(QColor(cls.color))
                swatch.setToolTip(f"label {row + 1}")
                self.table.setItem(row, 0, swatch)
                name_item = QTableWidgetItem(name)
                name_item.setFlags(
                    Qt.ItemFlag.ItemIsEnabled
                    | (Qt.ItemFlag.ItemIsEditable if cls is not None else Qt.ItemFlag.NoItemFlags)
                )
                name_item.setToolTip(f"label {row + 1}; double-click to rename")
                self.table.setItem(row, 1, name_item)
                share = counts[row] / total if total else 0.0
                weight = self._weights[row] if row < self._weights.size else float("nan")
                for col, text in (
                    (2, _fmt_count(int(counts[row]))),
                    (3, f"{100 * share:.1f} %"),
                    (4, f"{weight:.3g}"),
                ):
                    item = QTableWidgetItem(text)
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                    self.table.setItem(row, col, item)
        finally:
            self._updating = False
        height = self.table.horizontalHeader().height() + 2 * self.table.frameWidth()
        height += sum(self.table.rowHeight(r) for r in range(k))
        self.table.setFixedHeight(height)
        self.scheme_label.setText(
            f"{_fmt_count(total)} labeled pixels · weights: {self._scheme.replace('_', ' ')}"
        )
        missing = self.missing_classes()
        if missing:
            self.warning_label.setText("⚠ No strokes yet for: " + ", ".join(missing))
            self.warning_label.show()
        else:
            self.warning_label.setText("")
            self.warning_label.hide()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != 1:
            return
        row = item.row()
        name = item.text().strip()
        if row < len(self._classes) and name and name != self._classes[row].name:
            self._classes[row] = SegClass(name, self._classes[row].color)
            self.classRenamed.emit(row + 1, name)
