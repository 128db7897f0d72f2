"""The images and scribbles ``seglab train`` trains on: ``IMAGE SCRIBBLES``, several
``IMAGE:SCRIBBLES`` pairs, or a folder of images with their ``<name>_scribbles`` files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from napari_seglab.cli.common import CLIError
from napari_seglab.core.batch import IMAGE_SUFFIXES

#: A folder's scribbles for ``cells.tif`` are ``cells_scribbles.tif`` (any image suffix).
SCRIBBLES_SUFFIX = "_scribbles"


def _split_pair(text: str) -> tuple[Path, Path]:
    """``IMAGE:SCRIBBLES`` at the colon that leaves two existing files (paths may hold colons,
    as Windows drive letters do)."""
    splits = [
        (Path(text[:i]), Path(text[i + 1 :]))
        for i, ch in enumerate(text)
        if ch == ":" and 0 < i < len(text) - 1
    ]
    found = [(a, b) for a, b in splits if a.is_file() and b.is_file()]
    if len(found) == 1:
        return found[0]
    if not splits:
        raise CLIError(f"{text!r} is not an IMAGE:SCRIBBLES pair")
    if not found:
        a, b = splits[-1]
        missing = a if not a.is_file() else b
        raise CLIError(f"pair {text!r}: {missing} is not a file")
    raise CLIError(f"pair {text!r} can be split at more than one colon; rename the files")


def folder_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """Each image of ``folder`` that has a ``<name>_scribbles`` file, with that file.

    Raises
    ------
    CLIError
        No such pairs, or an image with two scribbles files.
    """
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p)
    pairs = []
    for p in files:
        if p.stem.endswith(SCRIBBLES_SUFFIX):
            continue
        found = by_stem.get(p.stem + SCRIBBLES_SUFFIX, [])
        if len(found) > 1:
            raise CLIError(f"{p} has more than one scribbles file: {', '.join(map(str, found))}")
        if found:
            pairs.append((p, found[0]))
    if not pairs:
        raise CLIError(
            f"folder {folder} holds no image with a scribbles file (cells.tif with "
            f"cells{SCRIBBLES_SUFFIX}.tif)"
        )
    return pairs


def training_pairs(inputs: Sequence[str]) -> list[tuple[Path, Path]]:
    """The (image, scribbles) paths of ``seglab train``'s positional arguments.

    Raises
    ------
    CLIError
        Arguments that are none of the three forms, or a file named twice.
    """
    inputs = list(inputs)
    if len(inputs) == 1 and Path(inputs[0]).is_dir():
        pairs = folder_pairs(Path(inputs[0]))
    elif (
        len(inputs) == 2
        and not any(Path(a).is_dir() for a in inputs)
        and not (":" in inputs[0] and not Path(inputs[0]).exists())
    ):
        pairs = [(Path(inputs[0]), Path(inputs[1]))]
    else:
        for a in inputs:
            if Path(a).is_dir():
                raise CLIError(f"{a} is a folder: give a folder alone, or IMAGE:SCRIBBLES pairs")
        pairs = [_split_pair(a) for a in inputs]
    seen: dict[Path, str] = {}
    for image, scribbles in pairs:
        for path, what in ((image, "image"), (scribbles, "scribbles")):
            key = path.resolve()
            if key in seen:
                roles = what if seen[key] == what else f"{seen[key]} and as {what}"
                raise CLIError(f"{path} is given twice (as {roles})")
            seen[key] = what
    return pairs
