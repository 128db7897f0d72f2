"""Files in and out: images read the way the command line and the benchmarks read them, and
files written whole or not at all.

Images: TIFF through tifffile (the first image series; a file of several images alike is
refused rather than read as its first plane), everything else through scikit-image.
Writes: :func:`write_atomic` writes beside the target and renames, so a crash, a full disk or
Ctrl-C never leaves half a file under the target's name.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Suffixes read with tifffile.
TIFF_SUFFIXES = (".tif", ".tiff")


class ImageFileError(ValueError):
    """A file that holds no image, or one that cannot be read as one image."""


def check_file(path: str | Path, what: str = "image") -> Path:
    """``path`` as a Path, after checking that it is an existing file.

    Raises
    ------
    FileNotFoundError
        No such file.
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        ``path`` exists but is not a regular file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} path {path} is a folder; give a file")
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} path {path} is not a file")
    return path


def read_image(path: str | Path, what: str = "image") -> np.ndarray:
    """Read an image with tifffile (.tif/.tiff), NumPy (.npy, no pickles) or scikit-image
    (PNG, JPEG, ...).

    ``what`` names the file in messages (``"image"``, ``"scribbles"``). Of a TIFF with several
    image series the first is read when the others have other shapes (thumbnails, slide labels:
    a ``UserWarning`` names them).

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        See :func:`check_file`.
    ImageFileError
        A ``ValueError``: the file could not be read, holds no image, or holds several images
        alike (a stack written page by page as separate series).
    """
    path = check_file(path, what)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            data = _read_tiff(path, what)
        elif path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)  # a NumPy array; never a pickle
        else:
            data = _read_picture(path, what)
    except ImageFileError:
        raise
    except Exception as exc:  # noqa: BLE001 (any reader's error, said in one line)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImageFileError(f"could not read {what} {path}: {reason}") from None
    return np.asarray(data)


#: The TIFF Software tag of the files seglab writes, by which it knows its own.
SOFTWARE = "napari-seglab"


def write_tiff(path: str, array: np.ndarray, **kwargs: Any) -> None:
    """``tifffile.imwrite`` with the Software tag :data:`SOFTWARE` (see :func:`written_here`)."""
    import tifffile

    tifffile.imwrite(path, array, software=SOFTWARE, **kwargs)


def written_here(path: str | Path) -> bool:
    """Whether ``path`` is a TIFF that seglab wrote (:func:`write_tiff`'s Software tag)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get("Software") if tif.pages else None
            return tag is not None and tag.value == SOFTWARE
    except Exception:  # noqa: BLE001 (not a TIFF, unreadable: not ours)
        return False


def file_axes(path: str | Path) -> str:
    """The axes a TIFF's first series names (``"CYX"``, ``"ZYX"``; tifffile's letters), or
    ``""`` for other files and unreadable ones. A file written without saying what its axes
    are gets tifffile's own guess (``"SYX"`` for three planes, ``"QYX"`` for others)."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return ""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tif.series[0].axes if tif.series else ""
    except Exception:  # noqa: BLE001 (read_image says what is wrong with the file)
        return ""


def file_channel_axis(path: str | Path) -> int | None:
    """The channel axis a TIFF names (a ``C`` in its first series' axes: ImageJ hyperstacks,
    OME-TIFF, tifffile's ``metadata={"axes": ...}``), else None (other files, or no ``C``).

    tifffile's own guess at writing (``S`` for three planes written without saying what they
    are) is not read as channels: only a file that says so decides.
    """
    axes = file_axes(path)
    return axes.index("C") if axes.count("C") == 1 else None


def file_plane_axes(path: str | Path) -> dict[int, str]:
    """The axes a TIFF names as planes of a stack, by position: depth (``"Z"``) or time
    (``"T"``); ``{}`` for other files and for tifffile's own guesses."""
    return {i: a for i, a in enumerate(file_axes(path)) if a in "ZT"}


def _read_picture(path: Path, what: str) -> np.ndarray:
    """A PNG, JPEG, ... as scikit-image reads it, except: scribbles saved as a palette image
    are its indices (the labels; scikit-image gives the palette's colours), and an alpha
    channel that is opaque everywhere is dropped (it holds nothing: the picture's channels
    are then those it shows, as for the same picture without alpha)."""
    from PIL import Image
    from skimage import io

    with Image.open(path) as picture:
        mode = picture.mode
        if what == "scribbles" and mode == "P":
            return np.asarray(picture)
    data = np.asarray(io.imread(path))
    if mode in ("LA", "RGBA", "PA") and data.ndim == 3 and data.shape[-1] in (2, 4):
        alpha = data[..., -1]
        opaque = np.iinfo(data.dtype).max if data.dtype.kind in "ui" else 1.0
        if bool((alpha == opaque).all()):
            data = data[..., 0] if data.shape[-1] == 2 else data[..., :3]
            if what != "scribbles":
                warnings.warn(
                    f"{path}: its alpha channel is opaque everywhere and is left out",
                    UserWarning,
                    stacklevel=4,
                )
    return data


def _read_tiff(path: Path, what: str) -> Any:
    """The first image series of a TIFF, refusing files whose pages form several images alike."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if not series:
            raise ImageFileError(f"could not read {what} {path}: it holds no image")
        first = series[0]
        if len(series) > 1:
            alike = sum(s.shape == first.shape for s in series)
            shapes = ", ".join(str(tuple(s.shape)) for s in series[:6])
            more = ", ..." if len(series) > 6 else ""
            if alike > 1:
                raise ImageFileError(
                    f"{what} {path} holds {len(series)} separate images ({shapes}{more}); "
                    "seglab reads one image per file. Save a stack as one image "
                    "(tifffile.imwrite(path, stack)), or each image to its own file"
                )
            others = ", ".join(str(tuple(s.shape)) for s in series[1:7])
            warnings.warn(
                f"{path}: reading its first image {tuple(first.shape)}; the file's other "
                f"image(s) ({others}{more}) are not used",
                UserWarning,
                stacklevel=3,
            )
        return first.asarray()


def write_atomic(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp)`` on a new hidden file beside ``path``, then rename it to ``path``.

    ``path`` is either left as it was or replaced whole. The temporary file's name is chosen
    before it is created, so that it is removed whatever interrupts the write (an error,
    Ctrl-C, SIGTERM turned into an exception) even between its creation and the first byte.
    It gets the permissions of a new file (0666 less the umask).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    # the target's suffix last, for writers that read it (tifffile)
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp{path.suffix}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        mode = tmp.stat().st_mode & 0o777  # 0666 less the umask
        write(str(tmp))
        os.chmod(tmp, mode)  # writers that recreate the file (safetensors) leave it 0600
        os.replace(tmp, path)
    except OSError as exc:
        full = exc.errno == errno.ENOSPC or _disk_full(directory)
        tmp.unlink(missing_ok=True)
        if full:  # writers word it their own way ("9216 requested and 956 written")
            raise OSError(
                errno.ENOSPC, f"no space left on the disk holding {directory.resolve()}", str(path)
            ) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Below this many free bytes, a failed write is put down to a full disk.
DISK_FULL_BYTES = 1 << 20


def _disk_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < DISK_FULL_BYTES
    except OSError:
        return False
