"""Probe: grow the predicted foreground to the bright side of the image's edges.

On the synthetic nuclei most of seglab's remaining errors are missed foreground on the
outermost pixel or two of the nuclei, the dim ones most (``docs/real-images.md``). This
trains seglab as the real-image suite does (165 steps, seed = draw) and then grows its
foreground, ``k`` times, by the pixels next to it (4-connected) on the bright side of the
zero crossing of a Laplacian of Gaussian of ``s`` px (``LoG < 0``; the image normalised between
its 1st and 99.8th percentiles, and negated where the painted foreground is the darker class),
the side the flux term of the edge-aware term prefers. A
blurred edge's zero crossing lies at half its contrast, whatever the object's brightness. It
never removes foreground. ``adapt`` variants give each connected component of the foreground
the largest ``s`` of 1, 1.5 and 2 px that is at most its thickness (largest distance to its
background) over ``r``, and do not grow components thinner than ``r`` px, so that thin
structures are grown at their own scale. Ratios are each variant's mean IoU over the random
forest's, fitted on the same strokes.

Run::

    python benchmarks/probe_log_grow.py --cases nuclei "small dense" thin --draws 0 1 2 \\
        --json grow_a.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite
from probe_contour_threshold import probe_main, probe_parser, trained
from probe_edge_oracle import normalised
from scribble_sim import FOREGROUND

#: Scales (px) of the adaptive variants.
SCALES = (1.0, 1.5, 2.0)
#: name: ("grow", s, k) or ("adapt", r, k).
VARIANTS = {
    **{f"grow{k} s{s:g}": ("grow", s, k) for s in (1.0, 1.5, 2.0, 2.5) for k in (1, 2, 3)},
    **{f"adapt{k} r{r:g}": ("adapt", r, k) for r in (2.0, 3.0, 4.0) for k in (2, 3)},
}


def grow(foreground: np.ndarray, bright_side: np.ndarray, k: int) -> np.ndarray:
    """``foreground`` grown ``k`` times by its 4-connected neighbours in ``bright_side``."""
    out = foreground.copy()
    for _ in range(k):
        out |= ndi.binary_dilation(out) & bright_side
    return out


def bright_sides(image: np.ndarray, scribbles=None, scales=SCALES) -> dict[float, np.ndarray]:
    """``LoG_s(x) < 0`` for each scale ``s`` (px), ``x`` the normalised grey image, negated
    where the painted foreground is darker on average than the painted background (given
    ``scribbles``): the foreground's side of each edge, as the flux term orients it."""
    x = normalised(image)
    if scribbles is not None and x[scribbles == FOREGROUND].mean() < x[scribbles == 1].mean():
        x = -x
    return {s: ndi.gaussian_laplace(x, s) < 0 for s in scales}


def adapt(foreground: np.ndarray, sides: dict[float, np.ndarray], k: int, r: float):
    """Each component grown at the largest scale of ``sides`` at most its thickness over
    ``r``; components thinner than ``r`` times the smallest scale are kept as they are."""
    labels, n = ndi.label(foreground)
    if n == 0:
        return foreground.copy()
    thickness = ndi.maximum(ndi.distance_transform_edt(foreground), labels, np.arange(1, n + 1))
    out = foreground.copy()
    for s in sorted(sides):
        fits = [max((q for q in sides if q <= t / r), default=0.0) == s for t in thickness]
        ids = np.flatnonzero(fits) + 1
        if len(ids):
            out |= grow(np.isin(labels, ids), sides[s], k)
    return out


def variant(foreground, sides, spec) -> np.ndarray:
    kind, p, k = spec
    return grow(foreground, sides[p], k) if kind == "grow" else adapt(foreground, sides, k, p)


def run(case, draw: int, steps: int, threads: int) -> dict:
    scribbles, pred = trained(case, draw, steps, threads)
    fg = np.asarray(pred.labels) == FOREGROUND
    scales = sorted({*SCALES, *(p for kind, p, _ in VARIANTS.values() if kind == "grow")})
    sides = bright_sides(case.image, scribbles, scales)
    forest = real_suite._forest_labels(case, scribbles, draw, threads)["labels"]
    out = {
        "case": case.name,
        "draw": draw,
        "forest": real_suite.score(case, scribbles, forest)["iou"],
        "argmax": real_suite.score(case, scribbles, np.asarray(pred.labels))["iou"],
    }
    for name, spec in VARIANTS.items():
        labels = np.where(variant(fg, sides, spec), 2, 1)
        out[name] = real_suite.score(case, scribbles, labels)["iou"]
    return out


def table(rows: list[dict]) -> str:
    names = list(dict.fromkeys(r["case"] for r in rows))
    lines = [
        "| variant | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for v in ["argmax", *VARIANTS]:
        cells = []
        for n in names:
            rs = [r for r in rows if r["case"] == n]
            cells.append(f"{np.mean([r[v] for r in rs]) / np.mean([r['forest'] for r in rs]):.3f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    draws = ", ".join(f"{n} {sum(r['case'] == n for r in rows)}" for n in names)
    return "\n".join(lines) + f"\n\nIoU / forest, mean over draws ({draws}).\n"


def main(argv=None) -> int:
    args = probe_parser(__doc__, ["nuclei", "small dense", "thin"]).parse_args(argv)
    return probe_main(
        args,
        argv,
        "probe_log_grow.py",
        lambda case, draw: run(case, draw, args.steps, args.threads),
        table,
        skip=lambda c: (
            "grey 2D images only" if c.channel_axis is not None or c.image.ndim != 2 else None
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
