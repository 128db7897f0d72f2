"""One model from several images, each with its own scribbles.

The images are laid side by side in one array, a montage, and trained on as one: every step
draws its crops from the painted pixels of all images (a painted class first, uniformly, then
one of its pixels in any image), the class counts behind the class weights are pooled over the
images (the advice to estimate weights over many images, not one), and the normalisation is
fitted on all of them. The network never sees two images in one crop's context:

- 2D images become planes of the montage, ``(N, Y, X, C)``, padded to the largest height and
  width by repeating their edge pixels (the padding is never painted); the model is a 2D model
  (``z_context = 0``) with the edge-aware term of a 2D image.
- Stacks are put one after the other along Z, each padded by ``z_context`` copies of its first
  and last slice: the slices a network sees around a slice near a stack's end are then exactly
  those of that stack alone (the ends repeat, as :func:`~napari_seglab.core.data.context_slices`
  does).

The model predicts each image on its own, as one trained on one image does.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from napari_seglab.core.config import DEFAULT_Z_CONTEXT, TrainConfig, TrainReport
from napari_seglab.core.data import as_zcyx, check_not_constant, check_scribbles
from napari_seglab.core.edits import ScribbleEdit
from napari_seglab.core.guard import lambda_edge_for
from napari_seglab.core.model import SegModel
from napari_seglab.core.training import train


@dataclass(frozen=True)
class Montage:
    """Several images and their scribbles in one array.

    Attributes
    ----------
    image : np.ndarray
        ``(Z, Y, X, C)``: the images' planes (2D images) or slices (stacks), padded.
    scribbles : np.ndarray
        ``(Z, Y, X)`` uint8, 0 where padded.
    planes : list of (int, int)
        For each image, the montage's planes ``[start, stop)`` that hold it.
    shapes : list of tuple of int
        Each image's spatial shape.
    is_3d : bool
        Whether the images are stacks.
    """

    image: np.ndarray
    scribbles: np.ndarray
    planes: list[tuple[int, int]]
    shapes: list[tuple[int, ...]]
    is_3d: bool


def montage(
    images: Sequence[np.ndarray],
    scribbles: Sequence[np.ndarray],
    *,
    channel_axis: int | None = None,
    z_context: int = DEFAULT_Z_CONTEXT,
    names: Sequence[str] | None = None,
) -> Montage:
    """Lay ``images`` and their ``scribbles`` side by side (see the module's description).

    Parameters
    ----------
    images : sequence of np.ndarray
        Each ``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, ``(Z, Y, X)`` or ``(Z, Y, X, C)``, as
        :func:`~napari_seglab.core.training.train` takes; all 2D or all stacks, all with one
        channel count.
    scribbles : sequence of np.ndarray
        Each image's scribbles, its spatial shape.
    channel_axis : int, optional
        The images' channel axis (detected from the scribbles' shapes when None).
    z_context : int
        For stacks: the slices on each side the network sees.
    names : sequence of str, optional
        Names for messages (default: "image 1", "image 2", ...).

    Raises
    ------
    ValueError
        No images, different counts of images and scribbles, a mix of 2D images and stacks,
        different channel counts, or an image's own problem (shapes, values), naming the image.
    """
    if len(images) == 0:
        raise ValueError("no images to train on")
    if len(images) != len(scribbles):
        raise ValueError(f"{len(images)} images but {len(scribbles)} scribbles")
    names = list(names) if names is not None else [f"image {i + 1}" for i in range(len(images))]
    views, labels = [], []
    for name, image, strokes in zip(names, images, scribbles, strict=True):
        strokes = np.asarray(strokes)
        try:
            view = as_zcyx(
                np.asarray(image), channel_axis=channel_axis, spatial_shape=strokes.shape
            )
            labels.append(check_scribbles(strokes, view.spatial_shape))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        views.append(view)
    kinds = {v.is_3d for v in views}
    if len(kinds) > 1:
        raise ValueError("train on 2D images or on stacks, not both in one model")
    channels = {v.channels for v in views}
    if len(channels) > 1:
        counts = ", ".join(f"{n}: {v.channels}" for n, v in zip(names, views, strict=True))
        raise ValueError(f"the images have different channel counts ({counts})")
    is_3d = kinds.pop()
    pad_z = int(z_context) if is_3d else 0
    height = max(v.data.shape[2] for v in views)
    width = max(v.data.shape[3] for v in views)
    dtype = np.result_type(*(v.data.dtype for v in views))
    parts, strokes, planes, z = [], [], [], 0
    for view, lab in zip(views, labels, strict=True):
        data = view.data  # (Z, C, Y, X)
        lab = lab.reshape(data.shape[0], *data.shape[2:])
        dy, dx = height - data.shape[2], width - data.shape[3]
        parts.append(
            np.pad(
                data.astype(dtype, copy=False), ((pad_z, pad_z), (0, 0), (0, dy), (0, dx)), "edge"
            )
        )
        strokes.append(np.pad(lab, ((pad_z, pad_z), (0, dy), (0, dx))))
        planes.append((z + pad_z, z + pad_z + data.shape[0]))
        z += data.shape[0] + 2 * pad_z
    image = np.moveaxis(np.concatenate(parts), 1, -1)
    return Montage(image, np.concatenate(strokes), planes, [v.spatial_shape for v in views], is_3d)


def train_many(
    images: Sequence[np.ndarray],
    scribbles: Sequence[np.ndarray],
    config: TrainConfig | None = None,
    model: SegModel | None = None,
    *,
    names: Sequence[str] | None = None,
) -> Generator[TrainReport, object, SegModel]:
    """Train one model on several images, each with its own scribbles.

    Parameters
    ----------
    images, scribbles : sequence of np.ndarray
        As for :func:`montage`: all 2D or all stacks, one channel count.
    config : TrainConfig, optional
        As for :func:`~napari_seglab.core.training.train`. Previews and the final prediction
        are not made (``TrainReport.prediction`` is None): predict each image with the model.
        The forest does not teach (``forest_teacher`` is 0): its filters would mix the images.
        Nor is the flux term used (``edge_flux`` is 0): it was not measured on the suite with
        several images, and on two images each painted with one class only it lowered the IoU.
    model : SegModel, optional
        Warm start.
    names : sequence of str, optional
        The images' names, for messages and the model's record.

    Returns
    -------
    Generator
        Yields a :class:`~napari_seglab.core.config.TrainReport` per step (the painted counts in
        its class weights pooled over the images); returns the model. ``send()`` takes new
        scribbles of the first image, as ``train``'s generator does (edits in its coordinates,
        or a whole array of its shape); the other images' scribbles are those given.

    Raises
    ------
    ValueError
        Immediately: what :func:`montage` and ``train`` refuse, naming the image; the
        classes must be painted somewhere, not in every image.
    """
    config = config or TrainConfig()
    model_config = config.model
    if model is not None:
        z_context = int(model.config.z_context or 0)
    else:
        z_context = DEFAULT_Z_CONTEXT if model_config.z_context is None else model_config.z_context
    seen = (model.config if model is not None else model_config).channels
    for i, (image, strokes) in enumerate(zip(images, scribbles, strict=False)):
        try:
            view = as_zcyx(image, channel_axis=config.channel_axis, spatial_shape=np.shape(strokes))
        except ValueError:
            continue  # montage says what is wrong with it
        try:
            check_not_constant(view.data, channels=seen)
        except ValueError as exc:
            raise ValueError(f"{names[i] if names else f'image {i + 1}'}: {exc}") from None
    m = montage(
        images, scribbles, channel_axis=config.channel_axis, z_context=z_context, names=names
    )
    if not m.is_3d and model is None:  # the planes are separate 2D images
        model_config = replace(model_config, z_context=0)
    config = replace(
        config,
        model=model_config,
        channel_axis=-1,
        preview_every=0,
        final_prediction=False,
        lambda_edge=lambda_edge_for(config, m.is_3d),
        forest_teacher=0.0,  # its filters would reach across the images of the montage
        edge_flux=0.0,  # lowered the IoU with each class painted in another image
    )
    return _record(train(m.image, m.scribbles, config, model=model), m, names)


def _record(
    gen: Generator[TrainReport, object, SegModel], m: Montage, names: Sequence[str] | None
) -> Generator[TrainReport, object, SegModel]:
    """Pass the reports on, and scribbles sent for the first image in; the model records the
    images it was trained on (from the first step, so that a run stopped early does too)."""
    model = None
    try:
        report = next(gen)
        while True:
            if model is None:
                model = report.model
                model.train_settings["images"] = len(m.shapes)
                model.train_settings["image_shapes"] = [list(s) for s in m.shapes]
                if names is not None:
                    model.train_settings["image_names"] = [str(n) for n in names]
            sent = yield report
            report = gen.send(None if sent is None else _first_image_update(sent, m))
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()


def _first_image_update(update, m: Montage):
    """Scribbles sent for the first image (edits, or a whole array of its shape), in the
    montage's coordinates."""
    shape = m.shapes[0]
    z0, z1 = m.planes[0]
    items = update if isinstance(update, (list, tuple)) else [update]
    out = []
    for item in items:
        if isinstance(item, ScribbleEdit):
            idx = [np.asarray(i, np.int64) for i in item.indices]
            if len(idx) != len(shape) or any(
                i.size and (i.min() < 0 or i.max() >= n) for i, n in zip(idx, shape, strict=True)
            ):
                raise ValueError(f"an edit outside the first image's shape {shape}")
            if m.is_3d:
                idx[0] = idx[0] + z0
            else:
                idx.insert(0, np.full(idx[0].shape, z0, np.int64))
            out.append(ScribbleEdit(tuple(idx), item.values))
            continue
        new = check_scribbles(np.asarray(item), shape)
        full = m.scribbles.copy()
        h, w = shape[-2:]
        full[z0:z1, :h, :w] = new.reshape(z1 - z0, h, w)
        out.append(full)
    return out
