"""The self-training probe: the pseudo-label term, the smoothed edge weights, the error split,
and the suite's training seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_self_training as probe
import real_suite as rs

torch = pytest.importorskip("torch")


def test_pseudo_labels_add_the_cross_entropy_of_confident_unpainted_pixels_only():
    from napari_seglab.core.training import TrainConfig, make_loss

    config = TrainConfig(loss="ce")
    loss = probe.pseudo_label_loss(config)(None, False)
    base = make_loss(config, None, False)
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, 0] = 8.0  # unpainted, confident: class 1
    logits[0, 0, 0, 1] = 0.5  # unpainted, unsure
    logits[0, 1, 1, :] = 8.0  # painted, confident
    target = torch.tensor([[[[0, 0], [1, 0]]]])  # (B, 1, Y, X), as the training passes it
    mask = torch.tensor([[[[False, False], [True, True]]]])
    for _ in range(probe.START - 1):  # before START: the loss alone
        assert torch.allclose(loss(logits, target, mask=mask), base(logits, target, mask=mask))
    for _ in range(probe.RAMP + 1):
        total = loss(logits, target, mask=mask)
    ce = torch.nn.functional.cross_entropy(
        logits, torch.ones(1, 2, 2, dtype=torch.long), reduction="none"
    )
    expected = base(logits, target, mask=mask) + probe.LAMBDA * ce[0, 0, 0]
    assert torch.allclose(total, expected)


def test_the_smoothed_edges_blur_the_image_and_are_undone_after():
    from napari_seglab.core import training

    x = torch.zeros(1, 1, 21, 21)
    x[..., 10, 10] = 1.0
    y = probe._gaussian(x, 1.0)
    assert y.shape == x.shape and torch.isclose(y.sum(), torch.tensor(1.0))
    assert 0.1 < float(y[..., 10, 10]) < 0.2  # 1 / (2 pi) for a unit Gaussian
    assert torch.allclose(probe._gaussian(torch.full((1, 2, 5, 6, 7), 3.0), 1.0), torch.tensor(3.0))
    potts, noise = training.losses.edge_aware_potts, training.noise_level
    probs = torch.softmax(torch.randn(1, 2, 21, 21), 1)
    with probe.smoothed_edges(1.0):
        assert torch.allclose(
            training.losses.edge_aware_potts(probs, x, sigma=0.1), potts(probs, y, sigma=0.1)
        )
    assert training.losses.edge_aware_potts is potts and training.noise_level is noise


def test_errors_split_the_rim_from_the_rest():
    truth = np.zeros((30, 30), bool)
    truth[5:15, 5:15] = True
    case = rs.SuiteCase("square", truth.astype(np.float32), truth, "truth")
    strokes = np.zeros((30, 30), np.uint8)
    labels = np.where(truth, 2, 1).astype(np.uint8)
    labels[5, 5:15] = 1  # a row of the edge missed: rim
    labels[25, 25] = 2  # a far false positive
    e = probe.errors(case, strokes, labels)
    assert e["fn_rim"] == pytest.approx(10 / 100) and e["fn_far"] == 0
    assert e["fp_far"] == pytest.approx(1 / 100) and e["fp_rim"] == 0


def test_the_suite_trains_each_seed_on_each_draw(tmp_path):
    out = tmp_path / "runs.json"
    rs.main(
        [
            "--cases",
            "coins",
            "--draws",
            "0",
            "--steps",
            "1",
            "--folds",
            "0",
            "--seeds",
            "3",
            "4",
            "--no-forest",
            "--json",
            str(out),
        ]
    )
    runs = json.loads(out.read_text())["runs"]
    assert [(r["draw"], r["seed"], r["steps"]) for r in runs] == [(0, 3, 1), (0, 4, 1)]
    (row,) = rs.summarize(runs)
    assert row["n"] == 2


def test_the_suite_divides_by_the_forests_mean_over_its_seeds(tmp_path):
    """A 100-tree forest's IoU on the nuclei moves by up to 0.025 with its seed alone, as much
    as a setting: ``--forest-seeds`` fits one per seed and the ratios divide by their mean."""
    out = tmp_path / "runs.json"
    argv = ["--cases", "coins", "--draws", "0", "--steps", "1", "--folds", "0"]
    rs.main([*argv, "--forest-seeds", "5", "6", "--json", str(out)])
    runs = json.loads(out.read_text())["runs"]
    forests = [r for r in runs if r["method"] == "random forest"]
    assert [r["seed"] for r in forests] == [5, 6]
    (net,) = [r for r in runs if r["method"] == "seglab"]
    rows = {row["method"]: row for row in rs.summarize(runs)}
    mean = (forests[0]["iou"] + forests[1]["iou"]) / 2
    assert rows["random forest"]["n"] == 2
    assert rows["seglab"]["ratio"] == pytest.approx(net["iou"] / mean)


def test_the_cpu_step_benchmark_times_each_way_on_the_samplers_batches():
    import bench_cpu_step as bench

    (x, target, mask), _ = bench.batches(3, 0, 2)
    assert x.shape == (4, 3, 64, 64) and target.shape == mask.shape == (4, 1, 64, 64)
    assert mask.any() and (target[mask] >= 0).all() and (target[mask] <= 1).all()
    assert bench.batches(1, 4, 1)[0][0].shape == (4, 9, 64, 64)
    for way in bench.WAYS:
        assert bench.step_time(way, 1, 0, steps=1) > 0


def test_the_suites_summary_has_a_column_for_each_variant():
    base = {"case": "c", "kind": "truth", "painted_acc": 1.0, "fg_share": 0.1, "wall": 1.0}
    runs = [
        {**base, "draw": d, "method": "random forest", "budget": None, "iou": 0.5} for d in (0, 1)
    ]
    for method, ious in (("a", (0.5, 0.6)), ("b", (0.75, 0.25))):
        runs += [
            {**base, "draw": d, "method": method, "budget": "9 steps", "iou": iou, "steps": 9}
            for d, iou in enumerate(ious)
        ]
    header, _, row = rs.format_summary(rs.summarize(runs)).splitlines()
    assert "a 9 steps: IoU / forest" in header and "b 9 steps: IoU / forest" in header
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == ["1.10 (1.00)", "1.00 (0.50)"]


def test_the_suites_table_of_earlier_runs_keeps_the_chosen_variants(tmp_path, capsys):
    base = {"case": "c", "kind": "truth", "painted_acc": 1.0, "fg_share": 0.1, "wall": 1.0}
    runs = [{**base, "draw": 0, "method": "random forest", "budget": None, "iou": 0.5}]
    runs += [
        {**base, "draw": 0, "method": m, "budget": "9 steps", "iou": iou, "steps": 9}
        for m, iou in (("a", 0.6), ("b", 0.25))
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"runs": runs}))
    assert rs.main(["--from-json", str(path), "--methods", "b"]) == 0
    header, _, row = capsys.readouterr().out.strip().splitlines()
    assert "seglab 9 steps" in header and "a 9 steps" not in header
    assert [c.strip() for c in row.strip("|").split("|")][3] == "0.50 (0.50)"
