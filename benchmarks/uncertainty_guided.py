"""Do strokes placed where the model is most uncertain raise IoU faster than strokes placed at
random? A simulated user, round by round.

Each case starts from a few sparse strokes (the suite's stroke style, fewer of them). Every
round the model trains on (continuing from the last round's model), predicts the whole image,
and the simulated user adds strokes in one window of ``--window`` pixels:

- ``uncertain``: the window whose unpainted pixels are the most uncertain on average
  (:func:`napari_seglab.core.uncertainty.most_uncertain_window`, margin uncertainty of the
  prediction);
- ``random``: a window at a random place.

In the window the user paints as the suite's simulator does (a stroke through each object of
the reference, eroded, and a few background lines away from objects), only on pixels not yet
painted. IoU against the reference on unpainted pixels after each round; mean over draws.

    python benchmarks/uncertainty_guided.py --cases nuclei coins camera --draws 0 1 \\
        --rounds 5 --steps 60 --markdown benchmarks/results/uncertainty_guided.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite
from scribble_benchmark import load, machine
from scribble_sim import FOREGROUND, foreground_iou, simulate_sparse_scribbles

from napari_seglab.core import TrainConfig, predict, train
from napari_seglab.core.uncertainty import most_uncertain_window, uncertainty

POLICIES = ("uncertain", "random")


def first_strokes(case, draw: int) -> np.ndarray:
    """A weak start: the suite's stroke style with fewer objects and background lines."""
    kw = {**(case.stroke_kw or {}), "objects": 0.04, "bg_strokes": 6}
    return simulate_sparse_scribbles(case.reference, seed=100 + draw, **kw)


def paint_window(scribbles, reference, window, seed) -> np.ndarray:
    """The simulated user's strokes in ``window`` (reference-true), on unpainted pixels only."""
    strokes = simulate_sparse_scribbles(
        np.asarray(reference[window]), objects=1.0, bg_strokes=3, bg_margin=3, seed=seed
    )
    out = scribbles.copy()
    part = out[window]
    new = (part == 0) & (strokes > 0)
    part[new] = strokes[new]
    return out


def random_window(shape, size, rng) -> tuple[slice, ...]:
    ys = rng.integers(0, max(1, shape[0] - size + 1))
    xs = rng.integers(0, max(1, shape[1] - size + 1))
    return (
        slice(int(ys), int(ys) + min(size, shape[0])),
        slice(int(xs), int(xs) + min(size, shape[1])),
    )


def run_policy(case, policy, draw, rounds, steps, window, threads) -> list[float]:
    """IoU after each round (round 0 = the first strokes only)."""
    rng = np.random.default_rng(1000 + draw)
    scribbles = first_strokes(case, draw)
    model = None
    ious = []
    config = TrainConfig(
        steps=steps, seed=draw, num_threads=threads, channel_axis=case.channel_axis
    )
    for r in range(rounds + 1):
        for report in train(case.image, scribbles, config, model=model):  # noqa: B007
            pass
        model = report.model
        pred = predict(model, case.image, channel_axis=case.channel_axis)
        ious.append(foreground_iou(pred.labels == FOREGROUND, case.reference > 0, scribbles))
        if r == rounds:
            break
        if policy == "uncertain":
            where = most_uncertain_window(uncertainty(pred.probabilities), scribbles, window)
        else:
            where = random_window(scribbles.shape, window, rng)
        scribbles = paint_window(scribbles, case.reference > 0, where, seed=10 * draw + r)
    return ious


def table(results: dict, rounds: int) -> str:
    head = "| case | policy | " + " | ".join(f"round {r}" for r in range(rounds + 1)) + " |"
    lines = [head, "|---|---|" + "---|" * (rounds + 1)]
    for (case, policy), runs in results.items():
        mean = np.mean(runs, axis=0)
        lines.append(f"| {case} | {policy} | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=["nuclei", "coins", "camera"])
    p.add_argument("--volume", help="the nuclei volume folder (for the nuclei cases)")
    p.add_argument("--draws", nargs="+", type=int, default=[0, 1])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=60, help="training steps per round")
    p.add_argument("--window", type=int, default=64, help="edge of the painted window (px)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--markdown")
    p.add_argument("--json")
    args = p.parse_args(argv)
    start = time.time()
    cases = real_suite.build_cases(args.cases, args.volume)
    results: dict = {}
    for case in cases:
        if case.reference.ndim != 2:
            print(f"skipping {case.name}: 2D cases only", flush=True)
            continue
        for policy in POLICIES:
            for draw in args.draws:
                ious = run_policy(
                    case, policy, draw, args.rounds, args.steps, args.window, args.threads
                )
                results.setdefault((case.name, policy), []).append(ious)
                print(
                    f"{case.name} {policy} draw {draw}: " + " ".join(f"{v:.3f}" for v in ious),
                    flush=True,
                )
    command = "python benchmarks/uncertainty_guided.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    text = (
        f"`{command}`\n\n{machine()}; {load()} at end; {time.time() - start:.0f} s in all; "
        f"{args.steps} steps per round, {args.window} px windows, draws {args.draws}\n\n"
        "IoU on unpainted pixels after each round (mean over draws):\n\n"
        f"{table(results, args.rounds)}\n"
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        rows = [{"case": c, "policy": p_, "ious": r} for (c, p_), r in results.items()]
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
