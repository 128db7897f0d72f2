"""Images read lazily as Dask arrays, and labels written to Zarr block by block.

- Zarr (a ``.zarr`` folder holding an array, or a group with one) and OME-Zarr (the first,
  full-resolution level of the first multiscale image; its axes metadata gives the channel
  axis, so none is guessed) through ``zarr`` and :func:`dask.array.from_zarr`.
- TIFF through tifffile's Zarr store (:func:`tifffile.imread` with ``aszarr=True``): a region is
  read by decoding only the file's tiles or strips that hold it. Each Dask task opens the
  file itself (:class:`TiffRegions`), so the graph can travel to the workers of a cluster.
- Anything else is read whole (:func:`napari_seglab.core.io.read_image`) and wrapped.

Zarr paths must be readable from every worker (a shared file system) when a cluster predicts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_seglab.core.io import TIFF_SUFFIXES, ImageFileError

if TYPE_CHECKING:
    import dask.array as da

#: Chunk edge, in pixels, of a lazily read TIFF (rounded to the file's own tiles).
TIFF_CHUNK = 2048


@dataclass(frozen=True)
class LazyImage:
    """An image opened without reading its pixels.

    Attributes
    ----------
    data : dask.array.Array
        The image, any of the layouts of :func:`napari_seglab.core.inference.predict`.
    channel_axis : int or None
        The channel axis when the file says which it is (OME-Zarr or TIFF axes), else None (the
        prediction detects it from the model's channel count, or it is given).
    source : str
        What was opened (``"zarr"``, ``"ome-zarr"``, ``"tiff"``, ``"in memory"``).
    plane_axes : dict of int to str
        The axes the file names as planes of a stack, by position: ``"Z"`` (depth; an
        OME-Zarr ``z``) or ``"T"`` (time); never read as channels
        (:func:`napari_seglab.core.data.planes_read_as_channels`).
    """

    data: da.Array
    channel_axis: int | None
    source: str
    plane_axes: dict[int, str] = field(default_factory=dict)


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` names a Zarr store: a folder with Zarr metadata, or any ``*.zarr``."""
    path = Path(path)
    if path.suffix.lower() == ".zarr":
        return True
    return path.is_dir() and any(
        (path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup")
    )


def open_lazy(path: str | Path, what: str = "image") -> LazyImage:
    """Open an image file or Zarr store as a lazy Dask array.

    Parameters
    ----------
    path : str or Path
        A Zarr/OME-Zarr store, a TIFF, or another image file (read whole).
    what : str
        How messages name the file.

    Raises
    ------
    FileNotFoundError
        No such file or store.
    ImageFileError
        The store holds no array, an OME-Zarr has a time axis longer than 1, or the file
        cannot be read.
    """
    import dask.array as da

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    # absolute: the workers of a cluster read it from their own working folders
    path = path.resolve()
    if is_zarr(path):
        return _open_zarr(path, what)
    if path.suffix.lower() in TIFF_SUFFIXES:
        from napari_seglab.core.io import file_channel_axis, file_plane_axes

        regions = TiffRegions(str(path))
        data = da.from_array(regions, chunks=regions.chunks, fancy=False)
        return LazyImage(data, file_channel_axis(path), "tiff", file_plane_axes(path))
    from napari_seglab.core.io import read_image

    return LazyImage(da.from_array(read_image(path, what)), None, "in memory")


def _open_zarr(path: Path, what: str) -> LazyImage:
    import dask.array as da
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 (zarr's errors differ between its versions)
        raise ImageFileError(f"could not open {what} {path} as Zarr: {exc}") from None
    if isinstance(node, zarr.Array):
        return LazyImage(da.from_zarr(node), None, "zarr")
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if multiscales:
        try:
            image = multiscales[0]
            arr = node[image["datasets"][0]["path"]]
            names = [a["name"] if isinstance(a, dict) else str(a) for a in image.get("axes", [])]
        except (KeyError, IndexError, TypeError) as exc:
            raise ImageFileError(
                f"{what} {path}: its OME-Zarr multiscales metadata does not lead to an array "
                f"({type(exc).__name__}: {exc})"
            ) from None
        data = da.from_zarr(arr)
        if names and len(names) != data.ndim:
            raise ImageFileError(
                f"{what} {path}: its OME-Zarr axes name {len(names)} axes ({', '.join(names)}) "
                f"but the array has {data.ndim} {tuple(data.shape)}"
            )
        if "t" in names:
            t = names.index("t")
            if data.shape[t] != 1:
                raise ImageFileError(
                    f"{what} {path} is a time series ({data.shape[t]} time points); "
                    "seglab predicts one image or stack: give one time point"
                )
            data = data[(slice(None),) * t + (0,)]
            names.pop(t)
        channel = names.index("c") if "c" in names else None
        if channel is not None and data.shape[channel] == 1:
            data = data[(slice(None),) * channel + (0,)]
            names.pop(channel)
            channel = None
        planes = {i: "Z" for i, name in enumerate(names) if name == "z"}
        return LazyImage(data, channel, "ome-zarr", planes)
    arrays = [a for _, a in node.arrays()]
    if len(arrays) != 1:
        raise ImageFileError(
            f"{what} {path} is a Zarr group with {len(arrays)} arrays and no OME-Zarr "
            "multiscales metadata; give the array's own path (e.g. image.zarr/0)"
        )
    return LazyImage(da.from_zarr(arrays[0]), None, "zarr")


class TiffRegions:
    """The first image of a TIFF as an array-like whose slicing reads only what it needs.

    Holds the path alone (it pickles), and opens the file for each read through tifffile's
    Zarr store, so every Dask task, on any worker, reads its own region.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        with self._open() as arr:
            self.shape = tuple(int(s) for s in arr.shape)
            self.dtype = np.dtype(arr.dtype)
            file_chunks = tuple(int(c) for c in arr.chunks)
        self.ndim = len(self.shape)
        # about TIFF_CHUNK pixels (whole tiles of the file) along the last two axes longer
        # than 4, the whole of the short ones (colours), one plane along the others
        long = [i for i in range(self.ndim) if self.shape[i] > 4]
        chunks = [n if n <= 4 else 1 for n in self.shape]
        for i in long[-2:]:
            c = max(1, file_chunks[i])
            chunks[i] = min(self.shape[i], max(c, TIFF_CHUNK // c * c))
        self.chunks = tuple(chunks)

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        """The file's first image as a read-only Zarr array, for the ``with`` block."""
        import tifffile
        import zarr

        try:
            store = tifffile.imread(self.path, aszarr=True, series=0, level=0)
        except Exception as exc:  # noqa: BLE001 (tifffile's errors, in one line)
            raise ImageFileError(f"could not read TIFF {self.path}: {exc}") from None
        try:
            yield zarr.open(store, mode="r")
        finally:
            store.close()

    def __getitem__(self, key: Any) -> np.ndarray:
        with self._open() as arr:
            return np.asarray(arr[key])

    def __repr__(self) -> str:
        return f"TiffRegions({self.path!r}, shape={self.shape}, dtype={self.dtype})"


def compute_in_threads(delayed: Any, threads: int | None = None) -> Any:
    """Compute on Dask's threaded scheduler with a pool of our own, which is drained when the
    computation fails or is interrupted: no block is still writing when this returns or
    raises (Dask's own pool lets the running ones finish after the error is raised)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        try:
            return delayed.compute(scheduler="threads", pool=pool)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _compute(delayed: Any) -> Any:
    """Dask's scheduler as configured (a ``distributed.Client``'s when one exists), or else
    :func:`compute_in_threads`."""
    import dask

    if dask.config.get("scheduler", None) is not None:
        return delayed.compute()
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return compute_in_threads(delayed)
    return delayed.compute()


def write_zarr(
    arrays: Mapping[str | Path, da.Array],
    run: Callable[[Any], Any] | None = None,
    tmp_paths: list[Path] | None = None,
) -> list[Path]:
    """Write Dask arrays to new Zarr arrays, block by block, each whole or not at all.

    The blocks go to hidden folders beside the targets, renamed into place once every block
    of every array is written, so an interrupted run never leaves a partial store under a
    target's name. Arrays that share a computation (labels and their probabilities) are
    computed once, together (:func:`dask.array.store`).

    Parameters
    ----------
    arrays : mapping of path to dask.array.Array
        The stores to create (none may exist).
    run : callable, optional
        ``run(delayed)`` computes the write (default: a ``distributed.Client``'s when one
        exists, or the scheduler set in Dask's configuration, else
        :func:`compute_in_threads`); give one to show progress or to compute on a given
        client.
    tmp_paths : list, optional
        The hidden folders are appended to it: after an interruption, a cluster's workers can
        still finish a block after they were removed; remove them again once the cluster is
        closed.

    Returns
    -------
    list of Path
        The stores written.

    Raises
    ------
    FileExistsError
        A target exists; nothing is written.
    """
    import dask
    import dask.array as da
    import zarr

    # absolute: the workers of a cluster write from their own working folders
    paths = [Path(p).resolve() for p in arrays]
    for path in paths:
        if path.exists():
            raise FileExistsError(f"{path} exists; seglab does not overwrite a Zarr store")
    tmps = [p.parent / f".{p.name}.{secrets.token_hex(8)}.tmp" for p in paths]
    if tmp_paths is not None:
        tmp_paths.extend(tmps)
    try:
        targets = []
        sources = []
        for tmp, arr in zip(tmps, arrays.values(), strict=True):
            chunks = tuple(int(c[0]) for c in arr.chunks)
            # each Zarr chunk written by one task (no lock): Dask's blocks all of the Zarr
            # chunk's size but the last, which may be larger or smaller
            if any(
                any(c != c0 for c in cs[:-1]) for c0, cs in zip(chunks, arr.chunks, strict=True)
            ):
                arr = arr.rechunk(chunks)
            sources.append(arr)
            targets.append(
                zarr.create_array(str(tmp), shape=arr.shape, chunks=chunks, dtype=arr.dtype)
            )
        stored = da.store(sources, targets, lock=False, compute=False)
        # one Delayed for all (store gives one per array in some Dask versions)
        delayed = dask.delayed(list)(list(stored) if isinstance(stored, tuple | list) else [stored])
        (run or _compute)(delayed)
        for tmp, path in zip(tmps, paths, strict=True):
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return paths
