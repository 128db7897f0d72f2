"""Checkable lists of the viewer's layers for the dock: a base that keeps each row's state
while layers come and go, and the list of other images to train on with the image."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from napari_seglab._qt import layers as lyr

if TYPE_CHECKING:
    import napari
    from napari.layers import Image


class CheckList(QWidget):
    """A checkable list whose rows follow the viewer's layers.

    Subclasses say what the rows are (:meth:`rows`: a key, a text and whether a new row starts
    checked). A row's state is kept by its key while layers are added or removed; the list
    is hidden with fewer than ``min_rows`` rows. With ``keep_one`` the last checked row cannot
    be unchecked, and when the checked rows are gone the rows that start checked are checked.

    Signals
    -------
    changed()
        The checked rows changed.
    """

    changed = Signal()
    min_rows = 1
    keep_one = False

    def __init__(
        self, viewer: napari.Viewer, tooltip: str, parent: QWidget | None = None, title: str = ""
    ):
        super().__init__(parent)
        self.viewer = viewer
        self._image: Image | None = None
        self._keys: list[Any] = []
        self._state: dict[Any, bool] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        if title:
            layout.addWidget(QLabel(title, self))
        self.list = QListWidget(self)
        self.list.setToolTip(tooltip)
        layout.addWidget(self.list)
        self.list.itemChanged.connect(self._on_item_changed)
        events = viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self._on_removed)
        events.moved.connect(self.refresh)
        for layer in viewer.layers:
            self._watch(layer, True)
        self.setVisible(False)

    def _watch(self, layer, on: bool) -> None:
        """Follow a layer's new name and new data (the rows name layers and list those of the
        image's shape): a renamed layer was listed under its old name until another layer
        event."""
        from napari.layers import Image

        events = [layer.events.name]
        if isinstance(layer, Image):  # not a Labels layer's: strokes are painted into it
            events.append(layer.events.data)
        for event in events:
            if on:
                event.connect(self.refresh)
            else:
                event.disconnect(self.refresh)

    def _on_inserted(self, event) -> None:
        self._watch(event.value, True)
        self.refresh()

    def _on_removed(self, event) -> None:
        self._watch(event.value, False)
        self.refresh()

    def rows(self, image: Image) -> list[tuple[Any, str, bool]]:
        """``(key, text, checked at first)`` of each row for ``image``."""
        raise NotImplementedError

    def disconnect_viewer(self) -> None:
        events = self.viewer.layers.events
        events.inserted.disconnect(self._on_inserted)
        events.removed.disconnect(self._on_removed)
        events.moved.disconnect(self.refresh)
        for layer in self.viewer.layers:
            self._watch(layer, False)

    def set_image(self, image: Image | None) -> None:
        """Show the rows of ``image`` (a new image starts from each row's first state)."""
        if image is not self._image:
            self._image = image
            self._state = {}
            self.refresh()

    def refresh(self, event=None) -> None:
        image = self._image
        if image is not None and image not in self.viewer.layers:
            image = self._image = None
        rows = self.rows(image) if image is not None else []
        self._keys = [key for key, _, _ in rows]
        self.list.blockSignals(True)
        self.list.clear()
        for key, text, first in rows:
            item = QListWidgetItem(text)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = self._state.get(key, first)
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        if self.keep_one and rows and not any(self.is_checked(r) for r in range(len(rows))):
            for r, (key, _, first) in enumerate(rows):  # the checked rows are gone
                self._state.pop(key, None)
                if first:
                    self.list.item(r).setCheckState(Qt.CheckState.Checked)
        self.list.blockSignals(False)
        self.setVisible(len(rows) >= self.min_rows)
        if rows:
            self.list.setFixedHeight(min(len(rows), 5) * self.list.sizeHintForRow(0) + 6)
        self.changed.emit()

    def is_checked(self, row: int) -> bool:
        return self.list.item(row).checkState() == Qt.CheckState.Checked

    def checked_keys(self) -> list[Any]:
        """The keys of the checked rows, in the list's order."""
        return [key for r, key in enumerate(self._keys) if self.is_checked(r)]

    def texts(self) -> list[str]:
        """The rows' texts, in order."""
        return [self.list.item(r).text() for r in range(self.list.count())]

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self.keep_one and not any(self.is_checked(r) for r in range(self.list.count())):
            self.list.blockSignals(True)  # the last checked row stays checked
            item.setCheckState(Qt.CheckState.Checked)
            self.list.blockSignals(False)
            return
        self._state[self._keys[self.list.row(item)]] = item.checkState() == Qt.CheckState.Checked
        self.changed.emit()

    def set_checked(self, texts: list[str]) -> None:
        """Check exactly the rows called ``texts``; for scripts and tests.

        Raises
        ------
        ValueError
            A text that is not a row's (or none, where one row must stay checked).
        """
        listed = self.texts()
        unknown = set(texts) - set(listed)
        if unknown or (self.keep_one and not texts):
            raise ValueError(f"no row(s) {sorted(unknown)} to check; listed: {listed}")
        for key, text in zip(self._keys, listed, strict=True):
            self._state[key] = text in texts
        self.refresh()


def compatible(other: Image, image: Image) -> bool:
    """Whether one model can train on ``other`` with ``image``: both 2D or both stacks, both
    RGB or neither (with as many colour channels)."""
    shapes = [lyr.image_source(layer).shape for layer in (other, image)]
    return len(lyr.spatial_shape(other)) == len(lyr.spatial_shape(image)) and (
        other.rgb == image.rgb and (not image.rgb or shapes[0][-1] == shapes[1][-1])
    )


class OtherImagesPicker(CheckList):
    """The other open images, each with its ``"<image> scribbles"`` layer, that can train one
    model with the chosen image (:func:`compatible`; none checked at first; hidden when there
    are none)."""

    def __init__(self, viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(
            viewer,
            "Train one model on these images too, each with its own '<image> scribbles' layer: "
            "the strokes of all of them count (class weights from their pooled counts)",
            parent,
        )
        self._layers: dict[int, Image] = {}

    def rows(self, image: Image) -> list[tuple[Any, str, bool]]:
        from napari.layers import Image as ImageLayer

        others = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, ImageLayer)
            and layer is not image
            and lyr.role(layer) not in ("probability", "uncertainty")
            and lyr.find_scribbles(self.viewer, layer) is not None
            and compatible(layer, image)
        ]
        self._layers = {id(layer): layer for layer in others}
        return [(id(layer), f"also {layer.name}", False) for layer in others]

    def images(self) -> list[Image]:
        """The checked images."""
        return [self._layers[key] for key in self.checked_keys() if key in self._layers]
