"""Which channels the model sees: some of the image's own, and other open layers as channels.

napari opens a multichannel file as one layer per channel (or one RGB layer), so "the channels"
of an image are often several layers. The picker lists the image's own channels (red, green,
blue for an RGB layer; the image itself otherwise) and every other open image layer with the
same spatial shape; the checked ones are what the model sees. Other layers are stacked after the
image's own channels, in the list's order, into a ``(*spatial, C)`` array; the model stores the
indices it uses (``ModelConfig.channels``) and takes images of ``C`` channels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from napari_seglab._qt import layers as lyr

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from napari_seglab.core.config import TrainConfig
    from napari_seglab.core.model import SegModel

RGB_NAMES = ("red", "green", "blue", "alpha")


def own_channels(image: Image) -> int:
    """Channels of the layer itself: 3 or 4 for RGB(A), else 1."""
    return int(lyr.image_source(image).shape[-1]) if image.rgb else 1


@dataclass(frozen=True)
class ChannelChoice:
    """What the model sees of an image.

    Attributes
    ----------
    extra : tuple of napari Image layers
        Layers stacked as channels after the image's own (same spatial shape, not RGB).
    channels : tuple of int or None
        Indices into the stacked channels (the image's own first); None = all of them.
    """

    extra: tuple = ()
    channels: tuple[int, ...] | None = None

    def count(self, image: Image) -> int:
        """Channels of the stacked input for ``image``."""
        return own_channels(image) + len(self.extra)

    def input(self, image: Image):
        """The array to train on or predict: the layer's own array (numpy, dask, zarr) when
        there are no extra layers, else ``(*spatial, C)`` in memory.

        Raises
        ------
        ValueError
            An extra layer whose spatial shape is not the image's.
        """
        if not self.extra:
            return lyr.image_source(image)
        own = lyr.image_data(image)
        parts = [own if image.rgb else own[..., None]]
        for layer in self.extra:
            if lyr.spatial_shape(layer) != lyr.spatial_shape(image) or layer.rgb:
                raise ValueError(
                    f"layer '{layer.name}' cannot be a channel of '{image.name}': its shape "
                    f"{tuple(layer.data.shape)} is not the image's {lyr.spatial_shape(image)}"
                )
            parts.append(lyr.image_data(layer)[..., None])
        return np.concatenate(parts, axis=-1)

    def config(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the model's channels set to this choice's."""
        return replace(config, model=replace(config.model, channels=self.channels))

    def matches(self, model: SegModel, image: Image) -> bool:
        """Whether ``model`` takes what this choice makes of ``image``."""
        return model.in_channels == self.count(image) and model.config.channels == self.channels

    def describe(self, image: Image) -> str:
        names = channel_names(image, self.extra)
        picked = names if self.channels is None else [names[i] for i in self.channels]
        return ", ".join(picked)


def channel_names(image: Image, extra=()) -> list[str]:
    """Names of the stacked channels: the image's own, then the extra layers'."""
    n = own_channels(image)
    own = [f"{image.name}: {RGB_NAMES[i]}" for i in range(n)] if image.rgb else [image.name]
    return own + [layer.name for layer in extra]


class ChannelPicker(QWidget):
    """A checkable list of the channels the model may see; hidden when there is no choice
    (a one-channel image and no other layer of its shape).

    Signals
    -------
    changed()
        The choice changed (:meth:`choice`).
    """

    changed = Signal()

    def __init__(self, viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._image: Image | None = None
        self._candidates: list[Image] = []
        self._state: dict = {}  # row key -> checked, kept while the layers change
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget(self)
        self.list.setToolTip(
            "The channels the model sees: the image's own and other open layers of its shape "
            "(stacked after it). Stored in the model; images it is applied to need the same "
            "channels."
        )
        layout.addWidget(self.list)
        self.list.itemChanged.connect(self._on_item_changed)
        events = viewer.layers.events
        events.inserted.connect(self._refresh)
        events.removed.connect(self._refresh)
        self.setVisible(False)

    def disconnect_viewer(self) -> None:
        events = self.viewer.layers.events
        events.inserted.disconnect(self._refresh)
        events.removed.disconnect(self._refresh)

    def set_image(self, image: Image | None) -> None:
        """List ``image``'s channels and the layers that could be stacked with it."""
        if image is not self._image:
            self._image = image
            self._state = {}  # a new image: its own channels checked, no other layer
            self._rebuild()

    def _refresh(self, event=None) -> None:
        self._rebuild()

    def _candidates_for(self, image: Image) -> list[Image]:
        from napari.layers import Image as ImageLayer

        shape = lyr.spatial_shape(image)
        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, ImageLayer)
            and layer is not image
            and not layer.rgb
            and not layer.multiscale
            and lyr.role(layer) not in ("probability", "uncertainty")
            and lyr.spatial_shape(layer) == shape
        ]

    def _key(self, row: int):
        """What a row stands for: ``("own", i)`` or the id of an extra layer."""
        n = own_channels(self._image)
        return ("own", row) if row < n else id(self._candidates[row - n])

    def _rebuild(self) -> None:
        image = self._image
        if image is not None and image not in self.viewer.layers:
            image = self._image = None
        self._candidates = self._candidates_for(image) if image is not None else []
        self.list.blockSignals(True)
        self.list.clear()
        if image is not None:
            for row, name in enumerate(channel_names(image, self._candidates)):
                key = self._key(row)
                item = QListWidgetItem(name)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                on = self._state.get(key, isinstance(key, tuple))  # own: on; a layer: off
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
                self.list.addItem(item)
        rows = self.list.count()
        if rows and not any(self._is_checked(r) for r in range(rows)):
            # the checked layers are gone: the image's own channels again
            for r in range(own_channels(image)):
                self.list.item(r).setCheckState(Qt.CheckState.Checked)
                self._state.pop(self._key(r), None)
        self.list.blockSignals(False)
        self.setVisible(rows > 1)
        if rows:
            self.list.setFixedHeight(min(rows, 5) * self.list.sizeHintForRow(0) + 6)
        self.changed.emit()

    def _is_checked(self, row: int) -> bool:
        return self.list.item(row).checkState() == Qt.CheckState.Checked

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if not any(self._is_checked(r) for r in range(self.list.count())):
            self.list.blockSignals(True)  # at least one channel: the last one stays checked
            item.setCheckState(Qt.CheckState.Checked)
            self.list.blockSignals(False)
            return
        self._state[self._key(self.list.row(item))] = item.checkState() == Qt.CheckState.Checked
        self.changed.emit()

    def set_checked(self, names: list[str]) -> None:
        """Check exactly the channels called ``names`` (as listed); for scripts and tests.

        Raises
        ------
        ValueError
            No names, or a name not listed.
        """
        rows = [self.list.item(r) for r in range(self.list.count())]
        unknown = set(names) - {item.text() for item in rows}
        if unknown or not names:
            listed = [item.text() for item in rows]
            raise ValueError(f"no channel(s) {sorted(unknown)} to check; listed: {listed}")
        for row, item in enumerate(rows):
            self._state[self._key(row)] = item.text() in names
        self._rebuild()

    def choice(self) -> ChannelChoice:
        """The checked channels: extra layers checked are stacked; None channels when all the
        image's own are checked and no other layer is."""
        image = self._image
        if image is None or self.list.count() == 0:
            return ChannelChoice()
        n = own_channels(image)
        extra = tuple(
            self._candidates[r - n] for r in range(n, self.list.count()) if self._is_checked(r)
        )
        picked = [r for r in range(self.list.count()) if self._is_checked(r)]
        # indices into the stacked input: own channels, then the extra layers in order
        index = {r: r for r in range(n)}
        for j, r in enumerate(r for r in range(n, self.list.count()) if self._is_checked(r)):
            index[r] = n + j
        channels = tuple(index[r] for r in picked)
        if channels == tuple(range(n + len(extra))):
            channels = None
        return ChannelChoice(extra, channels)
