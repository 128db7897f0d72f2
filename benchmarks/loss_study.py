"""Loss study: which loss trains seglab's network best under class imbalance?

Every loss is trained with the same step budget, model, crop sampler and seeds through the
project's own training generator (:func:`napari_seglab.core.training.train`), on

* synthetic images with a known ground truth whose foreground covers about 50%, 20%, 5% and 1%
  of the pixels (same objects and noise, only their number changes), and
* optionally a real volume given by ``--image`` / ``--mask`` (foreground = ``mask > 0``),

each with **dense** labels (every pixel of the training image labeled) and with **sparse**
scribbles (from ``scribble_sim.simulate_scribbles``, a few percent of the pixels). Models are
scored on held-out data: a second synthetic image of the same task, or the planes of the volume
that were not labeled. Scores: foreground IoU and boundary F1 (boundary pixels matched within
``--tolerance`` pixels), mean and standard deviation over seeds, and the training time.

Outputs (``--out`` folder, ``docs`` by default): ``loss_study{suffix}.md`` (tables),
``loss_study{suffix}.csv`` (one row per run) and ``images/loss_study{suffix}.png`` (heatmaps
and bars). ``--quick`` writes ``*_quick`` files unless ``--suffix`` is given.

Examples
--------
The study in the documentation (about 25 minutes on a busy 2-core CPU)::

    python benchmarks/loss_study.py --image ../shared/data/nuclei3d/image.tif \\
        --mask ../shared/data/nuclei3d/mask.tif

A smoke test in a few minutes::

    python benchmarks/loss_study.py --quick
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage import draw, filters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scribble_sim import simulate_scribbles

from napari_seglab.core import losses
from napari_seglab.core.inference import predict
from napari_seglab.core.losses.registry import LossFactory
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.training import TrainConfig, train

BACKGROUND, FOREGROUND = 1, 2

# --------------------------------------------------------------------------------------------
# the losses compared


def _tversky(weight: torch.Tensor | None, sigmoid: bool) -> torch.nn.Module:
    """Tversky with Salehi et al.'s alpha = 0.3 (false positives), beta = 0.7 (false negatives).

    Foreground channel only (``include_background=False``): on the background channel the same
    weights would penalise the opposite errors. The engine offers no Tversky loss (see
    :mod:`napari_seglab.core.losses.registry`): the study hands this one to it.
    """
    act: dict[str, Any] = {"sigmoid": True} if sigmoid else {"softmax": True, "to_onehot_y": True}
    return losses.TverskyLoss(**act, include_background=sigmoid, alpha=0.3, beta=0.7)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One loss configuration.

    Attributes
    ----------
    key : str
        Short name (CSV, command line).
    label : str
        Name in the tables and plots.
    loss : str
        ``TrainConfig.loss``.
    class_weighting : str
        ``TrainConfig.class_weighting`` (estimated from the labeled pixels of the training image).
    binary_mode : str
        ``ModelConfig.binary_mode``: ``"softmax"`` (2 outputs) or ``"sigmoid"`` (1 output).
    factory : callable, optional
        A loss of its own for this variant, given to the training engine as
        ``train(..., loss_fn=factory)``: ``factory(weight, sigmoid) -> module``.
    """

    key: str
    label: str
    loss: str
    class_weighting: str
    binary_mode: str = "softmax"
    factory: LossFactory | None = None


VARIANTS: tuple[Variant, ...] = (
    Variant("ce", "CE", "ce", "none"),
    Variant("ce_w", "CE, weighted", "ce", "inverse_frequency"),
    Variant("bce_w", "BCE (sigmoid), weighted", "ce", "inverse_frequency", "sigmoid"),
    Variant("dice", "soft Dice", "dice", "none"),
    Variant("gdice", "generalized Dice", "generalized_dice", "none"),
    Variant("focal", "focal", "focal", "none"),
    Variant("tversky", "Tversky 0.3/0.7", "dice", "none", factory=_tversky),
    Variant("dice_ce", "Dice + CE", "dice_ce", "none"),
    Variant("dice_ce_w", "Dice + CE, weighted", "dice_ce", "inverse_frequency"),
    Variant("dice_focal", "Dice + focal", "dice_focal", "none"),
)
VARIANT_BY_KEY = {v.key: v for v in VARIANTS}
#: The variant with the product's default loss and class weights (``TrainConfig()``).
DEFAULT_KEY = next(
    v.key
    for v in VARIANTS
    if (v.loss, v.class_weighting, v.binary_mode, v.factory)
    == (TrainConfig.loss, TrainConfig.class_weighting, "softmax", None)
)


# --------------------------------------------------------------------------------------------
# data


def _smooth(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    f = filters.gaussian(rng.standard_normal(shape), sigma=sigma)
    f -= f.min()
    return f / max(float(f.max()), 1e-12)


def synthetic_task(
    shape: tuple[int, int],
    fg_fraction: float,
    seed: int,
    *,
    radius: tuple[float, float] = (3.0, 7.0),
    snr: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image of blobs covering about ``fg_fraction`` of the pixels, with its truth.

    Elliptic blobs of the same size distribution are added (they may overlap) until the
    foreground reaches ``fg_fraction``, so only the imbalance changes between tasks. The image
    has blobs of varying brightness (some dim) with texture, blurred, on an uneven background
    with dimmer, larger out-of-focus distractors that are *not* foreground, plus noise.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)``.
    fg_fraction : float
        Target foreground share in (0, 1); reached to within one blob.
    seed : int
        Random seed.
    radius : tuple of float
        Range of the blobs' mean radius in pixels.
    snr : float
        Median blob contrast over the noise standard deviation.

    Returns
    -------
    image : np.ndarray
        float32 ``(Y, X)``.
    truth : np.ndarray
        bool ``(Y, X)`` foreground.
    """
    if not 0 < fg_fraction < 1:
        raise ValueError(f"fg_fraction must be in (0, 1), got {fg_fraction}")
    rng = np.random.default_rng(seed)
    h, w = shape
    truth = np.zeros(shape, bool)
    signal = np.zeros(shape, np.float64)
    target = fg_fraction * h * w
    area = 0
    while area < target:
        r = rng.uniform(*radius)
        elong = rng.uniform(1.0, 1.8)
        rr, cc = draw.ellipse(
            rng.uniform(0, h),
            rng.uniform(0, w),
            r * math.sqrt(elong),
            r / math.sqrt(elong),
            shape=shape,
            rotation=rng.uniform(0, math.pi),
        )
        if len(rr) == 0:
            continue
        # stop before the blob that would overshoot by more than half of it
        new = int(np.count_nonzero(~truth[rr, cc]))
        if area > 0 and area + new - target > 0.5 * new:
            break
        truth[rr, cc] = True
        signal[rr, cc] = np.maximum(signal[rr, cc], np.clip(rng.lognormal(0.0, 0.5), 0.3, 3.0))
        area += new
    texture = 0.7 + 0.6 * _smooth(shape, 1.0, rng)
    signal = filters.gaussian(signal * texture, sigma=1.0)
    # distractors: large, blurred, dimmer blobs that are background
    distract = np.zeros(shape)
    for _ in range(max(2, int(h * w / 48**2))):
        rr, cc = draw.disk((rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(6, 14), shape=shape)
        distract[rr, cc] = rng.uniform(0.2, 0.5)
    distract = filters.gaussian(distract, sigma=4.0)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gy, gx = rng.normal(0, 0.5, 2)
    illumination = 1.0 + 0.3 * (gy * (yy - 0.5) + gx * (xx - 0.5))
    clean = illumination * (0.2 + 0.3 * _smooth(shape, max(h, w) / 8, rng) + distract + signal)
    image = clean + rng.normal(0.0, 1.0 / snr, shape)
    return image.astype(np.float32), truth


@dataclasses.dataclass
class Task:
    """One segmentation problem: training data per seed and fixed held-out test data.

    Attributes
    ----------
    name : str
        Column name in the tables.
    fg_fraction : float
        Foreground share of the test data.
    make_train : callable
        ``make_train(seed, labels)`` -> ``(image, labels)``, ``labels`` in ``{"dense",
        "sparse"}``: uint8 0 unlabeled / 1 background / 2 foreground, the image's shape.
    test_image : np.ndarray
        Image to predict.
    test_truth : np.ndarray
        bool foreground of ``test_image`` (same spatial shape).
    test_select : tuple of slice or np.ndarray, optional
        Which part of the prediction is scored (e.g. unlabeled planes of a volume).
    """

    name: str
    fg_fraction: float
    make_train: Callable[[int, str], tuple[np.ndarray, np.ndarray]]
    test_image: np.ndarray
    test_truth: np.ndarray
    test_select: Any = None


def _scribbles(truth: np.ndarray, fraction: float, seed: int, slices: int = 3) -> np.ndarray:
    """Simulated scribbles (about ``fraction`` of each painted plane), both classes present."""
    n_planes = 1 if truth.ndim == 2 else min(slices, truth.shape[0])
    frac = fraction * n_planes / (1 if truth.ndim == 2 else truth.shape[0])
    s = simulate_scribbles(truth, fraction=frac, fg_share=0.5, slices=slices, seed=seed)
    if not (np.any(s == FOREGROUND) and np.any(s == BACKGROUND)):
        raise RuntimeError(f"simulated scribbles miss a class (seed {seed}); task too small")
    return s


def synthetic(fg_fraction: float, size: int, test_size: int, scribble_fraction: float) -> Task:
    """A synthetic task: training images vary with the seed, the test image is fixed."""
    tag = round(fg_fraction * 1000)

    def make_train(seed: int, labels: str) -> tuple[np.ndarray, np.ndarray]:
        image, truth = synthetic_task((size, size), fg_fraction, seed=10_000 + 100 * seed + tag)
        if labels == "dense":
            return image, truth.astype(np.uint8) + 1
        return image, _scribbles(truth, scribble_fraction, seed)

    image, truth = synthetic_task((test_size, test_size), fg_fraction, seed=tag)
    name = f"synthetic {fg_fraction:.0%}"
    return Task(name, float(truth.mean()), make_train, image, truth)


def volume_task(
    image: np.ndarray, mask: np.ndarray, scribble_fraction: float, planes: int = 3
) -> Task:
    """A real (Z, Y, X) volume: ``planes`` evenly spaced planes are labeled, the rest scored.

    Dense: the labeled planes carry the full ground truth. Sparse: simulated scribbles on the
    same planes. The seed changes the scribbles (and the network's initialisation).
    """
    truth = np.asarray(mask) > 0
    if image.shape != truth.shape or image.ndim != 3:
        raise ValueError(
            f"--image {image.shape} and --mask {truth.shape} must be (Z, Y, X) of the same shape"
        )
    z = image.shape[0]
    zs = np.unique(np.linspace(0, z - 1, planes + 2)[1:-1].round().astype(int))
    held_out = np.setdiff1d(np.arange(z), zs)
    if held_out.size == 0:
        raise ValueError(f"the volume has {z} planes; need more than {planes} to hold some out")

    def make_train(seed: int, labels: str) -> tuple[np.ndarray, np.ndarray]:
        if labels == "dense":
            lab = np.zeros(truth.shape, np.uint8)
            lab[zs] = truth[zs].astype(np.uint8) + 1
            return image, lab
        return image, _scribbles(truth, scribble_fraction, seed, slices=planes)

    return Task("nuclei 3D", float(truth[held_out].mean()), make_train, image, truth, held_out)


# --------------------------------------------------------------------------------------------
# scores


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Foreground IoU of two boolean arrays; 1.0 when both are empty."""
    union = np.count_nonzero(pred | truth)
    return 1.0 if union == 0 else float(np.count_nonzero(pred & truth) / union)


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    """``count(num) / count(den)``; 1.0 when ``den`` is empty."""
    n = np.count_nonzero(den)
    return 1.0 if n == 0 else float(np.count_nonzero(num) / n)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Inner boundary of a 2D boolean mask (the image border is not a boundary)."""
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def boundary_f1(pred: np.ndarray, truth: np.ndarray, tolerance: float = 2.0) -> float:
    """Boundary F1: boundary pixels of each mask within ``tolerance`` px of the other's.

    Computed per 2D plane (``(Y, X)`` or ``(Z, Y, X)``) with matches summed over planes.
    1.0 when neither mask has a boundary, 0.0 when only one has.
    """
    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match truth {truth.shape}")
    planes_p = pred[None] if pred.ndim == 2 else pred
    planes_t = truth[None] if truth.ndim == 2 else truth
    hit_p = n_p = hit_t = n_t = 0
    for p, t in zip(planes_p, planes_t, strict=True):
        bp, bt = _boundary(p), _boundary(t)
        n_p += int(bp.sum())
        n_t += int(bt.sum())
        if bp.any() and bt.any():
            hit_p += int((ndi.distance_transform_edt(~bt)[bp] <= tolerance).sum())
            hit_t += int((ndi.distance_transform_edt(~bp)[bt] <= tolerance).sum())
    if n_p == 0 and n_t == 0:
        return 1.0
    if n_p == 0 or n_t == 0:
        return 0.0
    precision, recall = hit_p / n_p, hit_t / n_t
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------
# runs


@dataclasses.dataclass(frozen=True)
class Settings:
    """Training settings shared by every run."""

    steps: int
    crop_size: int
    batch_size: int
    threads: int
    model: ModelConfig
    tolerance: float
    lambda_edge: float = 0.0
    z_context: int = 1


def run_one(task: Task, labels: str, variant: Variant, seed: int, s: Settings) -> dict[str, Any]:
    """Train one model and score it on the task's held-out data; one CSV row."""
    image, lab = task.make_train(seed, labels)
    config = TrainConfig(
        loss=variant.loss,
        class_weighting=variant.class_weighting,
        steps=s.steps,
        seed=seed,
        device="cpu",
        num_threads=s.threads,
        crop_size=s.crop_size,
        batch_size=s.batch_size,
        model=dataclasses.replace(
            s.model,
            binary_mode=variant.binary_mode,
            z_context=s.z_context if image.ndim == 3 else None,
        ),
        final_prediction=False,
        lambda_edge=s.lambda_edge,
    )
    t0 = time.perf_counter()
    run = train(image, lab, config, loss_fn=variant.factory)
    report = collections.deque(run, maxlen=1)[0]  # the last one
    seconds = time.perf_counter() - t0
    pred = predict(report.model, task.test_image, probabilities=False).labels == FOREGROUND
    truth = task.test_truth
    if task.test_select is not None:
        pred, truth = pred[task.test_select], truth[task.test_select]
    labeled = lab > 0
    return {
        "task": task.name,
        "fg_fraction": round(task.fg_fraction, 4),
        "labels": labels,
        "loss": variant.key,
        "seed": seed,
        "iou": round(foreground_iou(pred, truth), 4),
        "boundary_f1": round(boundary_f1(pred, truth, s.tolerance), 4),
        "precision": round(_ratio(pred & truth, pred), 4),
        "recall": round(_ratio(pred & truth, truth), 4),
        "train_s": round(seconds, 3),
        "steps": report.step,
        "final_loss": round(report.loss, 5),
        "labeled_fraction": round(float(labeled.mean()), 4),
        "labeled_fg_share": round(float((lab == FOREGROUND).sum() / max(1, labeled.sum())), 4),
        "class_weights": " ".join(f"{w:.3g}" for w in report.class_weights),
    }


# --------------------------------------------------------------------------------------------
# report


def aggregate(rows: Sequence[dict[str, Any]], metric: str) -> dict[tuple[str, str, str], tuple]:
    """``{(labels, task, loss): (mean, std, n)}`` of ``metric`` over seeds (std with ddof=0)."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["labels"], r["task"], r["loss"]), []).append(float(r[metric]))
    return {k: (float(np.mean(v)), float(np.std(v)), len(v)) for k, v in groups.items()}


def _ordered(rows: Sequence[dict[str, Any]], key: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r[key] not in seen:
            seen.append(r[key])
    return seen


def _mean_ranks(
    agg: dict[tuple[str, str, str], tuple], labels: str, tasks: Sequence[str], keys: Sequence[str]
) -> dict[str, float]:
    """Mean rank (1 = best) of each loss over the tasks, by mean score."""
    ranks: dict[str, list[float]] = {k: [] for k in keys}
    for t in tasks:
        vals = np.array([agg[(labels, t, k)][0] for k in keys])
        order = (-vals).argsort(kind="stable")
        r = np.empty(len(keys))
        r[order] = np.arange(1, len(keys) + 1)
        for k, v in zip(keys, r, strict=True):
            ranks[k].append(float(v))
    return {k: float(np.mean(v)) for k, v in ranks.items()}


def paired_vs_default(
    rows: Sequence[dict[str, Any]], metric: str, reference: str = DEFAULT_KEY
) -> dict[str, tuple[float, float, int, int]]:
    """Each loss against ``reference`` on the same (task, labels, seed).

    Returns ``{loss: (mean difference, std of the differences, wins, comparisons)}``, a win
    being a score above the reference's by more than 0.005.
    """
    ref = {
        (r["task"], r["labels"], r["seed"]): float(r[metric])
        for r in rows
        if r["loss"] == reference
    }
    diffs: dict[str, list[float]] = {}
    for r in rows:
        k = (r["task"], r["labels"], r["seed"])
        if r["loss"] != reference and k in ref:
            diffs.setdefault(r["loss"], []).append(float(r[metric]) - ref[k])
    return {
        k: (float(np.mean(d)), float(np.std(d)), int(np.sum(np.array(d) > 0.005)), len(d))
        for k, d in diffs.items()
    }


def markdown(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The tables of the study as a markdown page."""
    tasks = _ordered(rows, "task")
    keys = [v.key for v in VARIANTS if any(r["loss"] == v.key for r in rows)]
    label_kinds = _ordered(rows, "labels")
    frac = {r["task"]: r["fg_fraction"] for r in rows}
    out = [
        "# Loss study: results",
        "",
        "Generated by `benchmarks/loss_study.py`; do not edit by hand. "
        "See [Which loss](which-loss.md) for the set-up and the recommendation.",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"- {meta['runs']} runs: {len(keys)} losses x {len(tasks)} tasks x "
        f"{len(label_kinds)} label kinds x {meta['n_seeds']} seeds ({meta['seeds']}), "
        f"{meta['steps']} steps each (crop {meta['crop_size']}, batch {meta['batch_size']}, "
        f"U-Net depth {meta['depth']} width {meta['width']}, {meta['threads']} torch thread).",
        f"- Code at commit {meta['revision']}. "
        f"Finished {meta['finished']} on {meta['machine']}; total {meta['total_min']:.1f} min; "
        f"load average {meta['load_start']} at the start, {meta['load_end']} at the end.",
        "- Scores on held-out data, mean ± standard deviation over seeds. "
        f"Boundary F1 tolerance {meta['tolerance']:g} px. Foreground share of the test data: "
        + ", ".join(f"{t} {frac[t]:.1%}" for t in tasks)
        + ".",
        "",
    ]
    for metric, title in (("iou", "Foreground IoU"), ("boundary_f1", "Boundary F1")):
        agg = aggregate(rows, metric)
        for lk in label_kinds:
            ranks = _mean_ranks(agg, lk, tasks, keys)
            out += [f"## {title}, {lk} labels", ""]
            out.append("| loss | " + " | ".join(tasks) + " | mean | mean rank |")
            out.append("|---|" + "---:|" * (len(tasks) + 2))
            best = {t: max(agg[(lk, t, k)][0] for k in keys) for t in tasks}
            for k in keys:
                cells = []
                for t in tasks:
                    m, sd, _ = agg[(lk, t, k)]
                    cell = f"{m:.3f} ± {sd:.3f}"
                    cells.append(f"**{cell}**" if m >= best[t] - 1e-9 else cell)
                mean = np.mean([agg[(lk, t, k)][0] for t in tasks])
                label = VARIANT_BY_KEY[k].label
                out.append(
                    f"| {label} | " + " | ".join(cells) + f" | {mean:.3f} | {ranks[k]:.1f} |"
                )
            out.append("")
    if DEFAULT_KEY in keys:
        out += [
            f"## Against the default ({VARIANT_BY_KEY[DEFAULT_KEY].label}), same task, labels "
            "and seed",
            "",
            "| loss | IoU difference | boundary F1 difference | IoU wins |",
            "|---|---:|---:|---:|",
        ]
        d_iou = paired_vs_default(rows, "iou")
        d_bf1 = paired_vs_default(rows, "boundary_f1")
        for k in keys:
            if k == DEFAULT_KEY:
                continue
            mi, si, wins, n = d_iou[k]
            mb, sb, _, _ = d_bf1[k]
            out.append(
                f"| {VARIANT_BY_KEY[k].label} | {mi:+.3f} ± {si:.3f} | {mb:+.3f} ± {sb:.3f} | "
                f"{wins}/{n} |"
            )
        out += [
            "",
            "A win is an IoU more than 0.005 above the default's on the same run set-up.",
            "",
        ]
    out += [
        "## Foreground precision and recall (mean over seeds)",
        "",
        "How the losses err: precision below recall means too much foreground "
        "(false positives), the reverse means missed foreground.",
        "",
    ]
    agg_p, agg_r = aggregate(rows, "precision"), aggregate(rows, "recall")
    for lk in label_kinds:
        out.append(f"| {lk} labels | " + " | ".join(tasks) + " |")
        out.append("|---|" + "---:|" * len(tasks))
        for k in keys:
            cells = [f"{agg_p[(lk, t, k)][0]:.2f} / {agg_r[(lk, t, k)][0]:.2f}" for t in tasks]
            out.append(f"| {VARIANT_BY_KEY[k].label} | " + " | ".join(cells) + " |")
        out.append("")
    agg_t = aggregate(rows, "train_s")
    out += ["## Training time (s per run, mean over tasks, label kinds and seeds)", ""]
    out.append("| loss | seconds | steps/s |")
    out.append("|---|---:|---:|")
    for k in keys:
        secs = [v[0] for (_, _, kk), v in agg_t.items() if kk == k]
        mean = float(np.mean(secs))
        out.append(f"| {VARIANT_BY_KEY[k].label} | {mean:.2f} | {meta['steps'] / mean:.1f} |")
    out += ["", "Times were measured on a shared CPU; compare them with each other only.", ""]
    return "\n".join(out)


def plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Heatmaps of mean IoU and boundary F1 (loss x task) and IoU bars with spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = _ordered(rows, "task")
    keys = [v.key for v in VARIANTS if any(r["loss"] == v.key for r in rows)]
    label_kinds = _ordered(rows, "labels")
    names = [VARIANT_BY_KEY[k].label for k in keys]
    n_lk = len(label_kinds)
    fig = plt.figure(figsize=(4.2 * 2 * n_lk + 1, 0.42 * len(keys) + 2 + 4.0), dpi=110)
    grid = fig.add_gridspec(2, 2 * n_lk, height_ratios=[0.42 * len(keys) + 1.5, 3.5])
    for j, (metric, title) in enumerate((("iou", "IoU"), ("boundary_f1", "boundary F1"))):
        agg = aggregate(rows, metric)
        for i, lk in enumerate(label_kinds):
            ax = fig.add_subplot(grid[0, j * n_lk + i])
            m = np.array([[agg[(lk, t, k)][0] for t in tasks] for k in keys])
            ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (a, b), v in np.ndenumerate(m):
                col = "white" if v < 0.6 else "black"
                ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=7, color=col)
            ax.set_xticks(
                range(len(tasks)), [t.replace("synthetic ", "") for t in tasks], fontsize=7
            )
            ax.set_yticks(range(len(keys)), names if j * n_lk + i == 0 else [], fontsize=7)
            ax.set_title(f"{title}, {lk} labels", fontsize=9)
    width = 0.8 / len(keys)
    cmap = plt.get_cmap("tab10")
    for i, lk in enumerate(label_kinds):
        ax = fig.add_subplot(grid[1, i * 2 : i * 2 + 2])
        agg = aggregate(rows, "iou")
        for n, k in enumerate(keys):
            means = [agg[(lk, t, k)][0] for t in tasks]
            sds = [agg[(lk, t, k)][1] for t in tasks]
            x = np.arange(len(tasks)) + (n - (len(keys) - 1) / 2) * width
            ax.bar(
                x,
                means,
                width,
                yerr=sds,
                color=cmap(n % 10),
                label=names[n],
                error_kw={"elinewidth": 0.6},
            )
        ax.set_xticks(range(len(tasks)), tasks, fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("foreground IoU", fontsize=8)
        ax.set_title(f"IoU, {lk} labels (mean ± sd over seeds)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    handles, labels_ = ax.get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=min(len(keys), 5), fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# command line


def _load_volume(path: str) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(path))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare segmentation losses under class imbalance with the seglab engine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a small configuration for CI")
    p.add_argument("--steps", type=int, help="optimisation steps per run (default 80; quick 15)")
    p.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; quick 0 1)")
    p.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        help="foreground fractions of the synthetic tasks (default 0.5 0.2 0.05 0.01)",
    )
    p.add_argument("--size", type=int, help="edge of the synthetic training images (256)")
    p.add_argument("--test-size", type=int, help="edge of the synthetic test images (384)")
    p.add_argument(
        "--labels",
        nargs="+",
        choices=("dense", "sparse"),
        default=["dense", "sparse"],
        help="label kinds",
    )
    p.add_argument(
        "--losses", nargs="+", choices=list(VARIANT_BY_KEY), help="losses to compare (default all)"
    )
    p.add_argument("--image", help="a real (Z, Y, X) volume, e.g. nuclei3d/image.tif")
    p.add_argument("--mask", help="its ground truth (foreground = mask > 0)")
    p.add_argument("--planes", type=int, default=3, help="labeled planes of the volume")
    p.add_argument(
        "--scribble-fraction",
        type=float,
        default=0.03,
        help="share of each painted plane covered by sparse scribbles",
    )
    p.add_argument("--crop-size", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--width", type=int, default=8, help="U-Net width")
    p.add_argument("--depth", type=int, default=3, help="U-Net depth")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--lambda-edge",
        "--edge-weight",
        dest="lambda_edge",
        type=float,
        default=0.0,
        help="weight of the engine's edge-aware regulariser (default 0: the losses alone, as in "
        "the published study)",
    )
    p.add_argument(
        "--z-context",
        type=int,
        default=1,
        help="neighbouring planes each side the volume's network sees (default 1, as published)",
    )
    p.add_argument("--tolerance", type=float, default=2.0, help="boundary F1 tolerance (px)")
    p.add_argument("--out", default="docs", help="output folder")
    p.add_argument("--suffix", help="output name suffix (default '' or '_quick')")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--replot", metavar="CSV", help="only redraw the plot from a study's CSV")
    a = p.parse_args(argv)
    quick = a.quick
    a.steps = a.steps or (15 if quick else 80)
    a.seeds = a.seeds if a.seeds is not None else ([0, 1] if quick else [0, 1, 2])
    a.fractions = a.fractions or ([0.2, 0.01] if quick else [0.5, 0.2, 0.05, 0.01])
    a.size = a.size or (128 if quick else 256)
    a.test_size = a.test_size or (160 if quick else 384)
    a.suffix = a.suffix if a.suffix is not None else ("_quick" if quick else "")
    if (a.image is None) != (a.mask is None):
        p.error("--image and --mask go together")
    if a.steps < 1 or a.size < 32 or a.test_size < 32:
        p.error("--steps must be >= 1 and --size / --test-size >= 32")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        with open(args.replot, newline="") as fh:
            rows = list(csv.DictReader(fh))
        png = Path(args.out) / "images" / f"loss_study{args.suffix}.png"
        plot(rows, png)
        print(f"wrote {png}")
        return 0
    t_start = time.perf_counter()
    load_start = _load()
    revision = _revision()  # before the runs: the code they use
    torch.set_num_threads(args.threads)
    settings = Settings(
        steps=args.steps,
        crop_size=args.crop_size,
        batch_size=args.batch_size,
        threads=args.threads,
        model=ModelConfig(depth=args.depth, width=args.width),
        tolerance=args.tolerance,
        lambda_edge=args.lambda_edge,
        z_context=args.z_context,
    )
    volume: list[Task] = []
    if args.image:
        try:
            image, mask = _load_volume(args.image), _load_volume(args.mask)
            volume.append(volume_task(image, mask, args.scribble_fraction, args.planes))
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    tasks = [
        synthetic(f, args.size, args.test_size, args.scribble_fraction) for f in args.fractions
    ] + volume
    variants = [VARIANT_BY_KEY[k] for k in (args.losses or VARIANT_BY_KEY)]
    jobs = [
        (t, lk, v, s) for t in tasks for lk in args.labels for s in args.seeds for v in variants
    ]
    rows: list[dict[str, Any]] = []
    for n, (task, lk, variant, seed) in enumerate(jobs, 1):
        row = run_one(task, lk, variant, seed, settings)
        rows.append(row)
        print(
            f"[{n}/{len(jobs)}] {task.name:>14} {lk:>6} seed {seed} {variant.key:>10}: "
            f"IoU {row['iou']:.3f}  BF1 {row['boundary_f1']:.3f}  {row['train_s']:.1f} s",
            flush=True,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"loss_study{args.suffix}.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    total = time.perf_counter() - t_start
    meta = {
        "command": _command(argv),
        "runs": len(rows),
        "n_seeds": len(args.seeds),
        "seeds": " ".join(map(str, args.seeds)),
        "steps": args.steps,
        "crop_size": args.crop_size,
        "batch_size": args.batch_size,
        "depth": args.depth,
        "width": args.width,
        "threads": args.threads,
        "tolerance": args.tolerance,
        "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}",
        "revision": revision,
        "total_min": total / 60,
        "load_start": load_start,
        "load_end": _load(),
    }
    md_path = out / f"loss_study{args.suffix}.md"
    md_path.write_text(markdown(rows, meta))
    written = [csv_path, md_path]
    if not args.no_plot:
        png = out / "images" / f"loss_study{args.suffix}.png"
        plot(rows, png)
        written.append(png)
    print(f"{len(rows)} runs in {total / 60:.1f} min; wrote " + ", ".join(map(str, written)))
    return 0


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def _revision() -> str:
    """The repository's commit (with "+changes" when the package has uncommitted edits)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "napari_seglab"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" +changes" if dirty else "")


def _command(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "benchmarks/loss_study.py", *args])


if __name__ == "__main__":
    sys.exit(main())
