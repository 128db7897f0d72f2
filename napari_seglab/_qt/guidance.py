"""Where to paint next: the ``"<image> uncertainty"`` layer and the camera move to the most
uncertain region not yet painted (:mod:`napari_seglab.core.uncertainty`).

The uncertainty comes from what the probability layer shows (the foreground probability for
two classes, all K for more), so it follows every preview and Apply without a second copy of
the probabilities. Once made, the layer is refreshed with each prediction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_seglab._qt import align
from napari_seglab._qt import layers as lyr
from napari_seglab.core.uncertainty import most_uncertain_window, uncertainty

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

#: Edge, in pixels, of the window "Where to paint next" looks for.
WINDOW = 64


def uncertainty_name(image: napari.layers.Layer) -> str:
    return f"{image.name} uncertainty"


def _class_probabilities(
    image: Image, prob: Image, region: tuple[slice, ...] | None = None
) -> np.ndarray | None:
    """``(K, *spatial)`` probabilities (of ``region``) from what the probability layer shows,
    or None."""
    spatial = lyr.spatial_shape(image)
    where = region or (slice(None),) * len(spatial)
    if prob.data.shape == spatial:
        data = np.asarray(prob.data[where], np.float32)
        return np.stack([1.0 - data, data])
    if prob.data.ndim == len(spatial) + 1 and prob.data.shape[1:] == spatial:
        return np.asarray(prob.data[(slice(None), *where)], np.float32)
    return None


def refresh(
    viewer: napari.Viewer,
    image: Image,
    create: bool = False,
    region: tuple[slice, ...] | None = None,
) -> Image | None:
    """Compute ``"<image> uncertainty"`` from the probability layer (making the layer when
    ``create``); returns it, or None when there is no prediction yet. With ``region`` (a
    preview of part of the image) an existing layer is refreshed there only. A layer of that
    name that SegLab did not make is never touched: the uncertainty goes to a layer of a free
    name beside it (``"<image> uncertainty [1]"``; see
    :func:`~napari_seglab._qt.layers.overlay_layer`)."""
    from napari.layers import Image

    prob = lyr.overlay_of(viewer, image, "probability")
    if prob is None:
        return None
    existing = lyr.overlay_layer(viewer, "uncertainty", Image, uncertainty_name(image))
    if existing is None and not create:
        return None
    if existing is not None and region is not None:
        probabilities = _class_probabilities(image, prob, region)
        if probabilities is not None and existing.data.shape == lyr.spatial_shape(image):
            existing.data[region] = uncertainty(probabilities)
            existing.refresh()
            return existing
    probabilities = _class_probabilities(image, prob)
    if probabilities is None:
        return None
    values = uncertainty(probabilities)
    if existing is not None and existing.data.shape == values.shape:
        existing.data = values
        return existing
    if existing is not None:
        viewer.layers.remove(existing)
    name, metadata = lyr.overlay_metadata(viewer, uncertainty_name(image))
    layer = Image(
        values,
        name=name,
        colormap="inferno",
        contrast_limits=(0.0, 1.0),
        opacity=0.7,
        blending="additive",
        metadata=metadata,
        **align.transform_kwargs(image, values.ndim),
    )
    lyr.mark(layer, "uncertainty")
    active = viewer.layers.selection.active
    # above the image's other overlays (under scribbles made for it)
    above = [
        viewer.layers.index(other)
        for other in (image, prob, lyr.overlay_of(viewer, image, "prediction"))
        if other is not None and other in viewer.layers
    ]
    index = max(above) + 1 if above else len(viewer.layers)
    viewer.layers.insert(index, layer)
    if active is not None:  # keep painting where the user was
        viewer.layers.selection.active = active
    return layer


def show_me_where(
    viewer: napari.Viewer, image: Image, scribbles: Labels | None, size: int = WINDOW
) -> tuple[slice, ...] | None:
    """Show the uncertainty layer and centre the view on the most uncertain unpainted window.

    Returns the window (data coordinates of the image), or None when nothing is predicted
    yet. A stack's view moves to the window's plane.
    """
    layer = refresh(viewer, image, create=True)
    if layer is None:
        return None
    layer.visible = True
    painted = None
    if scribbles is not None and tuple(scribbles.data.shape) == layer.data.shape:
        painted = np.asarray(scribbles.data) != 0
    window = most_uncertain_window(layer.data, painted, size)
    center = [(s.start + s.stop - 1) / 2 for s in window]
    world = np.asarray(layer.data_to_world(center), float)
    if len(world) == 3:
        viewer.dims.set_point(len(viewer.dims.point) - 3, float(world[0]))
    # zoom in (never out) so that the window is about a third of the view's width
    camera = lyr.camera(viewer)
    zoom = camera.zoom
    viewer.reset_view()
    fit = camera.zoom
    camera.zoom = max(zoom, fit * max(1.0, max(layer.data.shape[-2:]) / (3 * size)))
    camera.center = tuple(world[-2:])
    return window
