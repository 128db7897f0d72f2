"""Probe: put the foreground's boundary where the image's edges are strongest.

On the synthetic nuclei most of seglab's remaining errors are a ring just inside each
nucleus's boundary: the network draws them too small. Foreground strokes run through the
brightest middle of each object and background strokes keep away from its edge, so nothing
painted says where between them the boundary lies. This trains seglab as the real-image suite
does (``--steps``, seed = draw), keeps its foreground probability ``p``, and labels foreground
where ``p > t`` for thresholds ``t`` of a grid. It chooses ``t`` from the image alone: the
threshold whose boundary (the foreground pixels with a background neighbour) has the largest
mean gradient magnitude (Gaussian derivatives of ``--sigma`` px on the image normalised between
its 1st and 99.8th percentiles, channels added in quadrature), the edge energy of geodesic active
contours (Caselles, Kimmel and Sapiro, IJCV 1997) minimised over one number. The table gives
IoU on unpainted pixels at 0.5 (what seglab does), at the chosen ``t`` and at the best ``t`` of
the grid (known from the reference, an upper bound), each over the random forest's (fitted on
the same strokes, as the suite does), and the painted-pixel accuracy of the worse class. It also
gives the threshold at the painted foreground's share of the painted pixels: a network that
learns from painted pixels learns their class frequencies as a prior, and dividing each class's
probability by its frequency removes it (logit adjustment, Menon et al., ICLR 2021); for two
classes that is ``p > share``. Last, a threshold for each object (each connected component of
``p > 0.05``), chosen by the same edge energy on its own boundary, or knowing the reference.

Run::

    python benchmarks/probe_contour_threshold.py --cases nuclei coins thin --draws 0 1 2 \\
        --steps 165 --json contour.json --markdown contour.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite
import scribble_benchmark as sb
from probe_edge_oracle import normalised
from scribble_sim import FOREGROUND

#: Thresholds tried on the foreground probability.
GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def edge_magnitude(image: np.ndarray, channel_axis: int | None, sigma: float = 1.0) -> np.ndarray:
    """Gradient magnitude ``(*spatial)`` of the normalised image, channels in quadrature."""
    channels = [image] if channel_axis is None else list(np.moveaxis(image, channel_axis, 0))
    squares = [ndi.gaussian_gradient_magnitude(normalised(c), sigma) ** 2 for c in channels]
    return np.sqrt(np.sum(squares, axis=0))


def contour_strength(foreground: np.ndarray, edges: np.ndarray) -> float:
    """Mean of ``edges`` on the boundary of ``foreground`` (its pixels with a background
    neighbour); 0 when it has none."""
    boundary = foreground & ~ndi.binary_erosion(foreground, border_value=1)
    return float(edges[boundary].mean()) if boundary.any() else 0.0


def choose_threshold(p_fg: np.ndarray, edges: np.ndarray, grid=GRID) -> float:
    """The threshold of ``grid`` whose boundary is strongest in ``edges`` (the first of equals)."""
    scores = [contour_strength(p_fg > t, edges) for t in grid]
    return float(grid[int(np.argmax(scores))])


def per_object(p_fg: np.ndarray, edges: np.ndarray, reference=None, grid=GRID) -> np.ndarray:
    """Foreground with a threshold of ``grid`` for each object: each connected component of
    ``p_fg > grid[0]`` keeps the pixels above the threshold whose boundary is strongest in
    ``edges`` or, given the ``reference`` (an upper bound), the one that gets most of the
    component's pixels right."""
    out = np.zeros(p_fg.shape, bool)
    components, _ = ndi.label(p_fg > grid[0])
    for i, box in enumerate(ndi.find_objects(components), start=1):
        # one pixel round the box, so that a boundary on its edge counts
        box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        inside = components[box] == i
        p = p_fg[box]
        if reference is None:
            scores = [contour_strength(inside & (p > t), edges[box]) for t in grid]
        else:
            ref = reference[box] > 0
            scores = [np.count_nonzero(((p > t) == ref) & inside) for t in grid]
        t = grid[int(np.argmax(scores))]
        out[box] |= inside & (p > t)
    return out


def trained(case, draw: int, steps: int, threads: int):
    """Train seglab on ``case``'s draw as the real-image suite does (seed = draw) and predict
    it: ``(scribbles, prediction)``, the prediction with its probabilities."""
    scribbles = case.scribbles(draw)
    res = sb.run_seglab(
        real_suite._as_case(case, scribbles),
        seconds=None,
        steps=steps,
        seed=draw,
        threads=threads,
        return_prediction=True,
    )
    return scribbles, res["prediction"]


def run(case, draw: int, steps: int, threads: int, sigma: float) -> dict:
    scribbles, pred = trained(case, draw, steps, threads)
    p_fg = np.asarray(pred.probabilities[FOREGROUND - 1])
    at = {t: real_suite.score(case, scribbles, np.where(p_fg > t, 2, 1)) for t in GRID}
    edges = edge_magnitude(case.image, case.channel_axis, sigma)
    chosen = choose_threshold(p_fg, edges)
    objects = {
        "iou_objects": per_object(p_fg, edges),
        "iou_objects_best": per_object(p_fg, edges, case.reference),
    }
    objects = {
        k: real_suite.score(case, scribbles, np.where(fg, 2, 1)) for k, fg in objects.items()
    }
    best = max(GRID, key=lambda t: at[t]["iou"])
    argmax = real_suite.score(case, scribbles, np.asarray(pred.labels))
    # logit adjustment: the threshold at the painted foreground's share of the painted pixels
    prior = float(np.mean(scribbles[scribbles > 0] == FOREGROUND))
    adjusted = real_suite.score(case, scribbles, np.where(p_fg > prior, 2, 1))
    forest = real_suite._forest_labels(case, scribbles, draw, threads)
    return {
        "case": case.name,
        "draw": draw,
        "forest_iou": real_suite.score(case, scribbles, forest["labels"])["iou"],
        "iou_argmax": argmax["iou"],
        "iou_chosen": at[chosen]["iou"],
        "t_chosen": chosen,
        "iou_best": at[best]["iou"],
        "iou_objects": objects["iou_objects"]["iou"],
        "iou_objects_best": objects["iou_objects_best"]["iou"],
        "painted_objects": objects["iou_objects"]["painted_acc"],
        "t_best": best,
        "iou_prior": adjusted["iou"],
        "t_prior": prior,
        "painted_argmax": argmax["painted_acc"],
        "painted_chosen": at[chosen]["painted_acc"],
        "painted_prior": adjusted["painted_acc"],
    }


def table(rows: list[dict]) -> str:
    out = [
        "| case | forest IoU | argmax (t = 0.5): IoU / forest | chosen t: IoU / forest | "
        "chosen t per draw | painted share t: IoU / forest | painted share t per draw | "
        "best t of the grid: IoU / forest | t per object, chosen: IoU / forest | "
        "t per object, best: IoU / forest | painted acc, worse class: argmax / chosen / "
        "painted share / per object (worst run) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["case"] for r in rows):
        rs = [r for r in rows if r["case"] == name]
        forest = np.mean([r["forest_iou"] for r in rs])

        def ratio(key, rs=rs, forest=forest):
            return f"{np.mean([r[key] for r in rs]) / forest:.3f}"

        ts = " ".join(f"{r['t_chosen']:g}" for r in rs)
        tp = " ".join(f"{r['t_prior']:.2f}" for r in rs)
        painted = " / ".join(
            f"{np.mean([r[k] for r in rs]):.3f} ({min(r[k] for r in rs):.3f})"
            for k in ("painted_argmax", "painted_chosen", "painted_prior", "painted_objects")
            if k in rs[0]
        )
        objects = " | ".join(
            ratio(k) if k in rs[0] else "-" for k in ("iou_objects", "iou_objects_best")
        )
        out.append(
            f"| {name} | {forest:.3f} | {ratio('iou_argmax')} | {ratio('iou_chosen')} | {ts} | "
            f"{ratio('iou_prior')} | {tp} | {ratio('iou_best')} | {objects} | {painted} |"
        )
    return "\n".join(out) + "\n"


def probe_parser(doc: str, cases: list[str]) -> argparse.ArgumentParser:
    """The options these probes share: cases, draws, steps, threads, and where results go."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=cases)
    ap.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=165)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--from-json", nargs="+", default=None, help="tabulate saved runs")
    return ap


def probe_main(args, argv, script: str, run_one, tabulate, skip=lambda case: None) -> int:
    """Run ``run_one(case, draw)`` over the cases and draws of ``args`` (or read saved runs
    with ``--from-json``), save them with the command (``--json``) and print
    ``tabulate(rows)`` (also to ``--markdown``). ``skip(case)`` says why a case is left out,
    or None."""
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())["runs"]]
    else:
        rows = []
        for case in real_suite.build_cases(args.cases, None):
            why = skip(case)
            if why:
                print(f"skipping {case.name}: {why}", flush=True)
                continue
            for draw in args.draws:
                rows.append(run_one(case, draw))
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()})
        if args.json:
            command = f"python benchmarks/{script} " + " ".join(argv or sys.argv[1:])
            Path(args.json).write_text(json.dumps({"command": command, "runs": rows}, indent=1))
    text = tabulate(rows)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


def main(argv=None) -> int:
    ap = probe_parser(__doc__, ["nuclei", "coins", "thin"])
    ap.add_argument("--sigma", type=float, default=1.0, help="gradient scale, px")
    args = ap.parse_args(argv)
    return probe_main(
        args,
        argv,
        "probe_contour_threshold.py",
        lambda case, draw: run(case, draw, args.steps, args.threads, args.sigma),
        table,
    )


if __name__ == "__main__":
    raise SystemExit(main())
