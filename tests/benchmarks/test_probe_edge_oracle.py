"""The edge-oracle probe's rules: on a blurred disk both put the boundary where the disk's is."""

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_edge_oracle as probe


def _disk(radius: float, brightness: float) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:64, :64]
    truth = (yy - 32) ** 2 + (xx - 32) ** 2 <= radius**2
    return truth, ndi.gaussian_filter(truth * brightness, 1.5)


def test_rules_find_a_blurred_disk_at_any_brightness():
    for brightness in (1.0, 0.2):
        truth, image = _disk(12, brightness)
        x = image / image.max() * brightness  # a dim disk stays dim
        for kind, p in (("LoG", 1.5), ("local", (1.0, 21, 0.5))):
            assert probe.iou(probe.rule_foreground(x, kind, p), truth) > 0.9, (kind, brightness)
    # a share of the object's contrast far from a half places the boundary inside the disk
    truth, image = _disk(12, 1.0)
    assert probe.iou(probe.rule_foreground(image, "local", (1.0, 21, 0.95)), truth) < 0.7


def test_iou_and_labels():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[:1] = True
    assert probe.iou(a, b) == 0.5
    assert probe.iou(a & False, b & False) == 0.0
    assert probe.label("LoG", 1.5) == "LoG 1.5"
    assert probe.label("local", (2.0, 11, 0.4)) == "local 2/11/0.4"
