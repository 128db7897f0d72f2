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
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_seglab._qt import layers as lyr
from napari_seglab._qt.checklist import CheckList, compatible

if TYPE_CHECKING:
    import napari
    from napari.layers import Image
    from qtpy.QtWidgets import QWidget

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


def training_inputs(viewer: napari.Viewer, image: Image, choice: ChannelChoice, other_images):
    """What a Train click trains on: ``(data, others, names)``, the image as the model sees it
    (:meth:`ChannelChoice.input`), the ``(image array, scribbles array)`` of each other image
    (from its ``"<image> scribbles"`` layer) and the images' names.

    Raises
    ------
    ValueError
        An other image without a usable scribbles layer, other images with other layers as
        channels, or an extra channel layer of another shape.
    """
    others, names = [], [image.name]
    for other in other_images:
        strokes = lyr.find_scribbles(viewer, other)
        if strokes is None or lyr.scribbles_problem(strokes) is not None:
            raise ValueError(f"no usable '{lyr.scribbles_name(other)}' layer for '{other.name}'")
        if not compatible(other, image):
            raise ValueError(
                f"'{other.name}' and '{image.name}' cannot train one model: both 2D or both "
                "stacks, with the same channels"
            )
        others.append((lyr.image_source(other), strokes.data))
        names.append(other.name)
    if others and choice.extra:
        raise ValueError("other images and other layers as channels cannot be combined")
    return choice.input(image), others, names


def check_channel_count(model: SegModel, image: Image, choice: ChannelChoice) -> None:
    """Refuse, naming the channels, an image whose channel count the model does not take,
    where the layer says it for sure (RGB, a 2D layer, other layers stacked); a 3D layer may
    be a stack or channels, which the core's prediction tells apart.

    Raises
    ------
    ValueError
        The layer's channels are not as many as the model takes.
    """
    n = choice.count(image)
    sure = image.rgb or bool(choice.extra) or lyr.image_source(image).ndim == 2
    if sure and n != model.in_channels:
        names = ", ".join(channel_names(image, choice.extra))
        raise ValueError(
            f"'{image.name}' has {n} channel(s) ({names}) and the model takes "
            f"{model.input_note()}: apply it to images with the channels it was trained on"
        )


def pooled_counts(counts: np.ndarray, others) -> np.ndarray:
    """``counts`` (painted pixels of classes 1..K of the image's scribbles) plus those of the
    other images' scribbles arrays: ``(max K,)``."""
    total = np.asarray(counts, np.int64)
    for strokes in others:
        more = np.bincount(np.asarray(strokes).ravel().astype(np.int64, copy=False))[1:]
        if len(more) > len(total):
            total = np.pad(total, (0, len(more) - len(total)))
        total[: len(more)] += more
    return total


def channel_names(image: Image, extra=()) -> list[str]:
    """Names of the stacked channels: the image's own, then the extra layers'."""
    n = own_channels(image)
    own = [f"{image.name}: {RGB_NAMES[i]}" for i in range(n)] if image.rgb else [image.name]
    return own + [layer.name for layer in extra]


class ChannelPicker(CheckList):
    """A checkable list of the channels the model may see: the image's own (checked at first)
    and other open layers of its shape; hidden when there is no choice (a one-channel image
    and no other layer of its shape). One channel stays checked."""

    min_rows = 2
    keep_one = True

    def __init__(self, viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(
            viewer,
            "The channels the model sees: the image's own and other open layers of its shape "
            "(stacked after it). Stored in the model; images it is applied to need the same "
            "channels.",
            parent,
            title="Channels the model sees:",
        )
        self._candidates: list[Image] = []

    def rows(self, image: Image) -> list[tuple[Any, str, bool]]:
        from napari.layers import Image as ImageLayer

        shape = lyr.spatial_shape(image)
        self._candidates = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, ImageLayer)
            and layer is not image
            and not layer.rgb
            and not layer.multiscale
            and lyr.role(layer) not in ("probability", "uncertainty")
            and lyr.spatial_shape(layer) == shape
        ]
        n = own_channels(image)
        keys = [("own", i) for i in range(n)] + [id(layer) for layer in self._candidates]
        names = channel_names(image, self._candidates)
        return [(key, name, i < n) for i, (key, name) in enumerate(zip(keys, names, strict=True))]

    def choice(self) -> ChannelChoice:
        """The checked channels: the extra layers checked are stacked after the image's own;
        None channels when every own channel is checked and no other layer is."""
        image = self._image
        if image is None or self.list.count() == 0:
            return ChannelChoice()
        n = own_channels(image)
        layers = {id(layer): layer for layer in self._candidates}
        checked = self.checked_keys()
        extra = tuple(layers[k] for k in checked if not isinstance(k, tuple))
        # indices into the stacked input: own channels, then the checked layers in order
        index = {("own", i): i for i in range(n)}
        index.update({id(layer): n + j for j, layer in enumerate(extra)})
        channels = tuple(index[k] for k in checked)
        if channels == tuple(range(n + len(extra))):
            channels = None
        return ChannelChoice(extra, channels)
