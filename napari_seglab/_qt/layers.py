"""Layer helpers: scribbles layers, and the prediction/probability overlay refreshed in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_seglab._qt.classes import SegClass, apply_classes

if TYPE_CHECKING:
    import napari
    import napari.layers

    from napari_seglab.core.model import Prediction

#: Marks layers the widget created, in ``layer.metadata["seglab"]``.
ROLE_KEY = "seglab"


def scribbles_name(image: napari.layers.Layer) -> str:
    """``"<image> scribbles"``."""
    return f"{image.name} scribbles"


def prediction_name(image: napari.layers.Layer) -> str:
    """``"<image> prediction"``."""
    return f"{image.name} prediction"


def probability_name(image: napari.layers.Layer) -> str:
    """``"<image> probability"``."""
    return f"{image.name} probability"


def role(layer: napari.layers.Layer) -> str | None:
    """``"scribbles"``, ``"prediction"``, ``"probability"`` for layers made here, else None."""
    return layer.metadata.get(ROLE_KEY)


def image_data(image: napari.layers.Image) -> np.ndarray:
    """The image as a numpy array: ``(Y, X)``, ``(Z, Y, X)`` or ``(Y, X, C)`` for RGB.

    For a multiscale layer the full-resolution level is used.
    """
    data = image.data[0] if image.multiscale else image.data
    return np.asarray(data)


def spatial_shape(image: napari.layers.Image) -> tuple[int, ...]:
    """Shape of the image without the RGB(A) axis."""
    shape = tuple(image.data[0].shape if image.multiscale else image.data.shape)
    return shape[:-1] if image.rgb else shape


def _spatial_transform(image: napari.layers.Image, ndim: int) -> dict:
    """``scale`` and ``translate`` of the image's last ``ndim`` axes (for aligned layers)."""
    return {
        "scale": tuple(image.scale[-ndim:]),
        "translate": tuple(image.translate[-ndim:]),
    }


def find_layer(viewer: napari.Viewer, name: str, layer_type: type) -> napari.layers.Layer | None:
    """The layer called ``name`` if it exists and has type ``layer_type``."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, layer_type):
            return layer
    return None


def find_scribbles(viewer: napari.Viewer, image: napari.layers.Image):
    """The Labels layer ``"<image> scribbles"`` with the image's spatial shape, or None."""
    from napari.layers import Labels

    layer = find_layer(viewer, scribbles_name(image), Labels)
    if layer is not None and tuple(layer.data.shape) == spatial_shape(image):
        return layer
    return None


def find_pair(viewer: napari.Viewer):
    """``(image, scribbles)``: the first image that has a matching ``"<image> scribbles"``."""
    from napari.layers import Image

    for layer in viewer.layers:
        if isinstance(layer, Image):
            scribbles = find_scribbles(viewer, layer)
            if scribbles is not None:
                return layer, scribbles
    return None, None


def new_scribbles_layer(
    viewer: napari.Viewer, image: napari.layers.Image, classes: Sequence[SegClass]
) -> napari.layers.Labels:
    """Add an empty ``"<image> scribbles"`` Labels layer ready to paint foreground.

    The layer has the image's spatial shape, scale and translation, the classes' names and
    colours, the paint tool and label 2 (foreground) selected.
    """
    shape = spatial_shape(image)
    layer = viewer.add_labels(
        np.zeros(shape, dtype=np.uint8),
        name=scribbles_name(image),
        metadata={ROLE_KEY: "scribbles"},
        **_spatial_transform(image, len(shape)),
    )
    apply_classes(layer, classes)
    layer.brush_size = max(3, round(min(shape[-2:]) / 60))
    layer.selected_label = 2 if len(classes) >= 2 else 1
    viewer.layers.selection.active = layer
    layer.mode = "paint"
    return layer


def foreground_probability(probabilities: np.ndarray) -> np.ndarray:
    """What the probability layer shows: ``(*spatial)`` foreground for 2 classes, else all.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(K, *spatial)`` float class probabilities.

    Returns
    -------
    np.ndarray
        ``(*spatial)`` for K == 2 (class 2), ``(K, *spatial)`` otherwise.
    """
    if probabilities.shape[0] == 2:
        return probabilities[1]
    return probabilities


def _set_data(layer: napari.layers.Layer, data: np.ndarray) -> None:
    """Replace a layer's data, in place when shape and dtype allow (no re-allocation)."""
    current = layer.data
    if (
        isinstance(current, np.ndarray)
        and current.shape == data.shape
        and (current.dtype == data.dtype)
    ):
        current[...] = data
        layer.refresh()
    else:
        layer.data = data


def show_prediction(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    prediction: Prediction,
    classes: Sequence[SegClass],
    *,
    below: napari.layers.Layer | None = None,
    probability: bool = True,
) -> tuple[napari.layers.Labels, napari.layers.Image | None]:
    """Create or refresh ``"<image> prediction"`` (and ``"<image> probability"``).

    The layers are created once (under ``below`` when given, so that scribbles stay on top)
    and later refreshed in place.

    Parameters
    ----------
    prediction : Prediction
        ``labels (*spatial)`` uint8 class ids 1..K and ``probabilities (K, *spatial)``.
    """
    from napari.layers import Image, Labels

    labels = np.asarray(prediction.labels)
    ndim = labels.ndim
    transform = _spatial_transform(image, ndim)
    pred = find_layer(viewer, prediction_name(image), Labels)
    created = []
    if pred is None:
        pred = Labels(
            labels.copy(),
            name=prediction_name(image),
            opacity=0.45,
            metadata={ROLE_KEY: "prediction"},
            **transform,
        )
        apply_classes(pred, classes)
        created.append(pred)
    else:
        _set_data(pred, labels)

    prob_layer = None
    if probability:
        prob = np.asarray(
            foreground_probability(np.asarray(prediction.probabilities)), dtype=np.float32
        )
        prob_layer = find_layer(viewer, probability_name(image), Image)
        if prob_layer is None:
            prob_transform = transform
            if prob.ndim > ndim:  # (K, *spatial): a class axis in front
                prob_transform = {
                    k: (1.0 if k == "scale" else 0.0, *v) for k, v in transform.items()
                }
            prob_layer = Image(
                prob.copy(),
                name=probability_name(image),
                colormap="magma",
                contrast_limits=(0.0, 1.0),
                opacity=0.6,
                blending="additive",
                visible=False,
                metadata={ROLE_KEY: "probability"},
                **prob_transform,
            )
            created.insert(0, prob_layer)
        else:
            _set_data(prob_layer, prob)
            prob_layer.contrast_limits = (0.0, 1.0)

    if created:
        index = len(viewer.layers)
        if below is not None and below in viewer.layers:
            index = viewer.layers.index(below)
        active = viewer.layers.selection.active
        for layer in created:
            viewer.layers.insert(index, layer)
            index += 1
        if active is not None:  # keep painting where the user was
            viewer.layers.selection.active = active
    return pred, prob_layer
