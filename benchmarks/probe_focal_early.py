"""Probe: does focal loss in the first steps only learn a rare class sooner without its cost
later?

On the real-image suite (``benchmarks/results/probe_loss_suite.md``) focal loss reproduced
``cell()``'s 11-pixel foreground stroke after 27 steps in every run (Dice + CE, the default, in
one of four), but after 165 steps one microaneurysms run learnt little more than its strokes
and the nuclei lost. Focal loss (Lin et al., ICCV 2017) scales each pixel's cross-entropy by
``(1 - p)^gamma``: the many well-classified background pixels stop outweighing the few
painted foreground ones. Variants:

- ``default``: the engine's defaults (Dice + CE);
- ``focal early``: ``a * focal + (1 - a) * (Dice + CE)``, ``a`` falling linearly from 1 at the
  first step to 0 at step ``FADE`` (whatever the budget);
- ``dice_focal``: Dice + focal throughout (``loss="dice_focal"``; offered, not run for
  ``benchmarks/results/probe_focal_early.md``).

Every variant trains with each seed of ``--seeds``; scores and table as
``probe_forest_teacher.py``.

Run (1 thread each; the two side by side on two cores; the 27-step run as the first with
``--steps 27`` and all four cases)::

    python benchmarks/probe_focal_early.py --variants default "focal early" \\
        --cases cell microaneurysms --draws 0 1 --seeds 100 101 --steps 165 --out fe_a.json
    python benchmarks/probe_focal_early.py --variants default "focal early" \\
        --cases retina nuclei --draws 0 1 --seeds 100 101 --steps 165 --out fe_b.json
    python benchmarks/probe_focal_early.py --summary fe_a.json fe_b.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_forest_blend import network
from probe_forest_teacher import variants_main

VARIANTS = ("default", "focal early", "dice_focal")
#: Step at which the focal part of ``focal early`` has faded out.
FADE = 60


def focal_weight(step: int, fade: int = FADE) -> float:
    """The focal part's weight ``a`` at ``step`` (counted from 0): 1, falling to 0 at ``fade``."""
    return max(0.0, 1.0 - step / fade)


def focal_early_loss(fade: int = FADE):
    """A loss factory for ``train(loss_fn=)``: ``a * focal + (1 - a) * (Dice + CE)`` with
    ``a = focal_weight(step, fade)``; the step count goes on when the factory is called again
    (the class weights changed). Shapes as the engine's losses: logits ``(B, K, *spatial)``,
    target ``(B, 1, *spatial)`` class indices, mask ``(B, 1, *spatial)`` True where painted."""
    import torch

    from napari_seglab.core.losses.registry import build_loss

    calls = [0]

    class FocalEarly(torch.nn.Module):
        def __init__(self, weight, sigmoid):
            super().__init__()
            self.focal = build_loss("focal", weight, sigmoid)
            self.dice_ce = build_loss("dice_ce", weight, sigmoid)

        def forward(self, logits, target, mask=None):
            step, calls[0] = calls[0], calls[0] + 1
            a = focal_weight(step, fade)
            loss = self.dice_ce(logits, target, mask=mask)
            self.last_parts = dict(self.dice_ce.last_parts)
            if a > 0:
                focal = self.focal(logits, target, mask=mask)
                self.last_parts["focal"] = focal.detach()
                loss = a * focal + (1 - a) * loss
            return loss

    return FocalEarly


def train_labels(case, scribbles, seed, steps, variant, probs=None) -> np.ndarray:
    """Predicted class ids ``(*spatial)`` of the variant after ``steps`` steps (one thread)."""
    if variant == "focal early":
        pred = network(case, scribbles, seed, steps, loss_fn=focal_early_loss())
    elif variant == "dice_focal":
        pred = network(case, scribbles, seed, steps, loss="dice_focal")
    else:
        pred = network(case, scribbles, seed, steps)
    return np.asarray(pred.labels)


def main(argv=None) -> int:
    return variants_main(argv, __doc__, "probe_focal_early.json", VARIANTS, train_labels)


if __name__ == "__main__":
    raise SystemExit(main())
