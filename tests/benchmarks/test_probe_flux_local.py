"""The flux probe with edges in units of the local contrast between the classes."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import probe_flux_local as probe

from napari_seglab.core.losses import edge


def _disks(dim: float):
    """A bright disk and one of contrast ``dim``, with probabilities from their truth."""
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    bright = ((yy - 20) ** 2 + (xx - 20) ** 2 < 64).float()
    faint = ((yy - 44) ** 2 + (xx - 44) ** 2 < 64).float()
    image = (0.1 + 0.8 * bright + dim * faint)[None, None]
    fg = (bright + faint)[None, None]
    rims = [((yy - c) ** 2 + (xx - c) ** 2 - 64).abs() < 10 for c in (20, 44)]
    return torch.cat([1 - fg, fg], 1), image, rims


def test_a_dim_objects_edges_weigh_more_and_a_bright_ones_as_before():
    probs, image, (bright_rim, dim_rim) = _disks(0.2)
    g = edge.flux_map(probs, image, 1.0, 0.05)[0, 0]
    loc = probe.local_flux_map(probs, image, 1.0, 0.05, 8.0)[0, 0]
    assert loc[dim_rim].abs().mean() > 1.8 * g[dim_rim].abs().mean()
    assert float(loc[bright_rim].abs().mean()) == pytest.approx(
        float(g[bright_rim].abs().mean()), rel=0.02
    )
    # the zero crossings stay where they were: the sign is the global map's
    strong = g.abs() > 0.02
    assert torch.equal(torch.sign(loc[strong]), torch.sign(g[strong]))


def test_equal_contrasts_give_the_global_map_and_the_term_has_a_gradient(monkeypatch):
    probs, image, _ = _disks(0.8)
    g = edge.flux_map(probs, image, 1.0, 0.05)
    loc = probe.local_flux_map(probs, image, 1.0, 0.05, 8.0)
    assert torch.allclose(loc, g, atol=1e-3)
    monkeypatch.setattr(edge, "flux_map", probe.local_map(8.0))  # as the probe runs
    p = probs.clone().requires_grad_()
    edge.intensity_flux(p, image).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0


def test_the_probe_needs_its_scale():
    with pytest.raises(SystemExit):
        probe.main(["--cases", "coins"])


def test_wide_keeps_round_objects_and_their_rims_and_drops_thin_lines():
    mask = torch.zeros(1, 1, 40, 40, dtype=torch.bool)
    mask[0, 0, 5:20, 5:20] = True  # 15 px wide
    mask[0, 0, 30, 2:38] = True  # a line 1 px wide
    w = probe.wide(mask, 3)[0, 0]
    assert w[5:20, 5:20].all() and w[22, 10] and not w[24, 10]
    assert not w[30].any()


def test_with_thick_a_thin_dim_line_keeps_the_batch_contrast():
    probs, image, (_, dim_rim) = _disks(0.2)
    g = edge.flux_map(probs, image, 1.0, 0.05)
    loc = probe.local_flux_map(probs, image, 1.0, 0.05, 8.0, thick=3)
    assert loc[0, 0][dim_rim].abs().mean() > 1.8 * g[0, 0][dim_rim].abs().mean()  # 15 px wide
    # a dim line 1 px wide, far from both disks
    probs[0, :, 58, 4:30] = torch.tensor([0.0, 1.0]).view(2, 1)
    image[0, 0, 58, 4:30] += 0.2
    g = edge.flux_map(probs, image, 1.0, 0.05)[0, 0, 55:62, 8:26]
    thin = probe.local_flux_map(probs, image, 1.0, 0.05, 8.0, thick=3)[0, 0, 55:62, 8:26]
    amplified = probe.local_flux_map(probs, image, 1.0, 0.05, 8.0)[0, 0, 55:62, 8:26]
    assert torch.allclose(thin, g) and amplified.abs().sum() > 1.2 * g.abs().sum()


def test_a_run_records_its_own_command_with_the_probes_options(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(edge, "flux_map", edge.flux_map)  # put back after
    out = tmp_path / "runs.json"
    argv = ["--local", "8", "--alpha", "0.5", "--cases", "coins", "--draws", "0"]
    assert (
        probe.main([*argv, "--steps", "1", "--folds", "0", "--no-forest", "--json", str(out)]) == 0
    )
    saved = json.loads(out.read_text())
    assert saved["command"].startswith(
        "python benchmarks/probe_flux_local.py --local 8 --alpha 0.5 --cases coins"
    )
    assert [r["steps"] for r in saved["runs"]] == [1]


def test_paired_compares_runs_of_the_same_draw_and_seed_only():
    def run(case, draw, seed, iou, method="seglab"):
        return {"case": case, "draw": draw, "seed": seed, "budget": "9 steps", "iou": iou,
                "method": method}  # fmt: skip

    base = [run("a", 0, 0, 0.5), run("a", 1, 1, 0.6), run("a", 0, 0, 0.9, "random forest")]
    other = [run("a", 0, 0, 0.7), run("a", 1, 1, 0.6), run("a", 2, 2, 0.1), run("b", 0, 0, 1)]
    out = probe.paired(base, other)
    assert set(out) == {"a"}
    mean, sem, n = out["a"]
    assert n == 2 and mean == pytest.approx(0.1) and sem == pytest.approx(0.1)
