"""How long saving strokes takes: one stroke (the chunks it touched) and the whole array (after
an undo or a replaced array), against writing the same array with ``numpy.save``, the baseline
run in the same process.

Run::

    python benchmarks/bench_autosave.py --markdown benchmarks/results/autosave.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scribble_benchmark as sb

SHAPES = ((2048, 2048), (8192, 8192), (30, 2048, 2048))


def _best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(shape: tuple[int, ...], root: Path) -> dict:
    from napari_seglab.core.autosave import StrokeStore

    rng = np.random.default_rng(0)
    data = np.zeros(shape, np.uint8)
    for _ in range(200):  # short strokes across the array
        y, x = rng.integers(0, shape[-2] - 8), rng.integers(0, shape[-1] - 60)
        z = (rng.integers(0, shape[0]),) if len(shape) == 3 else ()
        data[(*z, slice(y, y + 3), slice(x, x + 60))] = rng.integers(1, 3)
    store = StrokeStore.create(root, f"k{'x'.join(map(str, shape))}", shape)
    whole = _best(lambda: store.save(data))
    z = (slice(0, 1),) if len(shape) == 3 else ()
    stroke = (*z, slice(100, 103), slice(200, 260))
    one = _best(lambda: store.save(data, region=stroke), repeat=5)
    baseline = _best(lambda: np.save(root / "baseline.npy", data))
    return {
        "shape": shape,
        "mb": data.nbytes / 2**20,
        "stroke": one,
        "whole": whole,
        "npy": baseline,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--markdown")
    args = p.parse_args(argv)
    lines = [
        f"machine: {sb.machine()}",
        "",
        "| scribbles | MiB | one stroke (ms) | whole array (s) | numpy.save (s) "
        "| whole / numpy.save |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            r = measure(shape, Path(tmp))
            lines.append(
                f"| {'x'.join(map(str, r['shape']))} | {r['mb']:.0f} | {1000 * r['stroke']:.1f} | "
                f"{r['whole']:.3f} | {r['npy']:.3f} | {r['whole'] / r['npy']:.2f} |"
            )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        command = "python benchmarks/bench_autosave.py --markdown " + args.markdown
        Path(args.markdown).write_text(f"# Saving strokes\n\n```text\n{command}\n```\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
