"""Keep a running training's copy of the scribbles in step with the layer, stroke by stroke.

A napari Labels layer says after every stroke, fill or ``data_setitem`` which pixels changed
(``events.paint``, whose value is the list of history atoms of that change). Those become
:class:`~napari_seglab.core.edits.ScribbleEdit` objects, whose size is that of the stroke, and
go to the training. Only an undo/redo or a replaced ``data`` array, which napari does not
describe pixel by pixel, call for the whole array (debounced).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal

from napari_seglab.core.edits import ScribbleEdit

if TYPE_CHECKING:
    import napari.layers


def edits_from_paint(atoms: Any) -> list[ScribbleEdit]:
    """The edits of one napari paint event's value (a list of history atoms).

    napari stores either a mask atom (``slice_key``, ``mask``, ``old_values``, ``new_value``;
    ``mask is None`` means every pixel of the box, and ``old_values`` is then the whole box),
    or a ``(indices, old_values, new_values)`` tuple from ``Labels.data_setitem``.
    """
    edits = []
    for atom in atoms or []:
        if hasattr(atom, "slice_key"):
            offset = tuple(int(s.start or 0) for s in atom.slice_key)
            shape = None if atom.mask is not None else np.shape(atom.old_values)
            edits.append(ScribbleEdit.from_mask(offset, atom.mask, atom.new_value, shape))
        else:
            indices, _old, new = atom
            edits.append(ScribbleEdit(tuple(np.asarray(i) for i in indices), np.asarray(new)))
    return edits


def _history_marker(layer: napari.layers.Labels) -> tuple[int, int] | None:
    """Lengths of the layer's undo and redo histories (None where napari has none): an undo
    or redo changes them without a paint event; a refresh during a stroke does not."""
    undo, redo = getattr(layer, "_undo_history", None), getattr(layer, "_redo_history", None)
    if undo is None or redo is None:
        return None
    return len(undo), len(redo)


class ScribbleSync(QObject):
    """Follows one scribbles layer while it is trained on.

    Signals
    -------
    edited(list)
        The :class:`ScribbleEdit` objects of one stroke (fill, erase, ``data_setitem``), at
        once, on the main thread.
    replaced()
        The data changed in a way napari does not describe by pixels (undo, redo, a new
        ``data`` array): the whole array must be sent. Debounced by ``delay_ms``.
    """

    edited = Signal(object)
    replaced = Signal()

    def __init__(self, layer: napari.layers.Labels, delay_ms: int = 200, parent=None) -> None:
        super().__init__(parent)
        self.layer = layer
        self._marker = _history_marker(layer)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.replaced)
        # after the other listeners (the counter), so that they have seen the stroke
        layer.events.paint.connect(self._on_paint, position="last")
        layer.events.set_data.connect(self._on_set_data, position="last")
        layer.events.data.connect(self._on_data, position="last")

    @property
    def pending(self) -> bool:
        """Whether a ``replaced`` is waiting out its delay (an undo, a redo or a new array
        not announced yet)."""
        with contextlib.suppress(RuntimeError):  # Qt deleted the timer already
            return self._timer.isActive()
        return False

    def close(self) -> None:
        """Stop following the layer (idempotent; safe after Qt deleted the timer)."""
        layer, self.layer = self.layer, None
        if layer is not None:
            layer.events.paint.disconnect(self._on_paint)
            layer.events.set_data.disconnect(self._on_set_data)
            layer.events.data.disconnect(self._on_data)
        with contextlib.suppress(RuntimeError):  # Qt deleted the timer already
            self._timer.stop()

    def _on_paint(self, event) -> None:
        if self.layer is None:
            return
        self._marker = _history_marker(self.layer)
        edits = edits_from_paint(event.value)
        if edits:
            self.edited.emit(edits)

    def _on_set_data(self, event=None) -> None:
        # every stroke refreshes the layer (also during the stroke, before its paint event);
        # only a refresh that changed the history without a paint event is an undo or redo
        if self.layer is None:
            return
        marker = _history_marker(self.layer)
        if marker is None or marker != self._marker:
            self._marker = marker
            self._timer.start()

    def _on_data(self, event=None) -> None:
        if self.layer is not None:
            self._timer.start()
