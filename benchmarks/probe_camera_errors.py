"""Probe: where seglab and the forest disagree with camera's silver reference.

Camera is the one real image of the suite where seglab is level with the forest, not above it
(0.99x). Its reference is a smoothed Otsu threshold (``real_suite.silver_camera``): the dark
photographer and camera. The tripod below the camera is grey metal with dark edges, and the
reference calls it background, so the simulated background strokes cross it. This trains both
methods on the suite's draws of camera (seglab for ``--steps`` with seed = draw, as the suite
does) and counts the unpainted pixels each gets wrong, inside the tripod's box (rows
``TRIPOD[0]``, columns ``TRIPOD[1]`` of the cropped image) and outside it, and each class's
painted pixels it reproduces.

Run::

    python benchmarks/probe_camera_errors.py --draws 0 1 --steps 165 \\
        --markdown benchmarks/results/probe_camera_errors.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_suite
from scribble_sim import foreground_iou

from napari_seglab.core.data import painted_accuracy

#: The tripod below the camera, in the cropped image (409 x 512): rows, columns.
TRIPOD = (slice(261, 409), slice(250, 350))


def errors(labels: np.ndarray, reference: np.ndarray, scribbles: np.ndarray) -> dict:
    """Errors of ``labels`` (class ids, 2 = foreground) on the unpainted pixels: false
    foreground and background, those inside :data:`TRIPOD`, IoU, and each painted class's
    share reproduced."""
    pred = labels == 2
    ref = reference > 0
    unpainted = scribbles == 0
    wrong = (pred != ref) & unpainted
    box = np.zeros_like(ref)
    box[TRIPOD] = True
    painted_bg, painted_fg = painted_accuracy(labels, scribbles, 2)
    return {
        "iou": foreground_iou(pred, ref, scribbles),
        "false fg": int((wrong & pred).sum()),
        "false bg": int((wrong & ~pred).sum()),
        "wrong in tripod box": int((wrong & box).sum()),
        "wrong elsewhere": int((wrong & ~box).sum()),
        "painted bg": float(painted_bg),
        "painted fg": float(painted_fg),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=165)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)

    case = real_suite.CASES["camera"](None)
    rows = []
    for draw in args.draws:
        scribbles = case.scribbles(draw)
        runs = {
            "seglab": real_suite._seglab_labels(
                case, scribbles, ("steps", args.steps), draw, args.threads, {}
            ),
            "forest": real_suite._forest_labels(case, scribbles, draw, args.threads),
        }
        for method, res in runs.items():
            rows.append(
                {"draw": draw, "method": method, **errors(res["labels"], case.reference, scribbles)}
            )
            print(rows[-1], flush=True)
    keys = list(rows[0])
    lines = [
        f"Camera, unpainted pixels wrong against the silver reference; tripod box rows "
        f"{TRIPOD[0].start}-{TRIPOD[0].stop}, columns {TRIPOD[1].start}-{TRIPOD[1].stop}; seglab "
        f"{args.steps} steps, seed = draw, {args.threads} thread(s) "
        f"(`python benchmarks/probe_camera_errors.py --draws "
        f"{' '.join(map(str, args.draws))} --steps {args.steps}`)",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
