"""Probe: should the guard leave the edge-aware term to its gate instead of switching it off?

When a painted class's running stroke recall stays below ``GUARD_RECALL`` after 30 steps, the
guard (``napari_seglab.core.guard``) first switches the edge-aware term off for the rest of the
run, then raises the class's loss weight. But the gate (``edge_gate``) already holds the term
at 0 while a class's recall is under 50%, and reopens it once the strokes are learnt. On
``skimage.data.cell()`` the runs where the guard had acted ended at 0.53-0.85 IoU, against
0.89-0.95 for the others (``docs/real-images.md``, "Training seeds"): is it the late learning,
or the boundaries drawn without the term for the rest of the run?

- ``default``: the engine's defaults;
- ``keep edge``: the guard never switches the term off; it raises the class's weight at once
  (the gate still holds the term while the strokes are not reproduced).

A run in which the guard does not act is the same in both variants (same seed). One JSON line
per case and draw (the forest's IoU and, per seed, each variant's scores and the guard's
notes); ``--summary`` prints the table (IoU relative to the forest's, mean and worst run).

Run (1 thread each; the two side by side on two cores)::

    python benchmarks/probe_guard_edge.py --out ge_a.json --cases cell microaneurysms thin \\
        --draws 0 1 --seeds 100 101 102 103
    python benchmarks/probe_guard_edge.py --out ge_b.json --cases retina "small dense" nuclei \\
        coins --draws 0 1 --seeds 100 101
    python benchmarks/probe_guard_edge.py --summary ge_a.json ge_b.json
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_forest_blend import train_network
from probe_forest_teacher import variants_main

VARIANTS = ("default", "keep edge")


@contextlib.contextmanager
def guard_keeps_edge():
    """Within the block, the guard acts as if the edge-aware term were already off: it raises
    the class's weight and leaves the term to its gate."""
    from napari_seglab.core import training

    guard = training._Run.guard

    def keep(self, step):
        scale = self.edge_scale
        self.edge_scale = 0.0
        try:
            guard(self, step)
        finally:
            self.edge_scale = scale

    training._Run.guard = keep
    try:
        yield
    finally:
        training._Run.guard = guard


def train_labels(case, scribbles, seed, steps, variant, probs=None) -> np.ndarray:
    """Predicted class ids ``(*spatial)`` of the variant after ``steps`` steps (one thread)."""
    from napari_seglab.core.inference import predict

    within = guard_keeps_edge() if variant == "keep edge" else contextlib.nullcontext()
    with within:
        report = train_network(case, scribbles, seed, steps)
    print(f"  {case.name} seed {seed} {variant}: {list(report.notes)}", flush=True)
    return np.asarray(predict(report.model, case.image, channel_axis=case.channel_axis).labels)


def main(argv=None) -> int:
    return variants_main(argv, __doc__, "probe_guard_edge.json", VARIANTS, train_labels)


if __name__ == "__main__":
    raise SystemExit(main())
