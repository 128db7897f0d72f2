"""Probe: the flux term with edges measured in units of the local contrast between the classes.

The flux term (:func:`napari_seglab.core.losses.intensity_flux`) divides the Laplacian of
Gaussian of the image by ``c``, the contrast between the classes' mean intensities over the
whole batch. A dim nucleus's edges are weak in those units, so the term that puts boundaries
on the edges pushes least where seglab's boundaries are worst: the missed rims of dim nuclei
(``docs/real-images.md``). This probe divides instead by the contrast around each pixel: the
classes' means weighted by the network's probabilities in a Gaussian window of ``--local`` px,

    m_k(x) = (G * (p_k u) + eps m_k) / (G * p_k + eps),   c_loc = m_fg(x) - m_bg(x),

(``u`` the image along the direction that separates the classes, ``m_k`` the batch means, so
where one class is absent from the window its mean is the batch's; ``eps``, ``--eps``, 0.05 by
default), clipped to
``[alpha c, c]`` (``--alpha``, 0.25 by default): a dim object's edges weigh up to
``1 / alpha`` times more, a bright one's as before. With ``--thick k`` only where the
predicted foreground (``p > 0.5``) is at least ``2k + 1`` px wide, and ``k`` px round it (2D
only): thin lines, whose Laplacian's zero crossing lies outside them, keep the batch's
contrast. Everything else is the suite's
(``real_suite.py``, whose arguments follow).

``--compare BASE.json ... --to OTHER.json ...`` prints, per case, the mean IoU difference
between the runs of the same draw and seed in both.

Run (the defaults and the probe side by side, one core each)::

    python benchmarks/real_suite.py --cases nuclei coins thin --draws 0 1 2 --steps 165 \\
        --folds 0 --json flux_global.json
    python benchmarks/probe_flux_local.py --local 8 --cases nuclei coins thin --draws 0 1 2 \\
        --steps 165 --folds 0 --json flux_local8.json
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite

from napari_seglab.core.losses import edge

#: Weight of the batch means where a class is absent from the window.
EPS = 0.05
#: Lowest local contrast, as a share of the batch's (at most 1 / ALPHA times the weight).
ALPHA = 0.25


def smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` ``(B, 1, *spatial)`` filtered by a Gaussian of ``sigma`` px, edges replicated."""
    g, _ = edge._gaussian_kernels(sigma)
    for axis in range(x.dim() - 2):
        x = edge._filter_along(x, g, axis)
    return x


@torch.no_grad()
def local_flux_map(
    probs, image, sigma, min_contrast, local: float, alpha=ALPHA, eps=EPS, thick=0
) -> torch.Tensor:
    """:func:`napari_seglab.core.losses.edge.flux_map` with the local contrast (above);
    ``(B, 1, *spatial)`` in ``[-1, 1]``."""
    p = probs.detach().float()
    x = image.float()
    pb, pf = p[:, :1], p[:, 1:]
    m_fg, m_bg, d, delta = edge.class_contrast(p, x, min_contrast)
    unit = (d / delta).view(1, -1, *[1] * (x.dim() - 2))
    u = (x * unit).sum(1, keepdim=True)
    u_fg, u_bg = (m_fg * d).sum() / delta, (m_bg * d).sum() / delta
    loc_fg = (smooth(pf * u, local) + eps * u_fg) / (smooth(pf, local) + eps)
    loc_bg = (smooth(pb * u, local) + eps * u_bg) / (smooth(pb, local) + eps)
    c = (loc_fg - loc_bg).clamp(min=float(alpha * delta), max=float(delta))
    if thick > 0:  # only round objects at least 2 * thick + 1 px wide, and their rims
        c = torch.where(wide(pf > 0.5, thick), c, delta)
    return (edge.laplacian_of_gaussian(u, sigma) / c).clamp_(-1.0, 1.0)


def wide(mask: torch.Tensor, k: int) -> torch.Tensor:
    """Pixels of ``mask`` ``(B, 1, H, W)`` that an opening by a ``(2k+1)``-px square keeps,
    grown by ``k`` px more: the objects at least ``2k + 1`` px wide and a rim round them."""
    x = mask.float()
    n = 2 * k + 1
    eroded = -torch.nn.functional.max_pool2d(-x, n, 1, k)
    grown = torch.nn.functional.max_pool2d(eroded, 4 * k + 1, 1, 2 * k)
    return grown > 0.5


def local_map(local: float, alpha: float = ALPHA, eps: float = EPS, thick: int = 0):
    """A stand-in for :func:`napari_seglab.core.losses.edge.flux_map`, which
    :func:`~napari_seglab.core.losses.intensity_flux` calls: :func:`local_flux_map` with
    these options."""
    return functools.partial(local_flux_map, local=local, alpha=alpha, eps=eps, thick=thick)


def _option(argv: list[str], name: str, default: float) -> float:
    """The value of ``name`` in ``argv`` (both taken out of it), else ``default``."""
    if name not in argv:
        return default
    i = argv.index(name)
    value = float(argv[i + 1])
    del argv[i : i + 2]
    return value


def paired(base: list[dict], other: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Per case: the mean IoU difference ``other - base`` over the seglab runs of the same
    draw and seed in both, its standard error, and the number of pairs."""
    key = lambda r: (r["case"], r["draw"], r.get("seed"), r["budget"])  # noqa: E731
    before = {key(r): r["iou"] for r in base if r["method"] != "random forest"}
    diffs: dict[str, list[float]] = {}
    for r in other:
        if r["method"] != "random forest" and key(r) in before:
            diffs.setdefault(r["case"], []).append(r["iou"] - before[key(r)])
    out = {}
    for case, d in diffs.items():
        sem = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[case] = (float(np.mean(d)), sem, len(d))
    return out


def compare(base_paths: list[str], other_paths: list[str]) -> str:
    """A markdown line per case: ``other`` against ``base`` on the same draws and seeds."""
    load = lambda ps: [r for p in ps for r in json.loads(Path(p).read_text())["runs"]]  # noqa: E731
    rows = ["| case | pairs | IoU difference, mean (standard error) |", "|---|---|---|"]
    for case, (mean, sem, n) in paired(load(base_paths), load(other_paths)).items():
        rows.append(f"| {case} | {n} | {mean:+.3f} ({sem:.3f}) |")
    return "\n".join(rows)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--compare"]:
        # --compare BASE.json [...] --to OTHER.json [...]
        i = argv.index("--to")
        print(compare(argv[1:i], argv[i + 1 :]))
        return 0
    command = "python benchmarks/probe_flux_local.py " + " ".join(shlex.quote(a) for a in argv)
    if "--local" not in argv:
        raise SystemExit("--local SIGMA (px) is required")
    local = _option(argv, "--local", 0.0)
    alpha, eps = _option(argv, "--alpha", ALPHA), _option(argv, "--eps", EPS)
    thick = int(_option(argv, "--thick", 0))
    if local > 0:
        edge.flux_map = local_map(local, alpha, eps, thick)
    return real_suite.main(argv, command=command)


if __name__ == "__main__":
    raise SystemExit(main())
