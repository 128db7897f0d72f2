"""The focal-early probe's loss: focal loss at the first step, Dice + CE from step FADE on, a
mix between, with the step count kept when the engine builds the loss again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import probe_focal_early as pfe  # noqa: E402

torch = pytest.importorskip("torch")


def test_the_focal_part_fades_from_one_to_zero():
    assert pfe.focal_weight(0, 10) == 1.0
    assert pfe.focal_weight(5, 10) == 0.5
    assert pfe.focal_weight(10, 10) == 0.0
    assert pfe.focal_weight(50, 10) == 0.0


def test_focal_first_then_dice_ce_and_the_count_survives_a_rebuild():
    from napari_seglab.core.losses.registry import build_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 2, 8, 8, generator=g)
    target = torch.randint(0, 2, (2, 1, 8, 8), generator=g)
    mask = torch.rand(2, 1, 8, 8, generator=g) > 0.5
    focal = build_loss("focal")(logits, target, mask=mask)
    dice_ce = build_loss("dice_ce")(logits, target, mask=mask)
    assert not torch.isclose(focal, dice_ce)

    factory = pfe.focal_early_loss(fade=2)
    loss = factory(None, False)
    assert torch.isclose(loss(logits, target, mask=mask), focal)  # step 0
    mixed = loss(logits, target, mask=mask)  # step 1: half and half
    assert torch.isclose(mixed, 0.5 * focal + 0.5 * dice_ce)
    assert set(loss.last_parts) == {"dice", "ce", "focal"}
    rebuilt = factory(None, False)  # the class weights changed: the count goes on
    assert torch.isclose(rebuilt(logits, target, mask=mask), dice_ce)  # step 2
    assert set(rebuilt.last_parts) == {"dice", "ce"}
