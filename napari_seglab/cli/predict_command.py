"""``seglab predict``: labels (and probabilities) of images from a model file."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Any

from napari_seglab.cli.common import (
    SI_FROM,
    CLIError,
    channel_axis_of,
    check_outputs,
    check_planes_not_channels,
    check_replaceable,
    each_image,
    pixel_count,
    read_image,
    read_image_check,
)


def _prob_path(label_path: Path) -> Path:
    """Where the probabilities go beside the labels: ``<name>_probabilities.tif`` (``.zarr``
    beside a Zarr store)."""
    if label_path.suffix.lower() == ".zarr":
        return label_path.with_name(f"{label_path.stem}_probabilities.zarr")
    name = label_path.name
    for suffix in (".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return label_path.with_name(f"{name}_probabilities.tif")


def _label_paths(images: list[Path], out: Path, folder: bool) -> list[Path]:
    """Where each image's labels go: ``out`` itself for one image (unless it is a folder),
    else ``out/<image name>.tif`` (``.zarr`` for a Zarr image). Raises CLIError for a name
    that cannot be meant."""
    from napari_seglab.core.io import TIFF_SUFFIXES  # also what seglab predict writes
    from napari_seglab.core.lazyio import is_zarr

    if len(images) == 1 and (is_zarr(out) or not (out.is_dir() or folder)):
        if out.parent != Path("") and not out.parent.exists():
            raise CLIError(f"output folder {out.parent} does not exist")
        if out.suffix.lower() == ".zarr":
            return [out]
        if out.suffix.lower() not in TIFF_SUFFIXES:
            raise CLIError(f"output {out}: seglab writes TIFF or Zarr; name it .tif or .zarr")
        return [out]
    if out.exists() and not out.is_dir():
        raise CLIError(f"output {out} is a file; give a folder for several images")
    if not out.exists() and out.suffix.lower() in TIFF_SUFFIXES:
        raise CLIError(
            f"output {out}: with {len(images)} images -o names a folder to create, and "
            f"{out.name} looks like a file name; give a folder"
        )
    # a Zarr image's labels go to Zarr, the others' to TIFF
    targets = [out / f"{p.stem}{'.zarr' if is_zarr(p) else '.tif'}" for p in images]
    by_target: dict[Path, list[Path]] = {}
    for image, target in zip(images, targets, strict=True):
        by_target.setdefault(target, []).append(image)
    target, same = next(((t, g) for t, g in by_target.items() if len(g) > 1), (None, []))
    if same:
        if len({p.resolve() for p in same}) == 1:
            raise CLIError(f"{same[0]} is given twice")
        raise CLIError(
            f"{' and '.join(map(str, same))} would write one labels file ({target}); give "
            "them other names"
        )
    return targets


def _expand_folders(inputs: list[str]) -> tuple[list[Path], bool]:
    """The images named, and whether a folder was among them: a folder (not a Zarr store)
    stands for its image files and Zarr stores (:func:`napari_seglab.core.batch.image_files`)."""
    from napari_seglab.core.batch import image_files
    from napari_seglab.core.lazyio import is_zarr

    images, folder = [], False
    for text in inputs:
        path = Path(text)
        if path.is_dir() and not is_zarr(path):
            found = image_files(path, zarr=True)
            if not found:
                raise CLIError(
                    f"folder {path} holds no image (.tif, .png, .jpg, ..., or a Zarr store)"
                )
            images.extend(found)
            folder = True
        else:
            images.append(path)
    return images, folder


def _predict(args: argparse.Namespace) -> int:
    from napari_seglab.cli import blockwise_command
    from napari_seglab.core.lazyio import is_zarr

    # a folder given: its labels go to a folder, however many images it holds
    images, folder_in = _expand_folders(args.images)
    if len(images) == 1:  # of several, a missing one is reported with the others predicted
        if is_zarr(images[0]):
            if not images[0].exists():
                raise CLIError(f"image {images[0]} does not exist")
        else:
            read_image_check(images[0])
    out = Path(args.output)
    targets = _label_paths(images, out, str(args.output).endswith(os.sep) or folder_in)
    prob_paths = [_prob_path(t) for t in targets] if args.probabilities else []
    inputs = {Path(args.model): "model", **dict.fromkeys(images, "image")}
    for path in [*targets, *prob_paths]:
        if path.suffix.lower() == ".zarr" and (path.exists() or path.is_symlink()):
            if path in images:
                raise CLIError(
                    f"output {path} is the image {path}; seglab never writes over its inputs: "
                    "choose another output name or folder"
                )
            raise CLIError(
                f"output {path} exists; seglab writes a new Zarr store and never replaces "
                "an existing store or file, even with --overwrite: remove it or choose "
                "another name"
            )
    check_outputs([*targets, *prob_paths], inputs)
    check_replaceable([*targets, *prob_paths], args.overwrite, "labels")
    created = None  # the output folder, when made here (removed again if left empty)
    if (len(targets) > 1 or targets[0] != out) and not out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        created = out
    if blockwise_command.wanted(images, out, args):
        failed = blockwise_command.run(
            Path(args.model), list(zip(images, targets, strict=True)), args
        )
    else:
        failed = _predict_in_memory(images, targets, args)
    if failed:
        if created is not None and not any(created.iterdir()):
            created.rmdir()
        print(
            f"seglab: error: {len(failed)} of {len(images)} images not predicted", file=sys.stderr
        )
        return 2
    return 0


def _predict_in_memory(images: list[Path], targets: list[Path], args: argparse.Namespace) -> list:
    """Predict each image whole; returns the images that failed."""
    from napari_seglab.core.modelio import load_model

    model = load_model(args.model)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    pairs = list(zip(images, targets, strict=True))
    return each_image(pairs, lambda src, dst: _predict_one(model, src, dst, args), args.quiet)


def progress_bar(name: str, pixels: int, quiet: bool) -> Any:
    """The bar of one image's prediction, counting its pixels with SI prefixes (``4.61k/4.61k
    px``, ``1.05M/16.8M px``; under a thousand as they are, ``33/100 px``); shown after a
    second, so not for a quick image nor before an error found at once."""
    from tqdm import tqdm

    return tqdm(
        total=pixels,
        unit="px",
        unit_scale=pixels >= SI_FROM,  # "33/100 px", not "33.0/100 px"
        disable=True if quiet else None,  # None: no bar where stderr is no terminal
        file=sys.stderr,
        desc=name,
        leave=False,
        delay=1.0,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} px "
        "[{elapsed}<{remaining}]",
    )


def _predict_one(model: Any, src: Path, dst: Path, args: argparse.Namespace) -> None:
    from napari_seglab.core.data import as_zcyx, looks_channels_first
    from napari_seglab.core.inference import predict
    from napari_seglab.core.io import file_plane_axes, write_atomic, write_tiff
    from napari_seglab.core.model import explaining_channels

    image = read_image(src, "image")
    channel_axis = channel_axis_of([src], args.channel_axis)
    planes = file_plane_axes(src)
    check_planes_not_channels(src, image.shape, planes, channel_axis, model.in_channels)
    # the layout as the prediction reads it (its errors, such as a channel axis out of range,
    # are the prediction's own), for the size
    with explaining_channels(model):
        view = as_zcyx(image, channel_axis=channel_axis, in_channels=model.in_channels)
    if (
        channel_axis is None
        and view.channel_axis is None
        and looks_channels_first(image.shape)
        and 0 not in planes
        and not args.quiet
    ):
        print(
            f"note: {src}: read as a stack of {image.shape[0]} planes for a one-channel model; "
            "if axis 0 holds channels, predict with a model trained on them",
            file=sys.stderr,
        )
    pixels = math.prod(view.spatial_shape)
    megapixels = pixels / 1e6
    if megapixels >= LARGE_MEGAPIXELS and not args.quiet:
        print(
            f"{src}: {image.shape} {image.dtype}, {pixel_count(pixels)} to predict; "
            "the bar's estimate follows the first rows",
            file=sys.stderr,
        )
    with progress_bar(src.name, pixels, args.quiet) as bar:
        prediction = predict(
            model,
            image,
            device=args.device,
            channel_axis=channel_axis,
            tile=args.tile,
            probabilities=args.probabilities,
            progress=bar.update,
        )
    labels = prediction.labels
    if not args.quiet:
        for note in prediction.notes:
            print(f"note: {src}: {note}", file=sys.stderr)

    def write_labels(tmp: str) -> None:
        write_tiff(tmp, labels, compression="zlib")

    if not args.probabilities:
        write_atomic(dst, write_labels)
        return
    probs = prediction.probabilities

    def write_both(tmp: str) -> None:
        # the labels are renamed into place just before the probabilities: an interruption
        # leaves both, the labels alone, or neither, never the probabilities alone
        write_tiff(tmp, probs)
        write_atomic(dst, write_labels)

    write_atomic(_prob_path(dst), write_both)


#: From this size on, ``seglab predict`` says up front what it is about to predict.
LARGE_MEGAPIXELS = 16
