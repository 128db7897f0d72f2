"""The probes built on ``probe_forest_teacher``'s variants harness: the teacher's crops follow
the strokes' crops and its term counts only unpainted pixels it labels; the guard variant leaves
the edge term to its gate; the wide jitter moves the painted pixel to the crop's margin; the
summary reads the runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_forest_teacher as probe
import probe_guard_edge as guard_probe
from synthetic import centre_offsets, painted_pixel_sampler

torch = pytest.importorskip("torch")


def test_teacher_labels_are_the_confident_classes_only():
    p = np.array([[[0.9, 0.5, 0.2]], [[0.1, 0.5, 0.8]]])  # (K=2, 1, 3)
    assert probe.teacher_labels(p, tau=0.7).tolist() == [[1, 0, 2]]


def test_the_sparse_teacher_keeps_the_classes_painted_on_few_pixels_only():
    labels = np.array([[1, 2, 2, 0, 3]], np.uint8)
    scribbles = np.zeros((10, 10), np.uint8)
    scribbles[:6] = 1  # 60 pixels
    scribbles[6, :5] = 2  # 5 pixels
    scribbles[7:, :] = 3  # 30 pixels
    assert probe.sparse_teacher(labels, scribbles).tolist() == [[0, 2, 2, 0, 3]]
    scribbles[7:, :] = 1
    assert probe.sparse_teacher(labels, scribbles).tolist() == [[0, 2, 2, 0, 0]]
    scribbles[:5], scribbles[5:] = 1, 2  # 50 pixels each: no class is sparse
    assert not probe.sparse_teacher(labels, scribbles).any()
    sparse = probe.weight_schedule("sparse 0.3")
    assert sparse(0) == sparse(1000) == 0.3


def test_the_teacher_is_cropped_and_flipped_with_the_strokes_and_split_off_again():
    from napari_seglab.core.data import Normalization, as_zcyx
    from napari_seglab.core.sampling import CropSampler

    # every pixel's intensity is its column, so a crop tells where each of its pixels came from
    image = np.tile(np.arange(48, dtype=np.float32), (40, 1))
    labels = np.zeros((40, 48), np.uint8)
    labels[5:35, 10] = 1
    labels[20, 20:40] = 2
    teacher = np.where(image < 24, 1, 2).astype(np.uint8)  # class 1 left of column 24
    view = as_zcyx(image, spatial_shape=labels.shape)
    norm = Normalization.fit(view)

    def column(value):
        return norm.apply(np.full((1, 1, 1), value, np.float32))[0, 0, 0]

    original = CropSampler.batch
    with probe.teaching(teacher, 2) as held:
        sampler = CropSampler(view, labels, norm, 32, 8, np.random.default_rng(1))
        for _ in range(5):
            x, y = sampler.batch(4)  # flips and transposes: augment is on
            t = held["crop"]
            assert y.shape == t.shape == (4, 1, 32, 32)
            assert np.array_equal(t, np.where(x < column(23.5), 1, 2))
            assert np.allclose(x[y == 1], column(10))
            assert (x[y == 2] > column(19.5)).all() and (x[y == 2] < column(39.5)).all()
            assert set(np.unique(y)) <= {0, 1, 2}
    assert CropSampler.batch is original


def test_the_teacher_term_counts_unpainted_pixels_it_labels_with_its_weight():
    from napari_seglab.core.training import TrainConfig, make_loss

    config = TrainConfig(loss="ce")
    held = {"crop": np.array([[[[2, 0], [1, 2]]]])}  # (B, 1, Y, X): 0 = no teacher
    loss = probe.teacher_loss(config, held, lambda step: 0.5)(None, False)
    base = make_loss(config, None, False)
    logits = torch.randn(1, 2, 2, 2)
    target = torch.tensor([[[[0, 0], [0, 0]]]])
    mask = torch.tensor([[[[False, False], [True, False]]]])  # (1, 0) painted
    ce = torch.nn.functional.cross_entropy(
        logits, torch.tensor([[[1, 0], [0, 1]]]), reduction="none"
    )[0]
    expected = base(logits, target, mask=mask) + 0.5 * (ce[0, 0] + ce[1, 1]) / 2
    assert torch.allclose(loss(logits, target, mask=mask), expected)
    fade = probe.weight_schedule("teacher")
    assert fade(0) == probe.LAMBDA and fade(probe.FADE) == 0.0 and fade(10 * probe.FADE) == 0.0


def test_the_guard_variant_acts_as_if_the_edge_term_were_off_and_keeps_it(monkeypatch):
    from napari_seglab.core import training

    seen = []

    def guard(self, step):  # stands in for the engine's guard: what does it see?
        seen.append(self.edge_scale)
        self.boosted = step

    monkeypatch.setattr(training._Run, "guard", guard)
    run = SimpleNamespace(edge_scale=1.0)
    with guard_probe.guard_keeps_edge():
        training._Run.guard(run, 40)
    assert seen == [0.0] and run.edge_scale == 1.0 and run.boosted == 40
    assert training._Run.guard is guard


def test_the_summary_reads_mean_and_worst_run(tmp_path, capsys):
    runs = [
        {"seed": 1, "default": 0.5, "default pa": 1.0},
        {"seed": 2, "default": 0.3, "default pa": 0.9},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"case": "c", "draw": 0, "forest": 0.5, "runs": runs}]))
    probe.summary([str(path)], variants=("default", "not run"))  # only what was run
    row = capsys.readouterr().out.strip().splitlines()[-1]
    assert row == "| c | 2 | 0.500 | 0.800 / 0.600 | 0.900 | - |"


def test_the_probe_pins_the_crop_shift_it_compares_and_undoes_it():
    import probe_jitter_lr as jitter_probe

    from napari_seglab.core.sampling import CropSampler

    original = CropSampler.max_shift
    reach = {}
    for name, shift in (("quarter", jitter_probe.quarter), ("half", jitter_probe.half)):
        with jitter_probe.crop_shift(shift):
            reach[name] = centre_offsets(painted_pixel_sampler())
        assert CropSampler.max_shift is original
    assert reach["quarter"].min() == 16 and reach["quarter"].max() == 48
    assert reach["half"].min() == 4 and reach["half"].max() == 60
