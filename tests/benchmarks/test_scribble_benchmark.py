"""Quick checks of the benchmark's pure parts: simulator, synthetic data, score, forest, table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import scribble_benchmark as sb  # noqa: E402
from scribble_sim import foreground_iou, simulate_scribbles, synthetic_nuclei  # noqa: E402


@pytest.fixture(scope="module")
def nuclei() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_nuclei((160, 160), seed=3)


IOU_CASES = [
    # pred, truth, scribbles, expected
    ([1, 1, 0, 0], [1, 1, 0, 0], None, 1.0),
    ([1, 0, 0, 0], [0, 1, 0, 0], None, 0.0),
    ([1, 1, 1, 0], [1, 1, 0, 0], None, 2 / 3),
    ([1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], 1.0),  # the wrong pixel was painted: not counted
    ([0, 0, 0, 0], [0, 0, 0, 0], None, 1.0),
]


@pytest.mark.parametrize(("pred", "truth", "scribbles", "expected"), IOU_CASES)
def test_foreground_iou(pred, truth, scribbles, expected):
    s = None if scribbles is None else np.array(scribbles)
    assert foreground_iou(np.array(pred), np.array(truth), s) == pytest.approx(expected)


def test_foreground_iou_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        foreground_iou(np.zeros(3), np.zeros(4), None)


def test_synthetic_nuclei(nuclei):
    image, labels = nuclei
    assert image.shape == labels.shape == (160, 160)
    assert image.dtype == np.uint16
    assert 0.05 < (labels > 0).mean() < 0.5
    assert labels.max() >= 5
    # nuclei are brighter than the background on average
    assert image[labels > 0].mean() > image[labels == 0].mean()
    again, _ = synthetic_nuclei((160, 160), seed=3)
    np.testing.assert_array_equal(image, again)


def test_synthetic_nuclei_blur_widens_the_edges_of_the_same_nuclei(nuclei):
    # Nearly noise-free, so that the pixel-to-pixel steps are the edges' own.
    sharp, labels = synthetic_nuclei((160, 160), snr=1e3, seed=3)
    blurred, same = synthetic_nuclei((160, 160), snr=1e3, blur=4.0, seed=3)
    np.testing.assert_array_equal(labels, same)

    def step(im):
        return float(np.abs(np.diff(im.astype(float), axis=1)).mean())

    assert step(blurred) < 0.8 * step(sharp)  # 0.72 here; equal if blur were ignored
    # the default blur is the one the suite's other nuclei cases were made with
    np.testing.assert_array_equal(synthetic_nuclei((160, 160), blur=1.2, seed=3)[0], nuclei[0])


def test_suite_has_a_blurred_noisy_nuclei_case():
    import real_suite as rs

    (case,) = rs.build_cases(["blurred nuclei"], None)
    plain = rs.CASES["nuclei"](None)
    assert case.kind == "truth" and case.image.shape == (512, 512)
    # the same nuclei as the plain case, seen through a wider blur and more noise
    np.testing.assert_array_equal(case.reference, plain.reference > 0)
    assert case.image[case.reference].mean() > case.image[~case.reference].mean()


@pytest.mark.parametrize("fraction", [0.01, 0.03])
def test_simulated_scribbles_2d(nuclei, fraction):
    _, labels = nuclei
    s = simulate_scribbles(labels, fraction=fraction, seed=0)
    assert s.shape == labels.shape and s.dtype == np.uint8
    assert set(np.unique(s)) == {0, 1, 2}
    assert not np.any((s == 2) & (labels == 0)), "foreground strokes leave the objects"
    assert not np.any((s == 1) & (labels > 0)), "background strokes touch objects"
    assert 0.5 * fraction < (s > 0).mean() < 2 * fraction
    np.testing.assert_array_equal(s, simulate_scribbles(labels, fraction=fraction, seed=0))
    assert not np.array_equal(s, simulate_scribbles(labels, fraction=fraction, seed=1))


def test_simulated_scribbles_3d_and_binary(nuclei):
    _, labels = nuclei
    volume = np.stack([labels > 0] * 9)  # a binary mask is split into objects
    s = simulate_scribbles(volume, slices=3, seed=0)
    painted = [z for z in range(9) if s[z].any()]
    assert len(painted) == 3 and 0 not in painted and 8 not in painted
    assert not np.any((s == 2) & ~volume)
    assert not np.any((s == 1) & volume)


def test_forest_learns(nuclei):
    image, labels = nuclei
    scribbles = simulate_scribbles(labels, fraction=0.03, seed=0)
    case = sb.Case("test", image, labels > 0, scribbles)
    res = sb.run_forest(case, n_estimators=10, n_jobs=1)
    assert res["fg"].shape == labels.shape
    assert res["wall"] >= res["fit_s"] > 0
    assert foreground_iou(res["fg"], case.truth, scribbles) > 0.6


def test_forest_features_3d_modes():
    vol = np.random.default_rng(0).random((4, 12, 13)).astype(np.float32)
    f3 = sb.forest_features(vol, mode="3d", sigma_max=2, num_sigma=2)
    f2 = sb.forest_features(vol, mode="2d", sigma_max=2, num_sigma=2)
    assert f3.shape[:3] == f2.shape[:3] == vol.shape
    assert f3.shape[-1] > f2.shape[-1]  # more Hessian eigenvalues in 3D


def test_settings_parsing():
    from dataclasses import dataclass, field

    @dataclass
    class Model:
        width: int = 16

    @dataclass
    class Config:
        lr: float = 1e-3
        norm: str = "batch"
        model: Model = field(default_factory=Model)

    got = sb.parse_settings(["lr=3e-3", "model.width=32", "norm=instance"])
    assert got == {"lr": 3e-3, "model.width": 32, "norm": "instance"}
    cfg = sb.apply_settings(Config(), got)
    assert cfg == Config(lr=3e-3, norm="instance", model=Model(width=32))
    with pytest.raises(SystemExit, match="no setting 'nope'"):
        sb.apply_settings(Config(), {"nope": 1})


@pytest.mark.parametrize("item", ["seed=3", "steps=10", "seconds=5", "num_threads=2", "device=cpu"])
def test_settings_the_run_sets_itself_are_refused(item):
    # a variant's seed=3 would otherwise replace --seeds while the record says otherwise
    with pytest.raises(SystemExit, match="set by the benchmark for each run"):
        sb.parse_settings(["lr=1e-3", item])


def test_summary_table_and_plot(tmp_path):
    records = [
        {"method": sb.FOREST, "budget": None, "seed": s, "iou": 0.8, "wall": 1.0} for s in (0, 1)
    ]
    records += [
        {
            "method": "seglab",
            "budget": b,
            "seed": s,
            "iou": iou,
            "wall": b + 1,
            "it_s": 10.0,
            "steps": 10 * b,
        }
        for s in (0, 1)
        for b, iou in ((2.0, 0.7 + 0.01 * s), (5.0, 0.9))
    ]
    rows = sb.summarize(records)
    assert [(r["method"], r["budget"]) for r in rows] == [
        (sb.FOREST, None),
        ("seglab", 2.0),
        ("seglab", 5.0),
    ]
    assert rows[2]["vs_forest"] == pytest.approx(0.9 / 0.8)
    text = sb.format_text(rows)
    assert "0.705 ± 0.007" in text and "1.12" in text
    md = sb.format_markdown(rows)
    assert md.count("\n") == 4 and md.startswith("| method")
    out = tmp_path / "plot.png"
    sb.plot(rows, out, "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_missing_inputs():
    with pytest.raises(SystemExit, match="--synthetic"):
        sb.main(["--no-forest"])
    with pytest.raises(SystemExit, match="--simulate"):
        sb.main(["--image", "a.tif", "--mask", "b.tif"])


def test_end_to_end_tiny(tmp_path, capsys):
    """The whole script on a tiny synthetic image with very short budgets."""
    md, js, png = tmp_path / "t.md", tmp_path / "t.json", tmp_path / "p.png"
    argv = ["--synthetic", "--synthetic-size", "96", "--fraction", "0.03", "--budgets", "0.3"]
    argv += ["--trees", "5", "--threads", "1", "--device", "cpu", "--no-warmup"]
    argv += ["--variant", "small", "crop_size=32", "model.width=4"]
    argv += ["--markdown", str(md), "--json", str(js), "--plot", str(png)]
    assert sb.main(argv) == 0
    out = capsys.readouterr().out
    assert "random forest" in out and "small" in out
    text = md.read_text()
    assert "| random forest |" in text and "`crop_size=32`" in text
    runs = json.loads(js.read_text())["runs"]
    assert [r["method"] for r in runs] == ["random forest", "small"]
    assert runs[1]["steps"] >= 1 and 0.0 <= runs[1]["iou"] <= 1.0
    assert png.stat().st_size > 1000


def test_sparse_scribbles_paint_few_objects_and_keep_background_away(nuclei):
    from scribble_sim import simulate_sparse_scribbles

    _, labels = nuclei
    s = simulate_sparse_scribbles(labels, seed=0)
    assert s.dtype == np.uint8 and s.shape == labels.shape
    assert set(np.unique(s)) == {0, 1, 2}
    assert np.all(labels[s == 2] > 0)  # foreground strokes inside objects
    near = ndi.binary_dilation(labels > 0, iterations=3)
    assert not np.any(near[s == 1])  # background strokes kept away from every object
    painted_objects = np.unique(labels[s == 2])
    assert 1 <= len(painted_objects) <= 0.3 * labels.max()
    np.testing.assert_array_equal(s, simulate_sparse_scribbles(labels, seed=0))


def test_synthetic_filaments_are_thin_and_sparse():
    from scribble_sim import synthetic_filaments

    image, labels = synthetic_filaments((256, 256), seed=1)
    assert image.dtype == np.uint16 and labels.shape == (256, 256)
    assert 0.01 < (labels > 0).mean() < 0.15
    # thin: no foreground pixel is more than 4 px from the background
    assert ndi.distance_transform_edt(labels > 0).max() <= 4
    assert image[labels > 0].mean() > image[labels == 0].mean()


def test_suite_stroke_folds_and_worst_class_accuracy():
    import real_suite as rs

    s = np.array([[1, 1, 0, 1, 0, 2, 2, 0, 2]])
    folds = rs.stroke_folds(s, 2)
    assert np.all((folds >= 0) == (s > 0))
    # every connected stroke lies in one fold, and each class reaches both folds
    for a, b in [(0, 1), (5, 6)]:
        assert folds[0, a] == folds[0, b]
    for k in (1, 2):
        assert set(folds[s == k]) == {0, 1}
    assert rs.worst_class_accuracy(np.array([1, 1, 1, 2]), np.array([1, 2, 2, 0])) == 0.0
    assert rs.worst_class_accuracy(np.array([1, 2, 2, 1]), np.array([1, 2, 0, 2])) == 0.5
