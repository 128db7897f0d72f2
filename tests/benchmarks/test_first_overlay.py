"""The first-overlay table: the overlay on screen at each time, as a ratio to the forest that
the real-image suite uses (mean IoU over mean forest IoU), and when it first reaches each
draw's forest."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import first_overlay as fo  # noqa: E402


def _record(draw: int, forest_iou: float, shown: list[tuple[float, float, str]]) -> dict:
    overlays = [{"t": t, "iou": iou, "src": src} for t, iou, src in shown]
    return {
        "case": "astronaut",
        "kind": "silver",
        "draw": draw,
        "forest_iou": forest_iou,
        "quick_iou": overlays[0]["iou"],
        "forest+cnn": {"shown": overlays, "offered": [{"step": 50, "iou": 0.9, "shown": True}]},
        "cnn only": {"shown": [o for o in overlays if o["src"] == "cnn"], "offered": []},
    }


def test_a_draw_where_the_forest_nearly_fails_does_not_inflate_the_ratio():
    # Draw 0: the forest gets 0.01 and the network 0.9; draw 1: both 0.9.
    records = [
        _record(0, 0.01, [(0.5, 0.01, "forest"), (20.0, 0.9, "cnn")]),
        _record(1, 0.9, [(0.5, 0.8, "forest"), (20.0, 0.9, "cnn")]),
    ]
    rows = fo.table(records).splitlines()
    forest_row = rows[2].split(" | ")
    cnn_row = rows[3].split(" | ")
    # forest IoU column: the mean over draws
    assert forest_row[1] == "0.455"
    # at 1 s the quick forest is on screen: (0.01 + 0.8) / 2 / 0.455
    assert forest_row[4] == f"{(0.01 + 0.8) / 2 / 0.455:.2f}"
    # at 30 s the network: 0.9 / 0.455, not the mean of 90x and 1x
    assert forest_row[9] == f"{0.9 / 0.455:.2f}" == "1.98"
    assert cnn_row[9] == "1.98"
    # nothing of the network's is on screen before 20 s
    assert cnn_row[4] == "0.00"
    # each draw reaches its own forest: draw 0 at 0.5 s, draw 1 at 20 s (the slowest)
    assert forest_row[10] == "20.0"
