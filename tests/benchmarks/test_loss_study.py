"""The loss study's scores, data and a tiny end-to-end run (outputs exist, scores in [0, 1])."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import loss_study as ls  # noqa: E402

from napari_seglab.core.training import TrainConfig, train  # noqa: E402

IOU_CASES = [
    # pred, truth, expected
    ([1, 1, 0, 0], [1, 1, 0, 0], 1.0),
    ([1, 0, 0, 0], [0, 1, 0, 0], 0.0),
    ([1, 1, 1, 0], [1, 1, 0, 0], 2 / 3),
    ([0, 0, 0, 0], [0, 0, 0, 0], 1.0),
]


@pytest.mark.parametrize(("pred", "truth", "expected"), IOU_CASES)
def test_foreground_iou(pred, truth, expected):
    got = ls.foreground_iou(np.array(pred, bool), np.array(truth, bool))
    assert got == pytest.approx(expected)


def _square(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_boundary_f1_identical_shifted_and_empty():
    a = _square((40, 40), 10, 30, 10, 30)
    assert ls.boundary_f1(a, a) == 1.0
    # shifted by 2 px: every boundary pixel is within the tolerance of 2 px
    assert ls.boundary_f1(np.roll(a, 2, axis=1), a, tolerance=2) == 1.0
    # shifted by 6 px: the vertical edges no longer match
    assert 0.0 < ls.boundary_f1(np.roll(a, 6, axis=1), a, tolerance=2) < 0.8
    empty = np.zeros_like(a)
    assert ls.boundary_f1(empty, empty) == 1.0
    assert ls.boundary_f1(empty, a) == 0.0
    # an object filling the image has no boundary (the image border is not one)
    full = np.ones_like(a)
    assert ls.boundary_f1(full, full) == 1.0
    # 3D: planes are scored in 2D and the matches summed
    vol = np.stack([a, a, empty])
    assert ls.boundary_f1(vol, vol) == 1.0
    with pytest.raises(ValueError, match="shape"):
        ls.boundary_f1(a, vol)


@pytest.mark.parametrize("fraction", [0.5, 0.2, 0.05, 0.01])
def test_synthetic_task_hits_the_foreground_fraction(fraction):
    image, truth = ls.synthetic_task((256, 256), fraction, seed=1)
    assert image.shape == truth.shape == (256, 256)
    assert image.dtype == np.float32 and truth.dtype == bool
    assert truth.mean() == pytest.approx(fraction, rel=0.25)
    again, _ = ls.synthetic_task((256, 256), fraction, seed=1)
    np.testing.assert_array_equal(image, again)


def test_the_studied_tversky_reaches_the_engine_as_its_loss(monkeypatch):
    """The study's Tversky loss is handed to the engine (``train(loss_fn=)``) and is the one
    the network is trained with."""
    variant = ls.VARIANT_BY_KEY["tversky"]
    loss = variant.factory(None, False)
    assert (loss.alpha, loss.beta, loss.include_background) == (0.3, 0.7, False)
    built = []

    def spy(weight, sigmoid):
        built.append(variant.factory(weight, sigmoid))
        return built[-1]

    image, truth = ls.synthetic_task((48, 48), 0.3, seed=0)
    scribbles = np.where(truth, 2, 1).astype(np.uint8)
    scribbles[::2] = 0
    config = TrainConfig(steps=2, device="cpu", crop_size=32, final_prediction=False)
    last = list(train(image, scribbles, config, loss_fn=spy))[-1]
    assert built and isinstance(built[0], type(loss))
    assert last.model.train_settings["loss"].endswith("<locals>.spy -> TverskyLoss")


def test_tiny_study_writes_tables_and_plot(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    planes = [ls.synthetic_task((48, 48), 0.3, seed=s) for s in range(6)]
    tifffile.imwrite(tmp_path / "image.tif", np.stack([p[0] for p in planes]))
    tifffile.imwrite(tmp_path / "mask.tif", np.stack([p[1] for p in planes]).astype(np.uint8))
    out = tmp_path / "out"
    argv = [
        "--steps", "2", "--seeds", "0", "--fractions", "0.2", "--size", "64",
        "--test-size", "64", "--losses", "dice_ce_w", "tversky", "bce_w",
        "--crop-size", "32", "--width", "4", "--depth", "2", "--planes", "2",
        "--image", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask.tif"),
        "--out", str(out), "--suffix", "_test",
    ]  # fmt: skip
    assert ls.main(argv) == 0
    with (out / "loss_study_test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 3  # tasks x label kinds x losses
    assert {r["labels"] for r in rows} == {"dense", "sparse"}
    assert {r["task"] for r in rows} == {"synthetic 20%", "nuclei 3D"}
    for r in rows:
        assert 0.0 <= float(r["iou"]) <= 1.0
        for metric in ("boundary_f1", "precision", "recall"):
            assert 0.0 <= float(r[metric]) <= 1.0
        assert int(r["steps"]) == 2 and float(r["train_s"]) > 0
    md = (out / "loss_study_test.md").read_text()
    assert "## Foreground IoU, sparse labels" in md and "Dice + CE, weighted" in md
    assert "benchmarks/loss_study.py --steps 2" in md and "precision and recall" in md
    assert "Code at commit" in md
    assert (out / "images" / "loss_study_test.png").stat().st_size > 10_000


def test_bad_volume_is_a_clear_error(tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "image.tif", np.zeros((4, 16, 16), np.uint16))
    tifffile.imwrite(tmp_path / "mask.tif", np.zeros((4, 16, 8), np.uint8))
    argv = ["--image", str(tmp_path / "image.tif"), "--mask", str(tmp_path / "mask.tif")]
    assert ls.main([*argv, "--fractions", "0.2", "--out", str(tmp_path)]) == 2
    assert "must be (Z, Y, X) of the same shape" in capsys.readouterr().err
