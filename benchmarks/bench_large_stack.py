"""Does the viewer stay responsive on a large stack? Longest GUI stalls while painting and on Train.

A 10 ms QTimer on the GUI thread records the gaps between its ticks (see
``bench_responsiveness.py``). Three measurements, each in a fresh viewer:

* ``draw``: a ``Z x N x N`` stack, no training; a stroke (10 brush dabs, one undo step, as a
  mouse drag makes) is painted every second: what drawing alone costs;
* ``paint+train``: the same while SegLab trains on the stack (previews off, so that the gaps are
  those of the strokes reaching the training, not of overlay redraws);
* ``train click``: a ``Z2 x M x M`` stack with strokes; the Train click itself and the gaps
  from the click until the training's first report (the worker copying, checking and counting
  the stack meanwhile); before it, the same viewer adding two empty layers of that shape
  without SegLab (what the click's overlay layers cost napari alone).

Run (under a display; ``xvfb-run -a`` on a headless machine)::

    xvfb-run -a .venv/bin/python benchmarks/bench_large_stack.py

Prints a Markdown table. Sizes: ``--stack 64 1024`` and ``--click-stack 48 2048`` by default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_responsiveness import GapRecorder


def stack(z: int, n: int, seed: int = 0) -> np.ndarray:
    """``(z, n, n)`` float32: bright squares on noise (cheap to make at any size)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 0.2, (z, n, n)).astype(np.float32)
    step = max(32, n // 16)
    for y in range(step // 2, n - step // 2, step):
        for x in range(step // 2, n - step // 2, step):
            if (y // step + x // step) % 3 == 0:
                img[:, y - step // 4 : y + step // 4, x - step // 4 : x + step // 4] += 1.0
    return img


def paint_strokes(layer, z: int, n: int, count: int) -> None:
    """``count`` short strokes of each class on slices spread through the stack."""
    for i in range(count):
        zi = (i * 7) % z
        y = (i * 97) % (n - 40) + 20
        with layer.block_history():  # one stroke: one paint event, one undo step
            for k in range(8):
                layer.paint((zi, y, 20 + 3 * k), 1, refresh=False)
                layer.paint((zi, y, n // 2 + 3 * k), 2, refresh=False)
    layer.refresh()


class Strokes:
    """Paints a stroke of 10 dabs (one undo step) every ``every_ms`` on the current slice."""

    def __init__(self, layer, n: int, z: int, every_ms: int = 1000, seed: int = 1) -> None:
        from qtpy.QtCore import QTimer

        self.layer = layer
        self.z = z
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.seconds: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(every_ms)
        self.timer.timeout.connect(self._stroke)

    def _stroke(self) -> None:
        t0 = time.perf_counter()
        z = self.z
        y, x = (int(v) for v in self.rng.integers(40, self.n - 80, size=2))
        label = 1 + self.count % 2
        with self.layer.block_history():
            for k in range(10):
                coord = (z, y, x + 4 * k)
                self.layer.paint(coord, label, refresh=True)
        self.count += 1
        self.seconds.append(time.perf_counter() - t0)


def run_loop(seconds: float) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()


def make_viewer(z: int, n: int, threads: int):
    import napari

    from napari_seglab._qt.settings import Settings
    from napari_seglab._qt.widget import SegLabWidget

    viewer = napari.Viewer(title="seglab large stack")
    viewer.window.resize(1400, 900)
    viewer.add_image(stack(z, n), name="img")
    widget = SegLabWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SegLab", area="right")
    layer = widget.new_scribbles()
    layer.brush_size = 6
    paint_strokes(layer, z, n, 12)
    widget.settings_panel.set_settings(
        Settings(
            model_size="small",
            budget_kind="seconds",
            budget=3600,
            preview_every=0.0,
            num_threads=threads,
        )
    )
    if widget.warm_up_thread is not None:
        widget.warm_up_thread.join()
    settle(0.5)
    return viewer, widget, layer


def settle(seconds: float) -> None:
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def stop(widget) -> None:
    widget.stop_training()
    while widget.trainer.running:
        settle(0.01)


def row(name: str, gaps: np.ndarray, extra: str) -> str:
    return (
        f"| {name} | {gaps.size} | {1e3 * np.percentile(gaps, 99):.0f} | "
        f"{1e3 * gaps.max():.0f} | {extra} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", type=int, nargs=2, default=(64, 1024), metavar=("Z", "N"))
    parser.add_argument("--click-stack", type=int, nargs=2, default=(48, 2048), metavar=("Z", "N"))
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per painting phase")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    from napari_seglab.core.device import default_num_threads

    threads = args.threads or default_num_threads()
    rows = []

    # --- painting, without and with training -------------------------------------------
    z, n = args.stack
    viewer, widget, layer = make_viewer(z, n, threads)
    viewer.dims.set_current_step(0, z // 2)
    settle(0.5)
    recorder = GapRecorder(10)
    strokes = Strokes(layer, n, z // 2)
    recorder.start()
    strokes.timer.start()
    run_loop(args.seconds)
    strokes.timer.stop()
    draw = recorder.stop()
    rows.append(
        row(
            f"draw {z}x{n}x{n}, no training",
            draw,
            f"{strokes.count} strokes; paint call {1e3 * np.median(strokes.seconds):.0f} ms median",
        )
    )
    reports = []
    widget.trainer.reported.connect(reports.append)
    assert widget.start_training()
    while not reports and widget.trainer.running:
        settle(0.05)
    first_steps = len(reports)
    strokes = Strokes(layer, n, z // 2, seed=2)
    recorder.start()
    strokes.timer.start()
    run_loop(args.seconds)
    strokes.timer.stop()
    busy = recorder.stop()
    wait_for = len(reports) + 3  # steps after the last stroke, before comparing counts
    while len(reports) < wait_for and widget.trainer.running:
        settle(0.05)
    steps = reports[-1].report.step if reports else 0
    counts_ok = bool(
        reports
        and np.array_equal(
            reports[-1].report.counts,
            np.bincount(np.asarray(layer.data).ravel(), minlength=3)[1:3],
        )
    )
    stop(widget)
    rows.append(
        row(
            f"paint {z}x{n}x{n} while training",
            busy,
            f"{strokes.count} strokes, {steps - first_steps} steps meanwhile; paint call "
            f"{1e3 * np.median(strokes.seconds):.0f} ms median; training's counts "
            f"{'equal' if counts_ok else 'differ from'} the layer's",
        )
    )
    widget.cleanup(timeout=60)
    viewer.close()
    del viewer, widget, layer
    settle(0.5)

    # --- the Train click on a big stack ------------------------------------------------
    z, n = args.click_stack
    viewer, widget, _ = make_viewer(z, n, threads)
    # what napari alone costs for what the click adds: two empty layers of the stack's shape
    # (a labels layer and an invisible image layer), added and removed again
    recorder = GapRecorder(10)
    recorder.start()
    settle(0.3)
    t0 = time.perf_counter()
    added = [
        viewer.add_labels(np.zeros((z, n, n), np.uint8), name="empty labels"),
        viewer.add_image(
            np.zeros((z, n, n), np.float32),
            name="empty image",
            visible=False,
            contrast_limits=(0.0, 1.0),
        ),
    ]
    add = time.perf_counter() - t0
    settle(1.0)
    rows.append(
        row(
            f"napari adds 2 empty {z}x{n}x{n} layers",
            recorder.stop(),
            f"no SegLab: add_labels + add_image {1e3 * add:.0f} ms",
        )
    )
    for layer in added:
        viewer.layers.remove(layer)
    settle(0.5)
    reports = []
    widget.trainer.reported.connect(reports.append)
    recorder = GapRecorder(10)
    recorder.start()
    settle(0.3)
    t0 = time.perf_counter()
    started = widget.start_training()
    click = time.perf_counter() - t0
    while started and not reports and widget.trainer.running:
        settle(0.01)
    first = time.perf_counter() - t0
    gaps = recorder.stop()
    error = widget.trainer.error
    stop(widget)
    rows.append(
        row(
            f"Train click, {z}x{n}x{n}",
            gaps,
            f"start_training() {1e3 * click:.0f} ms; first report after {first:.1f} s"
            + (f"; failed: {error}" if error else ""),
        )
    )
    widget.cleanup(timeout=60)
    viewer.close()

    print()
    print(
        f"napari-seglab on large stacks: small model, {threads} torch thread(s), "
        f"{os.cpu_count()} CPU cores, previews off; 10 ms QTimer on the GUI thread"
    )
    print()
    print("| measurement | ticks | p99 gap ms | max gap ms | notes |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
