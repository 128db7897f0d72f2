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

from napari_seglab.core.inference import predict
from napari_seglab.core.io import read_image, write_atomic

if TYPE_CHECKING:
    from napari_seglab.core.model import SegModel

#: Files taken as images in a folder (what tifffile and scikit-image read).
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".gif")

#: Names that are not images to predict: scribbles and probabilities beside images.
SKIPPED_ENDINGS = ("_scribbles", "_probabilities")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder``, sorted by name: its files with an image suffix
    (:data:`IMAGE_SUFFIXES`), other than scribbles and probability files
    (``<name>_scribbles.tif``, ``<name>_probabilities.tif``), hidden files and sub-folders.

    Raises
    ------
    NotADirectoryError
        ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not p.stem.endswith(SKIPPED_ENDINGS)
    )


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
    """

    index: int
    total: int
    source: Path
    target: Path
    error: str | None = None


def predict_files(
    model: SegModel,
    sources: Sequence[str | os.PathLike],
    out_folder: str | os.PathLike,
    *,
    device: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> Generator[FileDone, None, None]:
    """Predict each image file into ``out_folder/<name>.tif`` (uint8 class ids 1..K, zlib).

    A bad image is reported (:attr:`FileDone.error`) and the next one predicted; an existing
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
        Two images that would write the same labels file (same name, other suffix).
    """
    import tifffile

    out = Path(out_folder)
    sources = [Path(s) for s in sources]
    stems = [s.stem for s in sources]
    if len(set(stems)) != len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"images named {', '.join(twice)} twice would write one labels file")
    out.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        if stop is not None and stop():
            return
        dst = out / f"{src.stem}.tif"
        error = None
        try:
            if dst.exists():
                raise FileExistsError(f"{dst} exists and is not replaced")
            labels = predict(model, read_image(src), device=device, probabilities=False).labels
            write_atomic(dst, lambda tmp, a=labels: tifffile.imwrite(tmp, a, compression="zlib"))
        except (ValueError, OSError, FloatingPointError) as exc:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        yield FileDone(i, len(sources), src, dst, error)
