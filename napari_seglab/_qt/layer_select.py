"""A combo box listing the viewer's layers of one type, kept in sync with the layer list."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QWidget

if TYPE_CHECKING:
    import napari
    import napari.layers


class LayerComboBox(QComboBox):
    """Choose one layer of type ``layer_type`` from ``viewer.layers``.

    The list follows insertions, removals, moves and renames. ``layerChanged`` is emitted with
    the new layer (or None) whenever the chosen layer changes, including when it is removed.
    When nothing is chosen, the first listed layer is chosen, or with ``auto_select`` the first
    for which ``auto_select(layer)`` is true; otherwise the box stays empty and shows
    ``placeholder`` until the user picks a layer.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    layer_type : type
        ``napari.layers.Image`` or ``napari.layers.Labels``, ...
    parent : QWidget, optional
        Parent widget.
    accept : callable, optional
        Extra filter: only layers for which ``accept(layer)`` is true are listed.
    auto_select : callable, optional
        Only layers for which ``auto_select(layer)`` is true are chosen without the user.
    placeholder : str
        Shown while no layer is chosen.
    """

    layerChanged = Signal(object)

    def __init__(
        self,
        viewer: napari.Viewer,
        layer_type: type,
        parent: QWidget | None = None,
        *,
        accept: Callable[[napari.layers.Layer], bool] | None = None,
        auto_select: Callable[[napari.layers.Layer], bool] | None = None,
        placeholder: str = "",
    ) -> None:
        super().__init__(parent)
        self._viewer = viewer
        self._type = layer_type
        self._accept = accept
        self._auto_select = auto_select
        if placeholder:
            self.setPlaceholderText(placeholder)
        self._layers: list[napari.layers.Layer] = []
        self._current: napari.layers.Layer | None = None
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.currentIndexChanged.connect(self._on_index_changed)
        events = viewer.layers.events
        events.inserted.connect(self.refresh)
        events.removed.connect(self.refresh)
        events.moved.connect(self.refresh)
        self.refresh()

    def disconnect_viewer(self) -> None:
        """Stop following the viewer (called when the widget closes)."""
        if self._viewer is None:
            return
        events = self._viewer.layers.events
        for emitter in (events.inserted, events.removed, events.moved):
            emitter.disconnect(self.refresh)
        for layer in self._layers:
            layer.events.name.disconnect(self.refresh)
        self._viewer = None
        self._layers = []
        self._current = None

    def layer(self) -> napari.layers.Layer | None:
        """The chosen layer, or None."""
        return self._current

    def set_layer(self, layer: napari.layers.Layer | None, *, quiet: bool = False) -> None:
        """Choose ``layer`` (must be listed) or clear the choice with None.

        ``quiet``: without emitting ``layerChanged`` (to undo a choice that was refused).
        """
        index = -1 if layer is None else self._index_of(layer)
        if layer is not None and index < 0:
            raise ValueError(f"layer {layer.name!r} is not a {self._type.__name__} layer here")
        if quiet:
            self.blockSignals(True)
            try:
                self.setCurrentIndex(index)
            finally:
                self.blockSignals(False)
            self._current = layer
        else:
            self.setCurrentIndex(index)

    def layers(self) -> list[napari.layers.Layer]:
        """The listed layers, in the viewer's order."""
        return list(self._layers)

    def _index_of(self, layer: napari.layers.Layer) -> int:
        for i, candidate in enumerate(self._layers):
            if candidate is layer:
                return i
        return -1

    def refresh(self, event=None) -> None:
        """Rebuild the list from the viewer, keeping the chosen layer when it still exists."""
        for layer in self._layers:
            layer.events.name.disconnect(self.refresh)
        self._layers = [
            lyr
            for lyr in self._viewer.layers
            if isinstance(lyr, self._type) and (self._accept is None or self._accept(lyr))
        ]
        for layer in self._layers:
            layer.events.name.connect(self.refresh)
        previous = self._current
        self.blockSignals(True)
        try:
            self.clear()
            self.addItems([lyr.name for lyr in self._layers])
            index = self._index_of(previous) if previous is not None else -1
            if index < 0:
                index = self._first_automatic()
            self.setCurrentIndex(index)
        finally:
            self.blockSignals(False)
        self._on_index_changed(self.currentIndex())

    def _first_automatic(self) -> int:
        for i, layer in enumerate(self._layers):
            if self._auto_select is None or self._auto_select(layer):
                return i
        return -1

    def _on_index_changed(self, index: int) -> None:
        layer = self._layers[index] if 0 <= index < len(self._layers) else None
        if layer is not self._current:
            self._current = layer
            self.layerChanged.emit(layer)
