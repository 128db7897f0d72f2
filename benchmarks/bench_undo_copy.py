"""How long a click on Train holds the GUI thread to keep the overlay for "Undo training".

When Train is clicked, the widget keeps a copy of the image's prediction and probability
layers (:func:`napari_seglab._qt.model_actions.keep_before`). Overlays larger than
``UNDO_COPY_IN_THREAD_BYTES`` are copied in a thread, and the training's previews wait for the
copy. This script times the call on the calling (GUI) thread against the same call with the
copy made on that thread (the baseline, run in the same process), for overlays of several
sizes, and how long the threaded copy itself takes to finish. No display is needed: the layers
live in a ``napari.components.ViewerModel``.

Run::

    python benchmarks/bench_undo_copy.py --markdown benchmarks/results/undo_copy.md
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scribble_benchmark as sb

#: Image sides: the overlays (uint8 labels + float32 probability) are 5 bytes a pixel.
SIDES = (1024, 2048, 4096, 8192, 10000)


def _viewer(side: int):
    from napari.components import ViewerModel

    from napari_seglab._qt import layers as lyr

    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((side, side), np.uint8), name="img")
    pred, prob = lyr.ensure_prediction_layers(viewer, image, 2, [])
    pred.data[:] = 1  # touched, as a real overlay is
    prob.data[:] = 0.25
    return viewer, image


def _one(side: int, threshold: int) -> tuple[float, float]:
    """One click's worth, in a fresh process: (GUI thread held, copy finished) in seconds."""
    from napari_seglab._qt import model_actions as ma
    from napari_seglab.core.data import Normalization, as_zcyx
    from napari_seglab.core.model import ModelConfig, SegModel

    model = SegModel.create(2, 1, Normalization.fit(as_zcyx(np.zeros((8, 8)))), ModelConfig())
    ma.keep_before(*_viewer(64), model).copies.result()  # imports and first calls
    viewer, image = _viewer(side)
    ma.UNDO_COPY_IN_THREAD_BYTES = threshold
    t0 = time.perf_counter()
    before = ma.keep_before(viewer, image, model)
    t1 = time.perf_counter()
    before.copies.result()
    return t1 - t0, time.perf_counter() - t0


def measure(side: int, repeat: int) -> dict:
    """Medians over ``repeat`` fresh processes (a copy into memory the process has not used
    yet, as at a click on Train, costs more than one into memory it freed)."""
    from napari_seglab._qt.model_actions import UNDO_COPY_IN_THREAD_BYTES

    out = {"side": side, "mib": side * side * 5 / 2**20}
    modes = (("on_gui_thread", 2**62), ("threaded", UNDO_COPY_IN_THREAD_BYTES))
    times: dict[str, list] = {name: [] for name, _ in modes}
    for _ in range(repeat):
        for name, threshold in modes:  # alternated, so that drift hits both alike
            code = (
                f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import bench_undo_copy as b; print(*b._one({side}, {threshold}))"
            )
            res = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            times[name].append([float(v) for v in res.stdout.split()[-2:]])
    for name, values in times.items():
        out[f"{name}_call"] = float(np.median([v[0] for v in values]))
        out[f"{name}_done"] = float(np.median([v[1] for v in values]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", type=int, nargs="+", default=list(SIDES))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    rows = [measure(s, args.repeat) for s in args.sides]
    lines = [
        f"{sb.machine()}; {sb.load()}; median of {args.repeat} fresh processes",
        "",
        "| image | overlay MiB | GUI thread held, copy there (s) | GUI thread held, copy in a "
        "thread (s) | ratio | threaded copy done after (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["on_gui_thread_call"] / max(r["threaded_call"], 1e-9)
        lines.append(
            f"| {r['side']}x{r['side']} | {r['mib']:.0f} | {r['on_gui_thread_call']:.3f} | "
            f"{r['threaded_call']:.3f} | {ratio:.0f}x | {r['threaded_done']:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        command = "python benchmarks/bench_undo_copy.py " + " ".join(argv or sys.argv[1:])
        Path(args.markdown).write_text(f"`{command.strip()}`\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
