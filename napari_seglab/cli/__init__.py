"""The ``seglab`` command line.

``seglab`` with no arguments opens napari on the built-in sample image with the SegLab
widget docked. ``seglab train`` and ``seglab predict`` work without a display::

    seglab train image.tif scribbles.tif -o model.seglab --seconds 30
    seglab train a.tif:a_scribbles.tif b.tif:b_scribbles.tif -o model.seglab
    seglab predict model.seglab image.tif -o labels.tif
    seglab predict model.seglab a.tif b.tif -o out_folder/ --probabilities
    seglab predict model.seglab big.zarr -o labels.zarr --workers 2

Bad input gives a one-line ``seglab: error: ...`` and exit status 2; nothing half-written is
left behind (outputs are written to a temporary file and renamed, also on SIGTERM, exit status
143). No output may be an input (image, scribbles, the model to predict with), a device, a
pipe or a symbolic link. Of several images, each bad one is reported and the others are
predicted; the exit status is 2 if any failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from napari_seglab.cli.common import (
    CPUS,
    CLIError,
    _channel_list,
    _int_between,
    _non_negative_float,
    _Parser,
    _positive_float,
    _positive_int,
)
from napari_seglab.cli.predict_command import _predict
from napari_seglab.cli.train_command import _train


def _no_display() -> bool:
    """On Linux, no X11 or Wayland display and no Qt platform chosen: Qt would abort."""
    env = os.environ
    return sys.platform.startswith("linux") and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY") or env.get("QT_QPA_PLATFORM")
    )


def _open_app(args: argparse.Namespace) -> int:
    if _no_display():
        raise CLIError(
            "the app needs a display (DISPLAY or WAYLAND_DISPLAY is not set); on a headless "
            "machine run it under 'xvfb-run -a seglab', or use 'seglab train' and "
            "'seglab predict', which need none"
        )
    import napari

    from napari_seglab._sample_data import coins_image

    viewer = napari.Viewer(title="napari-seglab")
    if args.image:
        viewer.open(args.image)
    else:
        viewer.add_image(coins_image(), name="coins", colormap="gray")
    viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    if args.screenshot:
        # Used by the README: render the whole window once and save it.
        from qtpy.QtWidgets import QApplication

        from napari_seglab._qt.internals import close_notification_popups

        viewer.window.resize(1400, 900)
        for _ in range(20):
            QApplication.processEvents()
        viewer.reset_view()
        close_notification_popups()
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0


def _address(text: str) -> str:
    """``--scheduler``: a Dask scheduler's address, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give the scheduler's address, e.g. tcp://host:8786")
    return text.strip()


def _loss_name(text: str) -> str:
    """``--loss``: the name, or why an old one is gone."""
    from napari_seglab.core.config import TVERSKY_GONE

    if text == "tversky":
        raise argparse.ArgumentTypeError(TVERSKY_GONE)
    return text


class _OldName(argparse.Action):
    """An option's name before 0.2: still accepted, with a note on stderr, not in --help."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is now {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _old_name(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    dest = new.lstrip("-").replace("-", "_")
    parser.add_argument(
        old, dest=dest, action=_OldName, new=new, help=argparse.SUPPRESS, default=None, **kwargs
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``seglab`` command."""
    from napari_seglab import __version__
    from napari_seglab.core.config import (
        DEFAULT_CLASS_WEIGHTS,
        DEFAULT_EDGE_FLUX,
        DEFAULT_FOREST_TEACHER,
        DEFAULT_LOSS,
        TrainConfig,
    )
    from napari_seglab.core.device import DEVICES
    from napari_seglab.core.guard import DEFAULT_LAMBDA_EDGE
    from napari_seglab.core.losses.registry import LOSSES
    from napari_seglab.core.model import ModelConfig
    from napari_seglab.core.weights import SCHEMES

    parser = _Parser(
        prog="seglab",
        description="Interactive semantic segmentation from sparse scribbles. "
        "With no command, opens napari with the SegLab widget on a sample image.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(func=_open_app, image=None, screenshot=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    gui = sub.add_parser("gui", help="open napari with the SegLab widget docked")
    gui.add_argument("image", nargs="?", help="image to open (default: the sample image)")
    gui.add_argument("--screenshot", metavar="PNG", help="save a screenshot of the window and exit")
    gui.set_defaults(func=_open_app)

    tr = sub.add_parser(
        "train",
        help="train a model from images and their scribbles",
        description="Train a model from an image and scribbles (0 unlabeled, 1 background, "
        "2 foreground, 3.. more classes) and save it; or one model from several images: "
        "IMAGE:SCRIBBLES pairs, or a folder in which cells.tif has cells_scribbles.tif.",
        usage="seglab train (IMAGE SCRIBBLES | IMAGE:SCRIBBLES [IMAGE:SCRIBBLES ...] | FOLDER) "
        "-o MODEL [options]",
    )
    tr.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="IMAGE SCRIBBLES (TIFF, PNG, JPEG, ...; scribbles of the image's spatial shape), or "
        "several IMAGE:SCRIBBLES pairs (one model for all: all 2D or all stacks, one channel "
        "count), or a FOLDER of images with their <name>_scribbles files",
    )
    tr.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    tr.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output that is not a napari-seglab model (one is replaced "
        "without it)",
    )
    budget = tr.add_mutually_exclusive_group()
    budget.add_argument(
        "--seconds", type=_positive_float, metavar="S", help="time budget (default 30 s)"
    )
    budget.add_argument("--steps", type=_positive_int, metavar="N", help="step budget")
    tr.add_argument("--device", default="auto", choices=DEVICES)
    tr.add_argument("--seed", type=_int_between(0, 2**32 - 1), default=0, metavar="N")
    tr.add_argument(
        "--loss",
        default=DEFAULT_LOSS,
        type=_loss_name,
        choices=LOSSES,
        help=f"loss on the painted pixels (default: {DEFAULT_LOSS}; docs/which-loss.md)",
    )
    tr.add_argument(
        "--class-weighting",
        default=DEFAULT_CLASS_WEIGHTS,
        choices=SCHEMES,
        help="per-class loss weights from the painted pixel counts "
        f"(default: {DEFAULT_CLASS_WEIGHTS})",
    )
    _old_name(tr, "--class-weights", "--class-weighting", choices=SCHEMES)
    tr.add_argument(
        "--init", metavar="MODEL", help="continue training this model (and its optimiser state)"
    )
    tr.add_argument("--channel-axis", type=int, metavar="AXIS", help="the image's channel axis")
    tr.add_argument(
        "--channels",
        type=_channel_list,
        metavar="LIST",
        help="the channels the model sees, e.g. 0,2 (default: all; a new model only). Stored in "
        "the model: images it predicts must have as many channels as this one",
    )
    tr.add_argument(
        "--threads", type=_int_between(1, CPUS), metavar="N", help=f"torch CPU threads (1-{CPUS})"
    )
    arch = ModelConfig()
    tr.add_argument(
        "--width",
        type=_int_between(1, 256),
        default=None,
        help=f"U-Net width (default {arch.width}; a new model only)",
    )
    tr.add_argument(
        "--depth",
        type=_int_between(1, 6),
        default=None,
        help=f"U-Net depth (default {arch.depth}; a new model only)",
    )
    tr.add_argument(
        "--lambda-edge",
        type=_non_negative_float,
        default=None,
        metavar="W",
        help="weight of the edge-aware term (TrainConfig.lambda_edge) that places boundaries on "
        "intensity edges "
        f"where nothing is painted (default {DEFAULT_LAMBDA_EDGE:g} for 2D images, 0 for stacks; "
        "0 = off)",
    )
    _old_name(tr, "--edge-weight", "--lambda-edge", type=_non_negative_float)
    tr.add_argument(
        "--edge-flux",
        type=_non_negative_float,
        default=DEFAULT_EDGE_FLUX,
        metavar="W",
        help="weight of the flux term (TrainConfig.edge_flux), part of the edge-aware term: it "
        "moves class boundaries onto the image's edges, so thin and crowded objects come out "
        "less thick; inside objects with a texture of their own it can remove some "
        "foreground; higher is stronger "
        f"(default {DEFAULT_EDGE_FLUX:g}, 0 = off; two classes only; not when several images "
        "train one model)",
    )
    tr.add_argument(
        "--forest-teacher",
        type=_non_negative_float,
        default=DEFAULT_FOREST_TEACHER,
        metavar="W",
        help="weight of the random forest's teaching of classes painted on fewer than "
        f"{TrainConfig.forest_teacher_painted} pixels (TrainConfig.forest_teacher; default "
        f"{DEFAULT_FOREST_TEACHER:g}, 0 = off; not when several images train one model)",
    )
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=_train)

    pr = sub.add_parser(
        "predict",
        help="predict class ids for images with a trained model",
        description="Predict uint8 class ids (1..K) for each image; OUT is a file for one image "
        "and a folder for several.",
    )
    pr.add_argument("model", help="model file written by 'seglab train'")
    pr.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="image files, Zarr stores, or folders (their image files and Zarr stores, "
        "without the *_scribbles and *_probabilities ones)",
    )
    pr.add_argument("-o", "--output", required=True, metavar="OUT")
    pr.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files that seglab did not write (those it wrote are "
        "replaced without it)",
    )
    pr.add_argument(
        "--probabilities",
        action="store_true",
        help="also write float32 class probabilities (K, ...) to <name>_probabilities.tif "
        "(.zarr for a Zarr output)",
    )
    pr.add_argument("--device", default="auto", choices=DEVICES)
    pr.add_argument("--channel-axis", type=int, metavar="AXIS", help="the images' channel axis")
    pr.add_argument(
        "--tile",
        type=_positive_int,
        metavar="PX",
        help="prediction window's edge in pixels (default: the size of the model's training "
        "crops, 64 unless trained otherwise; for a model without group or instance "
        "normalisation 1024 on CUDA, 512 elsewhere); another size changes the result, not "
        "only speed and memory: a group-norm network (the default) normalises each window by "
        "its own statistics, and every network sees only its window's context",
    )
    pr.add_argument(
        "--threads",
        type=_int_between(1, CPUS),
        metavar="N",
        help=f"CPU threads (1-{CPUS}): torch's, or Dask's when predicting block by block",
    )
    big = pr.add_argument_group(
        "block by block (Dask)",
        "used for Zarr/OME-Zarr inputs or a .zarr output, or when any of these is given; the "
        "output is written block by block, so memory stays bounded whatever the image size",
    )
    big.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="start a local dask.distributed cluster of N worker processes",
    )
    big.add_argument(
        "--scheduler",
        type=_address,
        metavar="ADDRESS",
        help="use a running dask.distributed scheduler (tcp://host:8786); inputs and outputs "
        "must be on a file system the workers share",
    )
    big.add_argument(
        "--block",
        type=_positive_int,
        metavar="PX",
        help="edge of the blocks in pixels (default 1024 or 4 tiles; at least one tile)",
    )
    pr.add_argument("-q", "--quiet", action="store_true", help="no progress bar, nor notes")
    pr.set_defaults(func=_predict)
    return parser


class Terminated(BaseException):
    """SIGTERM (what ``timeout``, ``kill`` and job schedulers send), raised where the program
    is, so that partly written files are removed on the way out."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seglab`` command; returns the exit status (143 after SIGTERM)."""
    import signal
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _main(argv)
    except Terminated:
        print("seglab: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except (CLIError, ValueError, OSError, FloatingPointError) as exc:
        # ModelFileError and bad-input errors of the core are ValueErrors.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"seglab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seglab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
