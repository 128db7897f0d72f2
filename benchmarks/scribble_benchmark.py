"""Scribble benchmark: seglab's CNN against the random-forest pixel classifier.

The forest is the long-standing way to learn a segmentation from scribbles (ilastik, APOC,
Labkit, Weka): multiscale filter features (intensity, edges, texture at sigmas 0.3-10, like
ilastik's defaults) and a random forest of 100 trees trained on the painted pixels. Both methods
run in this one process on the same image and scribbles; the score is the foreground IoU on the
pixels nobody painted.

Examples
--------
Real data with simulated scribbles (about 1% of the pixels painted)::

    python benchmarks/scribble_benchmark.py --image image.tif --mask mask.tif --simulate

Given scribbles (0 unlabeled, 1 background, 2 foreground), three seeds, a markdown table::

    python benchmarks/scribble_benchmark.py --image im.tif --mask gt.tif --scribbles s.tif \\
        --seeds 0 1 2 --markdown results.md

A synthetic 512x512 nuclei image, and two seglab settings side by side::

    python benchmarks/scribble_benchmark.py --synthetic --variant default \\
        --variant wide model.width=32 --budgets 5 30

The mask may hold instance labels; its foreground is ``mask > 0``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scribble_sim import (
    BACKGROUND,
    FOREGROUND,
    foreground_iou,
    simulate_scribbles,
    synthetic_nuclei,
)

DEFAULT_BUDGETS = (2.0, 5.0, 10.0, 20.0, 30.0)
FOREST = "random forest"


# --------------------------------------------------------------------------------------------
# data


@dataclasses.dataclass
class Case:
    """One benchmark input.

    Attributes
    ----------
    name : str
        Short description used in the table and plot.
    image : np.ndarray
        ``(*spatial)`` or with a channel axis.
    truth : np.ndarray
        Boolean foreground ``(*spatial)``.
    scribbles : np.ndarray
        uint8 ``(*spatial)``: 0 unlabeled, 1 background, 2 foreground.
    channel_axis : int or None
        Channel axis of ``image``, None for a single channel.
    """

    name: str
    image: np.ndarray
    truth: np.ndarray
    scribbles: np.ndarray
    channel_axis: int | None = None

    @property
    def painted(self) -> float:
        """Fraction of pixels with a label."""
        return float(np.count_nonzero(self.scribbles) / self.scribbles.size)


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path``, read as ``seglab`` reads it (``napari_seglab.core.io.read_image``)."""
    from napari_seglab.core.io import read_image as seglab_read_image

    try:
        return seglab_read_image(path)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None


def spatial_shape(image: np.ndarray, channel_axis: int | None) -> tuple[int, ...]:
    """Shape of ``image`` without its channel axis."""
    if channel_axis is None:
        return image.shape
    return tuple(s for i, s in enumerate(image.shape) if i != channel_axis % image.ndim)


def make_case(args: argparse.Namespace, seed: int) -> Case:
    """Build the image, ground truth and scribbles for one seed from the command line."""
    if args.synthetic:
        # Each seed draws a new image too, so that the spread covers several images.
        data_seed = args.data_seed + seed
        image, labels = synthetic_nuclei(
            (args.synthetic_size, args.synthetic_size), snr=args.synthetic_snr, seed=data_seed
        )
        name = f"synthetic nuclei {image.shape[0]}x{image.shape[1]}"
    else:
        image, labels = read_image(args.image), read_image(args.mask)
        name = Path(args.image).name
    shape = spatial_shape(image, args.channel_axis)
    if labels.shape != shape:
        raise SystemExit(f"error: mask shape {labels.shape} does not match image {shape}")
    if args.scribbles:
        scribbles = read_image(args.scribbles).astype(np.uint8)
        if scribbles.shape != shape:
            raise SystemExit(f"error: scribbles shape {scribbles.shape} do not match image {shape}")
    else:
        scribbles = simulate_scribbles(
            labels, fraction=args.fraction, slices=args.slices, seed=seed
        )
    if not (np.any(scribbles == BACKGROUND) and np.any(scribbles == FOREGROUND)):
        raise SystemExit("error: the scribbles need both background (1) and foreground (2)")
    return Case(name, image, labels > 0, scribbles, args.channel_axis)


# --------------------------------------------------------------------------------------------
# random forest


def forest_features(
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    mode: str = "3d",
    sigma_min: float = 0.3,
    sigma_max: float = 10.0,
    num_sigma: int = 7,
    num_workers: int | None = None,
) -> np.ndarray:
    """ilastik-style filter features of every pixel.

    Gaussian-smoothed intensity, gradient magnitude (edges) and Hessian eigenvalues (texture) at
    ``num_sigma`` log-spaced scales from ``sigma_min`` to ``sigma_max``, as computed by
    :func:`skimage.feature.multiscale_basic_features`.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Z, Y, X)``, or either with a channel axis.
    mode : {"3d", "2d"}
        For a ``(Z, Y, X)`` volume: "3d" filters in 3D (what ilastik does for volumes), "2d"
        filters each Z plane on its own.

    Returns
    -------
    np.ndarray
        float32 ``(*spatial, F)``.
    """
    from skimage.feature import multiscale_basic_features

    if channel_axis is not None:
        image = np.moveaxis(image, channel_axis, -1)
        channel_axis = -1
    image = image.astype(np.float32, copy=False)
    kwargs: dict[str, Any] = {
        "intensity": True,
        "edges": True,
        "texture": True,
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
        "num_sigma": num_sigma,
        "channel_axis": channel_axis,
        "workers": num_workers,
    }
    nspatial = image.ndim - (channel_axis is not None)
    if nspatial == 3 and mode == "2d":
        feats = np.stack([multiscale_basic_features(plane, **kwargs) for plane in image])
    elif mode in ("2d", "3d"):
        feats = multiscale_basic_features(image, **kwargs)
    else:
        raise ValueError(f"feature mode must be '2d' or '3d', got {mode!r}")
    return feats.astype(np.float32, copy=False)


def run_forest(
    case: Case,
    *,
    seed: int = 0,
    n_estimators: int = 100,
    n_jobs: int = -1,
    mode: str = "3d",
    chunk: int = 1 << 18,
    return_labels: bool = False,
) -> dict[str, Any]:
    """Train the forest on the painted pixels and predict every pixel.

    Returns
    -------
    dict
        ``fg`` boolean prediction ``(*spatial)``, ``wall`` seconds (features + fit + predict)
        and the three parts ``features_s``, ``fit_s``, ``predict_s``; with ``return_labels``
        also ``labels``, the predicted class ids ``(*spatial)``.
    """
    from sklearn.ensemble import RandomForestClassifier

    t0 = time.perf_counter()
    feats = forest_features(
        case.image,
        channel_axis=case.channel_axis,
        mode=mode,
        num_workers=None if n_jobs < 0 else n_jobs,
    )
    t1 = time.perf_counter()
    flat = feats.reshape(-1, feats.shape[-1])
    labels = case.scribbles.reshape(-1)
    painted = labels > 0
    forest = RandomForestClassifier(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)
    forest.fit(flat[painted], labels[painted])
    t2 = time.perf_counter()
    pred = np.concatenate(
        [forest.predict(flat[i : i + chunk]) for i in range(0, len(flat), chunk)]
    ).reshape(case.scribbles.shape)
    t3 = time.perf_counter()
    out = {
        "fg": pred == FOREGROUND,
        "wall": t3 - t0,
        "features_s": t1 - t0,
        "fit_s": t2 - t1,
        "predict_s": t3 - t2,
        "n_features": int(feats.shape[-1]),
    }
    if return_labels:
        out["labels"] = pred
    return out


# --------------------------------------------------------------------------------------------
# seglab


def parse_value(text: str) -> Any:
    """A Python literal (number, bool, None, tuple) when ``text`` is one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


#: TrainConfig fields each run sets itself (:func:`run_seglab`): from the command line's
#: budgets, seeds, threads and device, or from the case. A ``--set`` or ``--variant`` of one
#: of them would silently replace what the run's record says it used.
RUN_OWNED = ("seconds", "steps", "seed", "device", "num_threads", "channel_axis", "preview_every")


def parse_settings(items: Iterable[str]) -> dict[str, Any]:
    """``["lr=1e-3", "model.width=32"]`` -> ``{"lr": 0.001, "model.width": 32}``.

    Raises ``SystemExit`` for an item that is not ``KEY=VALUE`` and for a key of
    :data:`RUN_OWNED` (budgets, seeds, threads and the device have their own options)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SystemExit(f"error: setting {item!r} is not KEY=VALUE")
        if key in RUN_OWNED:
            raise SystemExit(
                f"error: {key!r} is set by the benchmark for each run; give budgets, seeds, "
                "threads and the device with their own options (see --help)"
            )
        out[key] = parse_value(value.strip())
    return out


def apply_settings(config: Any, settings: dict[str, Any]) -> Any:
    """Return a copy of dataclass ``config`` with dotted-key settings replaced.

    ``"model.width"`` replaces ``width`` in the nested ``model`` dataclass.
    """
    flat: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    names = {f.name for f in dataclasses.fields(config)}
    for key in [*flat, *nested]:
        if key not in names:
            raise SystemExit(
                f"error: {type(config).__name__} has no setting {key!r}; "
                f"it has: {', '.join(sorted(names))}"
            )
    for head, sub in nested.items():
        flat[head] = apply_settings(getattr(config, head), sub)
    return dataclasses.replace(config, **flat)


def run_seglab(
    case: Case,
    *,
    seconds: float | None,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
    settings: dict[str, Any] | None = None,
    steps: int | None = None,
    return_labels: bool = False,
    return_prediction: bool = False,
) -> dict[str, Any]:
    """Train seglab from scratch for a time (or step) budget and predict every pixel.

    Returns
    -------
    dict
        ``fg`` boolean prediction ``(*spatial)``, ``wall`` seconds from the call to the full
        prediction, ``train_s`` seconds of training proper, ``steps``, ``it_s`` (steps per second
        of training), ``device``, ``notes`` (what the trainer said it did); with
        ``return_labels`` also ``labels``, the predicted class ids ``(*spatial)``; with
        ``return_prediction`` also ``prediction``, the
        :class:`~napari_seglab.core.inference.Prediction` with its probabilities.
    """
    from napari_seglab.core.inference import predict
    from napari_seglab.core.training import TrainConfig, train

    config = TrainConfig(
        seconds=seconds,
        steps=steps,
        seed=seed,
        device=device,
        preview_every=0,
        channel_axis=case.channel_axis,
        num_threads=threads,
    )
    config = apply_settings(config, settings or {})
    t0 = time.perf_counter()
    last = None
    gen = train(case.image, case.scribbles, config)
    try:
        for report in gen:
            last = report
    finally:
        gen.close()
    if last is None:
        raise RuntimeError("training yielded no report")
    prediction = last.prediction
    if prediction is None or (return_prediction and prediction.probabilities is None):
        prediction = predict(last.model, case.image, channel_axis=case.channel_axis)
    wall = time.perf_counter() - t0
    labels = np.asarray(prediction.labels)
    if labels.shape != case.truth.shape:
        raise RuntimeError(f"prediction shape {labels.shape} != image shape {case.truth.shape}")
    train_s = float(last.elapsed)  # measured before the final prediction
    out = {
        "fg": labels == FOREGROUND,
        "wall": wall,
        "train_s": train_s,
        "steps": int(last.step),
        "it_s": last.step / train_s if train_s > 0 else float("nan"),
        "device": str(last.device),
        "notes": list(getattr(last, "notes", ()) or ()),
    }
    if return_labels:
        out["labels"] = labels
    if return_prediction:
        out["prediction"] = prediction
    return out


# --------------------------------------------------------------------------------------------
# summary, table, plot


def summarize(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds for each (method, budget), in first-seen order.

    ``vs_forest`` is the IoU relative to the best forest's.
    """
    groups: dict[tuple[str, float | None], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["method"], rec.get("budget")), []).append(rec)
    rows = []
    forest_iou = None
    for (method, budget), recs in groups.items():
        row: dict[str, Any] = {"method": method, "budget": budget, "n": len(recs)}
        for key in ("wall", "iou", "it_s", "steps"):
            vals = np.array([r[key] for r in recs if r.get(key) is not None], float)
            row[key] = float(vals.mean()) if len(vals) else None
            row[key + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        if method.startswith(FOREST) and row["iou"] is not None:
            forest_iou = max(forest_iou or 0.0, row["iou"])
        rows.append(row)
    for row in rows:
        row["vs_forest"] = row["iou"] / forest_iou if forest_iou else None
    return rows


def _fmt(value: float | None, sd: float | None, digits: int, spread: bool) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    text = f"{value:.{digits}f}"
    return text + f" ± {sd:.{digits}f}" if spread and sd is not None else text


def table_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the summary table."""
    spread = any(r["n"] > 1 for r in rows)
    head = ["method", "budget s", "wall s", "IoU unlabeled", "IoU / forest", "it/s", "steps"]
    body = []
    for r in rows:
        body.append(
            [
                r["method"],
                "-" if r["budget"] is None else f"{r['budget']:g}",
                _fmt(r["wall"], r["wall_sd"], 1, spread),
                _fmt(r["iou"], r["iou_sd"], 3, spread),
                _fmt(r["vs_forest"], None, 2, False),
                _fmt(r["it_s"], r["it_s_sd"], 1, spread),
                _fmt(r["steps"], None, 0, False),
            ]
        )
    return head, body


def format_text(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table for the terminal."""
    head, body = table_rows(rows)
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [head, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """GitHub markdown table."""
    head, body = table_rows(rows)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> None:
    """IoU against wall seconds; the forest as a point and a dashed horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, method in enumerate(m for m in methods if not m.startswith(FOREST)):
        rs = [r for r in rows if r["method"] == method]
        ax.errorbar(
            [r["wall"] for r in rs],
            [r["iou"] for r in rs],
            xerr=[r["wall_sd"] for r in rs],
            yerr=[r["iou_sd"] for r in rs],
            marker="o",
            capsize=3,
            color=colors[k % len(colors)],
            label=method,
        )
    forests = [r for r in rows if r["method"].startswith(FOREST)]
    for r, (color, marker) in zip(forests, [("0.2", "s"), ("0.5", "D")], strict=False):
        ax.axhline(r["iou"], color=color, ls="--", lw=1)
        ax.errorbar(
            [r["wall"]],
            [r["iou"]],
            xerr=[r["wall_sd"]],
            yerr=[r["iou_sd"]],
            marker=marker,
            color=color,
            capsize=3,
            ls="none",
            label=r["method"],
        )
    if forests:
        best = max(r["iou"] for r in forests)
        ax.axhline(min(1.0, 1.1 * best), color="0.6", ls=":", lw=1, label="best forest + 10%")
    ax.set_xlabel("wall time, s (training + prediction)")
    ax.set_ylabel("foreground IoU, unlabeled pixels")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def machine() -> str:
    """CPU model and core count, for the record."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "load average unknown"


# --------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Random forest vs seglab on scribbles: IoU on unlabeled pixels against time.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_argument_group("data")
    src.add_argument("--image", help="image file (TIFF, PNG, ...)")
    src.add_argument(
        "--mask", help="ground truth: instance labels or binary; foreground = mask > 0"
    )
    src.add_argument("--scribbles", help="scribbles: 0 unlabeled, 1 background, 2 foreground")
    src.add_argument("--simulate", action="store_true", help="simulate scribbles from the mask")
    src.add_argument(
        "--synthetic", action="store_true", help="use a synthetic 2D nuclei image instead of files"
    )
    src.add_argument("--synthetic-size", type=int, default=512, help="side of the synthetic image")
    src.add_argument("--synthetic-snr", type=float, default=6.0, help="its contrast-to-noise")
    src.add_argument(
        "--data-seed", type=int, default=0, help="synthetic image seed, plus each of --seeds"
    )
    src.add_argument("--channel-axis", type=int, default=None, help="channel axis of the image")
    src.add_argument(
        "--fraction", type=float, default=0.01, help="simulated painted fraction of all pixels"
    )
    src.add_argument(
        "--slices", type=int, default=3, help="painted Z planes of a simulated 3D case"
    )
    run = p.add_argument_group("run")
    run.add_argument("--budgets", type=float, nargs="+", default=list(DEFAULT_BUDGETS))
    run.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="seeds for training, the forest and simulated scribbles; mean ± sd over them",
    )
    run.add_argument(
        "--threads", type=int, default=None, help="CPU threads for both methods (default: all)"
    )
    run.add_argument("--device", default="auto", help="seglab device: auto, cpu, cuda, mps")
    run.add_argument(
        "--variant",
        nargs="+",
        action="append",
        metavar=("NAME", "KEY=VALUE"),
        help="a seglab setting to compare: a name and TrainConfig overrides "
        "(model.width=32 for the model's); repeat for several",
    )
    run.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="TrainConfig overrides for all"
    )
    run.add_argument("--trees", type=int, default=100, help="trees in the forest")
    run.add_argument(
        "--features",
        choices=("both", "3d", "2d"),
        default="both",
        help="forest features of a 3D volume: filtered in 3D (as ilastik does), per Z plane "
        "(the information seglab's slice-wise network sees), or both, one forest each",
    )
    run.add_argument("--no-forest", action="store_true", help="skip the forest")
    run.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run")
    out = p.add_argument_group("output")
    out.add_argument("--plot", default="docs/images/benchmark_iou.png", help="PNG path ('' = none)")
    out.add_argument("--markdown", default=None, help="write the table as markdown here")
    out.add_argument("--json", default=None, help="write every run's numbers as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.synthetic and not (args.image and args.mask):
        raise SystemExit("error: give --image and --mask, or --synthetic")
    if not args.synthetic and not args.scribbles and not args.simulate:
        raise SystemExit("error: give --scribbles, or --simulate to simulate them")
    if any(b <= 0 for b in args.budgets):
        raise SystemExit("error: budgets must be positive seconds")
    common = parse_settings(args.set)
    variants = [("seglab", {})]
    if args.variant:
        variants = [(v[0], {**common, **parse_settings(v[1:])}) for v in args.variant]
    else:
        variants = [("seglab", common)]
    # Both methods get every core by default (the forest's n_jobs=-1); seglab's own default
    # leaves one core to a GUI, which a benchmark has not.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or cores or 1
    n_jobs = args.threads or -1
    import torch

    torch.set_num_threads(threads)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    load_start = load()
    print(f"machine: {machine()}; {load_start}", flush=True)

    records: list[dict[str, Any]] = []
    warmed = args.no_warmup
    case = None
    for seed in args.seeds:
        case = make_case(args, seed)
        print(
            f"seed {seed}: {case.name}, shape {case.image.shape}, painted {case.painted:.2%} "
            f"(fg {np.count_nonzero(case.scribbles == FOREGROUND)}, "
            f"bg {np.count_nonzero(case.scribbles == BACKGROUND)})",
            flush=True,
        )
        modes = ["3d"]
        if len(spatial_shape(case.image, case.channel_axis)) == 3:
            modes = ["3d", "2d"] if args.features == "both" else [args.features]
        for mode in [] if args.no_forest else modes:
            res = run_forest(case, seed=seed, n_estimators=args.trees, n_jobs=n_jobs, mode=mode)
            is_3d = len(case.truth.shape) == 3
            rec = {
                "method": f"{FOREST} ({mode.upper()} features)" if is_3d else FOREST,
                "budget": None,
                "seed": seed,
                "iou": foreground_iou(res.pop("fg"), case.truth, case.scribbles),
                **res,
            }
            records.append(rec)
            print(
                f"  {rec['method']}: IoU {rec['iou']:.3f} in {rec['wall']:.1f} s (features "
                f"{rec['features_s']:.1f}, fit {rec['fit_s']:.1f}, predict {rec['predict_s']:.1f})",
                flush=True,
            )
        if not warmed:  # first use of torch pays one-off costs; keep them out of the timings
            run_seglab(case, seconds=None, steps=2, seed=seed, threads=threads, device=args.device)
            warmed = True
        for name, settings in variants:
            for budget in args.budgets:
                res = run_seglab(
                    case,
                    seconds=budget,
                    seed=seed,
                    threads=threads,
                    device=args.device,
                    settings=settings,
                )
                rec = {
                    "method": name,
                    "budget": budget,
                    "seed": seed,
                    "iou": foreground_iou(res.pop("fg"), case.truth, case.scribbles),
                    "settings": settings,
                    **res,
                }
                records.append(rec)
                print(
                    f"  {name} {budget:g} s: IoU {rec['iou']:.3f}, wall {rec['wall']:.1f} s, "
                    f"{rec['steps']} steps, {rec['it_s']:.1f} it/s ({rec['device']})",
                    flush=True,
                )

    rows = summarize(records)
    load_end = load()
    assert case is not None
    device = next((r["device"] for r in records if "device" in r), "-")
    header = (
        f"{case.name}, painted {case.painted:.2%}, seeds {args.seeds}; seglab on {device}; "
        f"{machine()}; {load_start} at start, {load_end} at end"
    )
    print()
    print(header)
    print(format_text(rows))
    if args.markdown:
        settings_text = "".join(
            f"\n- `{name}`: " + (", ".join(f"`{k}={v!r}`" for k, v in s.items()) or "defaults")
            for name, s in variants
        )
        text = (
            f"`{command}`\n\n{header}\n\n{format_markdown(rows)}\n\n"
            f"seglab settings:{settings_text}\n"
        )
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"command": command, "header": header, "runs": records}, indent=1)
        )
    if args.plot:
        plot(rows, args.plot, f"{case.name}, {case.painted:.1%} painted\n{device}")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
