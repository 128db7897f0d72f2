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

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
from probe_forest_blend import blend, probabilities

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
    out = []
    for case in rs.build_cases(args.cases, args.volume):
        for draw in args.draws:
            scribbles = case.scribbles(draw)
            t0 = time.perf_counter()
            p_forest, p_net = probabilities(case, scribbles, draw, args.steps)
            rec = {"case": case.name, "draw": draw}
            rec["forest"] = rs.score(case, scribbles, blend(p_forest, p_net, 0.0))["iou"]
            rec["cnn"] = rs.score(case, scribbles, blend(p_forest, p_net, 1.0))["iou"]
            for t, beta in SETTINGS:
                labels = walk(case, scribbles, p_net[1], t, beta)
                rec[f"rw{t}_{beta}"] = rs.score(case, scribbles, labels)["iou"]
            rec["s"] = time.perf_counter() - t0
            print(json.dumps(rec), flush=True)
            out.append(rec)
    Path(args.out).write_text(json.dumps(out))


def summary(paths) -> None:
    keys = ["cnn"] + [f"rw{t}_{beta}" for t, beta in SETTINGS]
    heads = ["network"] + [f"walker t={t:g} beta={beta}" for t, beta in SETTINGS]
    print("| case | draws | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 2) + "|")
    for path in paths:
        by = collections.defaultdict(list)
        for r in json.loads(Path(path).read_text()):
            by[r["case"]].append(r)
        for case, recs in by.items():
            forest = np.mean([r["forest"] for r in recs])
            cells = [f"{np.mean([r[k] for r in recs]) / forest:.3f}" for k in keys]
            print(f"| {case} | {len(recs)} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", nargs="+")
    p.add_argument("--volume")
    p.add_argument("--draws", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=165)
    p.add_argument("--out", default="probe_random_walker.json")
    p.add_argument("--summary", nargs="+", metavar="JSON")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.summary:
        summary(args.summary)
    else:
        run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
