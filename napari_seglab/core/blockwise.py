"""Block-wise prediction of images larger than memory, with Dask.

:func:`predict_dask` turns a (lazy) image into a lazy ``dask.array`` of class ids. Each block of
the output is computed by :func:`dask.array.map_overlap` from its part of the image plus a halo
of one tile on every side, with the same grid of overlapping tiles and the same blending as
:func:`napari_seglab.core.inference.predict` applied to the whole image. The result is
therefore the same as the in-memory prediction, with no seams at block borders, whatever the
block size and whichever scheduler runs it: Dask's threaded scheduler (the default of
``compute``), or a ``dask.distributed`` cluster (pass its ``Client`` or nothing: a running
client is used by ``compute`` automatically).

The model travels to the workers as the bytes of its model file (:class:`ModelBytes`, a Dask
task of its own, sent once to each worker) and each process loads it once.

Memory: each running block holds its window of the image with its halo, ``C x (B + 2T)^2``
pixels in the image's dtype for blocks of edge ``B`` and tiles of edge ``T``, its ``K x B^2``
float32 accumulated probabilities, and the network's activations of one batch of tiles: a few
tens of MB per running task for the default ``B = 1024`` and 64-pixel tiles, whatever the
image's size.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_seglab.core.data import _check_dtype, check_finite, context_slices, image_layout
from napari_seglab.core.inference import (
    Prediction,
    blend_window,
    centring_offsets,
    default_batch_size,
    forward_tiles,
    tile_and_overlap,
    tile_starts,
    training_crop,
)
from napari_seglab.core.model import explaining_channels

if TYPE_CHECKING:
    import dask.array as da

    from napari_seglab.core.model import SegModel

#: Edge of the output blocks in pixels when :func:`predict_dask` is given none.
DEFAULT_BLOCK = 1024

_LOADED: dict[str, SegModel] = {}
_LOADED_LOCK = threading.Lock()


class ModelBytes:
    """The bytes of a model file, loaded into a model at most once per process.

    Pickling sends the bytes, not a network: this is how the model reaches the workers of a
    cluster. :meth:`from_model` writes the weights only (7.7 MB for the default network);
    :meth:`from_file` sends a file as it is, with the optimiser state it may hold (23 MB).
    """

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.digest = hashlib.sha256(self.data).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> ModelBytes:
        """The bytes of a model file (checked when loaded)."""
        return cls(Path(path).read_bytes())

    @classmethod
    def from_model(cls, model: SegModel) -> ModelBytes:
        """The bytes :func:`napari_seglab.core.modelio.save_model` writes for ``model``,
        without its optimiser state (prediction needs none)."""
        from napari_seglab.core.modelio import save_model

        with tempfile.TemporaryDirectory() as tmp:
            path = save_model(model, Path(tmp) / "model.seglab", optimizer=False)
            return cls.from_file(path)

    def load(self) -> SegModel:
        """The model, loaded on first use in this process and kept (on the CPU).

        Raises
        ------
        napari_seglab.core.modelio.ModelFileError
            The bytes are not a valid model file.
        """
        with _LOADED_LOCK:
            model = _LOADED.get(self.digest)
            if model is None:
                from napari_seglab.core.modelio import load_model

                fd, tmp = tempfile.mkstemp(suffix=".seglab")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(self.data)
                    model = load_model(tmp)
                finally:
                    os.unlink(tmp)
                _LOADED.clear()  # one model at a time per process
                _LOADED[self.digest] = model
            return model

    def __reduce__(self):
        return (ModelBytes, (self.data,))

    def __dask_tokenize__(self) -> str:
        return self.digest

    def __repr__(self) -> str:
        return f"ModelBytes({len(self.data)} bytes, sha256 {self.digest[:12]})"


class _InProcess:
    """A model given as an object: this process's blocks use it as it is (where it is, with
    any hooks on it); pickled for another process, it travels as :class:`ModelBytes`."""

    def __init__(self, model: SegModel) -> None:
        self.model = model
        # a model object can change between two predictions: never the same key twice
        self.token = secrets.token_hex(16)

    def __dask_tokenize__(self) -> str:
        return self.token

    def load(self) -> SegModel:
        return self.model

    def __reduce__(self):
        return (ModelBytes, (ModelBytes.from_model(self.model).data,))


def lazy_zcyx(image: Any, channel_axis: int | None, in_channels: int) -> tuple[da.Array, bool]:
    """A lazy image as a ``(Z, C, Y, X)`` dask array, and whether it is a stack.

    ``image`` is a dask array or anything :func:`dask.array.asarray` takes lazily (a zarr
    array, a NumPy array). The channel axis is found as for the in-memory prediction
    (:func:`napari_seglab.core.data.as_zcyx` with the model's channel count).

    Raises
    ------
    ValueError
        For an unsupported dtype or layout, or a channel count other than the model's.
    """
    import dask.array as da

    arr = image if isinstance(image, da.Array) else da.asarray(image)
    _check_dtype(arr)
    axis, spatial = image_layout(arr.shape, channel_axis, in_channels=in_channels)
    arr = arr[..., None] if axis is None else da.moveaxis(arr, axis, -1)
    if len(spatial) == 2:
        arr = arr[None]
    return da.moveaxis(arr, -1, 1), len(spatial) == 3


def _chunks(n: int, block: int, minimum: int) -> tuple[int, ...]:
    """Chunk sizes of ``block`` along an axis of ``n``, the last merged into the one before
    when it would be smaller than ``minimum`` (a halo cannot be wider than a neighbour)."""
    sizes = [block] * (n // block) + ([n % block] if n % block else [])
    if len(sizes) > 1 and sizes[-1] < minimum:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes) or (n,)


def predict_dask(
    model: SegModel | ModelBytes,
    image: Any,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    block: int | None = None,
    channel_axis: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    probabilities: bool = False,
) -> Prediction:
    """Lazy class ids of an image of any size, block by block.

    Parameters
    ----------
    model : SegModel or ModelBytes
        A model object is used as it is by the blocks that run in this process (Dask's
        threads) and sent as bytes to other processes; :class:`ModelBytes` is loaded once per
        process.
    image : dask.array.Array, zarr array or np.ndarray
        ``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, ``(Z, Y, X)``, ...: the layouts of
        :func:`napari_seglab.core.inference.predict`. It is read block by block.
    tile, overlap, batch_size
        As for :func:`~napari_seglab.core.inference.predict` (same defaults, for the CPU).
    block : int, optional
        Edge of the output blocks in pixels (default :data:`DEFAULT_BLOCK` or 4 tiles, the
        larger; at least one tile). A block computes the tiles that reach into it, so tiles
        across a border are computed twice: 4 tiles per block cost about 1.5x, 16 about 1.1x.
        Blocks of a stack hold ``z_context`` slices of the model (one for a 2D model).
    channel_axis : int, optional
    device : str, optional
        Where the blocks run (``"cpu"``, ``"cuda"``, ``"auto"``) when the model is given as
        :class:`ModelBytes`: each process moves its own copy there. A ``SegModel`` given
        directly is used where it is in this process (move it first with ``model.net.to``);
        sent to other processes (a cluster), it is copied to the CPU, or to ``device``.

    probabilities : bool
        Also the lazy ``(K, *spatial)`` float32 probabilities (the labels are then their
        argmax: both come from one computation when stored together, e.g. with
        :func:`dask.array.store` or :func:`napari_seglab.core.lazyio.write_zarr`).

    Returns
    -------
    Prediction
        ``labels``: a dask array ``(Y, X)`` or ``(Z, Y, X)`` of uint8 class ids 1..K, chunked
        in blocks; ``probabilities``: ``(K, *spatial)`` float32 or None. Nothing is computed
        until it is (``.compute()``, ``.to_zarr()``, ``dask.compute`` on a cluster). The same
        tiles, blended the same way, as :func:`~napari_seglab.core.inference.predict` with the
        same tile and overlap: equal probabilities up to the last bits that the make-up of a
        batch of tiles and torch's threads change (below 1e-6), so equal labels.

    Raises
    ------
    ValueError
        For a layout or channel count the model cannot take, or tile and overlap out of range;
        when computed, for a block with NaN or infinite values.
    """
    import dask
    import dask.array as da
    import torch

    payload = model if isinstance(model, ModelBytes) else _InProcess(model)
    seg = payload.load()
    with explaining_channels(seg):
        zcyx, is_3d = lazy_zcyx(image, channel_axis, seg.in_channels)
    Z, C, H, W = (int(s) for s in zcyx.shape)
    m = seg.config.multiple
    tile, overlap = tile_and_overlap(tile, overlap, torch.device("cpu"), seg)
    tile = -(-tile // m) * m
    # the halo: every tile touching a block lies inside the block and its halo
    hy = min(tile, -(-H // m) * m, H)
    hx = min(tile, -(-W // m) * m, W)
    block = max(int(block or max(DEFAULT_BLOCK, 4 * tile)), tile)
    zc = min(int(seg.config.z_context or 0), Z - 1)
    # a halo is at most a neighbouring block wide: blocks of a stack hold z_context slices
    chunks = (_chunks(Z, max(1, zc), zc), (C,), _chunks(H, block, hy), _chunks(W, block, hx))
    zcyx = zcyx.rechunk(chunks)
    grid = _Grid(H, W, tile, overlap, m, Z, zc, (zc, hy, hx))
    K = seg.num_classes
    out = da.map_overlap(
        _predict_block,
        zcyx,
        depth={0: zc, 1: 0, 2: hy, 3: hx},
        boundary="none",
        trim=False,
        allow_rechunk=False,
        align_arrays=False,
        chunks=(chunks[0], (K,), *chunks[2:]) if probabilities else (chunks[0], *chunks[2:]),
        drop_axis=None if probabilities else 1,
        dtype=np.float32 if probabilities else np.uint8,
        meta=np.empty(
            (0,) * (4 if probabilities else 3), np.float32 if probabilities else np.uint8
        ),
        payload=dask.delayed(payload, pure=True),  # one task: sent once to each worker
        grid=grid,
        device=device,
        batch_size=batch_size,
        probabilities=probabilities,
        token="seglab-predict",
    )
    if not probabilities:
        return Prediction(labels=out if is_3d else out[0], probabilities=None)
    probs = da.moveaxis(out, 1, 0)  # (K, Z, Y, X)
    labels = (da.argmax(probs, axis=0) + 1).astype(np.uint8)
    if not is_3d:
        probs, labels = probs[:, 0], labels[0]
    return Prediction(labels=labels, probabilities=probs)


class _Grid:
    """The whole image's tile grid, which every block follows."""

    def __init__(
        self,
        H: int,
        W: int,
        tile: int,
        overlap: int,
        m: int,
        Z: int,
        zc: int,
        halo: tuple[int, int, int],
    ) -> None:
        self.H, self.W, self.Z, self.zc, self.halo = H, W, Z, zc, halo
        hp, wp = -(-H // m) * m, -(-W // m) * m
        self.th, self.tw = min(tile, hp), min(tile, wp)
        self.overlap = overlap
        self.ys = np.array(tile_starts(hp, self.th, overlap))
        self.xs = np.array(tile_starts(wp, self.tw, overlap))
        self.window = np.outer(blend_window(self.th, overlap), blend_window(self.tw, overlap))

    def __dask_tokenize__(self) -> tuple:
        return ("seglab-grid", self.H, self.W, self.th, self.tw, self.overlap, self.Z, self.zc)


def _predict_block(
    window: np.ndarray,
    *,
    payload: ModelBytes | _InProcess,
    grid: _Grid,
    device: str | None,
    batch_size: int | None,
    probabilities: bool,
    block_info: dict | None = None,
) -> np.ndarray:
    """Class ids ``(z, y, x)`` of one block, or its probabilities ``(z, K, y, x)``, from its
    ``(z', C, y', x')`` window with halo."""
    import torch

    from napari_seglab.core.device import resolve_device

    loc = block_info[None]["array-location"]  # (z, K, y, x) for probabilities
    (z0, z1), (y0, y1), (x0, x1) = loc[0], loc[-2], loc[-1]
    # where the window starts: the halo is cut at the image's edges ("none" boundary)
    (dz, dy, dx) = grid.halo
    wz0, wy0, wx0 = max(0, z0 - dz), max(0, y0 - dy), max(0, x0 - dx)
    expected = (
        min(grid.Z, z1 + dz) - wz0,
        min(grid.H, y1 + dy) - wy0,
        min(grid.W, x1 + dx) - wx0,
    )
    if (window.shape[0], *window.shape[2:]) != expected:
        raise RuntimeError(f"block window {window.shape} is not the block and its halo {expected}")
    # as the in-memory prediction refuses the whole image (a block at a time here: the run
    # stops at the first block that holds one, and nothing is written)
    check_finite(window)
    model = payload.load()
    if isinstance(payload, _InProcess) or device is None:
        dev = model.device  # the caller's model stays where it is
    else:
        dev = resolve_device(device)
        if model.device != dev:  # this process's own copy
            model.net.to(dev)
    bs = int(batch_size or default_batch_size(dev, grid.th))
    ys = grid.ys[(grid.ys < y1) & (grid.ys + grid.th > y0)]
    xs = grid.xs[(grid.xs < x1) & (grid.xs + grid.tw > x0)]
    K = model.num_classes
    # an image smaller than the training crop is one block along that axis (its window)
    offset = centring_offsets((grid.H, grid.W), (grid.th, grid.tw), training_crop(model))
    shape = (z1 - z0, y1 - y0, x1 - x0)
    out = (
        np.empty((shape[0], K, *shape[1:]), np.float32)
        if probabilities
        else np.empty(shape, np.uint8)
    )
    with torch.inference_mode():
        for i, z in enumerate(range(z0, z1)):
            subs = [window[zi - wz0] for zi in context_slices(z, grid.zc, grid.Z)]
            acc = np.zeros((K, y1 - y0, x1 - x0), np.float32)
            wacc = np.zeros((y1 - y0, x1 - x0), np.float32)
            for ty in ys:
                for b in range(0, len(xs), bs):
                    bx = xs[b : b + bs]
                    p = forward_tiles(
                        model, subs, ty - wy0, bx - wx0, grid.th, grid.tw, dev, offset
                    )
                    for j, tx in enumerate(bx):
                        _add(acc, wacc, p[j], grid.window, (ty - y0, tx - x0))
            p = acc / wacc[None]
            if probabilities:
                out[i] = p
            else:
                out[i] = np.argmax(p, axis=0).astype(np.uint8) + 1
    return out


def _add(acc: np.ndarray, wacc: np.ndarray, p: np.ndarray, window: np.ndarray, at) -> None:
    """Add a tile's weighted probabilities ``p`` at offset ``at`` (may be negative) of ``acc``."""
    oy, ox = at
    th, tw = window.shape
    h, w = wacc.shape
    sy, sx = max(0, -oy), max(0, -ox)
    ey, ex = min(th, h - oy), min(tw, w - ox)
    acc[:, oy + sy : oy + ey, ox + sx : ox + ex] += p[:, sy:ey, sx:ex] * window[sy:ey, sx:ex]
    wacc[oy + sy : oy + ey, ox + sx : ox + ex] += window[sy:ey, sx:ex]
