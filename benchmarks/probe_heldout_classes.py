"""Probe: held-out strokes scored per class and per fold, for the seglab settings given.

The suite's held-out-stroke accuracy (``real_suite.heldout``) pools every class of a fold's
held-out strokes. This probe trains, for each draw and each of ``--folds`` folds of strokes
(``napari_seglab.core.forest.stroke_folds``), on the other folds (the suite's training, seed =
the draw's number), and prints for each class how many pixels it had to learn from, how many
are held out and the share of those the network gives back, next to the pooled accuracy the
suite averages::

    python benchmarks/probe_heldout_classes.py --case immunohistochemistry --draws 0 1 \
        --steps 165 --variant default --variant edge0 lambda_edge=0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
import scribble_benchmark as sb

from napari_seglab.core.forest import stroke_folds


def fold_scores(
    case: rs.SuiteCase, draw: int, folds: int, steps: int, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """One record per fold that keeps both classes to train on (the folds, the training and
    the skip rule of ``real_suite.heldout``): ``fold``, ``pooled`` (the suite's held-out
    accuracy of that fold) and per class ``k`` ``train_k`` (painted pixels trained on),
    ``held_k`` (held out) and ``acc_k`` (share of those predicted as ``k``)."""
    scribbles = case.scribbles(draw)
    fold = stroke_folds(scribbles, folds)
    out: list[dict[str, Any]] = []

    def run(train_s: np.ndarray) -> np.ndarray:
        labels = rs._seglab_labels(case, train_s, ("steps", steps), draw, 1, settings)["labels"]
        held = (scribbles > 0) & (train_s == 0)
        record: dict[str, Any] = {
            "fold": int(fold[held][0]),
            "pooled": rs.accuracy(labels, scribbles, held),
        }
        for c in (rs.BACKGROUND, rs.FOREGROUND):
            mask = held & (scribbles == c)
            record[f"train_{c}"] = int(np.count_nonzero(train_s == c))
            record[f"held_{c}"] = int(np.count_nonzero(mask))
            record[f"acc_{c}"] = float(np.mean(labels[mask] == c)) if mask.any() else float("nan")
        out.append(record)
        return labels

    rs.heldout(case, scribbles, folds, run)
    return out


def table(rows: Sequence[tuple[str, int, dict[str, Any]]]) -> str:
    """Markdown, one line per variant, draw and fold."""
    head = [
        "variant",
        "draw",
        "fold",
        "bg trained on",
        "fg trained on",
        "bg held out: acc (pixels)",
        "fg held out: acc (pixels)",
        "pooled",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    b, f = rs.BACKGROUND, rs.FOREGROUND
    for name, draw, r in rows:
        cells = [name, str(draw), str(r["fold"]), str(r[f"train_{b}"]), str(r[f"train_{f}"])]
        cells += [f"{r[f'acc_{c}']:.3f} ({r[f'held_{c}']})" for c in (b, f)]
        cells.append(f"{r['pooled']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", default="immunohistochemistry", choices=list(rs.CASES))
    p.add_argument("--volume", help="the nuclei volume folder, for the volume cases")
    p.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--steps", type=int, default=165)
    p.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"))
    args = p.parse_args(argv)
    variants = [(v[0], sb.parse_settings(v[1:])) for v in (args.variant or [["default"]])]
    (case,) = rs.build_cases([args.case], args.volume)
    rows = [
        (name, draw, r)
        for name, settings in variants
        for draw in args.draws
        for r in fold_scores(case, draw, args.folds, args.steps, settings)
    ]
    print(f"{case.name}, {args.steps} steps, {args.folds} folds; {sb.machine()}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
