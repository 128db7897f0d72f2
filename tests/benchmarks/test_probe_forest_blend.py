"""The forest/network blend probe: the blend's ends are the two methods, and its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_forest_blend as probe


def test_the_blends_ends_are_the_forest_and_the_network():
    rng = np.random.default_rng(0)
    forest = rng.dirichlet([1, 1, 1], size=(8, 9)).transpose(2, 0, 1)
    net = rng.dirichlet([1, 1, 1], size=(8, 9)).transpose(2, 0, 1)
    np.testing.assert_array_equal(probe.blend(forest, net, 0.0), forest.argmax(0) + 1)
    np.testing.assert_array_equal(probe.blend(forest, net, 1.0), net.argmax(0) + 1)
    half = probe.blend(forest, net, 0.5)
    np.testing.assert_array_equal(half, (forest + net).argmax(0) + 1)


def test_the_summary_divides_by_the_forests_iou(tmp_path, capsys):
    rec = {"case": "c", "draw": 0}
    for a, iou in zip(probe.ALPHAS, (0.5, 0.55, 0.6, 0.65, 0.75), strict=True):
        rec[f"iou{a}"], rec[f"pa{a}"] = iou, 1.0
    other = {**rec, "draw": 1, "iou0.0": 0.5, "iou1.0": 0.25}
    path = tmp_path / "runs.json"
    path.write_text(json.dumps([rec, other]))
    probe.summary([path])
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["c", "1.000"]
    assert cells[5] == "1.000"  # a = 1: (0.75 + 0.25) / 2 over (0.5 + 0.5) / 2
    assert cells[6:] == ["-"] * 5


def test_the_random_walker_keeps_the_strokes_and_the_confident_pixels():
    import probe_random_walker as prw
    import real_suite as rs

    image = np.zeros((40, 40), np.float32)
    image[10:30, 10:30] = 1.0
    truth = image > 0.5
    case = rs.SuiteCase("square", image, truth, "truth")
    p_fg = np.full((40, 40), 0.01, np.float32)
    p_fg[7:33, 7:33] = 0.5  # unsure within 3 px of the edge
    p_fg[13:27, 13:27] = 0.99
    strokes = np.zeros((40, 40), np.uint8)
    strokes[0, :] = 1
    labels = prw.walk(case, strokes, p_fg, 0.8, 130)
    assert (labels[strokes > 0] == 1).all()
    assert (labels == 2).sum() == truth.sum() and (labels[truth] == 2).all()
