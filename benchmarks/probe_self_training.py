"""Probe: where are the network's errors, how much room is left, and do confident
pseudo-labels or edge weights from a smoothed image close it?

For each case and scribble draw of the real-image suite (``real_suite.py``), fits the 100-tree
forest (for the ratio) and trains seglab for a step budget (165 by default, one thread) in
these variants:

- ``default``: the engine's defaults;
- ``pseudo``: the defaults plus self-training on confident pixels (pseudo-labels, as in
  Scribble2Label, Lee and Jeong, MICCAI 2020, without its temporal ensemble): from step 50, the
  unpainted pixels of each training crop whose predicted class has a probability above 0.97 are
  labelled with it, and their cross-entropy (weight 0.5, ramped in over 30 steps) is added to
  the loss;
- ``edge smoothed``: the edge-aware term's neighbour weights computed on the crop smoothed by a
  Gaussian of 1 px (and its noise level, which sets the term's sigma, measured on the smoothed
  crops), so that noise hides a blurred edge less;
- ``dense`` (ground-truth cases only, once per case): the same network trained on every pixel
  labelled from the ground truth, the ceiling for these settings and budget.

Scores IoU against the reference on unpainted pixels, the worse class's painted-pixel accuracy
and, for ``default`` and ``dense`` on ground-truth cases, the unpainted pixels wrongly
foreground / background within 2 px of a true boundary and elsewhere. With ``--folds``, the
held-out-stroke accuracy of ``default`` and ``pseudo``. One JSON line per run; ``--summary``
prints the tables of earlier runs (IoU relative to the forest's, mean over draws).

Run (1 thread each; the two side by side on two cores)::

    python benchmarks/probe_self_training.py --out st_truth.json --cases nuclei "small dense" \\
        large thin volume --volume ../shared/data/nuclei3d --draws 0 1 2
    python benchmarks/probe_self_training.py --out st_real.json --cases coins cell camera \\
        microaneurysms astronaut retina immunohistochemistry --draws 0 1
    python benchmarks/probe_self_training.py --out st_heldout.json --cases camera \\
        immunohistochemistry --draws 0 1 --folds 2
    python benchmarks/probe_self_training.py --summary st_truth.json st_real.json st_heldout.json
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
from probe_forest_blend import by_case, network, probe_main, run_cases

VARIANTS = ("default", "pseudo", "edge smoothed")
#: Pseudo-labels: probability threshold, weight, first step, steps of the ramp.
TAU, LAMBDA, START, RAMP = 0.97, 0.5, 50, 30
#: Gaussian smoothing (px) of the image the edge term weighs neighbours on.
EDGE_SMOOTH = 1.0


def loss_with_term(config, term):
    """A loss factory for ``train(loss_fn=)``: the configured loss plus
    ``term(logits, mask, step)`` (None: nothing added), ``step`` counted from 0 over the run
    (the factory is called again when the class weights change; the count goes on).

    Shapes: logits ``(B, K, *spatial)``, target ``(B, 1, *spatial)`` class indices, mask
    ``(B, 1, *spatial)`` True where painted (as the training passes them).
    """
    import torch

    from napari_seglab.core.training import make_loss

    calls = [0]

    class WithTerm(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, logits, target, mask=None):
            loss = self.base(logits, target, mask=mask)
            self.last_parts = getattr(self.base, "last_parts", None)
            step, calls[0] = calls[0], calls[0] + 1
            extra = term(logits, mask, step)
            return loss if extra is None else loss + extra

    return lambda weight, sigmoid: WithTerm(make_loss(config, weight, sigmoid))


def pseudo_label_loss(config):
    """A loss factory for ``train(loss_fn=)``: the configured loss plus the pseudo-label term
    (see :func:`loss_with_term` for the shapes)."""
    import torch
    import torch.nn.functional as F

    def term(logits, mask, step):
        if step + 1 < START or logits.shape[1] < 2:
            return None
        with torch.no_grad():
            conf, arg = torch.softmax(logits, 1).max(1)  # (B, *spatial)
            chosen = (~mask[:, 0]) & (conf > TAU)
        n = chosen.sum()
        if n == 0:
            return None
        ce = F.cross_entropy(logits, arg, reduction="none")
        ramp = min(1.0, (step + 1 - START) / RAMP)
        return LAMBDA * ramp * (ce * chosen).sum() / n

    return loss_with_term(config, term)


def _gaussian(x, sigma: float):
    """``(B, C, *spatial)`` tensor blurred along its spatial axes by scipy's
    ``gaussian_filter`` (edges replicated, kernel radius 3 sigma)."""
    import torch
    from scipy import ndimage as ndi

    a = x.detach().cpu().numpy()
    out = ndi.gaussian_filter(
        a, sigma=(0, 0) + (sigma,) * (a.ndim - 2), mode="nearest", truncate=3.0
    )
    return torch.as_tensor(out, dtype=x.dtype, device=x.device)


@contextlib.contextmanager
def smoothed_edges(smooth: float):
    """Within the block, the training's edge term and its noise level see the smoothed crops."""
    import torch

    from napari_seglab.core import training

    potts, noise = training.losses.edge_aware_potts, training.noise_level

    def potts_smoothed(probs, image, sigma=0.1):
        return potts(probs, _gaussian(image.float(), smooth), sigma=sigma)

    def noise_smoothed(x):
        x = torch.as_tensor(np.asarray(x, np.float32))
        return noise(_gaussian(x, smooth).numpy())

    training.losses.edge_aware_potts, training.noise_level = potts_smoothed, noise_smoothed
    try:
        yield
    finally:
        training.losses.edge_aware_potts, training.noise_level = potts, noise


def train_labels(case, scribbles, steps: int, variant: str) -> np.ndarray:
    """Predicted class ids ``(*spatial)`` after ``steps`` steps of the variant (seed 0)."""
    from napari_seglab.core.training import TrainConfig

    # the network trains with the defaults, so the pseudo-labels go with the defaults' loss
    loss_fn = pseudo_label_loss(TrainConfig()) if variant == "pseudo" else None
    smooth = smoothed_edges(EDGE_SMOOTH) if variant == "edge smoothed" else contextlib.nullcontext()
    with smooth:
        return np.asarray(network(case, scribbles, 0, steps, loss_fn=loss_fn).labels)


def errors(case, scribbles, labels) -> dict:
    """Unpainted pixels wrongly foreground (fp) / background (fn), within 2 px of a true
    boundary (rim) and farther, as shares of the true foreground's unpainted pixels."""
    from scipy import ndimage as ndi

    truth = case.reference > 0
    fg, unpainted = labels == rs.FOREGROUND, scribbles == 0
    # Inside: distance to the nearest background pixel; outside: to the nearest foreground one.
    rim = np.where(
        truth, ndi.distance_transform_edt(truth) <= 2, ndi.distance_transform_edt(~truth) <= 2
    )
    n = max(int(np.count_nonzero(truth & unpainted)), 1)
    fp, fn = fg & ~truth & unpainted, ~fg & truth & unpainted
    return {
        "fp_rim": np.count_nonzero(fp & rim) / n,
        "fp_far": np.count_nonzero(fp & ~rim) / n,
        "fn_rim": np.count_nonzero(fn & rim) / n,
        "fn_far": np.count_nonzero(fn & ~rim) / n,
    }


def run(args) -> None:
    dense: dict[str, np.ndarray] = {}

    def measure(case, scribbles, draw) -> dict:
        forest = rs._forest_labels(case, scribbles, 0, 1)["labels"]
        rec = {"forest": rs.score(case, scribbles, forest)["iou"]}
        for variant in VARIANTS:
            labels = train_labels(case, scribbles, args.steps, variant)
            s = rs.score(case, scribbles, labels)
            rec[variant], rec[f"{variant} pa"] = s["iou"], s["painted_acc"]
            if variant == "default" and case.kind == "truth":
                rec.update({f"default {k}": v for k, v in errors(case, scribbles, labels).items()})
        if case.kind == "truth":
            if case.name not in dense:
                full = ((case.reference > 0) + 1).astype(np.uint8)
                dense[case.name] = train_labels(case, full, args.steps, "default")
            rec["dense"] = rs.score(case, scribbles, dense[case.name])["iou"]
            rec.update(
                {f"dense {k}": v for k, v in errors(case, scribbles, dense[case.name]).items()}
            )
        if args.folds:
            for variant in ("default", "pseudo"):
                rec[f"{variant} held-out"] = rs.heldout(
                    case,
                    scribbles,
                    args.folds,
                    lambda part, v=variant: train_labels(case, part, args.steps, v),
                )
        return rec

    run_cases(args, measure)


def summary(paths) -> None:
    """IoU / forest per variant, the dense ceiling, the default's and the ceiling's errors, and
    held-out-stroke accuracy where measured."""
    cols = ["draws", "forest IoU", *VARIANTS, "dense (ceiling)"]
    cols += ["default fp rim / far, fn rim / far", "dense fp rim / far, fn rim / far"]
    cols += ["held-out default / pseudo"]
    print("| case | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")

    def mean(recs, key):
        return float(np.mean([r[key] for r in recs])) if key in recs[0] else float("nan")

    def errs(recs, who):
        v = [mean(recs, f"{who} {k}") for k in ("fp_rim", "fp_far", "fn_rim", "fn_far")]
        return "-" if np.isnan(v[0]) else "{:.3f} / {:.3f}, {:.3f} / {:.3f}".format(*v)

    for case, recs in by_case(paths):
        forest = mean(recs, "forest")
        ratios = [mean(recs, k) / forest for k in (*VARIANTS, "dense")]
        held = [mean(recs, f"{k} held-out") for k in ("default", "pseudo")]
        cells = [str(len(recs)), f"{forest:.3f}"]
        cells += ["-" if np.isnan(v) else f"{v:.3f}" for v in ratios]
        cells += [errs(recs, "default"), errs(recs, "dense")]
        cells += ["-" if np.isnan(held[0]) else f"{held[0]:.3f} / {held[1]:.3f}"]
        print(f"| {case} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    return probe_main(argv, __doc__, "probe_self_training.json", run, summary, folds=True)


if __name__ == "__main__":
    raise SystemExit(main())
