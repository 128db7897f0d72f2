"""Probe: how well do the image's own edges place the boundaries, when told where to look?

For each ground-truth case of the real-image suite, keeps the ground truth everywhere but in a
band of 2 px on either side of its boundaries, and inside the band takes each pixel's class
from a rule that sees only the image (normalised between its 1st and 99.8th percentiles):

- ``LoG s``: foreground where the Laplacian of Gaussian of scale ``s`` px is negative (the
  bright side of the zero crossing, where the edge-aware term's flux part puts a boundary);
- ``local s/w/f``: foreground where the image smoothed by a Gaussian of ``s`` px, less its
  minimum over a 41 px window, exceeds ``f`` times its maximum over a ``w`` px window less that
  minimum (a boundary at a fixed share of each object's own contrast).

IoU against the ground truth says how far each rule could take a method that already knows
the objects and has only to place their boundaries. No training; a few seconds.

Run::

    python benchmarks/probe_edge_oracle.py --markdown benchmarks/results/probe_edge_oracle.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs

RULES = [("LoG", s) for s in (1.0, 1.5, 2.0, 3.0)] + [
    ("local", (s, w, f)) for s in (1.0, 2.0) for w in (11, 21) for f in (0.4, 0.5)
]


def normalised(image: np.ndarray) -> np.ndarray:
    x = np.asarray(image, np.float64)
    lo, hi = np.percentile(x, (1, 99.8))
    return np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1)


def rule_foreground(x: np.ndarray, kind: str, p) -> np.ndarray:
    if kind == "LoG":
        return ndi.gaussian_laplace(x, p) < 0
    s, w, f = p
    xs = ndi.gaussian_filter(x, s)
    floor = ndi.minimum_filter(xs, 41)
    return (xs - floor) > f * (ndi.maximum_filter(xs, w) - floor)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b) / max(np.count_nonzero(a | b), 1))


def label(kind: str, p) -> str:
    return f"LoG {p:g}" if kind == "LoG" else "local {:g}/{}/{:g}".format(*p)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["nuclei", "small dense", "large", "thin"])
    ap.add_argument("--band", type=int, default=2, help="half-width of the band, px")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    heads = [label(k, p) for k, p in RULES]
    lines = [
        f"IoU with the ground truth replaced within {args.band} px of its boundaries by each "
        "rule (`python benchmarks/probe_edge_oracle.py`)",
        "",
        "| case | band share of image | " + " | ".join(heads) + " |",
        "|---" * (len(heads) + 2) + "|",
    ]
    for case in rs.build_cases(args.cases, None):
        if case.image.ndim != 2:
            continue
        truth = case.reference > 0
        x = normalised(case.image)
        band = ndi.binary_dilation(truth, iterations=args.band) & ~ndi.binary_erosion(
            truth, iterations=args.band
        )
        cells = [
            f"{iou(np.where(band, rule_foreground(x, k, p), truth), truth):.3f}" for k, p in RULES
        ]
        lines.append(f"| {case.name} | {band.mean():.3f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
