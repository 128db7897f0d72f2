"""Scribble classes: names and colours shared by the scribbles and prediction layers.

Label convention: 0 = unlabeled, 1 = background, 2 = foreground, 3.. more classes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_seglab.core.data import MAX_CLASSES as _CORE_MAX_CLASSES

if TYPE_CHECKING:
    import napari.layers

#: Okabe-Ito colour-blind-safe palette: the colours of classes 1-8 (further classes take
#: napari's own label colours, :func:`default_class`).
PALETTE: tuple[str, ...] = (
    "#0072b2",  # 1 background: blue
    "#e69f00",  # 2 foreground: orange
    "#009e73",  # green
    "#cc79a7",  # pink
    "#f0e442",  # yellow
    "#56b4e9",  # sky blue
    "#d55e00",  # vermillion
    "#999999",  # grey
)

#: Key under which the class list is stored in a layer's ``metadata``.
METADATA_KEY = "seglab_classes"

#: The most classes (class ids 1..MAX_CLASSES), the core's limit. A layer holding a larger id
#: is an instance segmentation or a mask, not scribbles: one table row per id would be useless.
MAX_CLASSES = _CORE_MAX_CLASSES

#: The ``features`` columns :func:`apply_classes` writes; a layer with other columns is the user's.
FEATURE_COLUMNS = ("index", "class")


@dataclass(frozen=True)
class SegClass:
    """One scribble class.

    Parameters
    ----------
    name : str
        Name shown in the widget and in napari's status bar.
    color : str
        Hex colour ``"#rrggbb"`` used for the class in every layer.
    """

    name: str
    color: str


def default_class(class_id: int) -> SegClass:
    """Return the default name and colour of class ``class_id`` (1-based)."""
    if class_id < 1:
        raise ValueError(f"class ids start at 1 (0 is unlabeled), got {class_id}")
    name = {1: "background", 2: "foreground"}.get(class_id, f"class {class_id}")
    colors = _class_colors()
    return SegClass(name, colors[(class_id - 1) % len(colors)])


@functools.cache
def _class_colors() -> tuple[str, ...]:
    """:data:`PALETTE`, then napari's label colours, each colour once, for classes 1..
    :data:`MAX_CLASSES` (the palette repeated: class 9 was as blue as the background)."""
    from napari.utils.colormaps import label_colormap

    colors = list(PALETTE)
    for rgba in label_colormap(256).colors[1:]:
        r, g, b = (round(255 * float(v)) for v in rgba[:3])
        hex_color = f"#{r:02x}{g:02x}{b:02x}"
        if hex_color not in colors:
            colors.append(hex_color)
        if len(colors) == MAX_CLASSES:
            break
    return tuple(colors)


def default_classes(num_classes: int = 2) -> list[SegClass]:
    """Return ``num_classes`` default classes (ids ``1..num_classes``)."""
    return [default_class(k) for k in range(1, num_classes + 1)]


def label_colormap(classes: Sequence[SegClass]):
    """Return a napari ``DirectLabelColormap``: class id ``k`` -> ``classes[k-1].color``.

    Unlabeled pixels (0) are transparent; ids beyond the list are grey.
    """
    from napari.utils.colormaps import DirectLabelColormap

    color_dict: dict[int | None, str] = {None: "#999999", 0: "transparent"}
    for k, cls in enumerate(classes, start=1):
        color_dict[k] = cls.color
    return DirectLabelColormap(color_dict=color_dict)


def apply_classes(layer: napari.layers.Labels, classes: Sequence[SegClass]) -> None:
    """Give a Labels layer the classes' colours, and names in napari's status bar.

    The names go to ``layer.features`` (column ``class``, indexed by class id) and the list to
    ``layer.metadata[METADATA_KEY]`` so that it travels with the layer.
    """
    classes = list(classes)
    layer.colormap = label_colormap(classes)
    ids = np.arange(0, len(classes) + 1)
    layer.features = {"index": ids, "class": ["unlabeled"] + [c.name for c in classes]}
    layer.metadata[METADATA_KEY] = [(c.name, c.color) for c in classes]


def classes_from_layer(layer: napari.layers.Labels) -> list[SegClass] | None:
    """Return the classes stored on a layer by :func:`apply_classes`, or None."""
    stored = layer.metadata.get(METADATA_KEY)
    if not stored:
        return None
    try:
        return [SegClass(str(name), str(color)) for name, color in stored]
    except (TypeError, ValueError):
        return None
