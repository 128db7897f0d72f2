"""Tiled prediction with overlap and smooth blending, in bounded memory.

Tiles overlap by ``overlap`` pixels; each tile's probabilities are weighted by a window that
is 1 in the middle and falls smoothly (sine squared) towards the tile's edges, and the weighted
sum is divided by the summed weights, so there are no seams. Tiles are processed one row of tiles
at a time and only the rows still being blended are kept, so working memory is about
``K x tile x width`` floats whatever the image height (plus the outputs themselves).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from napari_seglab.core.data import (
    as_zcyx,
    check_finite,
    constant_pixel,
    constant_words,
    context_slices,
)
from napari_seglab.core.device import resolve_device
from napari_seglab.core.model import explaining_channels

if TYPE_CHECKING:
    from napari_seglab.core.data import Normalization
    from napari_seglab.core.model import SegModel


@dataclass(frozen=True)
class Prediction:
    """The result of a prediction.

    Attributes
    ----------
    labels : np.ndarray
        Spatial shape (of the image, or of ``region``), uint8 class ids 1..K.
    probabilities : np.ndarray or None
        ``(K, *spatial)`` float32 class probabilities (for a binary model still K = 2 channels,
        background and foreground); None when not requested.
    notes : tuple of str
        What a person should know about the result, in words: the prediction of a constant
        image (one value, or one colour, in the channels the model sees) means nothing; it
        varies only with the distance to the image's border.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    notes: tuple[str, ...] = ()


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of size ``min(tile, n)`` covering ``0..n`` with ``overlap``."""
    if n <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, n - tile, stride))
    starts.append(n - tile)
    return starts


def blend_window(size: int, overlap: int) -> np.ndarray:
    """1D weights ``(size,)``: 1 in the middle, sine-squared ramps over ``overlap`` at each end."""
    i = np.arange(size, dtype=np.float64) + 0.5
    if overlap <= 0:
        return np.ones(size, np.float32)
    r = np.clip(np.minimum(i, size - i) / overlap, 0.0, 1.0)
    return np.maximum(np.sin(0.5 * np.pi * r) ** 2, 1e-4).astype(np.float32)


def _region_bounds(
    region: tuple[slice, ...] | None, spatial: tuple[int, ...]
) -> list[tuple[int, int]]:
    if region is None:
        return [(0, n) for n in spatial]
    if not isinstance(region, tuple):
        region = tuple(region)
    if len(region) != len(spatial):
        raise ValueError(
            f"region has {len(region)} slices but the image has {len(spatial)} spatial dimensions"
        )
    bounds = []
    for s, n in zip(region, spatial, strict=True):
        if isinstance(s, int):
            s = slice(s, s + 1)
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise ValueError(f"region slice {s} is empty or strided for an axis of size {n}")
        bounds.append((start, stop))
    return bounds


#: Tiles of a model with group or instance normalisation are at most this many times the
#: edge of its training crops (see :func:`default_tile`).
CROP_TILE_FACTOR = 1


def default_tile(device: torch.device, model: SegModel | None = None) -> int:
    """Tile edge used when :func:`predict` is given none.

    1024 pixels on CUDA, 512 elsewhere; but for a network with group or instance normalisation,
    at most ``CROP_TILE_FACTOR`` times its training crop (64 for the default). Those layers
    normalise with statistics of whatever window they are given, so a network trained on
    small crops and run on larger windows sees other statistics wherever the image is not
    uniform: on scikit-image's coins photo (its top band brightly lit) larger tiles predicted
    painted background in the band as coins (docs/real-images.md, "What changed, and why").
    """
    tile = 1024 if device.type == "cuda" else 512
    if model is not None and model.config.norm in ("group", "instance"):
        tile = min(tile, CROP_TILE_FACTOR * training_crop(model))
    return tile


def training_crop(model: SegModel) -> int:
    """Edge (pixels) of the crops ``model`` was trained on: its ``crop_size`` setting, 64
    (the default) for a model not trained yet."""
    return int(model.train_settings.get("crop_size") or 64)


def default_overlap(tile: int) -> int:
    """Overlap of neighbouring tiles used when :func:`predict` is given none: ``tile // 8`` but
    at least 32 pixels, and at most half the tile (tiles of 8-64 px, the training crops of
    group-norm models, overlap by half)."""
    return int(min(max(32, tile // 8), tile // 2))


#: Pixels per forward pass that :func:`default_batch_size` aims at on a CPU.
CPU_BATCH_PIXELS = 1 << 16


def default_batch_size(device: torch.device, tile: int) -> int:
    """Tiles per forward pass when :func:`predict` is given none.

    On a CPU, small tiles are batched up to :data:`CPU_BATCH_PIXELS` pixels (16 tiles of
    64x64, the default for group-norm models; 1 tile of 512x512): one call per tile costs more
    in overhead than the convolutions of a 64x64 tile. Per-tile normalisation makes the result
    the same as tile by tile (to 1e-6). Tiling 512x512 in 64 px tiles on one thread took 1.5x
    less time with 8 tiles per pass than with 1. On accelerators 4.
    """
    if device.type != "cpu":
        return 4
    return int(max(1, min(16, CPU_BATCH_PIXELS // max(1, tile * tile))))


@torch.inference_mode()
def predict(
    model: SegModel,
    image: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    device: str | torch.device | None = None,
    channel_axis: int | None = None,
    region: tuple[slice, ...] | None = None,
    probabilities: bool = True,
    batch_size: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Prediction:
    """Predict class ids (and probabilities) for every pixel of an image.

    Parameters
    ----------
    model : SegModel
    image : np.ndarray
        ``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, ``(Z, Y, X)``, ...; the channel axis is detected
        from the model's channel count unless ``channel_axis`` is given. Stacks are predicted
        slice by slice.
    tile : int, optional
        Tile edge in pixels (default: :func:`default_tile`, 512 on CPU and 1024 on CUDA, at most
        the training crop for group or instance normalisation).
    overlap : int, optional
        Overlap of neighbouring tiles (default: :func:`default_overlap`).
    device : str or torch.device, optional
        Where to run; default: where the model's network is. The network is moved back after.
    channel_axis : int, optional
    region : tuple of slice, optional
        Predict only this part of the spatial dimensions (one slice per spatial axis); the
        context around it is used so the result equals the same part of a full prediction
        (exactly with batch norm; with group or instance norm up to the statistics of the smaller
        window, a difference of about 1e-3 in probability).
    probabilities : bool
        Also return the ``(K, *spatial)`` probabilities (set False to save memory).
    batch_size : int, optional
        Tiles per forward pass (default: :func:`default_batch_size`).
    progress : callable, optional
        Called with the number of pixels just finished (a band of rows at a time); the calls
        add up to the number of predicted pixels (Z x Y x X of the region). For a progress bar.

    Returns
    -------
    Prediction
        With a note (:attr:`Prediction.notes`) when the whole image is predicted and it is
        constant.
    """
    with explaining_channels(model):
        view = as_zcyx(image, channel_axis=channel_axis, in_channels=model.in_channels)
    check_finite(view.data)
    dev = model.device if device is None else resolve_device(device)
    tile, overlap = tile_and_overlap(tile, overlap, dev, model)
    batch_size = int(batch_size or default_batch_size(dev, tile))

    bounds = _region_bounds(region, view.spatial_shape)
    zb = bounds[0] if view.is_3d else (0, 1)
    (y0, y1), (x0, x1) = bounds[-2], bounds[-1]
    out_shape = (zb[1] - zb[0], y1 - y0, x1 - x0)
    K = model.num_classes
    labels = np.empty(out_shape, np.uint8)
    probs = np.empty((K, *out_shape), np.float32) if probabilities else None

    with evaluating(model, dev):
        zc = int(model.config.z_context or 0)
        for i, z in enumerate(range(*zb)):
            zs = context_slices(z, zc, view.data.shape[0])
            _predict_slice(
                model,
                [view.data[zi] for zi in zs],
                (y0, y1, x0, x1),
                tile,
                overlap,
                dev,
                batch_size,
                labels[i],
                None if probs is None else probs[:, i],
                progress,
            )
    if not view.is_3d:
        labels = labels[0]
        probs = None if probs is None else probs[:, 0]
    seen = model.config.channels
    values = constant_pixel(view.data, seen) if region is None else None
    notes = () if values is None else (constant_note(values, seen),)
    return Prediction(labels=labels, probabilities=probs, notes=notes)


def constant_note(values: tuple[float, ...], channels: Sequence[int] | None = None) -> str:
    """The note of a prediction of a constant image (``values``: each channel's one value,
    :func:`~napari_seglab.core.data.constant_pixel`; ``channels``: those the model sees,
    when it picks some)."""
    return (
        f"the image is constant ({constant_words(values, channels)}): nothing in it tells "
        "the classes apart, so its prediction means nothing"
    )


def tile_and_overlap(
    tile: int | None, overlap: int | None, device: torch.device, model: SegModel
) -> tuple[int, int]:
    """The tile edge and overlap a prediction uses: those given, or :func:`default_tile` and
    :func:`default_overlap`.

    Raises
    ------
    ValueError
        A tile under 8 pixels, or an overlap outside ``0 .. tile - 1``.
    """
    tile = int(tile or default_tile(device, model))
    if tile < 8:
        raise ValueError(f"tile {tile} is too small (at least 8 pixels)")
    overlap = int(default_overlap(tile) if overlap is None else overlap)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be between 0 and tile - 1 ({tile - 1})")
    return tile, overlap


@contextmanager
def evaluating(model: SegModel, device: str | torch.device | None = None) -> Iterator[torch.device]:
    """The network in eval mode on ``device`` (default: where it is) for a ``with`` block,
    which gets the device; after it, the network's device and mode are as they were."""
    net = model.net
    original = model.device
    dev = original if device is None else resolve_device(device)
    was_training = net.training
    net.eval()
    if dev != original:
        net.to(dev)
    try:
        yield dev
    finally:
        if dev != original:
            net.to(original)
        net.train(was_training)


def forward_tiles(
    model: SegModel,
    subs: list[np.ndarray],
    ty: int,
    txs: Any,
    th: int,
    tw: int,
    device: torch.device,
    offset: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Class probabilities ``(B, K, th, tw)`` of the tiles at rows ``ty``, columns ``txs`` of
    a window: ``subs`` holds the slice ``(C, H, W)`` and its context slices, whose normalised
    tiles are stacked as the network's channels (see :func:`_tile` for the edges, and for
    ``offset``, from :func:`centring_offsets`, when the window is a whole small image).

    Row ``r``, column ``c`` of a tile's output is pixel ``(ty + r, tx + c)`` of the window;
    rows and columns past the window's edge are padding.
    """
    norm = model.normalization
    tiles = np.stack(
        [np.concatenate([_tile(sub, norm, ty, tx, th, tw, offset) for sub in subs]) for tx in txs]
    )
    # C-contiguous whatever the image's layout (an RGB image's channels-last strides would
    # make a channels-last tensor, computed by other kernels)
    x = torch.from_numpy(np.ascontiguousarray(tiles)).to(device)
    with _autocast(device):
        logits = model.net(x)
    p = model.probabilities(logits).float().cpu().numpy()
    if any(offset):
        p = np.roll(p, (-offset[0], -offset[1]), axis=(2, 3))
    return p


def centring_offsets(shape: tuple[int, ...], tile: tuple[int, int], crop: int) -> tuple[int, int]:
    """Rows and columns of padding before an image ``shape`` ``(..., H, W)`` that is shorter
    than the training ``crop`` and than its one ``tile`` ``(th, tw)`` along an axis: half the
    difference, as :class:`~napari_seglab.core.sampling.CropSampler` pads the training crops
    of such an image; 0 along any other axis (the padding then goes after the window, which
    need not be the whole image there). The window must hold the whole image along an axis
    with an offset.

    A network trained on such crops saw the image's first rows and columns a few pixels in
    from the crop's edge; predicted with the padding after them only, those pixels sat at the
    edge, and on a 61x57 stack some painted ones came back as the other class.
    """
    return tuple(
        (t - n) // 2 if n < min(t, crop) else 0 for n, t in zip(shape[-2:], tile, strict=True)
    )


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return nullcontext()


def _tile(
    sub: np.ndarray,
    norm: Normalization,
    ty: int,
    tx: int,
    th: int,
    tw: int,
    offset: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """The normalised ``(C, th, tw)`` tile at ``(ty, tx)``: reflect-padded past the bottom and
    right edges of ``sub``; a ``sub`` shorter than the tile along an axis is padded
    ``offset`` pixels before it and the rest after, mirrored (``"symmetric"``) as the training
    crops are (:func:`centring_offsets`)."""
    part = norm.apply(sub[:, ty : ty + th, tx : tx + tw])
    for axis, (size, before) in enumerate(zip((th, tw), offset, strict=True), start=1):
        n = part.shape[axis]
        if n == size:
            continue
        pad = [(0, 0)] * 3
        pad[axis] = (before, size - n - before)
        mode = "reflect" if not before and size - n < n else "symmetric"
        part = np.pad(part, pad, mode=mode)
    return part


def _predict_slice(
    model: SegModel,
    raws: list[np.ndarray],
    box: tuple[int, int, int, int],
    tile: int,
    overlap: int,
    device: torch.device,
    batch_size: int,
    out_labels: np.ndarray,
    out_probs: np.ndarray | None,
    progress: Callable[[int], Any] | None = None,
) -> None:
    """Predict one 2D slice inside ``box`` into the output arrays.

    ``raws`` holds the slice ``(C, H, W)`` and its context slices (one for a 2D model), whose
    normalised channels are stacked as the network's input.
    """
    y0, y1, x0, x1 = box
    _, H, W = raws[0].shape
    margin = overlap if (y1 - y0, x1 - x0) != (H, W) else 0
    cy0, cy1 = max(0, y0 - margin), min(H, y1 + margin)
    cx0, cx1 = max(0, x0 - margin), min(W, x1 + margin)
    # an image smaller than the training crop along an axis is padded as a whole
    # (centring_offsets): a region of it is cut from the same padded view
    crop = training_crop(model)
    if crop > H:
        cy0, cy1 = 0, H
    if crop > W:
        cx0, cx1 = 0, W
    subs = [raw[:, cy0:cy1, cx0:cx1] for raw in raws]
    h, w = cy1 - cy0, cx1 - cx0
    # Tiles are multiples of 2**depth laid over the window reflect-padded to such a multiple,
    # so the network never pads a tile itself and a tile at the border sees what the whole
    # (padded) image would show there: tiled and whole-image predictions agree.
    m = model.config.multiple
    tile = -(-tile // m) * m
    hp, wp = -(-h // m) * m, -(-w // m) * m
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, overlap), tile_starts(wp, tw, overlap)
    w = wp
    window = np.outer(blend_window(th, overlap), blend_window(tw, overlap))
    K = model.num_classes
    offset = centring_offsets((H, W), (th, tw), crop)

    acc = np.zeros((K, 0, w), np.float32)
    wacc = np.zeros((0, w), np.float32)
    a0 = 0  # image row (in sub) of acc[:, 0]
    for i, ty in enumerate(ys):
        need = ty + th - a0
        if acc.shape[1] < need:
            extra = need - acc.shape[1]
            acc = np.concatenate([acc, np.zeros((K, extra, w), np.float32)], axis=1)
            wacc = np.concatenate([wacc, np.zeros((extra, w), np.float32)], axis=0)
        for b in range(0, len(xs), batch_size):
            bx = xs[b : b + batch_size]
            p = forward_tiles(model, subs, ty, bx, th, tw, device, offset)
            r = ty - a0
            for j, tx in enumerate(bx):
                acc[:, r : r + th, tx : tx + tw] += p[j] * window
                wacc[r : r + th, tx : tx + tw] += window
        next_y = ys[i + 1] if i + 1 < len(ys) else hp
        n_done = next_y - a0
        if n_done > 0:
            done = acc[:, :n_done] / wacc[None, :n_done]
            # Rows a0..next_y of sub are final: copy their part inside the box out.
            r_lo, r_hi = max(a0 + cy0, y0), min(next_y + cy0, y1)
            if r_hi > r_lo:
                part = done[:, r_lo - cy0 - a0 : r_hi - cy0 - a0, x0 - cx0 : x1 - cx0]
                out_labels[r_lo - y0 : r_hi - y0] = np.argmax(part, axis=0).astype(np.uint8) + 1
                if out_probs is not None:
                    out_probs[:, r_lo - y0 : r_hi - y0] = part
                if progress is not None:
                    progress((r_hi - r_lo) * (x1 - x0))
            acc = acc[:, n_done:].copy()
            wacc = wacc[n_done:].copy()
            a0 = next_y
