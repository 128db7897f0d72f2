"""The ``seglab`` command line.

``seglab`` with no arguments opens napari on the built-in sample image with the SegLab
widget docked. ``seglab train`` and ``seglab predict`` work without a display::

    seglab train image.tif scribbles.tif -o model.seglab --seconds 30
    seglab predict model.seglab image.tif -o labels.tif
    seglab predict model.seglab a.tif b.tif -o out_folder/ --probabilities

Bad input gives a one-line ``seglab: error: ...`` and exit status 2; nothing half-written is
left behind (outputs are written to a temporary file and renamed, also on SIGTERM, exit status
143). No output may be an input (image, scribbles, the model to predict with), a device, a
pipe or a symbolic link. Of several images, each bad one is reported and the others are
predicted; the exit status is 2 if any failed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
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


def read_image_check(path: Path, what: str = "image") -> None:
    """Raise :class:`CLIError` unless ``path`` is an existing file."""
    if path.is_dir():
        raise CLIError(f"{what} path {path} is a folder; give a file")
    if not path.exists():
        raise CLIError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise CLIError(f"{what} path {path} is not a file")


def read_image(path: str | Path, what: str = "image") -> Any:
    """Read an image with tifffile (.tif/.tiff) or scikit-image (PNG, JPEG, ...)."""
    import numpy as np

    path = Path(path)
    read_image_check(path, what)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            data = _read_tiff(path, what)
        else:
            from skimage import io

            data = io.imread(path)
    except CLIError:
        raise
    except Exception as exc:
        raise CLIError(f"could not read {what} {path}: {exc}") from None
    return np.asarray(data)


def _read_tiff(path: Path, what: str) -> Any:
    """The first image series of a TIFF, refusing files whose pages form several images alike.

    A stack written page by page as separate series would otherwise be read as its first
    plane; series of other shapes (thumbnails, slide labels) are named on stderr and skipped.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if not series:
            raise CLIError(f"could not read {what} {path}: it holds no image")
        first = series[0]
        if len(series) > 1:
            alike = sum(s.shape == first.shape for s in series)
            shapes = ", ".join(str(tuple(s.shape)) for s in series[:6])
            more = ", ..." if len(series) > 6 else ""
            if alike > 1:
                raise CLIError(
                    f"{what} {path} holds {len(series)} separate images ({shapes}{more}); "
                    "seglab reads one image per file. Save a stack as one image "
                    "(tifffile.imwrite(path, stack)), or each image to its own file"
                )
            others = ", ".join(str(tuple(s.shape)) for s in series[1:7])
            print(
                f"note: {path}: reading its first image {tuple(first.shape)}; the file's "
                f"other image(s) ({others}{more}) are not used",
                file=sys.stderr,
            )
        return first.asarray()


#: What ``seglab predict`` writes: TIFF only (a .png name would hold TIFF bytes).
TIFF_SUFFIXES = (".tif", ".tiff")


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


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_seglab.core.model import ModelConfig
    from napari_seglab.core.modelio import SUFFIXES, load_model, save_model
    from napari_seglab.core.train import TrainConfig, train

    out = Path(args.output)
    if out.is_dir():
        raise CLIError(f"output {out} is a folder; give a model file name")
    if out.parent != Path("") and not out.parent.exists():
        raise CLIError(f"output folder {out.parent} does not exist")
    if out.suffix.lower() not in SUFFIXES:  # never an image's name
        raise CLIError(f"output {out}: name the model file .seglab (or .safetensors)")
    # the --init model may be the output (training continues in place, written atomically)
    check_outputs([out], {Path(args.image): "image", Path(args.scribbles): "scribbles"})
    seconds, steps = args.seconds, args.steps
    if seconds is None and steps is None:
        seconds = 30.0
    if args.init and (args.width is not None or args.depth is not None):
        raise CLIError(
            "--width and --depth make a new model; with --init the model keeps its own "
            "architecture (leave them out)"
        )
    init = load_model(args.init) if args.init else None
    image = read_image(args.image, "image")
    scribbles = read_image(args.scribbles, "scribbles")
    from napari_seglab.core.data import check_scribbles

    check_scribbles(scribbles)  # values first: a 0/255 mask is one error, not 254 warnings
    for warning in _unpainted_classes(scribbles):
        print(f"warning: {warning}", file=sys.stderr)
    config = TrainConfig(
        loss=args.loss,
        class_weights=args.class_weights,
        seconds=seconds,
        steps=steps,
        device=args.device,
        seed=args.seed,
        channel_axis=args.channel_axis,
        num_threads=args.threads,
        final_prediction=False,
        lambda_edge=args.edge_weight,
        model=ModelConfig(
            depth=args.depth or ModelConfig.depth, width=args.width or ModelConfig.width
        ),
    )
    gen = train(image, scribbles, config, model=init)
    total = steps if seconds is None else None
    last = None
    with tqdm(total=total, unit="step", disable=args.quiet, file=sys.stderr) as bar:
        try:
            for report in gen:
                last = report
                bar.update(1)
                bar.set_postfix(loss=f"{report.loss:.4f}", s=f"{report.elapsed:.1f}", refresh=False)
        finally:
            gen.close()
    assert last is not None
    model = last.model
    try:
        save_model(model, out)
    except OSError as exc:
        # the training is not thrown away: try the temporary folder (another disk, often)
        rescue = Path(tempfile.gettempdir()) / f"seglab-unsaved-{os.getpid()}-{out.name}"
        try:
            save_model(model, rescue)
        except OSError:
            raise CLIError(f"could not save the model to {out}: {exc}") from None
        raise CLIError(
            f"could not save the model to {out} ({exc}); it was saved to {rescue} instead"
        ) from None
    # Notes and warnings are printed even with --quiet (which only hides the progress bar
    # and the summary line): a script must learn that a class was lost.
    for note in last.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in _lost_classes(last.stroke_recall, model.class_names):
        print(f"warning: {warning}", file=sys.stderr)
    if not args.quiet:
        recall = (
            ""
            if last.stroke_recall is None
            else _recall_text(last.stroke_recall, model.class_names)
        )
        print(
            f"trained {last.step} steps in {last.elapsed:.1f} s on {last.device}; "
            f"loss {last.loss:.4f}{recall}; saved {out}",
            file=sys.stderr,
        )
    return 0


def _unpainted_classes(scribbles) -> list[str]:
    """A warning for each class id below the largest painted one that has no stroke (e.g. 1
    and 3 painted, no 2): the model gets a class it can never learn."""
    import numpy as np

    s = np.asarray(scribbles)
    if not np.issubdtype(s.dtype, np.integer) or s.size == 0 or s.min() < 0:
        return []  # training refuses these with its own message
    present = np.flatnonzero(np.bincount(s.ravel().astype(np.int64)))
    top = int(present.max()) if len(present) else 0
    missing = sorted(set(range(1, top + 1)) - set(present.tolist()))
    return [
        f"class {k} has no strokes but class {top} has: the model gets {top} classes and "
        f"never learns class {k} (1 = background, 2 = foreground)"
        for k in missing
    ]


def _lost_classes(recall, names: list[str]) -> list[str]:
    """A warning for each class whose painted pixels the trained network mostly does not
    reproduce (running recall below ``GUARD_RECALL`` at the end of training)."""
    import math

    from napari_seglab.core.train import GUARD_RECALL

    if recall is None:
        return []
    out = []
    for k, r in enumerate(recall):
        if math.isfinite(r) and r < GUARD_RECALL:
            name = names[k] if k < len(names) else f"class {k + 1}"
            out.append(
                f"only {r:.0%} of the painted {name} pixels are reproduced (on the training "
                "crops); train longer (--steps / --seconds) or paint more of it"
            )
    return out


def _recall_text(recall, names: list[str]) -> str:
    """``"; painted pixels reproduced (training crops): background 99%, foreground 97%"`` from
    the per-class running recall of a training report."""
    import math

    parts = [
        f"{names[k] if k < len(names) else f'class {k + 1}'} {r:.0%}"
        for k, r in enumerate(recall)
        if math.isfinite(r)
    ]
    return "; painted pixels reproduced (training crops): " + ", ".join(parts) if parts else ""


def _prob_path(label_path: Path) -> Path:
    name = label_path.name
    for suffix in (".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return label_path.with_name(f"{name}_probabilities.tif")


def _predict(args: argparse.Namespace) -> int:
    from napari_seglab.core.modelio import load_model

    images = [Path(p) for p in args.images]
    if len(images) == 1:  # of several, a missing one is reported with the others predicted
        read_image_check(images[0])
    out = Path(args.output)
    if len(images) == 1 and not (out.is_dir() or str(args.output).endswith(os.sep)):
        if out.parent != Path("") and not out.parent.exists():
            raise CLIError(f"output folder {out.parent} does not exist")
        if out.suffix.lower() not in TIFF_SUFFIXES:
            raise CLIError(f"output {out}: seglab writes TIFF; name it .tif or .tiff")
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise CLIError(f"output {out} is a file; give a folder for several images")
        if not out.exists() and out.suffix.lower() in TIFF_SUFFIXES:
            raise CLIError(
                f"output {out}: with {len(images)} images -o names a folder to create, and "
                f"{out.name} looks like a file name; give a folder"
            )
        stems = [p.name[: -len(p.suffix)] if p.suffix else p.name for p in images]
        if len(set(stems)) != len(stems):
            raise CLIError("several input images have the same name; outputs would collide")
        targets = [out / f"{s}.tif" for s in stems]
    outputs = [*targets, *([_prob_path(t) for t in targets] if args.probabilities else [])]
    inputs = {Path(args.model): "model", **{p: "image" for p in images}}
    check_outputs(outputs, inputs)
    model = load_model(args.model)
    created = None  # the output folder, when made here (removed again if left empty)
    if (len(targets) > 1 or targets[0] != out) and not out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        created = out
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    failed = []
    for src, dst in zip(images, targets, strict=True):
        # one bad image of a batch does not stop the others: each is reported, and the exit
        # status says that something failed
        try:
            _predict_one(model, src, dst, args)
        except (CLIError, ValueError, OSError, FloatingPointError) as exc:
            if len(images) == 1:
                if isinstance(exc, CLIError):  # it names the file already
                    raise
                raise CLIError(f"{src}: {exc}") from None
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"seglab: error: {src}: {message}", file=sys.stderr)
            failed.append(src)
            continue
        if not args.quiet:
            print(f"{src} -> {dst}", file=sys.stderr)
    if failed:
        if created is not None and not any(created.iterdir()):
            created.rmdir()
        print(
            f"seglab: error: {len(failed)} of {len(images)} images not predicted", file=sys.stderr
        )
        return 2
    return 0


def _predict_one(model: Any, src: Path, dst: Path, args: argparse.Namespace) -> None:
    import tifffile
    from tqdm import tqdm

    from napari_seglab.core.data import as_zcyx
    from napari_seglab.core.modelio import write_atomic

    image = read_image(src, "image")
    # the layout as the prediction reads it (its errors, such as a channel axis out of range,
    # are the prediction's own), for the size
    view = as_zcyx(image, channel_axis=args.channel_axis, in_channels=model.in_channels)
    megapixels = math.prod(view.spatial_shape) / 1e6
    if megapixels >= LARGE_MEGAPIXELS and not args.quiet:
        print(
            f"{src}: {image.shape} {image.dtype}, {megapixels:,.0f} Mpixel to predict; "
            "the bar's estimate follows the first rows",
            file=sys.stderr,
        )
    with tqdm(
        total=megapixels,
        unit="Mpx",
        disable=args.quiet,
        file=sys.stderr,
        desc=src.name,
        leave=False,
        delay=1.0,  # no bar for a quick image, nor before an error found at once
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} Mpx "
        "[{elapsed}<{remaining}]",
    ) as bar:
        prediction = model.predict(
            image,
            device=args.device,
            channel_axis=args.channel_axis,
            tile=args.tile,
            probabilities=args.probabilities,
            progress=lambda n: bar.update(n / 1e6),
        )
    labels = prediction.labels

    def write_labels(tmp: str) -> None:
        tifffile.imwrite(tmp, labels, compression="zlib")

    if not args.probabilities:
        write_atomic(dst, write_labels)
        return
    probs = prediction.probabilities

    def write_both(tmp: str) -> None:
        # the labels are renamed into place just before the probabilities: an interruption
        # leaves both, the labels alone, or neither, never the probabilities alone
        tifffile.imwrite(tmp, probs)
        write_atomic(dst, write_labels)

    write_atomic(_prob_path(dst), write_both)


#: From this size on, ``seglab predict`` says up front what it is about to predict.
LARGE_MEGAPIXELS = 16


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

        viewer.window.resize(1400, 900)
        for _ in range(20):
            QApplication.processEvents()
        viewer.reset_view()
        # Close notification pop-ups (such as napari's notice about the Qt binding).
        for widget in QApplication.allWidgets():
            if type(widget).__name__ == "NapariQtNotification":
                widget.close()
        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False)
        viewer.close()
        return 0
    napari.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``seglab`` command."""
    from napari_seglab import __version__
    from napari_seglab.core.device import DEVICES
    from napari_seglab.core.model import ModelConfig
    from napari_seglab.core.train import (
        DEFAULT_CLASS_WEIGHTS,
        DEFAULT_LAMBDA_EDGE,
        DEFAULT_LOSS,
        LOSSES,
    )
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
        help="train a model from an image and its scribbles",
        description="Train a model from an image and scribbles (0 unlabeled, 1 background, "
        "2 foreground, 3.. more classes) and save it.",
    )
    tr.add_argument("image", help="image file (TIFF, PNG, JPEG, ...)")
    tr.add_argument("scribbles", help="scribbles file with the image's spatial shape")
    tr.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
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
        choices=LOSSES,
        help=f"loss on the painted pixels (default: {DEFAULT_LOSS}; docs/which-loss.md)",
    )
    tr.add_argument(
        "--class-weights",
        default=DEFAULT_CLASS_WEIGHTS,
        choices=SCHEMES,
        help="per-class loss weights from the painted pixel counts "
        f"(default: {DEFAULT_CLASS_WEIGHTS})",
    )
    tr.add_argument("--init", metavar="MODEL", help="continue training this model")
    tr.add_argument("--channel-axis", type=int, metavar="AXIS", help="the image's channel axis")
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
        "--edge-weight",
        type=_non_negative_float,
        default=None,
        metavar="W",
        help="weight of the edge-aware regulariser that places boundaries on intensity edges "
        f"where nothing is painted (default {DEFAULT_LAMBDA_EDGE:g} for 2D images, 0 for stacks; "
        "0 = off)",
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
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("-o", "--output", required=True, metavar="OUT")
    pr.add_argument(
        "--probabilities",
        action="store_true",
        help="also write float32 class probabilities (K, ...) to <name>_probabilities.tif",
    )
    pr.add_argument("--device", default="auto", choices=DEVICES)
    pr.add_argument("--channel-axis", type=int, metavar="AXIS", help="the images' channel axis")
    pr.add_argument("--tile", type=_positive_int, metavar="PX", help="tile size in pixels")
    pr.add_argument(
        "--threads", type=_int_between(1, CPUS), metavar="N", help=f"torch CPU threads (1-{CPUS})"
    )
    pr.add_argument("-q", "--quiet", action="store_true")
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
