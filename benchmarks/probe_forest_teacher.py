"""Probe: does the quick forest, used as a teacher on the unpainted pixels, keep the network
from learning only its strokes?

Runs where a class has tens of painted pixels (``skimage.data.cell()``'s 11-pixel foreground
stroke, one microaneurysms draw) can end with every painted pixel reproduced and the objects
missed, while the forest, fitted on the same strokes in a second, gets them
(``docs/real-images.md``, "Training seeds"). Here the forest's confident classes are added as
targets of a cross-entropy term on the unpainted pixels of each training crop (knowledge
distillation from a fixed teacher; Hinton et al., 2015, with hard labels):

- ``default``: the engine's defaults;
- ``teacher``: plus the term, weight ``LAMBDA`` falling linearly to 0 at step ``FADE`` (the
  network starts from the forest's view of the image and the strokes have the last word);
- ``teacher const``: plus the term at ``LAMBDA_CONST`` for the whole run;
- ``sparse 0.3``, ``sparse 1``: the term at 0.3 or 1 for the whole run, on the forest's
  pixels of the classes painted on fewer than ``SPARSE_PAINTED`` pixels only (none: the
  defaults), where the network has least to learn from and the forest generalises.

The teacher is the 100-tree forest of the suite (``fit_forest``, its features), fitted on the
same strokes; its class counts only where its probability is at least ``TAU``. Every variant
trains with each seed of ``--seeds``; IoU against the reference on unpainted pixels and the
worse class's painted-pixel accuracy; with ``--folds``, held-out-stroke accuracy (forest and
network fitted on the other folds). One JSON line per run; ``--summary`` prints the table of
earlier runs (IoU relative to the forest's, mean and worst over draws and seeds).

Run (1 thread each; the two side by side on two cores)::

    python benchmarks/probe_forest_teacher.py --out ft_a.json --cases cell microaneurysms \\
        thin "small dense" --draws 0 1 --seeds 100 101
    python benchmarks/probe_forest_teacher.py --out ft_b.json --cases nuclei retina coins \\
        camera --draws 0 1 --seeds 100 101
    python benchmarks/probe_forest_teacher.py --summary ft_a.json ft_b.json
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite as rs
from probe_forest_blend import by_case, forest_probabilities, network, probe_main, run_cases
from probe_self_training import loss_with_term

VARIANTS = ("default", "teacher", "teacher const", "sparse 0.3", "sparse 1")
#: Teacher: probability a forest class needs to count, start weight, step it has faded at,
#: and the weight of the constant variant.
TAU, LAMBDA, FADE, LAMBDA_CONST = 0.7, 1.0, 80, 0.3
#: The sparse variants teach the classes painted on fewer pixels than this.
SPARSE_PAINTED = 50
#: Every variant trains without the engine's own forest teacher (``TrainConfig.forest_teacher``,
#: which grew out of ``sparse 0.3``): ``default`` is the engine without it.
NO_ENGINE_TEACHER = {"forest_teacher": 0.0}


def teacher_labels(probabilities: np.ndarray, tau: float = TAU) -> np.ndarray:
    """``(*spatial)`` uint8: the forest's class id (1..K) where its probability is at least
    ``tau``, 0 elsewhere; ``probabilities`` is ``(K, *spatial)``."""
    p = np.asarray(probabilities)
    return np.where(p.max(0) >= tau, p.argmax(0) + 1, 0).astype(np.uint8)


@contextlib.contextmanager
def teaching(teacher: np.ndarray, num_classes: int):
    """Within the block, the training's crop sampler also crops ``teacher`` (``(*spatial)``,
    0 = none, 1..K) with the same windows and augmentation; yields a dict whose ``"crop"`` is
    the last batch's teacher ``(B, 1, h, w)`` int64.

    The teacher rides in the sampler's label array as ``label + (K + 1) * teacher`` (so the
    crops, padding and flips stay in step) and is split off again in ``batch``.
    """
    from napari_seglab.core.sampling import CropSampler

    base = num_classes + 1
    held: dict = {}
    set_labels, batch = CropSampler.set_labels, CropSampler.batch

    def set_labels_t(self, labels):
        set_labels(self, labels)
        t = teacher if teacher.ndim == 3 else teacher[None]
        self.labels = (self.labels.astype(np.int64) + base * t).astype(np.uint8)

    def batch_t(self, size):
        x, y = batch(self, size)
        held["crop"] = y // base
        return x, y % base

    CropSampler.set_labels, CropSampler.batch = set_labels_t, batch_t
    try:
        yield held
    finally:
        CropSampler.set_labels, CropSampler.batch = set_labels, batch


def teacher_loss(config, held: dict, weight_at):
    """A loss factory for ``train(loss_fn=)``: the configured loss plus the cross-entropy of
    the logits ``(B, K, *spatial)`` against the teacher's classes on the unpainted pixels it
    labels, weighted by ``weight_at(step)`` (step counted from 0)."""
    import torch
    import torch.nn.functional as F

    def term(logits, mask, step):
        w = weight_at(step)
        t = torch.from_numpy(held["crop"]).to(logits.device)[:, 0]
        chosen = (~mask[:, 0]) & (t > 0)
        n = chosen.sum()
        if not (w > 0 and n > 0 and logits.shape[1] > 1):
            return None
        ce = F.cross_entropy(logits, (t - 1).clamp(min=0), reduction="none")
        return w * (ce * chosen).sum() / n

    return loss_with_term(config, term)


def sparse_teacher(labels: np.ndarray, scribbles: np.ndarray) -> np.ndarray:
    """``labels`` (:func:`teacher_labels`) kept for the classes painted on fewer than
    :data:`SPARSE_PAINTED` pixels of ``scribbles``, 0 elsewhere."""
    counts = np.bincount(np.asarray(scribbles).ravel(), minlength=int(labels.max()) + 1)
    sparse = [k for k in range(1, counts.size) if 0 < counts[k] < SPARSE_PAINTED]
    return np.where(np.isin(labels, sparse), labels, 0).astype(np.uint8)


def weight_schedule(variant: str):
    if variant.startswith("sparse"):
        w = float(variant.split()[1])
        return lambda step: w
    if variant == "teacher":
        return lambda step: LAMBDA * max(0.0, 1.0 - step / FADE)
    return lambda step: LAMBDA_CONST


_defaults: dict = {}


def train_labels(case, scribbles, seed, steps, variant, probs=None) -> np.ndarray:
    """Predicted class ids ``(*spatial)`` of the variant after ``steps`` steps."""
    from napari_seglab.core.training import TrainConfig

    if variant == "default":
        key = (case.name, hashlib.sha1(np.ascontiguousarray(scribbles)).hexdigest(), seed, steps)
        if key not in _defaults:  # the sparse variants are the defaults where none is sparse
            if len(_defaults) >= 32:
                _defaults.pop(next(iter(_defaults)))
            labels = network(case, scribbles, seed, steps, **NO_ENGINE_TEACHER).labels
            _defaults[key] = np.asarray(labels)
        return _defaults[key]
    if probs is None:
        probs = forest_probabilities(case, scribbles)
    teacher = teacher_labels(probs)
    if variant.startswith("sparse"):
        teacher = sparse_teacher(teacher, scribbles)
        if not teacher.any():
            return train_labels(case, scribbles, seed, steps, "default")
    with teaching(teacher, probs.shape[0]) as held:
        loss_fn = teacher_loss(TrainConfig(), held, weight_schedule(variant))
        return np.asarray(
            network(case, scribbles, seed, steps, loss_fn=loss_fn, **NO_ENGINE_TEACHER).labels
        )


def measure_variants(args, variants, train, case, scribbles) -> dict:
    """One case and draw: the forest's IoU, and for each seed of ``args.seeds`` and each
    variant, ``train(case, scribbles, seed, steps, variant, probs)``'s scores (IoU, worse
    class's painted-pixel accuracy, foreground share; held-out strokes with ``args.folds``)."""
    probs = forest_probabilities(case, scribbles)
    forest = (probs.argmax(0) + 1).astype(np.uint8)
    rec = {"forest": rs.score(case, scribbles, forest)["iou"], "runs": []}
    for seed in args.seeds:
        run = {"seed": seed}
        for variant in variants:
            labels = train(case, scribbles, seed, args.steps, variant, probs)
            s = rs.score(case, scribbles, labels)
            run[variant], run[f"{variant} pa"] = s["iou"], s["painted_acc"]
            run[f"{variant} fg"] = s["fg_share"]
            if args.folds:
                run[f"{variant} held-out"] = rs.heldout(
                    case,
                    scribbles,
                    args.folds,
                    lambda part, v=variant, sd=seed: train(case, part, sd, args.steps, v, None),
                )
        rec["runs"].append(run)
    return rec


def summary(paths, variants=VARIANTS) -> None:
    """Per case and variant: mean IoU over draws and seeds / mean forest IoU, and the worst
    run's IoU / the mean forest IoU (as ``real_suite.py``'s "worst run"); the worse class's
    painted-pixel accuracy (lowest run) and held-out-stroke accuracy (mean) where measured.
    Only the variants that every run of the files has are shown."""
    runs = [run for _, recs in by_case(paths) for r in recs for run in r["runs"]]
    variants = [v for v in variants if all(v in run for run in runs)]
    cols = ["runs", "forest IoU"]
    cols += [f"{v}: mean / worst" for v in variants]
    cols += [f"{v}: painted min" for v in variants] + [f"{v}: held-out" for v in variants]
    print("| case | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for case, recs in by_case(paths):
        forest = float(np.mean([r["forest"] for r in recs]))
        ratios = {v: [run[v] / forest for r in recs for run in r["runs"]] for v in variants}
        cells = [str(len(ratios[variants[0]])), f"{forest:.3f}"]
        cells += [f"{np.mean(ratios[v]):.3f} / {np.min(ratios[v]):.3f}" for v in variants]
        for v in variants:
            cells.append(f"{min(run[f'{v} pa'] for r in recs for run in r['runs']):.3f}")
        for v in variants:
            held = [run.get(f"{v} held-out", np.nan) for r in recs for run in r["runs"]]
            cells.append("-" if np.all(np.isnan(held)) else f"{np.nanmean(held):.3f}")
        print(f"| {case} | " + " | ".join(cells) + " |")


def variants_main(argv, doc: str, out: str, variants, train) -> int:
    """The command line of a variants probe: run the cases (``train`` as for
    :func:`measure_variants`), or ``--summary`` of the JSON files of earlier runs."""

    def run(args):
        chosen = tuple(args.variants)
        run_cases(
            args,
            lambda case, scribbles, draw: measure_variants(args, chosen, train, case, scribbles),
        )

    return probe_main(
        argv,
        doc,
        out,
        run,
        lambda paths: summary(paths, variants),
        folds=True,
        seeds=True,
        variants=variants,
    )


def main(argv=None) -> int:
    return variants_main(argv, __doc__, "probe_forest_teacher.json", VARIANTS, train_labels)


if __name__ == "__main__":
    raise SystemExit(main())
