"""Probe: does averaging the forest's and the network's class probabilities beat either?

For each case and scribble draw of the real-image suite (``real_suite.py``), fits the
random forest (100 trees, the suite's features) and trains seglab with the defaults for a step
budget, then scores the blend ``p = a * network + (1 - a) * forest`` for a in 0, 0.25, 0.5,
0.75, 1 (0 = the forest alone, 1 = the network alone): IoU against the reference on unpainted
pixels, the worse class's painted-pixel accuracy and, with ``--folds``, held-out-stroke
accuracy (forest and network trained on the other folds). One JSON line per run; ``--summary``
prints the table of earlier runs (IoU relative to the forest's, mean over draws).

Run (1 thread each; the two can run side by side on two cores)::

    python benchmarks/probe_forest_blend.py --out truth.json --cases nuclei "small dense" \\
        large thin volume --volume ../shared/data/nuclei3d --draws 0 1 2
    python benchmarks/probe_forest_blend.py --out real.json --cases immunohistochemistry \\
        camera cell coins microaneurysms astronaut retina --draws 0 1 --folds 2
    python benchmarks/probe_forest_blend.py --summary truth.json real.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
from scribble_sim import BACKGROUND, FOREGROUND

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def train_network(case, scribbles, seed, steps, loss_fn=None, **settings):
    """The last :class:`~napari_seglab.core.config.TrainReport` of seglab trained with the
    defaults (and ``settings``, ``TrainConfig`` fields) for ``steps`` steps on one thread
    (``loss_fn``: as :func:`~napari_seglab.core.training.train`'s)."""
    from napari_seglab.core.training import TrainConfig, train

    config = TrainConfig(
        steps=steps,
        seed=seed,
        preview_every=0,
        channel_axis=case.channel_axis,
        num_threads=1,
        **settings,
    )
    return list(train(case.image, scribbles, config, loss_fn=loss_fn))[-1]


def network(case, scribbles, seed, steps, loss_fn=None, **settings):
    """The :class:`~napari_seglab.core.inference.Prediction` of the whole image by the model of
    :func:`train_network`."""
    from napari_seglab.core.inference import predict

    model = train_network(case, scribbles, seed, steps, loss_fn, **settings).model
    return predict(model, case.image, channel_axis=case.channel_axis)


def forest_probabilities(case, scribbles, seed: int = 0) -> np.ndarray:
    """The 100-tree forest's ``(K, *spatial)`` probabilities (the suite's features, one
    thread)."""
    from napari_seglab.core.forest import fit_forest

    forest = fit_forest(
        case.image,
        scribbles,
        channel_axis=case.channel_axis,
        n_estimators=100,
        heldout_folds=0,
        seed=seed,
        n_jobs=1,
    )
    return np.asarray(forest.predict().probabilities)


def probabilities(case, scribbles, seed, steps):
    """The forest's and the network's ``(K, *spatial)`` probabilities."""
    return forest_probabilities(case, scribbles, seed), network(
        case, scribbles, seed, steps
    ).probabilities


def blend(p_forest, p_net, a):
    return ((a * p_net + (1 - a) * p_forest).argmax(0) + 1).astype(np.uint8)


def run_cases(args, measure) -> None:
    """For each case and draw, ``measure(case, scribbles, draw)`` -> a dict of scores: one
    JSON line each (with the case, the draw and the seconds it took), all in ``args.out``."""
    out = []
    for case in rs.build_cases(args.cases, args.volume):
        for draw in args.draws:
            scribbles = case.scribbles(draw)
            t0 = time.perf_counter()
            rec = {"case": case.name, "draw": draw, **measure(case, scribbles, draw)}
            rec["s"] = time.perf_counter() - t0
            print(json.dumps(rec), flush=True)
            out.append(rec)
    Path(args.out).write_text(json.dumps(out))


def run(args) -> None:
    from napari_seglab.core.forest import stroke_folds

    def measure(case, scribbles, draw) -> dict:
        pf, pn = probabilities(case, scribbles, draw, args.steps)
        rec = {}
        for a in ALPHAS:
            s = rs.score(case, scribbles, blend(pf, pn, a))
            rec[f"iou{a}"], rec[f"pa{a}"] = s["iou"], s["painted_acc"]
        if args.folds:
            fold = stroke_folds(scribbles, args.folds)
            acc = {a: [] for a in ALPHAS}
            for k in range(args.folds):
                part = np.where(fold == k, 0, scribbles).astype(np.uint8)
                if not (np.any(part == BACKGROUND) and np.any(part == FOREGROUND)):
                    continue
                pf2, pn2 = probabilities(case, part, draw, args.steps)
                for a in ALPHAS:
                    acc[a].append(rs.accuracy(blend(pf2, pn2, a), scribbles, fold == k))
            for a in ALPHAS:
                rec[f"ho{a}"] = float(np.mean(acc[a])) if acc[a] else float("nan")
        return rec

    run_cases(args, measure)


def by_case(paths) -> Iterator[tuple[str, list[dict]]]:
    """The records of each case of the runs' JSON files, file by file, in first-seen order."""
    for path in paths:
        by = collections.defaultdict(list)
        for r in json.loads(Path(path).read_text()):
            by[r["case"]].append(r)
        yield from by.items()


def summary(paths) -> None:
    cols = [f"IoU / forest, a={a:g}" for a in ALPHAS] + [f"held-out, a={a:g}" for a in ALPHAS]
    print("| case | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for case, recs in by_case(paths):
        iou = [np.mean([r[f"iou{a}"] for r in recs]) for a in ALPHAS]
        held = [np.mean([r.get(f"ho{a}", np.nan) for r in recs]) for a in ALPHAS]
        cells = [f"{v / iou[0]:.3f}" for v in iou]
        cells += ["-" if np.isnan(v) else f"{v:.3f}" for v in held]
        print(f"| {case} | " + " | ".join(cells) + " |")


def probe_main(
    argv,
    doc: str,
    out: str,
    run,
    summary,
    folds: bool = False,
    seeds: bool = False,
    variants: tuple[str, ...] = (),
) -> int:
    """The command line of a probe: ``run(args)`` the cases, or ``summary(paths)`` of the
    JSON files of earlier runs; ``folds`` and ``seeds`` add ``--folds`` and ``--seeds``,
    ``variants`` a ``--variants`` choice among them (default: all)."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--cases", nargs="+")
    p.add_argument("--volume")
    p.add_argument("--draws", nargs="+", type=int, default=[0, 1])
    if folds:
        p.add_argument("--folds", type=int, default=0)
    if seeds:
        p.add_argument("--seeds", nargs="+", type=int, default=[100, 101])
    if variants:
        p.add_argument("--variants", nargs="+", choices=variants, default=list(variants))
    p.add_argument("--steps", type=int, default=165)
    p.add_argument("--out", default=out)
    p.add_argument("--summary", nargs="+", metavar="JSON")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if args.summary:
        summary(args.summary)
    else:
        run(args)
    return 0


def main(argv=None) -> int:
    return probe_main(argv, __doc__, "probe_forest_blend.json", run, summary, folds=True)


if __name__ == "__main__":
    raise SystemExit(main())
