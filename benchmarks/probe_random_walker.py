"""Probe: does a random walker on the image, seeded with the network's confident pixels and
the strokes, put boundaries better than the network alone?

For each case and draw of the real-image suite, trains seglab with the defaults (165 steps)
and fits the 100-tree forest (for the ratio), then runs scikit-image's ``random_walker`` on
the image (normalised between its 1st and 99.8th percentiles) with seeds: foreground where
the network's foreground probability is above ``t``, background where it is below ``1 - t``,
and every painted pixel as painted; the rest is left to the walker. Scores IoU against the
reference on unpainted pixels for t in 0.8 and 0.95 and the walker's ``beta`` in 130 (its
default) and 1000. One JSON line per run; ``--summary`` prints the table (IoU relative to the
forest's, mean over draws).

Run (1 thread each; the two side by side on two cores)::

    python benchmarks/probe_random_walker.py --out rw_truth.json --cases nuclei "small dense" \\
        large thin --draws 0 1 2
    python benchmarks/probe_random_walker.py --out rw_real.json --cases coins cell camera \\
        microaneurysms astronaut retina immunohistochemistry --draws 0 1
    python benchmarks/probe_random_walker.py --summary rw_truth.json rw_real.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
from probe_forest_blend import blend, by_case, probabilities, probe_main, run_cases

SETTINGS = [(t, beta) for t in (0.8, 0.95) for beta in (130, 1000)]


def walk(case, scribbles, p_fg: np.ndarray, t: float, beta: float) -> np.ndarray:
    """Labels of the random walker seeded by the confident pixels and the strokes."""
    from skimage.segmentation import random_walker

    image = np.asarray(case.image, np.float64)
    if case.channel_axis is not None:
        image = np.moveaxis(image, case.channel_axis, -1)
    lo, hi = np.percentile(image, (1, 99.8))
    image = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    seeds = np.zeros(p_fg.shape, np.int32)
    seeds[p_fg > t] = 2
    seeds[p_fg < 1 - t] = 1
    seeds[scribbles > 0] = scribbles[scribbles > 0]
    axis = None if case.channel_axis is None else -1
    return random_walker(image, seeds, beta=beta, mode="cg_j", channel_axis=axis).astype(np.uint8)


def run(args) -> None:
    def measure(case, scribbles, draw) -> dict:
        p_forest, p_net = probabilities(case, scribbles, draw, args.steps)
        rec = {
            "forest": rs.score(case, scribbles, blend(p_forest, p_net, 0.0))["iou"],
            "cnn": rs.score(case, scribbles, blend(p_forest, p_net, 1.0))["iou"],
        }
        for t, beta in SETTINGS:
            labels = walk(case, scribbles, p_net[1], t, beta)
            rec[f"rw{t}_{beta}"] = rs.score(case, scribbles, labels)["iou"]
        return rec

    run_cases(args, measure)


def summary(paths) -> None:
    keys = ["cnn"] + [f"rw{t}_{beta}" for t, beta in SETTINGS]
    heads = ["network"] + [f"walker t={t:g} beta={beta}" for t, beta in SETTINGS]
    print("| case | draws | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 2) + "|")
    for case, recs in by_case(paths):
        forest = np.mean([r["forest"] for r in recs])
        cells = [f"{np.mean([r[k] for r in recs]) / forest:.3f}" for k in keys]
        print(f"| {case} | {len(recs)} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    return probe_main(argv, __doc__, "probe_random_walker.json", run, summary)


if __name__ == "__main__":
    raise SystemExit(main())
