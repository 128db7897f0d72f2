"""Probe: what happens to a long or a continued training, step by step, and what the
optimiser can do about it.

At 660 steps ``skimage.data.microaneurysms()`` (draw 0) ended with its strokes and little else
in most seeds (``benchmarks/results/probe_steps.md``). This probe trains one case of the
real-image suite for a step budget (``--steps``), optionally followed by a second training
that continues the model (``--then``: a second click on Train; with ``--add`` the first
training has half the strokes and the second all of them). Every ``--every`` steps it
predicts the whole image with the averaged weights (what a viewer's preview shows) and
records:

- IoU against the case's reference (ground truth or silver standard) on the unpainted pixels,
  the predicted foreground share and the worse class's painted-pixel accuracy (as
  ``real_suite.score``), and the accuracy on the added strokes;
- the largest gradient norm and the largest update norm (the L2 norm of the change of all
  raw weights in one step) since the last record.

Variants (``VARIANTS``; every other setting the engine's default):

- ``adam``: Adam; a continued training starts a fresh Adam at the full rate
  (``lr_continued=3e-3, resume_optimizer=False``), as the engine did before this probe;
- ``amsgrad``: Adam's AMSGrad variant (``amsgrad=True``);
- ``autoclip``: each step's gradient norm clipped to the 10th percentile of the norms so far
  (AutoClip; Seetharaman et al., MLSP 2020);
- ``warm-up``: the continued training's rate rising over 30 steps (``lr_warmup=30``);
- ``resume``: the continued training resumes the Adam state (``resume_optimizer=True``, the
  engine's default since this probe);
- ``lr/10``: the continued training, with a fresh Adam, at a tenth of the rate
  (``lr_continued=3e-4``);
- ``edge off``: the continued training at the full rate without the edge-aware term;
- ``teacher``, ``teacher x10``: a mean-teacher consistency term on the unpainted pixels
  (``consistency=1`` or ``10``, the teacher's decay ``consistency_ema``'s default) in both
  trainings, the continued one resuming the Adam state (the engine's default); ``teacher
  then``: the term (``consistency=1``) in the continued training only.

One thread per run; the budgets are steps, so results do not depend on the machine's load.
The commands behind ``benchmarks/results/probe_optimizer.md`` are listed there, e.g.::

    python benchmarks/probe_optimizer.py --case microaneurysms --draw 0 --seeds 100 101 102 \
        --steps 660 --variants adam amsgrad --out benchmarks/results/probe_optimizer.json
    python benchmarks/probe_optimizer.py --case microaneurysms --draw 0 \
        --seeds 100 101 102 103 --steps 165 --then 165 --every 15 --variants adam lr/10 \
        --out then.json
    python benchmarks/probe_optimizer.py --summary then.json --plot then.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
import scribble_benchmark as sb

from napari_seglab.core.forest import stroke_folds
from napari_seglab.core.preview import Previewer

#: A continued training with a fresh Adam at the full rate (the engine's behaviour before
#: ``resume_optimizer`` became the default).
FULL = {"lr_continued": 3e-3, "resume_optimizer": False}
#: The variants: settings of ``TrainConfig`` for the first training and for a continued one
#: (``--then``), and AutoClip's percentile (0: no clipping).
VARIANTS: dict[str, dict[str, Any]] = {
    "adam": {"first": {}, "then": FULL, "autoclip": 0},
    "amsgrad": {"first": {"amsgrad": True}, "then": {"amsgrad": True, **FULL}, "autoclip": 0},
    "autoclip": {"first": {}, "then": FULL, "autoclip": 10},
    "warm-up": {"first": {}, "then": {"lr_warmup": 30, **FULL}, "autoclip": 0},
    "resume": {
        "first": {"resume_optimizer": True},
        "then": {**FULL, "resume_optimizer": True},
        "autoclip": 0,
    },
    "lr/10": {
        "first": {},
        "then": {"lr_continued": 3e-4, "resume_optimizer": False},
        "autoclip": 0,
    },
    "edge off": {"first": {}, "then": {"lambda_edge": 0.0, **FULL}, "autoclip": 0},
    "teacher": {"first": {"consistency": 1.0}, "then": {"consistency": 1.0}, "autoclip": 0},
    "teacher x10": {"first": {"consistency": 10.0}, "then": {"consistency": 10.0}, "autoclip": 0},
    "teacher then": {"first": {}, "then": {"consistency": 1.0}, "autoclip": 0},
}


class StepPreviewer(Previewer):
    """A previewer due every ``steps`` steps (the engine's is due every so many seconds)."""

    def __init__(self, spatial_shape: tuple[int, ...], steps: int) -> None:
        super().__init__(spatial_shape, every=1.0)
        self.steps = int(steps)

    def due(self, step: int) -> bool:
        return step % self.steps == 0


def _norm(tensors) -> float:
    """The L2 norm of all the tensors together (what ``clip_grad_norm_`` measures)."""
    import torch

    return float(torch.sqrt(sum((t.float() ** 2).sum() for t in tensors)))


@contextmanager
def autoclip(percentile: float) -> Iterator[None]:
    """While open, ``torch.optim.Adam`` clips each step's gradient norm to the ``percentile``
    of the norms seen so far in its run (AutoClip: Seetharaman, Wichern, Pardo, Le Roux,
    MLSP 2020); 0 leaves Adam as it is."""
    import torch

    if not percentile:
        yield
        return
    adam = torch.optim.Adam

    class ClippedAdam(adam):
        def step(self, closure=None):
            params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
            norms = self.__dict__.setdefault("norms", [])
            norms.append(_norm(p.grad for p in params))
            torch.nn.utils.clip_grad_norm_(params, float(np.percentile(norms, percentile)))
            return super().step(closure)

    torch.optim.Adam = ClippedAdam
    try:
        yield
    finally:
        torch.optim.Adam = adam


def _train(case, scribbles, config, model, every, offset, records, scored, added) -> Any:
    """One call of ``train`` on ``scribbles``; appends its records (steps counted from
    ``offset``; scores against all the strokes ``scored``, and the share of the ``added``
    strokes' pixels predicted as painted) and returns the model."""

    from napari_seglab.core.training import train

    grad = update = 0.0
    previous = None if model is None else [p.detach().clone() for p in model.net.parameters()]
    gen = train(
        case.image, scribbles, config, model=model, previewer=StepPreviewer(scribbles.shape, every)
    )
    for report in gen:
        params = [p.detach() for p in report.model.net.parameters()]
        if previous is not None and not report.done:
            change = _norm(p - q for p, q in zip(params, previous, strict=True))
            update = max(update, change)
        grads = [p.grad for p in report.model.net.parameters() if p.grad is not None]
        if grads:
            grad = max(grad, _norm(grads))
        previous = [p.clone() for p in params]
        if report.prediction is None:
            continue
        labels = np.asarray(report.prediction.labels)
        scores = rs.score(case, scored, labels)
        records.append(
            {
                "step": offset + int(report.step),
                "iou": scores["iou"],
                "fg": scores["fg_share"],
                "painted": scores["painted_acc"],
                "added": rs.accuracy(labels, scored, added) if added.any() else float("nan"),
                "grad": grad,
                "update": update,
            }
        )
        grad = update = 0.0
    return report.model


def trace(
    case: rs.SuiteCase,
    draw: int,
    seed: int,
    steps: int,
    every: int,
    variant: str,
    then: int = 0,
    add: bool = False,
) -> list[dict[str, float]]:
    """Train ``case`` (scribble draw ``draw``) for ``steps`` steps, then, with ``then``, a
    second training of ``then`` steps that continues the model (a second click on Train;
    seed ``seed + 1000``). With ``add``, the first training has half the strokes of each
    class (``stroke_folds``, 2 folds; a class of one stroke keeps it) and the second all of
    them: strokes added before the second click. One record every ``every`` steps and at the
    end of each: ``step`` (counted over both), ``iou`` (on the pixels no stroke paints),
    ``fg`` (predicted foreground share), ``painted`` (the worse class's painted-pixel
    accuracy, all strokes), ``added`` (accuracy on the added strokes' pixels), ``grad`` and
    ``update`` (largest L2 norms of the gradient and of one step's change of the raw weights
    since the last record; the first step of a continued training counts from the model it
    continues)."""
    from napari_seglab.core.training import TrainConfig

    spec = VARIANTS[variant]
    scribbles = case.scribbles(draw)
    added = stroke_folds(scribbles, 2) == 0 if add else np.zeros(scribbles.shape, bool)
    for k in np.unique(scribbles[scribbles > 0]):
        painted = scribbles == k
        if not (painted & ~added).any():  # a class of one stroke keeps it for the first
            added &= ~painted
    first = np.where(added, 0, scribbles).astype(scribbles.dtype)
    records: list[dict[str, float]] = []
    with autoclip(spec["autoclip"]):
        config = TrainConfig(
            steps=steps, seed=seed, num_threads=1, channel_axis=case.channel_axis, **spec["first"]
        )
        model = _train(case, first, config, None, every, 0, records, scribbles, added)
        if then:
            config = replace(config, steps=then, seed=seed + 1000, **spec["then"])
            _train(case, scribbles, config, model, every, steps, records, scribbles, added)
    return records


def checkpoints(runs: Sequence[dict[str, Any]]) -> list[int]:
    """The steps the summary shows: the end of the first and of the continued training, or
    the quarters of a single one."""
    steps = max(run["steps"] for run in runs)
    then = max(run.get("then", 0) for run in runs)
    if then:
        return [steps, steps + then]
    return [steps // 4, steps // 2, 3 * steps // 4, steps]


def summary_table(runs: Sequence[dict[str, Any]], at: Sequence[int]) -> str:
    """Markdown: one row per variant and seed (and per case and draw, when the runs have
    several), the IoU at the steps ``at`` (the nearest record), the lowest IoU after the first
    quarter of the first training, and the largest update."""
    cases = len({(run["case"], run["draw"]) for run in runs}) > 1
    head = ["variant", "seed", *(f"IoU at {s}" for s in at), "lowest IoU after 1/4", "max update"]
    if cases:
        head = ["case", "draw", *head]
    adds = any(run.get("add") for run in runs)
    if adds:
        head += ["added strokes' acc, end of first", "end of second"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        rec = run["records"]
        steps = np.array([r["step"] for r in rec])
        ious = [rec[int(np.argmin(np.abs(steps - s)))]["iou"] for s in at]
        late = [r["iou"] for r in rec if r["step"] >= run["steps"] / 4]
        cells = [run["variant"], str(run["seed"]), *(f"{v:.3f}" for v in ious)]
        if cases:
            cells = [run["case"], str(run["draw"]), *cells]
        cells += [f"{min(late):.3f}", f"{max(r['update'] for r in rec):.2f}"]
        if adds:
            first = [r for r in rec if r["step"] <= run["steps"]][-1]
            cells += [f"{first.get('added', np.nan):.3f}", f"{rec[-1].get('added', np.nan):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: Sequence[dict[str, Any]], path: str) -> None:
    """IoU and largest update norm against the step, one line per run, a colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    colours = {
        "adam": "tab:red",
        "amsgrad": "tab:blue",
        "autoclip": "tab:green",
        "warm-up": "tab:purple",
        "resume": "tab:orange",
        "lr/10": "tab:brown",
        "edge off": "tab:gray",
        "teacher": "tab:cyan",
        "teacher x10": "tab:olive",
        "teacher then": "tab:pink",
    }
    for run in runs:
        rec = run["records"]
        steps = [r["step"] for r in rec]
        colour = colours.get(run["variant"], "k")
        label = f"{run['variant']}, seed {run['seed']}"
        axes[0].plot(steps, [r["iou"] for r in rec], color=colour, alpha=0.8, label=label)
        axes[1].plot(steps, [r["update"] for r in rec], color=colour, alpha=0.8)
    first = runs[0]
    axes[0].set_ylabel("IoU (averaged weights)")
    title = f"{first['case']}, draw {first['draw']}: {first['steps']} steps"
    if first.get("then"):
        title += f", then {first['then']} more (a second Train)"
    axes[0].set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=7, ncol=3, loc="lower left")
    axes[1].set_ylabel("largest update of a step (L2)")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", default="microaneurysms", choices=list(rs.CASES))
    p.add_argument("--volume", default=None, help="the nuclei volume's folder (its cases)")
    p.add_argument("--draw", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    p.add_argument("--steps", type=int, default=660)
    p.add_argument("--then", type=int, default=0, help="steps of a continued training")
    p.add_argument(
        "--add", action="store_true", help="half the strokes first, all for the continued one"
    )
    p.add_argument("--every", type=int, default=10, help="steps between records")
    p.add_argument("--variants", nargs="+", default=["adam", "amsgrad"], choices=list(VARIANTS))
    p.add_argument("--out", help="JSON of every run's records")
    p.add_argument("--plot", help="PNG of the traces")
    p.add_argument("--summary", nargs="+", metavar="JSON", help="print the table of JSON files")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.summary:
        runs = [run for path in args.summary for run in json.loads(Path(path).read_text())]
        print(summary_table(runs, checkpoints(runs)))
        if args.plot:
            plot(runs, args.plot)
        return 0
    (case,) = rs.build_cases([args.case], args.volume)
    runs = []
    for variant in args.variants:
        for seed in args.seeds:
            records = trace(
                case, args.draw, seed, args.steps, args.every, variant, args.then, args.add
            )
            runs.append(
                {
                    "case": case.name,
                    "draw": args.draw,
                    "variant": variant,
                    "seed": seed,
                    "steps": args.steps,
                    "then": args.then,
                    "add": args.add,
                    "records": records,
                }
            )
            last = records[-1]
            print(
                f"{variant} seed {seed}: IoU {last['iou']:.3f} at step {last['step']}", flush=True
            )
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1))
    if args.plot:
        plot(runs, args.plot)
    print(sb.machine())
    print(summary_table(runs, checkpoints(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
