"""The per-class held-out probe: each fold trained without its strokes, each class's held-out
pixels scored, and the pooled accuracy the suite averages."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_heldout_classes as probe
import real_suite as rs
from synthetic import blobs

from napari_seglab.core.forest import stroke_folds

pytest.importorskip("torch")


def _case() -> rs.SuiteCase:
    image, gt, _ = blobs((64, 64), n=6)
    return rs.SuiteCase("blobs", image, gt, "truth")


def test_each_fold_is_scored_per_class_and_pooled_as_the_suite_does():
    case = _case()
    records = probe.fold_scores(case, draw=0, folds=2, steps=3, settings={})
    scribbles = case.scribbles(0)
    fold = stroke_folds(scribbles, 2)
    trainable = [k for k in (0, 1) if all(np.any((fold != k) & (scribbles == c)) for c in (1, 2))]
    assert [r["fold"] for r in records] == trainable and trainable
    for r in records:
        held = fold == r["fold"]
        for c in (rs.BACKGROUND, rs.FOREGROUND):
            assert r[f"held_{c}"] == np.count_nonzero(held & (scribbles == c))
            assert r[f"train_{c}"] == np.count_nonzero(~held & (scribbles == c))
        shares = [r[f"held_{c}"] / np.count_nonzero(held) for c in (1, 2)]
        pooled = sum(
            share * r[f"acc_{c}"] for c, share in zip((1, 2), shares, strict=True) if share
        )
        assert r["pooled"] == pytest.approx(pooled)


def test_the_table_has_a_line_per_variant_draw_and_fold(capsys):
    rows = [
        (
            "a",
            0,
            {
                "fold": 1,
                "pooled": 0.5,
                "train_1": 9,
                "train_2": 3,
                "held_1": 4,
                "held_2": 2,
                "acc_1": 1.0,
                "acc_2": 0.0,
            },
        )
    ]
    lines = probe.table(rows).splitlines()
    assert lines[0].startswith("| variant | draw | fold |")
    assert lines[2] == "| a | 0 | 1 | 9 | 3 | 1.000 (4) | 0.000 (2) | 0.500 |"
