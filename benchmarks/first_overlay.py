"""Time to the first useful overlay: what the user sees in the first seconds after Train.

For each case of the real-image suite (:mod:`real_suite`) and scribble draw, this replays what
the widget does after a click on Train, with the product's own
:class:`~napari_seglab.core.preview.Previewer`, in two runs:

- ``forest+cnn`` (the widget's default for a new model): the quick random forest is fitted and
  predicts the whole image (the first overlay); the network trains and its previews (every
  ``--every`` seconds, averaged weights) replace it once the previewer accepts them; its last
  prediction always does;
- ``cnn only``: the network's previews from the first one on (the widget without the forest).

Every overlay is scored by its foreground IoU against the reference on the unpainted pixels.
The table gives, at t seconds after Train, the mean IoU over draws of the overlay on screen
divided by the mean IoU of the suite's baseline forest (100 trees, not timed; 0 while nothing
is on screen; the same ratio as :mod:`real_suite`'s, which a draw where the forest nearly fails
cannot inflate), the seconds until the overlay on screen is at least as good as that draw's
forest (``t>=forest``, the slowest draw), and for ``forest+cnn`` the share of network
previews where the previewer kept the worse of the two overlays (``wrong pick``, against the
quick forest's IoU).
CNN on ``--threads`` torch threads (the widget's default here: all cores but one); the forest
on all cores, as in the widget.

    python benchmarks/first_overlay.py --seconds 30 --draws 0 1 \\
        --markdown benchmarks/results/first_overlay.md --json benchmarks/results/first_overlay.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
import scribble_benchmark as sb
from scribble_sim import FOREGROUND, foreground_iou

from napari_seglab.core.preview import Previewer

TIMES = (1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


class _Recorder(Previewer):
    """The product's previewer, also recording each network preview it was offered."""

    def __init__(self, *args: Any, score: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.score = score
        self.offered: list[dict[str, Any]] = []

    def accept(self, prediction, scribbles, step):
        shown = super().accept(prediction, scribbles, step)
        self.offered.append({"step": step, "iou": self.score(prediction.labels), "shown": shown})
        return shown


def run_case(
    case: rs.SuiteCase, draw: int, seconds: float, every: float, threads: int, forest: bool
) -> dict[str, Any]:
    """One replay; the overlays shown (seconds after Train, IoU, source) and those offered."""
    from napari_seglab.core.training import TrainConfig, train

    scribbles = case.scribbles(draw)
    ref = case.reference > 0

    def score(labels: np.ndarray) -> float:
        return foreground_iou(np.asarray(labels) == FOREGROUND, ref, scribbles)

    previewer = _Recorder(scribbles.shape, every, score=score)
    shown: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if forest:
        got = previewer.quick_forest(case.image, scribbles, case.channel_axis)
        if got is not None:
            shown.append(
                {"t": time.perf_counter() - t0, "iou": score(got[0].labels), "src": "forest"}
            )
    config = TrainConfig(
        seconds=seconds,
        seed=draw,
        channel_axis=case.channel_axis,
        preview_every=every,
        num_threads=threads,
    )
    gen = train(case.image, scribbles, config, previewer=previewer)
    try:
        for report in gen:
            if report.prediction is not None:
                t = time.perf_counter() - t0
                shown.append({"t": t, "iou": score(report.prediction.labels), "src": "cnn"})
                shown[-1]["step"] = report.step
    finally:
        gen.close()
    return {"shown": shown, "offered": previewer.offered}


def baseline_forest_iou(case: rs.SuiteCase, draw: int) -> float:
    """IoU of the suite's baseline forest (100 trees, as :mod:`real_suite`), not timed."""
    from napari_seglab.core.forest import fit_forest

    scribbles = case.scribbles(draw)
    forest = fit_forest(case.image, scribbles, channel_axis=case.channel_axis, heldout_folds=0)
    labels = forest.predict().labels
    return foreground_iou(labels == FOREGROUND, case.reference > 0, scribbles)


def at(shown: list[dict[str, Any]], t: float) -> float:
    """IoU of the overlay on screen at ``t`` (0 before the first)."""
    iou = 0.0
    for o in shown:
        if o["t"] <= t:
            iou = o["iou"]
    return iou


def first_good(shown: list[dict[str, Any]], target: float) -> float:
    return next((o["t"] for o in shown if o["iou"] >= target - 1e-9), float("inf"))


def wrong_pick(rec: dict[str, Any]) -> float:
    """Share of offered network previews where the previewer showed the worse overlay (of the
    quick forest's and the network's)."""
    f = rec["quick_iou"]
    wrong = [o["shown"] != (o["iou"] > f) for o in rec["forest+cnn"]["offered"]]
    return float(np.mean(wrong)) if wrong else float("nan")


def table(records: list[dict[str, Any]]) -> str:
    cases = list(dict.fromkeys(r["case"] for r in records))
    head = ["case", "forest IoU", "quick forest s", "overlay"] + [f"{t:g} s" for t in TIMES]
    head += ["t>=forest", "wrong pick"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        recs = [r for r in records if r["case"] == case]
        f_iou = [r["forest_iou"] for r in recs]
        f_mean = float(np.mean(f_iou))
        f_t = np.mean([r["forest+cnn"]["shown"][0]["t"] for r in recs])
        for name in ("forest+cnn", "cnn only"):
            pairs = list(zip(recs, f_iou, strict=True))
            cells = [
                f"{np.mean([at(r[name]['shown'], t) for r in recs]) / f_mean:.2f}" for t in TIMES
            ]
            worst = max(first_good(r[name]["shown"], f) for r, f in pairs)
            t_good = "never" if not np.isfinite(worst) else f"{worst:.1f}"
            pick = f"{np.nanmean([wrong_pick(r) for r in recs]):.0%}" if name != "cnn only" else ""
            lead = [case, f"{np.mean(f_iou):.3f}", f"{f_t:.2f}"] if name != "cnn only" else [""] * 3
            lines.append("| " + " | ".join([*lead, name, *cells, t_good, pick]) + " |")
    return "\n".join(lines)


def warm_up() -> None:
    """Two steps and a forest on a small image: what torch and scikit-learn import on first
    use is paid here, as the widget pays it when it opens."""
    from napari_seglab.core.forest import fit_forest
    from napari_seglab.core.training import TrainConfig, train

    rng = np.random.default_rng(0)
    image = rng.random((64, 64)).astype(np.float32)
    scribbles = np.zeros((64, 64), np.uint8)
    scribbles[5:10, 5:30] = 1
    scribbles[40:45, 5:30] = 2
    for _ in train(image, scribbles, TrainConfig(steps=2, crop_size=32)):
        pass
    fit_forest(image, scribbles, n_estimators=2)


def main(argv: Sequence[str] | None = None) -> int:
    from napari_seglab.core.device import default_num_threads

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=None)
    p.add_argument("--volume", default=None, help="folder with image.tif and mask.tif (3D)")
    p.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    p.add_argument("--seconds", type=float, default=30.0, help="network training budget")
    p.add_argument("--every", type=float, default=2.0, help="seconds between previews")
    p.add_argument("--threads", type=int, default=default_num_threads())
    p.add_argument("--markdown", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--from-json", default=None, help="no runs: the table of an earlier --json")
    args = p.parse_args(argv)
    if args.from_json:
        print(table(json.loads(Path(args.from_json).read_text())["runs"]))
        return 0
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    print(f"machine: {sb.machine()}; {sb.load()}", flush=True)
    warm_up()
    records = []
    for case in rs.build_cases(args.cases, args.volume):
        for draw in args.draws:
            rec: dict[str, Any] = {"case": case.name, "kind": case.kind, "draw": draw}
            for name, forest in (("forest+cnn", True), ("cnn only", False)):
                rec[name] = run_case(case, draw, args.seconds, args.every, args.threads, forest)
            first = rec["forest+cnn"]["shown"][0]
            rec["quick_iou"] = first["iou"] if first["src"] == "forest" else float("nan")
            rec["forest_iou"] = baseline_forest_iou(case, draw)
            line = " ".join(
                f"{o['t']:.1f}s:{o['iou']:.3f}{'F' if o['src'] == 'forest' else ''}"
                for o in rec["forest+cnn"]["shown"]
            )
            print(f"{case.name} draw {draw}: {line}", flush=True)
            records.append(rec)
    header = f"{sb.machine()}; {sb.load()} at end; network on {args.threads} thread(s)"
    out = table(records)
    print()
    print(header)
    print(out)
    if args.markdown:
        Path(args.markdown).write_text(f"`{command}`\n\n{header}\n\n{out}\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
