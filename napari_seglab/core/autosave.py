"""Scribbles that survive a crash: each image's strokes, saved as they are painted.

Every image whose strokes are saved has a folder in the user data folder
(``platformdirs.user_data_path("napari-seglab") / "autosave"``, on Linux
``~/.local/share/napari-seglab/autosave``), named by a fingerprint of the image's content
(:func:`image_key`), so the same image opened again, from the same file or another copy, finds
its strokes. The folder holds:

- ``scribbles.zarr``: a Zarr array of the scribbles' spatial shape, uint8 class ids (0 =
  unlabeled, 1 = background, 2 = foreground, 3.. more), in chunks of 256 x 256 pixels (one plane
  deep in a stack). A stroke rewrites only the chunks it touched, and Zarr (from 3.1.3,
  zarr-python pull request 3412) writes each chunk to a temporary file renamed into place, so a
  process killed mid-write leaves every chunk either old or new, never torn;
- ``session.json``: the image's name and source, the shape, the class names and colours, the
  painted pixel count and the time of the last save, also replaced atomically.

Examples
--------
>>> import numpy as np, tempfile
>>> image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
>>> root = tempfile.mkdtemp()
>>> store = StrokeStore.create(root, image_key(image), (64, 64), image_name="cells")
>>> strokes = np.zeros((64, 64), np.uint8)
>>> strokes[10, 5:20] = 2
>>> store.save(strokes, [("background", "#0072b2"), ("foreground", "#e69f00")])
>>> found = StrokeStore.find(root, image_key(image.copy()))
>>> int(found.read().sum()), found.info().classes[1][0]
(30, 'foreground')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Chunk edge (pixels) of the saved scribbles along y and x.
CHUNK = 256

#: At most this many values of an image are read to fingerprint it.
SAMPLE_VALUES = 1 << 18

#: Format version written into ``session.json``.
FORMAT = 1

_ARRAY = "scribbles.zarr"
_INFO = "session.json"


def autosave_root() -> Path:
    """The folder of all saved sessions: ``<user data folder>/autosave``, from platformdirs
    (``$XDG_DATA_HOME/napari-seglab/autosave`` on Linux when that variable is set)."""
    import platformdirs

    return platformdirs.user_data_path("napari-seglab", appauthor=False) / "autosave"


def _sample(data: Any) -> np.ndarray:
    """At most about :data:`SAMPLE_VALUES` values of ``data``, the same ones for equal arrays.

    A NumPy array is sampled on a regular grid over all its axes. A lazy array (dask, zarr, a
    napari multiscale list) is not read whole: its first and middle planes' first 512 x 512
    pixels (of the smallest level of a multiscale list, whole) are read.
    """
    if isinstance(data, (list, tuple)):  # a multiscale pyramid: its smallest level
        data = data[-1]
    shape = tuple(int(n) for n in np.shape(data))
    if isinstance(data, np.ndarray):
        n = max(1, int(np.prod(shape, dtype=np.int64)))
        step = max(1, int(np.ceil((n / SAMPLE_VALUES) ** (1 / max(1, len(shape))))))
        return np.ascontiguousarray(data[tuple(slice(None, None, step) for _ in shape)])
    if len(shape) < 2:
        return np.asarray(data)
    lead = shape[:-2]
    first = tuple(0 for _ in lead)
    middle = tuple(n // 2 for n in lead)
    corner = (slice(0, 512), slice(0, 512))
    parts = [np.asarray(data[first + corner])]
    if middle != first:
        parts.append(np.asarray(data[middle + corner]))
    return np.ascontiguousarray(np.stack(parts))


def image_key(data: Any) -> str:
    """A fingerprint of an image's content: equal for equal arrays, whatever their origin.

    Parameters
    ----------
    data : array-like
        The image layer's data: a NumPy array of any shape, a lazy array (dask, zarr) or a
        multiscale list. Only a sample is read (:func:`_sample`).

    Returns
    -------
    str
        32 hexadecimal digits (BLAKE2b of the shape, the dtype and the sampled values).
    """
    level0 = data[0] if isinstance(data, (list, tuple)) else data
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((tuple(int(n) for n in np.shape(level0)), str(level0.dtype))).encode())
    digest.update(_sample(data).tobytes())
    return digest.hexdigest()


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file renamed over it (atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class SavedSession:
    """What ``session.json`` says of a saved session.

    Attributes
    ----------
    shape : tuple of int
        Spatial shape of the scribbles, ``(Y, X)`` or ``(Z, Y, X)``.
    classes : list of (str, str)
        Name and ``#rrggbb`` colour of classes 1..K.
    painted : int
        Painted (non-zero) pixels at the last save.
    saved_at : float
        Seconds since the epoch of the last save.
    image_name, source : str
        The image layer's name and file path ("" when not from a file) when saving began.
    """

    shape: tuple[int, ...]
    classes: list[tuple[str, str]]
    painted: int
    saved_at: float
    image_name: str = ""
    source: str = ""


class StrokeStore:
    """The saved scribbles of one image: a folder with ``scribbles.zarr`` and ``session.json``.

    Use :meth:`create` to start saving and :meth:`find` to look for an image's strokes.
    """

    def __init__(self, folder: Path) -> None:
        import zarr

        self.folder = Path(folder)
        self._array = zarr.open_array(self.folder / _ARRAY, mode="r+")
        self._info = self._read_info()

    # ------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        key: str,
        shape: Sequence[int],
        *,
        image_name: str = "",
        source: str = "",
    ) -> StrokeStore:
        """Start saving the strokes of image ``key`` (replacing what was saved for it).

        Parameters
        ----------
        root : path
            The folder of all sessions (:func:`autosave_root`).
        key : str
            :func:`image_key` of the image.
        shape : sequence of int
            Spatial shape of the scribbles, 2 or 3 axes.

        Raises
        ------
        ValueError
            A shape that is not 2 or 3 positive lengths, or a key that is not a plain name.
        """
        import zarr

        shape = tuple(int(n) for n in shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"scribbles shape must be (Y, X) or (Z, Y, X), got {shape}")
        if not key or Path(key).name != key or key.startswith("."):
            raise ValueError(f"not a session key: {key!r}")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        folder = root / key
        # build beside it, then rename into place: a reader never sees half a folder
        tmp = root / f".{key}.{uuid.uuid4().hex}.partial"
        tmp.mkdir()
        try:
            chunks = (1,) * (len(shape) - 2) + (min(CHUNK, shape[-2]), min(CHUNK, shape[-1]))
            zarr.create_array(tmp / _ARRAY, shape=shape, chunks=chunks, dtype="uint8", fill_value=0)
            info = SavedSession(shape, [], 0, time.time(), image_name, source)
            _write_json(tmp / _INFO, _info_payload(info))
            _remove(folder)
            os.replace(tmp, folder)
        except BaseException:
            _remove(tmp)
            raise
        return cls(folder)

    @classmethod
    def find(cls, root: str | os.PathLike, key: str) -> StrokeStore | None:
        """The saved strokes of image ``key``, or None when there are none (or they cannot be
        read: an unreadable session is ignored, not an error)."""
        folder = Path(root) / key
        if not (folder / _INFO).is_file():
            return None
        try:
            return cls(folder)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Spatial shape of the saved scribbles."""
        return tuple(int(n) for n in self._array.shape)

    def info(self) -> SavedSession:
        """What was saved last (classes, painted count, time)."""
        return self._info

    def read(self) -> np.ndarray:
        """The saved scribbles, uint8 ``(*shape)``."""
        return np.asarray(self._array[...])

    def save(
        self,
        scribbles: np.ndarray,
        classes: Sequence[tuple[str, str]] | None = None,
        region: tuple[slice, ...] | None = None,
        *,
        keep_saved: bool = False,
    ) -> None:
        """Write ``scribbles[region]`` (default: all) and the session's description.

        Parameters
        ----------
        scribbles : array-like
            Integer ``(*shape)``: the whole scribbles array (of which ``region`` is written).
        classes : sequence of (name, colour), optional
            Classes 1..K (default: as saved before).
        region : tuple of slice, optional
            The part that changed; it is widened to whole chunks, so only the chunks it
            touches are read and rewritten.
        keep_saved : bool
            Write only the painted (non-zero) pixels, keeping the saved value of the others:
            new strokes on top of the saved ones, nothing erased.

        Raises
        ------
        ValueError
            A shape other than the store's, or values outside 0..255.
        """
        if tuple(np.shape(scribbles)) != self.shape:
            raise ValueError(
                f"scribbles shape {tuple(np.shape(scribbles))} does not match the saved "
                f"session's shape {self.shape}"
            )
        region = self.chunk_region(region)
        self.write(np.asarray(scribbles[region]), region, classes, keep_saved=keep_saved)

    def write(
        self,
        part: np.ndarray,
        region: tuple[slice, ...],
        classes: Sequence[tuple[str, str]] | None = None,
        *,
        keep_saved: bool = False,
    ) -> None:
        """:meth:`save` of a part cut already: ``part`` is ``scribbles[region]`` for a
        ``region`` of whole chunks (:meth:`chunk_region`). A caller that must not wait (a
        viewer) copies the part and writes it on another thread, one write at a time.

        Raises
        ------
        ValueError
            A region that is not the part's, or values outside 0..255.
        """
        if tuple(part.shape) != tuple(s.stop - s.start for s in region):
            raise ValueError(f"part of shape {part.shape} for region {region}")
        if part.size and (part.min() < 0 or part.max() > 255):
            raise ValueError(
                f"scribbles hold values {part.min()}..{part.max()}; class ids are 0..255"
            )
        part = part.astype(np.uint8, copy=False)
        whole = region == self._all()
        old = None if whole and not keep_saved else np.asarray(self._array[region])
        if keep_saved:
            part = np.where(part != 0, part, old)
        self._array[region] = part
        # painted pixels: counted in what was written, the rest as before
        painted = int(np.count_nonzero(part))
        if not whole:
            painted += self._info.painted - int(np.count_nonzero(old))
        self._info = SavedSession(
            self.shape,
            [(str(n), str(c)) for n, c in (classes if classes is not None else self._info.classes)],
            painted,
            time.time(),
            self._info.image_name,
            self._info.source,
        )
        _write_json(self.folder / _INFO, _info_payload(self._info))

    def discard(self) -> None:
        """Delete the saved session (renamed away first, so a half-deleted one is never read)."""
        _remove(self.folder)

    # ------------------------------------------------------------------------------------
    def _all(self) -> tuple[slice, ...]:
        return tuple(slice(0, n) for n in self.shape)

    def chunk_region(self, region: tuple[slice, ...] | None) -> tuple[slice, ...]:
        """``region`` (default: everything) widened to whole chunks.

        Raises
        ------
        ValueError
            A region with another number of axes than the scribbles.
        """
        if region is None:
            return self._all()
        if len(region) != len(self.shape):
            raise ValueError(
                f"region {region} has {len(region)} axes, the scribbles {len(self.shape)}"
            )
        chunks = self._array.chunks
        out = []
        for s, n, c in zip(region, self.shape, chunks, strict=True):
            start, stop, _ = s.indices(n)
            out.append(slice(start // c * c, min(n, -(-max(stop, start + 1) // c) * c)))
        return tuple(out)

    def _read_info(self) -> SavedSession:
        payload = json.loads((self.folder / _INFO).read_text(encoding="utf-8"))
        return SavedSession(
            tuple(int(n) for n in payload["shape"]),
            [(str(n), str(c)) for n, c in payload["classes"]],
            int(payload["painted"]),
            float(payload["saved_at"]),
            str(payload.get("image_name", "")),
            str(payload.get("source", "")),
        )


def _info_payload(info: SavedSession) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "shape": list(info.shape),
        "classes": [list(c) for c in info.classes],
        "painted": info.painted,
        "saved_at": info.saved_at,
        "image_name": info.image_name,
        "source": info.source,
    }


def _remove(folder: Path) -> None:
    """Delete ``folder`` if it exists: renamed to a hidden name first, then removed."""
    if not folder.exists():
        return
    gone = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.deleted")
    os.replace(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)
