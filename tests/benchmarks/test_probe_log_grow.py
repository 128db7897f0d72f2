"""The growth probe: the foreground grown to the bright side of the image's edges."""

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_log_grow as probe


def _dim_disk(radius=12.0, drawn=9.0):
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 32, xx - 32)
    truth = r < radius
    image = ndi.gaussian_filter(truth * 30.0 + 100, 1.5)
    return truth, image, r < drawn


def test_a_disk_drawn_too_small_grows_to_its_edge_and_no_further():
    truth, image, drawn = _dim_disk()
    sides = probe.bright_sides(image, scales=(1.0, 2.0))
    grown = probe.grow(drawn, sides[2.0], 5)
    assert drawn.sum() < grown.sum() and np.all(grown >= drawn)  # never removes

    def iou(a):
        return (a & truth).sum() / (a | truth).sum()

    assert iou(drawn) < 0.6 and iou(grown) > 0.9
    # one step grows by one pixel at most
    assert np.all(probe.grow(drawn, sides[2.0], 1) <= ndi.binary_dilation(drawn))


def test_adapt_grows_thick_objects_at_the_large_scale_and_leaves_thin_ones():
    drawn = _dim_disk()[2]
    line = np.zeros_like(drawn)
    line[5, 5:60] = True  # one pixel thick: thinner than r
    sides = {1.0: np.ones_like(drawn), 2.0: np.ones_like(drawn)}
    out = probe.adapt(drawn | line, sides, k=1, r=2.0)
    assert np.array_equal(out[:3], np.zeros_like(out[:3]))  # the line did not grow upwards
    assert out[5].sum() == line[5].sum()
    assert out.sum() > (drawn | line).sum()  # the disk grew
    assert not probe.adapt(np.zeros_like(drawn), sides, 1, 2.0).any()


def test_a_dark_foreground_grows_to_its_own_side():
    truth, image, drawn = _dim_disk()
    scribbles = np.zeros(truth.shape, np.uint8)
    scribbles[32, 28:36] = 2
    scribbles[2, 2:10] = 1
    dark = 230.0 - image  # the same disk, darker than its background
    sides = probe.bright_sides(dark, scribbles, scales=(2.0,))
    unoriented = probe.bright_sides(dark, scales=(2.0,))
    assert not (sides[2.0] & unoriented[2.0]).any()  # the other side of every edge
    grown = probe.grow(drawn, sides[2.0], 5)
    assert (grown & truth).sum() / (grown | truth).sum() > 0.9
