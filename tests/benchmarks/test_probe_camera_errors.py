"""The camera probe: errors against the silver reference, inside the tripod's box and out."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_camera_errors as probe


def test_errors_are_split_between_the_tripod_box_and_the_rest():
    reference = np.zeros((409, 512), bool)
    reference[50:150, 50:150] = True
    scribbles = np.zeros((409, 512), np.uint8)
    scribbles[100, 60:70] = 2
    scribbles[300, 260:280] = 1  # a background stroke on the tripod
    labels = np.where(reference, 2, 1).astype(np.uint8)
    labels[300:320, 260:280] = 2  # the tripod called foreground, over its stroke too
    labels[60, 60:64] = 1  # four pixels of the object missed
    out = probe.errors(labels, reference, scribbles)
    assert out["false fg"] == 400 - 20 and out["wrong in tripod box"] == 380
    assert out["false bg"] == 4 and out["wrong elsewhere"] == 4
    assert out["painted bg"] == 0.0 and out["painted fg"] == 1.0
    assert out["iou"] == (10000 - 10 - 4) / (10000 - 10 + 380)
