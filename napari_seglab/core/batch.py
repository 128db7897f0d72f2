"""Predicting a folder of images: which files are images, and one labels file per image.

Examples
--------
>>> from napari_seglab.core.batch import image_files, predict_files  # doctest: +SKIP
>>> for done in predict_files(model, image_files("plate/"), "plate_labels/"):  # doctest: +SKIP
...     print(done.index + 1, "of", done.total, done.source, done.error or "->", done.target)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from napari_seglab.core.data import planes_read_as_channels
from napari_seglab.core.inference import predict
from napari_seglab.core.io import (
    file_channel_axis,
    file_plane_axes,
    read_image,
    write_atomic,
    write_tiff,
)

if TYPE_CHECKING:
    from napari_seglab.core.model import SegModel

#: Files taken as images in a folder (what tifffile and scikit-image read).
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif")

#: Names that are not images to predict: scribbles and probabilities beside images.
SKIPPED_ENDINGS = ("_scribbles", "_probabilities")


def image_files(folder: str | os.PathLike, *, zarr: bool = False) -> list[Path]:
    """The image files of ``folder``, sorted by name: its files with an image suffix
    (:data:`IMAGE_SUFFIXES`), other than scribbles and probability files
    (``<name>_scribbles.tif``, ``<name>_probabilities.tif``), hidden files and sub-folders;
    with ``zarr``, also its Zarr stores (:func:`napari_seglab.core.lazyio.is_zarr`), which
    ``seglab predict`` reads block by block.

    Raises
    ------
    NotADirectoryError
        ``folder`` is not a folder.
    """
    from napari_seglab.core.lazyio import is_zarr

    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")

    def wanted(p: Path) -> bool:
        if p.name.startswith(".") or p.stem.endswith(SKIPPED_ENDINGS):
            return False
        if p.is_dir():
            return zarr and is_zarr(p)
        return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir() if wanted(p))


@dataclass(frozen=True)
class FileDone:
    """One image of a batch, predicted or not.

    Attributes
    ----------
    index, total : int
        Its place in the batch (0-based) and the batch's size.
    source, target : Path
        The image and its labels file (written only without an error).
    error : str or None
        Why it was not predicted (an unreadable file, another channel count, an existing
        labels file).
    notes : tuple of str
        What to know about a written prediction (``Prediction.notes`` of
        :func:`~napari_seglab.core.inference.predict`: a constant image).
    """

    index: int
    total: int
    source: Path
    target: Path
    error: str | None = None
    notes: tuple[str, ...] = ()


def label_targets(sources: Sequence[str | os.PathLike], out_folder: str | os.PathLike):
    """The labels file of each image: ``out_folder/<name>.tif``.

    Raises
    ------
    ValueError
        ``out_folder`` is the folder of an image (labels would land among the images: the
        ``c.tif`` of a ``c.png`` would be taken for an image next time), or two images would
        write one labels file (``c.png`` and ``c.tif``); the message names them.
    """
    out = Path(out_folder)
    sources = [Path(s) for s in sources]
    folders = {s.parent.resolve() for s in sources}
    if out.resolve() in folders:
        raise ValueError(f"the labels folder {out} holds the images; choose another folder")
    same = same_stem(sources)
    if same:
        names = " and ".join(p.name for p in same)
        raise ValueError(f"{names} would write one labels file, {out / same[0].stem}.tif")
    return [out / f"{src.stem}.tif" for src in sources]


def same_stem(paths: Sequence[Path]) -> list[Path]:
    """The first paths, in order, that share a name without its suffix (``c.png`` and
    ``c.tif``: their labels would be one file); ``[]`` when every name is its own."""
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(path.stem, []).append(path)
    return next((group for group in by_stem.values() if len(group) > 1), [])


def predict_files(
    model: SegModel,
    sources: Sequence[str | os.PathLike],
    out_folder: str | os.PathLike,
    *,
    device: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[FileDone, None, None]:
    """Predict each image file into ``out_folder/<name>.tif`` (uint8 class ids 1..K, zlib).

    A TIFF's channel axis is read where its axes name it (a ``C``), and an axis they name as
    planes (``Z``, ``T``) is never read as channels
    (:func:`~napari_seglab.core.data.planes_read_as_channels`: the image is refused). A bad
    image is reported (:attr:`FileDone.error`) and the next one predicted; an existing
    labels file is never replaced; each file is written to a temporary name and renamed
    (:func:`~napari_seglab.core.io.write_atomic`). ``stop()``, checked before each image,
    ends the batch early.

    Yields
    ------
    FileDone
        One per image, after it.

    Raises
    ------
    ValueError
        Before anything is written: see :func:`label_targets`.
    """
    sources = [Path(s) for s in sources]
    targets = label_targets(sources, out_folder)
    Path(out_folder).mkdir(parents=True, exist_ok=True)
    for i, (src, dst) in enumerate(zip(sources, targets, strict=True)):
        if stop is not None and stop():
            return
        error, notes = None, ()
        try:
            if dst.exists():
                raise FileExistsError(f"{dst} exists and is not replaced")
            image = read_image(src)
            channel_axis = file_channel_axis(src)
            problem = planes_read_as_channels(
                image.shape,
                file_plane_axes(src),
                channel_axis,
                model.in_channels,
                give="(a batch reads it from the file: save the file with that axis "
                "named C, or predict it with seglab predict --channel-axis)",
            )
            if problem is not None:
                raise ValueError(problem)
            prediction = predict(
                model, image, device=device, channel_axis=channel_axis, probabilities=False
            )
            labels, notes = prediction.labels, prediction.notes
            write_atomic(dst, lambda tmp, a=labels: write_tiff(tmp, a, compression="zlib"))
        except (ValueError, OSError, FloatingPointError) as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        yield FileDone(i, len(sources), src, dst, error, notes)
