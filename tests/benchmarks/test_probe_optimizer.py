"""The optimiser probe: a preview every few steps with the averaged weights, the largest
update between records, a continued training counted on, AutoClip clipping to its
percentile and undone afterwards, and the summary and plot read the runs back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_optimizer as probe
import real_suite as rs
from synthetic import blobs

torch = pytest.importorskip("torch")


def _case() -> rs.SuiteCase:
    image, gt, _ = blobs((64, 64), n=6)
    return rs.SuiteCase("blobs", image, gt, "truth")


def test_a_record_every_few_steps_and_a_continued_training_counts_on():
    records = probe.trace(_case(), draw=0, seed=3, steps=6, every=3, variant="adam", then=3)
    assert [r["step"] for r in records] == [3, 6, 9]
    for r in records:
        assert 0.0 <= r["iou"] <= 1.0 and 0.0 <= r["fg"] <= 1.0 and 0.0 <= r["painted"] <= 1.0
        assert r["update"] > 0 and r["grad"] > 0


def test_strokes_added_before_the_second_training_are_scored():
    records = probe.trace(_case(), 0, 3, 3, 3, "lr/10", then=3, add=True)
    assert [r["step"] for r in records] == [3, 6]
    assert all(0.0 <= r["added"] <= 1.0 for r in records)


def test_the_autoclip_variant_clips_once_a_gradient_outgrows_the_earlier_ones():
    # 4 steps whose gradients only shrink are never clipped; 12 steps on blobs are
    runs = {v: probe.trace(_case(), 0, 3, 12, 1, v) for v in ("adam", "autoclip")}
    updates = {v: [r["update"] for r in rec] for v, rec in runs.items()}
    assert updates["adam"][:2] == updates["autoclip"][:2]
    assert updates["adam"] != updates["autoclip"]


def test_autoclip_clips_to_the_percentile_of_the_norms_so_far_and_is_undone():
    adam = torch.optim.Adam
    w = torch.nn.Parameter(torch.zeros(2))
    with probe.autoclip(50):
        opt = torch.optim.Adam([w], lr=0.1)
        seen = []
        for g in (3.0, 4.0, 100.0):
            w.grad = torch.tensor([g, 0.0])
            opt.step()
            seen.append(float(w.grad.norm()))
    assert torch.optim.Adam is adam
    # norms so far 3 | 3, 4 | 3, 4, 100: medians 3, 3.5, 4
    assert seen == pytest.approx([3.0, 3.5, 4.0])
    with probe.autoclip(0):
        assert torch.optim.Adam is adam


def test_the_variants_train_different_weights_and_the_summary_reads_them(tmp_path, capsys):
    out = tmp_path / "runs.json"
    png = tmp_path / "runs.png"
    argv = ["--case", "coins", "--seeds", "0", "--steps", "4", "--every", "2"]
    # coins is small and ships with scikit-image
    assert probe.main([*argv, "--out", str(out), "--plot", str(png)]) == 0
    runs = json.loads(out.read_text())
    assert [r["variant"] for r in runs] == ["adam", "amsgrad"]
    assert runs[0]["records"][-1]["update"] != runs[1]["records"][-1]["update"]
    assert png.stat().st_size > 0
    capsys.readouterr()
    assert probe.main(["--summary", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| variant | seed | IoU at 1 | IoU at 2 | IoU at 3 | IoU at 4 |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| adam", "| amsgrad"]
    # runs of several cases: a case and a draw column
    other = [{**runs[0], "case": "cell", "draw": 1}]
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert probe.main(["--summary", str(out), str(tmp_path / "other.json")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| case | draw | variant | seed | IoU at 1 |")
    assert [line.split(" | ")[:3] for line in table[2:]] == [
        ["| coins", "0", "adam"],
        ["| coins", "0", "amsgrad"],
        ["| cell", "1", "adam"],
    ]


def test_each_variant_sets_what_its_name_says_for_the_continued_training():
    from napari_seglab.core.training import TrainConfig

    def then(variant):
        return TrainConfig(**probe.VARIANTS[variant]["then"])

    assert then("adam").resume_optimizer is False and then("adam").lr_continued == 3e-3
    assert then("resume").resume_optimizer is True and then("resume").lr_continued == 3e-3
    assert then("lr/10").resume_optimizer is False and then("lr/10").lr_continued == 3e-4
    assert then("warm-up").lr_warmup == 30 and then("warm-up").resume_optimizer is False
    assert then("edge off").lambda_edge == 0.0 and then("amsgrad").amsgrad is True


def test_a_continued_run_is_summarised_at_the_end_of_each_training():
    runs = [{"steps": 165, "then": 165}, {"steps": 165}]
    assert probe.checkpoints(runs) == [165, 330]
    assert probe.checkpoints([{"steps": 8}]) == [2, 4, 6, 8]
