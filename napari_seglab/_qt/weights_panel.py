"""Live class statistics: painted pixels, share and loss weight per class.

``ScribbleCounter`` keeps per-class counts of a Labels layer up to date from the pixels each
stroke changed (``events.paint``), so painting never triggers a full recount of a large volume;
an undo, a redo or a replaced array of a large volume is recounted on a background thread.
``WeightsPanel`` shows the counts with the weights the loss will use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer, Signal
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
from napari_seglab._qt.scribble_sync import _history_marker
from napari_seglab.core.config import DEFAULT_CLASS_WEIGHTS
from napari_seglab.core.weights import ClassCounts, class_weights

if TYPE_CHECKING:
    import napari.layers

#: Layers up to this many pixels are recounted on the main thread after an undo/redo or a data
#: refresh; larger ones are recounted on a background thread after an undo/redo or a new array
#: (strokes are counted from the pixels they changed, whatever the size).
FULL_RECOUNT_LIMIT = 16_000_000


def _count(data: Any, num_classes: int) -> tuple[str | None, ClassCounts]:
    """``(problem, counts)`` of a whole labels array (``problem``: why it is no scribbles)."""
    data = np.asarray(data)
    counts = ClassCounts(num_classes)
    if not data.size:
        return None, counts
    low, top = int(data.min()), int(data.max())
    problem = label_range_problem(low, top)
    if problem is None:
        counts = ClassCounts(max(num_classes, top))
        counts.add(data)
    return problem, counts


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
    counted. Layers above :data:`FULL_RECOUNT_LIMIT` pixels are recounted after an undo, a redo
    or a new array on a background thread (counted again when strokes came meanwhile).

    Parameters
    ----------
    num_classes : int
        Number of classes K (grows by itself when a larger id is painted).
    delay_ms : int
        Debounce delay of ``countsChanged``.
    """

    countsChanged = Signal(object)
    invalid = Signal(str)
    _counted = Signal(int, object)  # generation, (problem, ClassCounts): from the thread

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
        self._recount_timer.timeout.connect(self._recount_due)
        self._marker: tuple[int, int] | None = None  # undo/redo lengths at the last paint
        self._thread: threading.Thread | None = None  # the background count
        self._generation = 0  # results of older background counts are dropped
        self._dirty = False  # strokes came during the background count
        self._needed = False  # the scheduled count follows an undo/redo or a new array
        self._counted.connect(self._on_counted)

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
        """Whether a full count is scheduled or running (the data were replaced or
        refreshed)."""
        if self._thread is not None:
            return True
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

    def set_layer(self, layer: napari.layers.Labels | None, num_classes: int | None = None) -> None:
        """Count ``layer`` (None to stop counting), in ``num_classes`` classes when given: one
        recount of the new layer for both (set apart, the old layer was recounted in the new
        layer's classes first, and its higher classes were taken for the new one's)."""
        if layer is self._layer:
            if num_classes is not None:
                self.set_num_classes(num_classes)
            return
        if num_classes is not None:
            self._num_classes = max(1, int(num_classes))
        if self._layer is not None:
            self._disconnect(self._layer)
        self._layer = layer
        self._generation += 1
        self._marker = None if layer is None else _history_marker(layer)
        if layer is not None:
            layer.events.paint.connect(self._on_paint)
            layer.events.data.connect(self._on_data)
            layer.events.set_data.connect(self._on_set_data)
        self.recount()

    def close(self, timeout: float = 10.0) -> None:
        """Stop counting, wait for a background count (up to ``timeout`` s) and stop the timers
        (safe after Qt deleted them)."""
        if self._layer is not None:
            self._disconnect(self._layer)
            self._layer = None
        self._generation += 1
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
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
        """Count every pixel of the layer again (on this thread) and emit the counts now."""
        self._recount_timer.stop()
        self._generation += 1  # a background count running now is superseded
        self._needed = self._dirty = False
        data = None if self._layer is None else self._layer.data
        self._accept(*_count(np.zeros(0) if data is None else data, self._num_classes))

    def _accept(self, problem: str | None, counts: ClassCounts) -> None:
        self._counts, self._problem = counts, problem
        self._num_classes = counts.num_classes
        if problem is not None:
            self.invalid.emit(f"layer '{self._layer.name}' cannot be counted: {problem}")
        self._emit_timer.stop()
        self._emit()

    def _large(self) -> bool:
        layer = self._layer
        return layer is not None and np.prod(layer.data.shape) > FULL_RECOUNT_LIMIT

    def _recount_due(self) -> None:
        """The scheduled full count: here for small layers, on a thread for large ones."""
        self._needed = False
        if not self._large():
            self.recount()
        elif self._thread is not None:
            self._dirty = True  # counted again when the running count ends
        else:
            self._dirty = False
            self._generation += 1
            generation, data, k = self._generation, self._layer.data, self._num_classes

            def run() -> None:
                self._counted.emit(generation, _count(data, k))

            self._thread = threading.Thread(target=run, name="seglab-count", daemon=True)
            self._thread.start()

    def _on_counted(self, generation: int, result: tuple) -> None:
        """A background count ended (main thread): used unless strokes came meanwhile."""
        self._thread = None  # one count runs at a time: this one
        if generation != self._generation:
            return  # superseded (another layer, a count on the main thread, closed)
        if self._dirty:  # strokes while it read the array: count again
            self._recount_due()
            return
        self._accept(*result)

    def _on_paint(self, event) -> None:
        self._marker = _history_marker(self._layer)
        if self._thread is not None:
            self._dirty = True
        atoms = event.value or []
        top = 0
        for atom in atoms:
            old, new = _atom_old_new(atom)
            if new.size:
                top = max(top, int(new.max()))
                if int(new.min()) < 0:
                    top = MAX_CLASSES + 1  # not countable: the recount says why
        if top > self._num_classes and not self._large():
            self.recount()
            return
        try:
            for atom in atoms:
                old, new = _atom_old_new(atom)
                self._counts.update(old, new)
        except (ValueError, IndexError):  # counts out of step with the layer (an edit we
            # did not see, or a class beyond the counts of a large layer): count it all again
            self._needed = True
            self._recount_timer.start()
            return
        # a paint replaces a pending refresh recount (not one after an undo or a new array):
        # the counts are exact again
        if not self._needed:
            self._recount_timer.stop()
        self._emit_timer.start()

    def _on_data(self, event=None) -> None:
        self._needed = True
        self._recount_timer.start()

    def _on_set_data(self, event=None) -> None:
        # undo/redo and other in-place edits only refresh the layer: recount small layers on
        # every refresh (a stroke's own paint event cancels it), large ones only when the
        # history changed without a paint event (an undo or redo)
        layer = self._layer
        if layer is None:
            return
        marker = _history_marker(layer)
        if marker is None or marker != self._marker:
            self._marker = marker
            self._needed = True
            self._recount_timer.start()
        elif not self._large():
            self._recount_timer.start()

    def _emit(self) -> None:
        self.countsChanged.emit(self.counts.copy())


def _fmt_count(n: int) -> str:
    return f"{n:,}"


class FittedTable(QTableWidget):
    """A table exactly as high as its header and rows, measured again when a stylesheet or
    font changes them and when it is shown: napari's stylesheet, set after the table is made,
    made the header and rows taller than measured, and the last row was cut under a scroll
    bar."""

    def fit(self) -> None:
        height = self.horizontalHeader().sizeHint().height() + 2 * self.frameWidth()
        height += sum(
            max(self.rowHeight(r), self.sizeHintForRow(r)) for r in range(self.rowCount())
        )
        self.setFixedHeight(height)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self.fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.fit()


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
        self._images = 1  # images whose counts are pooled in the table
        self._scheme = DEFAULT_CLASS_WEIGHTS
        self._weights = np.zeros(0)
        self._updating = False

        self.table = FittedTable(0, len(self.COLUMNS), self)
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

    def set_counts(self, counts: np.ndarray, images: int = 1) -> None:
        """Show new counts ``(K,)`` for class ids ``1..K``, pooled over ``images`` images."""
        self._counts = np.asarray(counts, dtype=np.int64).ravel()
        self._images = int(images)
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
        self.table.fit()
        where = f" in {self._images} images" if self._images > 1 else ""
        self.scheme_label.setText(
            f"{_fmt_count(total)} labeled pixels{where} · weights: {self._scheme.replace('_', ' ')}"
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
