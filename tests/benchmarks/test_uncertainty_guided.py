"""The simulated user of the uncertainty-guided benchmark: strokes in the chosen window only,
true to the reference, never over painted pixels; and a tiny run end to end."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import uncertainty_guided as ug  # noqa: E402


def test_the_user_paints_the_window_only_and_truly():
    reference = np.zeros((120, 160), bool)
    reference[30:60, 30:60] = True
    reference[80:110, 100:140] = True
    scribbles = np.zeros(reference.shape, np.uint8)
    scribbles[35:40, 35:40] = 1  # a wrong stroke already there: kept as it is
    window = (slice(20, 84), slice(20, 84))
    out = ug.paint_window(scribbles, reference, window, seed=0)
    new = out != scribbles
    assert new.any()
    outside = np.ones(reference.shape, bool)
    outside[window] = False
    assert not new[outside].any()
    assert np.all(out[35:40, 35:40] == 1)
    assert np.all(reference[new & (out == 2)]) and not np.any(reference[new & (out == 1)])
    assert set(np.unique(out[new])) == {1, 2}


def test_random_windows_lie_inside_the_image():
    rng = np.random.default_rng(0)
    for _ in range(20):
        ys, xs = ug.random_window((100, 70), 64, rng)
        assert ys.start >= 0 and ys.stop <= 100 and ys.stop - ys.start == 64
        assert xs.start >= 0 and xs.stop <= 70 and xs.stop - xs.start == 64


def test_a_tiny_run_writes_its_table(tmp_path, capsys):
    out = tmp_path / "ug.md"
    argv = ["--cases", "coins", "--draws", "0", "--rounds", "1", "--steps", "2"]
    assert ug.main([*argv, "--markdown", str(out)]) == 0
    text = out.read_text()
    assert "| coins | uncertain |" in text and "| coins | random |" in text
    assert "round 1" in text
