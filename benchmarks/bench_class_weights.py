"""Per-stroke class-count update on a 4096 x 4096 labels array: incremental vs full recount.

A napari ``Labels`` paint event reports the indices of the pixels one stroke changed and their
old values; :meth:`ClassCounts.update` uses only those, while a full recount bincounts the whole
array. Both timings include :func:`class_weights`, which the class-weight panel recomputes
after each stroke.

Run: ``.venv/bin/python benchmarks/bench_class_weights.py [--size 4096] [--strokes 30]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_seglab.core.weights import ClassCounts, class_weights


def stroke_pixels(
    rng: np.random.Generator, size: int, radius: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row / column indices of a disk brush dragged along a random straight path."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk = (yy**2 + xx**2) <= radius**2
    dy, dx = yy[disk], xx[disk]
    start = rng.uniform(radius, size - radius, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    steps = np.arange(0, length, max(1, radius // 2))
    cy = np.clip(start[0] + steps * np.sin(angle), 0, size - 1).astype(np.int64)
    cx = np.clip(start[1] + steps * np.cos(angle), 0, size - 1).astype(np.int64)
    rows = np.clip(cy[:, None] + dy[None], 0, size - 1).ravel()
    cols = np.clip(cx[:, None] + dx[None], 0, size - 1).ravel()
    flat = np.unique(rows * size + cols)
    return flat // size, flat % size


def bench(size: int, n_strokes: int, radius: int, length: int, num_classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    labels = np.zeros((size, size), dtype=np.uint8)
    # some scribbles already there
    for _ in range(20):
        r, c = stroke_pixels(rng, size, radius, length)
        labels[r, c] = rng.integers(1, num_classes + 1)
    strokes = [stroke_pixels(rng, size, radius, length) for _ in range(n_strokes)]
    values = rng.integers(0, num_classes + 1, size=n_strokes)  # 0 = eraser

    counts = ClassCounts.from_labels(labels, num_classes)
    inc, full, pixels = [], [], []
    for (r, c), value in zip(strokes, values, strict=True):
        old = labels[r, c]  # napari hands these over with the paint event
        labels[r, c] = value
        pixels.append(r.size)

        t0 = time.perf_counter()
        counts.update(old, value)
        w_inc = class_weights(counts)
        t1 = time.perf_counter()
        recount = ClassCounts.from_labels(labels, num_classes)
        w_full = class_weights(recount)
        t2 = time.perf_counter()

        assert np.array_equal(counts.counts, recount.counts)
        assert np.allclose(w_inc, w_full)
        inc.append(t1 - t0)
        full.append(t2 - t1)
    inc_ms = 1e3 * float(np.median(inc))
    full_ms = 1e3 * float(np.median(full))
    return {
        "radius": radius,
        "pixels": int(np.median(pixels)),
        "inc_ms": inc_ms,
        "inc_max_ms": 1e3 * float(np.max(inc)),
        "full_ms": full_ms,
        "ratio": full_ms / inc_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--strokes", type=int, default=30)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"labels {args.size}x{args.size} uint8, {args.classes} classes, "
        f"{args.strokes} strokes per row (median time per stroke, incl. class_weights)"
    )
    header = (
        f"{'brush r':>7} {'px/stroke':>9} {'incremental ms':>14} {'(max)':>7} "
        f"{'full recount ms':>15} {'full/incr':>9}"
    )
    print(header)
    print("-" * len(header))
    for radius, length in ((3, 100), (10, 300), (40, 1000)):
        row = bench(args.size, args.strokes, radius, length, args.classes, args.seed)
        print(
            f"{row['radius']:>7} {row['pixels']:>9} {row['inc_ms']:>14.3f} "
            f"{row['inc_max_ms']:>7.3f} {row['full_ms']:>15.1f} {row['ratio']:>8.0f}x"
        )


if __name__ == "__main__":
    main()
