"""``seglab train``: a model from an image and its scribbles."""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

from napari_seglab.cli.common import (
    CLIError,
    channel_axis_of,
    check_outputs,
    check_replaceable,
    pixel_count,
    read_image,
)
from napari_seglab.cli.pairs import training_pairs


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from napari_seglab.core.model import ModelConfig
    from napari_seglab.core.modelio import load_model, save_model
    from napari_seglab.core.multi import train_many
    from napari_seglab.core.training import TrainConfig, train

    out = _model_output(Path(args.output))
    pairs = training_pairs(args.inputs)
    # the --init model may be the output (training continues in place, written atomically)
    check_outputs([out], {p: w for i, s in pairs for p, w in ((i, "image"), (s, "scribbles"))})
    check_replaceable([out], args.overwrite, "model")
    seconds, steps = args.seconds, args.steps
    if seconds is None and steps is None:
        seconds = 30.0
    if args.init and (args.width is not None or args.depth is not None or args.channels):
        raise CLIError(
            "--width, --depth and --channels make a new model; with --init the model keeps its "
            "own architecture and channels (leave them out)"
        )
    init = load_model(args.init) if args.init else None
    images, scribbles = _read_pairs(pairs)
    for warning in _unpainted_classes(scribbles):
        print(f"warning: {warning}", file=sys.stderr)
    config = TrainConfig(
        loss=args.loss,
        class_weighting=args.class_weighting,
        seconds=seconds,
        steps=steps,
        device=args.device,
        seed=args.seed,
        channel_axis=channel_axis_of([image for image, _ in pairs], args.channel_axis),
        num_threads=args.threads,
        final_prediction=False,
        lambda_edge=args.lambda_edge,
        edge_flux=args.edge_flux,
        forest_teacher=args.forest_teacher,
        model=ModelConfig(
            depth=args.depth or ModelConfig.depth,
            width=args.width or ModelConfig.width,
            channels=args.channels,
        ),
    )
    if len(pairs) == 1:
        gen = train(images[0], scribbles[0], config, model=init)
    else:
        names = [str(image) for image, _ in pairs]
        gen = train_many(images, scribbles, config, model=init, names=names)
        if not args.quiet:
            painted = sum(int((s > 0).sum()) for s in scribbles)
            print(f"{len(pairs)} images, {painted:,} painted pixels in all", file=sys.stderr)
    total = steps if seconds is None else None
    last = None
    with tqdm(
        total=total, unit="step", disable=True if args.quiet else None, file=sys.stderr
    ) as bar:
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
    warnings = _lost_classes(last.stroke_recall, model.class_names)
    if len(pairs) > 1:
        warnings += _lost_per_image(model, pairs, images, scribbles, config)
    for warning in warnings:
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


def _read_pairs(pairs):
    """The images and scribbles of ``pairs``, the scribbles' values checked (a 0/255 mask is
    one error naming the file, not 254 warnings)."""
    from napari_seglab.core.data import check_scribbles, colour_scribbles_problem

    images = [read_image(image, "image") for image, _ in pairs]
    scribbles = [read_image(path, "scribbles") for _, path in pairs]
    for (_, path), image, strokes in zip(pairs, images, scribbles, strict=True):
        colour = colour_scribbles_problem(image.shape, strokes.shape)  # before their values
        if colour is not None:
            raise CLIError(f"{path}: {colour}")
        try:
            check_scribbles(strokes)
        except ValueError as exc:
            raise CLIError(f"{path}: {exc}") from None
    return images, scribbles


def _unpainted_classes(scribbles) -> list[str]:
    """A warning for each class id below the largest painted one that has no stroke (e.g. 1
    and 3 painted, no 2) in any of the scribbles: the model gets a class it can never learn."""
    import numpy as np

    if isinstance(scribbles, list):
        scribbles = np.concatenate([np.asarray(s).ravel() for s in scribbles])
    s = np.asarray(scribbles)
    if not np.issubdtype(s.dtype, np.integer) or s.size == 0 or s.min() < 0:
        return []  # training refuses these with its own message
    present = np.flatnonzero(np.bincount(s.ravel().astype(np.int64)))
    present = present[present > 0]
    if len(present) < 2:
        return []  # one class or none: training refuses it, naming what to paint
    top = int(present.max())
    missing = sorted(set(range(1, top + 1)) - set(present.tolist()))
    return [
        f"class {k} has no strokes but class {top} has: the model gets {top} classes and "
        f"never learns class {k} (1 = background, 2 = foreground)"
        for k in missing
    ]


def _lost_classes(recall, names: list[str]) -> list[str]:
    """A warning for each class whose painted pixels the trained network mostly does not
    reproduce (running recall below ``GUARD_RECALL`` at the end of training)."""

    from napari_seglab.core.guard import GUARD_RECALL

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


def _model_output(out: Path) -> Path:
    """``-o``, checked before training: a model file name in an existing folder, never an
    image's name."""
    from napari_seglab.core.modelio import check_model_name

    if out.is_dir():
        raise CLIError(f"output {out} is a folder; give a model file name")
    if out.parent != Path("") and not out.parent.exists():
        raise CLIError(f"output folder {out.parent} does not exist")
    try:
        return check_model_name(out)
    except ValueError as exc:
        raise CLIError(f"output {exc}") from None


#: ``seglab train`` with several images predicts each after training to check its strokes,
#: up to this many pixels in all (a prediction of the whole of each).
PER_IMAGE_CHECK_PIXELS = 64_000_000


def _lost_per_image(model, pairs, images, scribbles, config) -> list[str]:
    """Warnings for each image of a several-image training whose painted pixels of a class the
    model mostly does not reproduce: the pooled recall can hide one (two images that disagree
    on what foreground looks like: 86% pooled, 0% on one of them). Each image is predicted
    whole, up to :data:`PER_IMAGE_CHECK_PIXELS` pixels in all (else one note says so)."""
    from napari_seglab.core.data import painted_accuracy
    from napari_seglab.core.guard import GUARD_RECALL
    from napari_seglab.core.inference import predict

    if sum(math.prod(s.shape) for s in scribbles) > PER_IMAGE_CHECK_PIXELS:
        return [
            f"the images hold more than {pixel_count(PER_IMAGE_CHECK_PIXELS)}: each image's "
            "strokes were not checked on its own (predict them to see)"
        ]
    out = []
    for (path, _), image, strokes in zip(pairs, images, scribbles, strict=True):
        labels = predict(model, image, channel_axis=config.channel_axis, probabilities=False).labels
        recall = painted_accuracy(labels, strokes, model.num_classes)
        for k, r in enumerate(recall):
            if math.isfinite(r) and r < GUARD_RECALL:
                out.append(
                    f"{path}: only {r:.0%} of its painted {model.class_names[k]} pixels are "
                    "reproduced; the images may not agree on what that class looks like"
                )
    return out


def _recall_text(recall, names: list[str]) -> str:
    """``"; painted pixels reproduced (training crops): background 99%, foreground 97%"`` from
    the per-class running recall of a training report."""

    parts = [
        f"{names[k] if k < len(names) else f'class {k + 1}'} {r:.0%}"
        for k, r in enumerate(recall)
        if math.isfinite(r)
    ]
    return "; painted pixels reproduced (training crops): " + ", ".join(parts) if parts else ""
