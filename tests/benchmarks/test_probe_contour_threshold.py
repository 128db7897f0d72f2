"""The contour-threshold probe: the foreground's boundary moved to the image's strongest edges."""

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_contour_threshold as probe


def _disk(radius_shift: float):
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    truth = r < 20
    image = ndi.gaussian_filter(truth.astype(float) * 100 + 10, 2)
    # a network that draws the disk too small by 3 px: p = 0.5 at r = 17
    p_fg = 1 / (1 + np.exp((r - (20 - radius_shift)) / 1.5))
    return truth, image, p_fg


def test_a_disk_drawn_too_small_grows_to_its_edge():
    truth, image, p_fg = _disk(3.0)
    edges = probe.edge_magnitude(image, None)
    t = probe.choose_threshold(p_fg, edges)
    assert t < 0.3

    def iou(a):
        return (a & truth).sum() / (a | truth).sum()

    assert iou(p_fg > t) > iou(p_fg > 0.5) + 0.1


def test_a_disk_drawn_right_keeps_its_threshold():
    _, image, p_fg = _disk(0.0)
    t = probe.choose_threshold(p_fg, probe.edge_magnitude(image, None))
    assert 0.35 <= t <= 0.65


def test_colour_channels_add_in_quadrature_and_an_empty_mask_scores_zero():
    grey = np.zeros((32, 32))
    grey[:, 16:] = 1.0
    rgb = np.stack([grey, grey, np.zeros_like(grey)], axis=-1)
    one = probe.edge_magnitude(grey, None)
    np.testing.assert_allclose(probe.edge_magnitude(rgb, -1), np.sqrt(2) * one)
    assert probe.contour_strength(np.zeros((32, 32), bool), one) == 0.0


def test_each_object_gets_its_own_threshold():
    yy, xx = np.mgrid[:96, :160]
    r1, r2 = np.hypot(yy - 48, xx - 40), np.hypot(yy - 48, xx - 120)
    truth = (r1 < 20) | (r2 < 20)
    image = ndi.gaussian_filter((r1 < 20) * 20.0 + (r2 < 20) * 200.0 + 10, 2)
    # the network draws the dim disk 3 px too small and the bright one 3 px too large
    p_fg = np.maximum(1 / (1 + np.exp((r1 - 17) / 1.5)), 1 / (1 + np.exp((r2 - 23) / 1.5)))
    edges = probe.edge_magnitude(image, None)

    def iou(a):
        return (a & truth).sum() / (a | truth).sum()

    one_t = p_fg > probe.choose_threshold(p_fg, edges)
    each = probe.per_object(p_fg, edges)
    best = probe.per_object(p_fg, edges, truth)
    assert iou(each) > iou(one_t) + 0.05 and iou(each) > 0.9
    assert iou(best) >= iou(each) - 0.01
