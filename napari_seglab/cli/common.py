"""What every ``seglab`` command shares: one-line errors, argument types, reading images and
checking that no output is an input.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class CLIError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``seglab: error: ...``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see '{self.prog} --help')")


def _float_where(text: str, ok: Callable[[float], bool], requirement: str) -> float:
    """``float(text)`` if finite and ``ok``, else an argparse error "must be <requirement>"."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (ok(value) and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _float_where(text, lambda v: v > 0, "a positive number")


def _non_negative_float(text: str) -> float:
    return _float_where(text, lambda v: v >= 0, "a number >= 0")


#: The most torch threads an option may ask for: this machine's CPUs.
CPUS = os.cpu_count() or 1


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _positive_int(text: str) -> int:
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        value = _parse_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {text}")
        return value

    return parse


def _channel_list(text: str) -> tuple[int, ...]:
    """An argparse type: channel indices, ``"0,2"`` -> ``(0, 2)``, distinct, from 0."""
    from napari_seglab.core.model import ModelConfig

    try:
        return ModelConfig(channels=[_parse_int(t.strip()) for t in text.split(",")]).channels
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


#: Counts of pixels from this many on are written with SI prefixes (4.61k, 16.8M), as tqdm's
#: bars count; below it as they are (100, not 100.0).
SI_FROM = 1000


def pixel_count(n: int) -> str:
    """``4608 -> "4.61k pixels"``, ``16_777_216 -> "16.8M pixels"``, ``100 -> "100 pixels"``:
    SI prefixes from a thousand on, as tqdm's bars count (a size in megapixels read "0.0" for
    any small image)."""
    from tqdm import tqdm

    n = int(n)
    return f"{tqdm.format_sizeof(n) if n >= SI_FROM else n} pixels"


def read_image_check(path: Path, what: str = "image") -> None:
    """Raise :class:`CLIError` unless ``path`` is an existing file."""
    from napari_seglab.core.io import check_file

    try:
        check_file(path, what)
    except (OSError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def channel_axis_of(paths: Sequence[Path], given: int | None) -> int | None:
    """``--channel-axis`` when given, else the channel axis the image files name (TIFF axes
    with a ``C``) when they all name the same one, else None (detected)."""
    from napari_seglab.core.io import file_channel_axis

    if given is not None:
        return given
    named = {file_channel_axis(p) for p in paths}
    return named.pop() if len(named) == 1 else None


def check_planes_not_channels(
    path: Path,
    shape: tuple[int, ...],
    plane_axes: dict[int, str],
    channel_axis: int | None,
    in_channels: int,
) -> None:
    """:func:`napari_seglab.core.data.planes_read_as_channels` as a :class:`CLIError` naming
    the file."""
    from napari_seglab.core.data import planes_read_as_channels

    problem = planes_read_as_channels(shape, plane_axes, channel_axis, in_channels)
    if problem is not None:
        raise CLIError(f"{path}: {problem}")


def read_image(path: str | Path, what: str = "image") -> Any:
    """:func:`napari_seglab.core.io.read_image`, its errors as :class:`CLIError` and its notes
    (a TIFF's other images left unread) on stderr."""
    import warnings

    from napari_seglab.core.io import read_image as core_read_image

    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always", UserWarning)
        try:
            image = core_read_image(path, what)
        except (OSError, ValueError) as exc:
            raise CLIError(str(exc)) from None
    for note in notes:
        print(f"note: {note.message}", file=sys.stderr)
    return image


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (hard links and symlinks included)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def _read_only(path: Path) -> bool:
    """No write permission for this user, or none for anyone (a file marked read-only is
    respected even by root, who may write anywhere)."""
    return not os.access(path, os.W_OK) or not path.stat().st_mode & 0o222


def check_replaceable(outputs: Sequence[Path], overwrite: bool, kind: str) -> None:
    """Refuse to replace an existing output that seglab did not write, unless ``overwrite``:
    a labels or probabilities TIFF without seglab's Software tag (``kind="labels"``), a file
    that is not a napari-seglab model (``kind="model"``). Raises :class:`CLIError`."""
    if overwrite:
        return
    from napari_seglab.core.io import written_here
    from napari_seglab.core.modelio import ModelFileError, read_header

    for out in outputs:
        if not out.is_file():
            continue
        if kind == "model":
            try:
                read_header(out)
                continue
            except ModelFileError:
                what = "is not a napari-seglab model"
        elif written_here(out):
            continue
        else:
            what = "was not written by seglab"
        raise CLIError(
            f"output {out} exists and {what}; seglab does not replace it: choose another "
            "name, or pass --overwrite"
        )


def check_outputs(outputs: Sequence[Path], inputs: dict[Path, str]) -> None:
    """Refuse outputs that would destroy something: an input (``{path: what}``), a file that is
    not a regular one (a device, a pipe, a folder), a symbolic link, or two outputs with one
    name. Raises :class:`CLIError` naming the output and the reason; writes nothing."""
    seen: dict[str, Path] = {}
    for out in outputs:
        if out.is_symlink():
            raise CLIError(
                f"output {out} is a symbolic link; give the file it points to or another name"
            )
        if out.exists() and not out.is_file():
            raise CLIError(
                f"output {out} exists and is not a regular file; seglab writes only regular files"
            )
        if out.exists() and _read_only(out):
            raise CLIError(f"output {out} is read-only; seglab does not replace it")
        folder = out.parent if str(out.parent) else Path(".")
        if folder.is_dir() and _read_only(folder):
            raise CLIError(f"output folder {folder} is not writable")
        for path, what in inputs.items():
            if _same_file(out, path):
                raise CLIError(
                    f"output {out} is the {what} {path}; seglab never writes over its inputs: "
                    "choose another output name"
                )
        key = os.path.normcase(os.path.abspath(out))
        if key in seen:
            raise CLIError(f"two outputs would be written to {out}; rename an input")
        seen[key] = out


def each_image(
    pairs: Sequence[tuple[Path, Path]], predict_one: Callable[[Path, Path], Any], quiet: bool
) -> list[Path]:
    """Call ``predict_one(image, output)`` for each pair; returns the images that failed.

    One bad image of a batch does not stop the others: each is reported on a line of its own,
    and the caller's exit status says that something failed. A single image's error is raised
    as :class:`CLIError` (naming the file).
    """
    from tqdm import tqdm

    failed = []
    # "N of M images" in a terminal for a batch (tqdm switches itself off elsewhere); the
    # lines below go through tqdm.write so that the bar stays under them
    batch = tqdm(
        total=len(pairs),
        unit="image",
        desc="images",
        file=sys.stderr,
        leave=False,
        disable=True if quiet or len(pairs) == 1 else None,
    )
    with batch:
        for src, dst in pairs:
            try:
                predict_one(src, dst)
            except (CLIError, ValueError, OSError, FloatingPointError) as exc:
                if len(pairs) == 1:
                    if isinstance(exc, CLIError):  # it names the file already
                        raise
                    raise CLIError(f"{src}: {exc}") from None
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                tqdm.write(f"seglab: error: {src}: {message}", file=sys.stderr)
                failed.append(src)
            else:
                if not quiet:
                    tqdm.write(f"{src} -> {dst}", file=sys.stderr)
            batch.update(1)
    return failed
