"""The square-root probe: the edge-aware term sees sqrt(max(x, 0)) of the image."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_edge_sqrt as probe

from napari_seglab.core.losses import edge_aware_potts


def test_the_term_is_given_the_square_root_of_the_image():
    image = torch.tensor([[[[-0.5, 0.0, 0.25, 1.0]]]])
    probs = torch.full((1, 2, 1, 4), 0.5)
    seen = []
    wrapped = probe.on_sqrt(lambda p, x, sigma=1.0: seen.append((x, sigma)) or x.sum())
    assert wrapped(probs, image, sigma=0.3) == 1.5
    assert seen[0][1] == 0.3
    assert torch.equal(seen[0][0], torch.tensor([[[[0.0, 0.0, 0.5, 1.0]]]]))
    # a dim edge (0.04 -> 0.09) costs the Potts term less on the square root (0.2 -> 0.3)
    dim = torch.tensor([[[[0.04, 0.09]]]])
    split = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    sigma = 0.05
    on_root = probe.on_sqrt(edge_aware_potts)(split, dim, sigma=sigma)
    assert on_root < edge_aware_potts(split, dim, sigma=sigma)
    assert probe.on_sqrt(edge_aware_potts).__name__ == "edge_aware_potts"
