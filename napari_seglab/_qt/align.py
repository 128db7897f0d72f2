"""Where a layer's pixels are on screen: napari's data-to-world transforms of two layers.

Training pairs image pixel ``i`` with scribble pixel ``i``. That is what the user painted only
when both layers map their data to the world the same way: napari places a layer by
``affine * (rotate * shear * scale + translate)`` (``Layer._data_to_world``), so a scribbles
layer at another scale, offset, rotation, shear or affine than its image shows its strokes over
other image pixels than the ones trained on. Layers the widget makes copy the image's whole
transform; layers it is given are compared, and refused when they differ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari.layers

#: Two transforms are the same when their matrices agree to this (absolute and relative).
TOLERANCE = 1e-6


def world_matrix(layer: napari.layers.Layer) -> np.ndarray:
    """``(D+1, D+1)`` homogeneous matrix taking the layer's data coordinates to the world.

    Composed from the public ``scale``, ``translate``, ``rotate``, ``shear`` and ``affine`` in
    napari's order: ``affine * (rotate * shear * scale + translate)``.
    """
    from napari.utils.transforms import Affine

    physical = Affine(
        scale=layer.scale,
        translate=layer.translate,
        rotate=layer.rotate,
        shear=layer.shear,
        ndim=layer.ndim,
    )
    return np.asarray(layer.affine.compose(physical).affine_matrix, dtype=np.float64)


def _trailing(matrix: np.ndarray, ndim: int) -> np.ndarray:
    """The part of a homogeneous matrix acting on its last ``ndim`` axes (and the offset)."""
    keep = [*range(matrix.shape[0] - 1 - ndim, matrix.shape[0])]
    return matrix[np.ix_(keep, keep)]


def same_placement(a: napari.layers.Layer, b: napari.layers.Layer, ndim: int) -> bool:
    """Whether the last ``ndim`` data axes of ``a`` and ``b`` land on the same world points."""
    ma, mb = _trailing(world_matrix(a), ndim), _trailing(world_matrix(b), ndim)
    scale = max(1.0, float(np.abs(ma).max()), float(np.abs(mb).max()))
    return bool(np.allclose(ma, mb, rtol=TOLERANCE, atol=TOLERANCE * scale))


def _numbers(values: Any) -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    return "(" + ", ".join(f"{v:.4g}" for v in flat) + ")"


def describe(layer: napari.layers.Layer) -> str:
    """The layer's transform in words, only its parts that are not the identity.

    E.g. ``"scale (2, 2)"``, ``"scale (1, 1), rotate 30°"``, ``"no transform (pixel units)"``.
    """
    n = layer.ndim
    parts = []
    scale = np.asarray(layer.scale, dtype=np.float64)
    translate = np.asarray(layer.translate, dtype=np.float64)
    rotate = np.asarray(layer.rotate, dtype=np.float64)
    shear = np.asarray(layer.shear, dtype=np.float64)
    affine = np.asarray(layer.affine.affine_matrix, dtype=np.float64)
    if not np.allclose(scale, 1.0):
        parts.append(f"scale {_numbers(scale)}")
    if not np.allclose(translate, 0.0):
        parts.append(f"translate {_numbers(translate)}")
    if not np.allclose(rotate, np.eye(n)):
        if n >= 2 and np.allclose(rotate[:-2, :-2], np.eye(n - 2)):  # in the displayed plane
            angle = np.degrees(np.arctan2(rotate[-1, -2], rotate[-1, -1]))
            parts.append(f"rotate {angle:.4g}°")
        else:
            parts.append(f"rotate {_numbers(rotate)}")
    if not np.allclose(_shear_matrix(shear, n), np.eye(n)):
        parts.append(f"shear {_numbers(shear)}")
    if not np.allclose(affine, np.eye(n + 1)):
        parts.append(f"affine {_numbers(affine[:-1])}")
    return ", ".join(parts) if parts else "no transform (pixel units)"


def placement_problem(
    image: napari.layers.Layer, scribbles: napari.layers.Layer, ndim: int
) -> str | None:
    """Why training on ``scribbles`` would not use the image pixels painted on screen, or None.

    Returns
    -------
    str or None
        A phrase naming both layers' transforms, e.g. ``"it is placed with scale (1, 1) and
        image 'cells' with scale (2, 2): its strokes lie over other image pixels than those
        trained on"``.
    """
    if same_placement(image, scribbles, ndim):
        return None
    return (
        f"it is placed with {describe(scribbles)} and image '{image.name}' with "
        f"{describe(image)}: its strokes lie over other image pixels than those trained on "
        "(give both layers the same scale, translate, rotate, shear and affine, or use New "
        "scribbles)"
    )


def transform_kwargs(image: napari.layers.Layer, ndim: int, leading: int = 0) -> dict[str, Any]:
    """The image's whole transform of its last ``ndim`` axes, for a new layer.

    Parameters
    ----------
    image : napari.layers.Layer
        The layer to copy (``scale``, ``translate``, ``rotate``, ``shear``, ``affine``).
    ndim : int
        The spatial axes shared with the new layer (the image's last ``ndim`` axes).
    leading : int
        Extra axes in front of the new layer's spatial axes (a class axis), left untransformed.

    Returns
    -------
    dict
        Keyword arguments for a napari layer's constructor.
    """
    from napari.utils.transforms.transform_utils import embed_in_identity_matrix

    n = image.ndim
    if ndim > n:
        raise ValueError(f"the image has {n} axes, fewer than the {ndim} to copy")
    out = ndim + leading
    rotate = _trailing_block(np.asarray(image.rotate, dtype=np.float64), ndim)
    shear = _trailing_block(_shear_matrix(image.shear, n), ndim)
    affine = _trailing(np.asarray(image.affine.affine_matrix, dtype=np.float64), ndim)
    return {
        "scale": (1.0,) * leading + tuple(np.asarray(image.scale, np.float64)[n - ndim :]),
        "translate": (0.0,) * leading + tuple(np.asarray(image.translate, np.float64)[n - ndim :]),
        "rotate": embed_in_identity_matrix(rotate, out),
        "shear": embed_in_identity_matrix(shear, out),
        "affine": embed_in_identity_matrix(affine, out + 1),
    }


def _shear_matrix(shear: Any, n: int) -> np.ndarray:
    """``(n, n)`` shear matrix from napari's ``shear`` (a matrix, or upper-triangular values)."""
    values = np.asarray(shear, dtype=np.float64)
    if values.ndim == 2:
        return values
    matrix = np.eye(n)
    if values.size == n * (n - 1) // 2:
        matrix[np.triu_indices(n, k=1)] = values
    elif np.any(values):
        raise ValueError(f"cannot read a {n}-D shear from {values.tolist()}")
    return matrix


def _trailing_block(matrix: np.ndarray, ndim: int) -> np.ndarray:
    return matrix[matrix.shape[0] - ndim :, matrix.shape[1] - ndim :]


def copy_placement(source: napari.layers.Layer, target: napari.layers.Layer) -> None:
    """Give ``target`` (a layer the widget made) the transform of ``source``'s last axes.

    Only what differs is set (each assignment refreshes the layer).
    """
    ndim = min(source.ndim, target.ndim)
    if same_placement(source, target, ndim):
        return
    kwargs = transform_kwargs(source, ndim, leading=target.ndim - ndim)
    for name, value in kwargs.items():
        setattr(target, name, value)
