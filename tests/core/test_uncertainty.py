"""Uncertainty from class probabilities, and the window where to paint next."""

from __future__ import annotations

import numpy as np
import pytest

from napari_seglab.core.uncertainty import most_uncertain_window, uncertainty


def test_margin_and_entropy_are_0_when_sure_and_1_when_tied():
    sure = np.zeros((3, 4, 5), np.float32)
    sure[1] = 1.0
    tied2 = np.full((2, 4, 5), 0.5, np.float32)
    tied3 = np.full((3, 4, 5), 1 / 3, np.float32)
    for kind in ("margin", "entropy"):
        assert np.allclose(uncertainty(sure, kind), 0.0, atol=1e-6)
        assert np.allclose(uncertainty(tied2, kind), 1.0, atol=1e-6)
        assert uncertainty(sure, kind).shape == (4, 5)
        assert uncertainty(sure, kind).dtype == np.float32
    assert np.allclose(uncertainty(tied3, "entropy"), 1.0, atol=1e-6)
    # the margin looks at the two best classes only: 0.4 / 0.4 / 0.2 is a tie
    p = np.array([0.4, 0.4, 0.2], np.float32).reshape(3, 1, 1)
    assert uncertainty(p)[0, 0] == pytest.approx(1.0)
    assert uncertainty(np.array([0.9, 0.1]).reshape(2, 1))[0] == pytest.approx(0.2)


def test_bad_input():
    with pytest.raises(ValueError, match="K >= 2"):
        uncertainty(np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="unknown"):
        uncertainty(np.full((2, 4, 4), 0.5), "variance")
    with pytest.raises(ValueError, match="differ"):
        most_uncertain_window(np.zeros((8, 8)), np.zeros((8, 9)))


def test_the_window_is_where_unpainted_pixels_are_most_uncertain():
    u = np.zeros((200, 300), np.float32)
    u[20:60, 30:70] = 0.9  # unsure, but painted below
    u[120:160, 200:240] = 0.6  # unsure and unpainted
    painted = np.zeros(u.shape, np.uint8)
    painted[20:60, 30:70] = 1
    ys, xs = most_uncertain_window(u, painted, size=40)
    assert (ys, xs) == (slice(120, 160), slice(200, 240))
    ys, xs = most_uncertain_window(u, None, size=40)
    assert (ys, xs) == (slice(20, 60), slice(30, 70))
    # at the border the window stays inside the image; larger than the image: all of it
    u2 = np.zeros((50, 60), np.float32)
    u2[0:5, 55:60] = 1.0
    ys, xs = most_uncertain_window(u2, None, size=32)
    assert ys.start == 0 and xs.stop == 60 and xs.stop - xs.start == 32
    assert most_uncertain_window(u2, None, size=500) == (slice(0, 50), slice(0, 60))


def test_a_stack_gives_a_window_in_one_plane():
    u = np.zeros((5, 64, 64), np.float32)
    u[3, 10:30, 40:60] = 1.0
    zs, ys, xs = most_uncertain_window(u, None, size=20)
    assert (zs, ys, xs) == (slice(3, 4), slice(10, 30), slice(40, 60))
