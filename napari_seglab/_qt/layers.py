"""Layer helpers: scribbles layers, and the prediction/probability overlay refreshed in place."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_seglab._qt import align
from napari_seglab._qt.classes import (
    FEATURE_COLUMNS,
    MAX_CLASSES,
    METADATA_KEY,
    SegClass,
    apply_classes,
)

if TYPE_CHECKING:
    import napari
    import napari.layers

    from napari_seglab.core.inference import Prediction

#: Marks layers the widget created, in ``layer.metadata["seglab"]``.
ROLE_KEY = "seglab"
#: In the metadata of a layer the widget created: that layer's ``unique_id``. napari copies a
#: layer's metadata with it (Duplicate Layer, ``Layer.create(*layer.as_layer_data_tuple())``)
#: but gives the copy an id of its own, so a copy of an overlay is the user's (:func:`role`).
OWNER_KEY = "seglab_layer"


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
    """``"scribbles"``, ``"prediction"``, ``"probability"``, ``"uncertainty"`` for a layer
    made here (:func:`mark`), else None: also for a copy of one, which is the user's."""
    metadata = layer.metadata
    if metadata.get(OWNER_KEY) != str(layer.unique_id):
        return None
    return metadata.get(ROLE_KEY)


def mark(layer: napari.layers.Layer, role_name: str) -> napari.layers.Layer:
    """Mark ``layer``, just made here, as SegLab's ``role_name`` layer (:func:`role`)."""
    layer.metadata[ROLE_KEY] = role_name
    layer.metadata[OWNER_KEY] = str(layer.unique_id)
    return layer


def camera(viewer: napari.Viewer):
    """The viewer's camera: ``viewer.scene.camera`` (napari >= 0.9), else ``viewer.camera``."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def scribbles_problem(layer: napari.layers.Labels, read_values: bool = True) -> str | None:
    """Why ``layer`` cannot hold scribbles, or None if it can.

    Scribbles hold 0 = unlabeled, 1 = background, 2 = foreground, 3.. more classes, up to
    :data:`~napari_seglab._qt.classes.MAX_CLASSES`. A layer with negative values, a larger id
    (an instance segmentation), or a ``features`` table that SegLab did not write belongs to
    something else; the widget must neither use nor modify it. Reads the data once (min/max)
    unless ``read_values`` is False (the values' range is then not checked).

    Returns
    -------
    str or None
        A phrase for the user naming what was found, e.g. ``"its largest label is 87"``.
    """
    features = layer.features
    ours = METADATA_KEY in layer.metadata and set(features.columns) <= set(FEATURE_COLUMNS)
    if len(features.columns) and not ours:
        columns = ", ".join(str(c) for c in list(features.columns)[:4])
        return f"it has a features table ({columns}) that SegLab did not write"
    if getattr(layer, "multiscale", False):
        return "it is a multiscale layer"
    data = layer.data
    dtype = np.dtype(data.dtype)
    if not (np.issubdtype(dtype, np.integer) or dtype.kind == "b"):
        return f"its values are {dtype}, not integer labels"
    if not data.size or not read_values:
        return None
    values = np.asarray(data)
    high = int(values.max())
    problem = label_range_problem(int(values.min()), high)
    if (
        problem is None
        and high >= INSTANCES_FROM
        and METADATA_KEY not in layer.metadata
        and "scribble" not in layer.name.lower()
    ):
        problem = instances_problem(values)
    return problem


#: From this many labels on, a layer SegLab has not used yet whose labels are each one
#: connected object is taken for an instance segmentation (:func:`instances_problem`),
#: unless its name says scribbles (a scribbles file reopened has no SegLab metadata).
INSTANCES_FROM = 8


def instances_problem(values: np.ndarray) -> str | None:
    """``"its 25 labels are one connected object each ..."`` when every label of ``values``
    (0 = none) is a single connected region (touching diagonally counts), as the objects of an
    instance segmentation are; None otherwise. Scribbles have strokes in several places for
    some class (background at least). Labels up to :data:`~napari_seglab._qt.classes.
    MAX_CLASSES` only (an instance segmentation with more is refused by its range)."""
    from skimage.measure import label

    present = int(np.count_nonzero(np.bincount(values.ravel().astype(np.intp))[1:]))
    regions = int(label(values, background=0, connectivity=values.ndim).max())
    if present < INSTANCES_FROM or regions != present:
        return None
    return (
        f"its {present} labels are one connected object each, as in an instance segmentation "
        "(scribbles are classes: 1 = background, 2 = foreground, 3.. more classes; if these "
        "are scribbles, put 'scribbles' in the layer's name)"
    )


def label_range_problem(low: int, high: int) -> str | None:
    """Why labels from ``low`` to ``high`` are no scribbles, or None (see ``scribbles_problem``)."""
    if low < 0:
        return (
            f"it holds negative values (down to {low}); scribbles are 0 = unlabeled, "
            "1 = background, 2 = foreground, 3.. more classes"
        )
    if high > MAX_CLASSES:
        return f"its largest label is {high} (SegLab handles at most {MAX_CLASSES} classes)"
    return None


def is_scribbles_candidate(viewer: napari.Viewer, layer: napari.layers.Layer) -> bool:
    """Whether ``layer`` may be chosen as scribbles without the user picking it.

    Only layers SegLab created and layers named ``"<image> scribbles"`` after an image of the
    viewer qualify; any other Labels layer (an instance segmentation, a mask) is the user's.
    """
    if role(layer) == "scribbles":
        return True
    from napari.layers import Image

    return any(
        isinstance(other, Image) and layer.name == scribbles_name(other) for other in viewer.layers
    )


def image_source(image: napari.layers.Image):
    """The image's array as the layer holds it (numpy, dask, zarr...), nothing loaded or
    copied: ``(Y, X)``, ``(Z, Y, X)`` or ``(Y, X, C)`` for RGB; the full-resolution level of
    a multiscale layer."""
    return image.data[0] if image.multiscale else image.data


def image_data(image: napari.layers.Image) -> np.ndarray:
    """The image as a numpy array: ``(Y, X)``, ``(Z, Y, X)`` or ``(Y, X, C)`` for RGB.

    For a multiscale layer the full-resolution level is used.
    """
    data = image.data[0] if image.multiscale else image.data
    return np.asarray(data)


def is_lazy(data: Any) -> bool:
    """Whether ``data`` is an array read on demand (Dask, Zarr, ...) rather than in memory."""
    return not isinstance(data, np.ndarray)


def spatial_shape(image: napari.layers.Image) -> tuple[int, ...]:
    """Shape of the image without the RGB(A) axis."""
    shape = tuple(image.data[0].shape if image.multiscale else image.data.shape)
    return shape[:-1] if image.rgb else shape


def find_layer(viewer: napari.Viewer, name: str, layer_type: type) -> napari.layers.Layer | None:
    """The layer called ``name`` if it exists and has type ``layer_type``."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, layer_type):
            return layer
    return None


#: In an overlay layer's metadata: the name it was given (:func:`overlay_layer`).
GIVEN_NAME_KEY = "seglab_name"


def overlay_layer(
    viewer: napari.Viewer, role_name: str, layer_type: type, name: str
) -> napari.layers.Layer | None:
    """The overlay SegLab made as ``role_name`` (``"prediction"``, ...) under the name
    ``name`` (``"<image> prediction"``), or None: the layer called ``name`` when SegLab made
    it; else, when a layer of the user's held that name, the one made under a free name
    (``"<image> prediction [1]"``, :func:`free_name`) that still has the name it was given,
    the first in the layer list. The name ties the overlay to the image's name, so an image
    closed and opened again finds its overlay. A layer SegLab did not make is never one,
    whatever its name, nor is a copy of one (Duplicate Layer); an overlay the user renamed to
    another name is not one either (it is theirs to keep)."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, layer_type) and role(layer) == role_name:
            return layer
    free = re.compile(re.escape(name) + r" \[\d+\]")
    for layer in viewer.layers:
        if (
            isinstance(layer, layer_type)
            and role(layer) == role_name
            and layer.name == layer.metadata.get(GIVEN_NAME_KEY)
            and free.fullmatch(layer.name)
        ):
            return layer
    return None


def overlay_of(
    viewer: napari.Viewer, image: napari.layers.Layer, role_name: str
) -> napari.layers.Layer | None:
    """``image``'s ``"prediction"`` (Labels) or ``"probability"`` (Image) layer that
    SegLab made (:func:`overlay_layer`), or None."""
    from napari.layers import Image, Labels

    if role_name == "prediction":
        return overlay_layer(viewer, role_name, Labels, prediction_name(image))
    return overlay_layer(viewer, role_name, Image, probability_name(image))


def free_name(viewer: napari.Viewer, name: str) -> str:
    """``name`` when no layer has it, else ``"name [n]"`` with the smallest free ``n``
    (napari's own way with a name that is taken)."""
    if name not in viewer.layers:
        return name
    n = 1
    while f"{name} [{n}]" in viewer.layers:
        n += 1
    return f"{name} [{n}]"


def overlay_metadata(viewer: napari.Viewer, name: str) -> tuple[str, dict]:
    """The free name (:func:`free_name`) and the metadata of a new overlay called ``name``
    (its role is given by :func:`mark` once the layer is made)."""
    given = free_name(viewer, name)
    return given, {GIVEN_NAME_KEY: given}


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

    The layer has the image's spatial shape and its whole transform (scale, translate, rotate,
    shear, affine: see :mod:`~napari_seglab._qt.align`), so that strokes land on the image
    pixels under the brush; the classes' names and colours, the paint tool and label 2
    (foreground) selected.
    """
    from napari.layers import Labels

    shape = spatial_shape(image)
    layer = Labels(
        np.zeros(shape, dtype=np.uint8),
        name=scribbles_name(image),
        **align.transform_kwargs(image, len(shape)),
    )
    viewer.add_layer(mark(layer, "scribbles"))  # marked before the viewer announces it
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


def set_data(layer: napari.layers.Layer, data: np.ndarray) -> None:
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


def visible_region(image: napari.layers.Image) -> tuple[slice, ...] | None:
    """The part of ``image`` on screen, as one slice per spatial axis; None if all of it.

    Uses the layer's ``corner_pixels``; stacks give the displayed slice. Adds a margin of 1/8
    of the view on each side.
    """
    shape = spatial_shape(image)
    corners = np.asarray(image.corner_pixels)[:, : len(shape)]
    if corners.shape != (2, len(shape)):
        return None
    lo, hi = corners[0].astype(int), corners[1].astype(int) + 1
    region = []
    full = True
    for axis, n in enumerate(shape):
        a, b = int(np.clip(lo[axis], 0, n - 1)), int(np.clip(hi[axis], 1, n))
        if axis < len(shape) - 2:  # not displayed: the current slice
            region.append(slice(a, a + 1))
            full = full and n == 1
            continue
        margin = (b - a) // 8
        a, b = max(0, a - margin), min(n, b + margin)
        if b <= a:
            return None
        region.append(slice(a, b))
        full = full and (b - a) * 10 >= n * 9
    return None if full else tuple(region)


def ensure_prediction_layers(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    num_classes: int,
    classes: Sequence[SegClass],
    *,
    probability: bool = True,
    created: list | None = None,
) -> tuple[napari.layers.Labels, napari.layers.Image | None]:
    """Return ``"<image> prediction"`` and ``"<image> probability"``, creating them if needed
    (the probability layer not at all when ``probability`` is False: None then). The layers
    this call adds (also one that replaced an own layer of another shape) are appended to
    ``created`` when it is given.

    New layers start empty (class 0 is transparent) and are inserted directly above the image
    (so that they are seen whatever else lies above it; scribbles made for the image lie above
    them); existing ones of the right shape are kept where they are. Both have the image's
    whole transform (the probability layer's class axis, when it has one, is left as it is).
    """
    from napari.layers import Image, Labels

    shape = spatial_shape(image)
    transform = align.transform_kwargs(image, len(shape))
    prob_shape = shape if num_classes == 2 else (num_classes, *shape)
    created = [] if created is None else created
    start = len(created)
    pred = overlay_of(viewer, image, "prediction")
    if pred is not None and tuple(pred.data.shape) != shape:
        viewer.layers.remove(pred)
        pred = None
    if pred is None:
        name, metadata = overlay_metadata(viewer, prediction_name(image))
        pred = Labels(
            np.zeros(shape, np.uint8), name=name, opacity=0.45, metadata=metadata, **transform
        )
        mark(pred, "prediction")
        apply_classes(pred, classes)
        created.append(pred)
    if not probability:
        _place(viewer, image, pred, [pred], created[start:])
        return pred, None
    prob = overlay_of(viewer, image, "probability")
    if prob is not None and tuple(prob.data.shape) != prob_shape:
        viewer.layers.remove(prob)
        prob = None
    if prob is None:
        # (K, *spatial) for more than 2 classes: a class axis in front
        prob_transform = align.transform_kwargs(
            image, len(shape), leading=len(prob_shape) - len(shape)
        )
        name, metadata = overlay_metadata(viewer, probability_name(image))
        prob = Image(
            np.zeros(prob_shape, np.float32),
            name=name,
            colormap="magma",
            contrast_limits=(0.0, 1.0),
            opacity=0.6,
            blending="additive",
            visible=False,
            metadata=metadata,
            **prob_transform,
        )
        mark(prob, "probability")
        created.insert(start, prob)
    _place(viewer, image, pred, [pred, prob], created[start:])
    return pred, prob


def _place(viewer, image, pred, layers: list, created: list) -> None:
    """Give existing overlay layers the image's placement and insert the new ones above the
    image (a new probability layer under an existing prediction layer)."""
    for layer in layers:
        if layer not in created:  # made for the image before its transform changed
            align.copy_placement(image, layer)
    if not created:
        return
    index = viewer.layers.index(image) + 1 if image in viewer.layers else len(viewer.layers)
    if pred not in created:  # the probability goes under an existing prediction layer
        index = min(index, viewer.layers.index(pred))
    active = viewer.layers.selection.active
    for layer in created:
        viewer.layers.insert(index, layer)
        index += 1
    if active is not None:  # keep painting where the user was
        viewer.layers.selection.active = active


def update_prediction_layers(
    pred: napari.layers.Labels,
    prob: napari.layers.Image | None,
    prediction: Prediction,
    region: tuple[slice, ...] | None = None,
) -> None:
    """Write a prediction (of the whole image, or of ``region``) into the overlay layers.

    Parameters
    ----------
    prediction : Prediction
        ``labels`` uint8 class ids 1..K with the shape of the image (or of ``region``);
        ``probabilities`` ``(K, *that shape)``.
    region : tuple of slice, optional
        Where the prediction goes (one slice per spatial axis); None: the whole image.
    """
    labels = np.asarray(prediction.labels)
    if region is None:
        set_data(pred, labels)
    else:
        pred.data[region] = labels
        pred.refresh()
    if prob is None or prediction.probabilities is None:
        return
    values = np.asarray(foreground_probability(np.asarray(prediction.probabilities)), np.float32)
    if region is None and values.shape == prob.data.shape:
        set_data(prob, values)
    elif region is not None and values.ndim == prob.data.ndim:
        index = region if values.ndim == labels.ndim else (slice(None), *region)
        prob.data[index] = values
        if prob.visible:
            prob.refresh()
    else:  # the number of classes changed
        prob.data = values
    prob.contrast_limits = (0.0, 1.0)


def show_prediction(
    viewer: napari.Viewer,
    image: napari.layers.Image,
    prediction: Prediction,
    classes: Sequence[SegClass],
    *,
    region: tuple[slice, ...] | None = None,
) -> tuple[napari.layers.Labels, napari.layers.Image]:
    """Create (once) and refresh ``"<image> prediction"`` and ``"<image> probability"``.

    A prediction without probabilities (of a lazy image) refreshes the prediction layer alone
    and returns None for the probability layer (an existing one is left as it was).
    """
    if prediction.probabilities is None:
        pred = ensure_prediction_layers(viewer, image, 2, classes, probability=False)[0]
        update_prediction_layers(pred, None, prediction, region)
        return pred, None
    num_classes = int(np.asarray(prediction.probabilities).shape[0])
    pred, prob = ensure_prediction_layers(viewer, image, num_classes, classes)
    update_prediction_layers(pred, prob, prediction, region)
    return pred, prob
