"""Make the README screenshots of the SegLab widget on the coins sample.

Paints scribbles the way a person would (a few strokes inside some coins, a few lines on the
background), trains in the widget and saves, under ``docs/images/``:

* ``widget_scribbles.png``: the scribbles and the live class-weights panel, before training;
* ``widget_training.png``: the overlay and the loss curve while training runs;
* ``widget_result.png``: the overlay at the end of training;
* ``widget_where.png``: after "Where to paint next": the uncertainty layer, the view centred on
  the most uncertain region not painted yet;
* ``widget_retrained.png``: after a few correction strokes and a second Train (which continues
  from the first model);
* ``widget_panel.png``: the dock widget alone, at the end;
* ``widget_restore.png``: the same image opened again in a new viewer: the strokes saved while
  painting are offered back;
* ``widget_several.png``: the coins sample cut into two images, each with its own strokes,
  one model trained on both (the second checked under Scribbles), the first predicted;
* ``widget_channels.png``: scikit-image's immunohistochemistry image split by colour
  deconvolution into a hematoxylin and a DAB layer, both checked as the channels the model
  sees, strokes drawn by the suite's scribble simulator on the DAB stain, after training.

The strokes are saved in a temporary folder (``XDG_DATA_HOME``), not with your own.

Run (under a display; ``xvfb-run -a`` on a headless machine)::

    xvfb-run -a .venv/bin/python benchmarks/make_screenshots.py
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np


def coin_centres(image: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Centres of the ``n`` largest bright blobs (the coins), ``(row, col)``."""
    return [(cy, cx) for cy, cx, _r in coins(image, n)]


def coins(image: np.ndarray, n: int) -> list[tuple[int, int, float]]:
    """``(row, col, radius)`` of the ``n`` largest bright blobs (the coins)."""
    from skimage import filters, measure, morphology

    smooth = filters.gaussian(image.astype(float), 2)
    mask = smooth > filters.threshold_otsu(smooth)
    mask = morphology.remove_small_objects(mask, max_size=199)
    regions = [
        r
        for r in measure.regionprops(measure.label(mask))
        if r.solidity > 0.9 and r.eccentricity < 0.7  # round blobs: coins, not lit background
    ]
    regions.sort(key=lambda r: -r.area)
    return [
        (int(r.centroid[0]), int(r.centroid[1]), r.equivalent_diameter_area / 2)
        for r in regions[:n]
    ]


def stroke(layer, points: list[tuple[float, float]], label: int, step: float = 2.0) -> None:
    """Paint a polyline with the brush, dab by dab, as a mouse drag does."""
    for (y0, x0), (y1, x1) in itertools.pairwise(points):
        n = max(1, int(np.hypot(y1 - y0, x1 - x0) / step))
        for t in np.linspace(0, 1, n + 1):
            layer.paint((y0 + t * (y1 - y0), x0 + t * (x1 - x0)), label, refresh=False)
    layer.refresh()


def close_toasts(app) -> None:
    """Close napari's notification pop-ups (a backend deprecation notice) before a picture."""
    for widget in app.allWidgets():
        if type(widget).__name__ == "NapariQtNotification" and widget.isVisible():
            widget.close()
    settle(app, 0.3)


def settle(app, seconds: float = 0.3) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def picture(viewer, path: Path, app) -> None:
    """The whole window, the image fitted to the canvas, to ``path``; the viewer closed."""
    viewer.reset_view()
    settle(app, 1.0)
    close_toasts(app)
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()


def several_picture(path: Path, image, seconds: float, app, napari, Settings) -> None:
    """Two images (the coins sample's left and right parts), one model."""
    half = image.shape[1] // 2
    viewer = napari.Viewer(title="napari-seglab")
    viewer.window.resize(1500, 950)
    parts = {"left": image[:, :half], "right": image[:, half:]}
    for name, part in parts.items():
        shift = (0, 0) if name == "left" else (0, half + 20)
        viewer.add_image(part, name=f"coins {name}", colormap="gray", translate=shift)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    settle(app, 0.5)
    widget.image_combo.set_layer(viewer.layers["coins left"])
    left = widget.new_scribbles()
    right = viewer.add_labels(
        np.zeros(parts["right"].shape, np.uint8),
        name="coins right scribbles",
        translate=(0, half + 20),
    )
    from napari_seglab._qt.classes import apply_classes

    apply_classes(right, widget.classes)
    for layer, part in ((left, parts["left"]), (right, parts["right"])):
        layer.brush_size = 4
        h, w = part.shape
        for cy, cx in coin_centres(part, 8)[::2]:  # foreground: inside some coins
            stroke(layer, [(cy - 4, cx - 8), (cy + 3, cx + 8)], 2)
        for y in (8, h - 8):  # background: along the top and bottom
            stroke(layer, [(y, 10), (y + 2, w / 2), (y, w - 10)], 1)
    widget.others_picker.set_checked(["also coins right"])
    widget.settings_panel.set_settings(
        Settings(budget_kind="seconds", budget=seconds, preview_every=2.0, num_threads=1)
    )
    widget.start_training()
    while widget.trainer.running or widget.session.apply_worker is not None:
        settle(app, 0.2)
    viewer.layers.selection.active = left
    picture(viewer, path, app)


def channels_picture(path: Path, seconds: float, app, napari, Settings) -> None:
    """Two layers of one stained section as the channels of one model."""
    import sys

    from skimage import color, data

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real_suite import silver_ihc
    from scribble_sim import simulate_sparse_scribbles

    rgb = data.immunohistochemistry()
    hed = color.rgb2hed(rgb)
    viewer = napari.Viewer(title="napari-seglab")
    viewer.window.resize(1500, 950)
    viewer.add_image(hed[..., 0], name="hematoxylin", colormap="blue", blending="additive")
    viewer.add_image(hed[..., 2], name="DAB", colormap="yellow", blending="additive")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    settle(app, 0.5)
    widget.image_combo.set_layer(viewer.layers["hematoxylin"])
    widget.channel_picker.set_checked(["hematoxylin", "DAB"])
    scribbles = widget.new_scribbles()
    scribbles.data = simulate_sparse_scribbles(silver_ihc(rgb), seed=0)
    widget.settings_panel.set_settings(
        Settings(budget_kind="seconds", budget=seconds, preview_every=2.0, num_threads=1)
    )
    widget.start_training()
    while widget.trainer.running:
        settle(app, 0.2)
    viewer.layers["hematoxylin probability"].visible = False
    viewer.layers.selection.active = scribbles
    picture(viewer, path, app)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="docs/images", help="output folder")
    parser.add_argument("--seconds", type=float, default=40.0, help="training time")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import os
    import tempfile

    # saved strokes go to a folder of their own: a second run starts as the first did
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="seglab-screenshots-")

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_seglab._qt.settings import Settings
    from napari_seglab._sample_data import coins_image

    image = coins_image()
    viewer = napari.Viewer(title="napari-seglab")
    viewer.window.resize(1500, 950)
    viewer.add_image(image, name="coins", colormap="gray")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    app = QApplication.instance()
    if widget.warm_up_thread is not None:
        widget.warm_up_thread.join()
    settle(app, 0.5)
    viewer.reset_view()  # fit the image to the canvas left beside the dock

    scribbles = widget.new_scribbles()
    scribbles.brush_size = 4
    rng = np.random.default_rng(0)
    # foreground: a short wiggle inside 7 coins
    for cy, cx in coin_centres(image, 24)[::3]:
        pts = [(cy + rng.uniform(-8, 8), cx + dx) for dx in (-12, -4, 4, 12)]
        stroke(scribbles, pts, 2)
    # background: lines along the border and in the gaps between the rows of coins
    h, w = image.shape
    rows = sorted(cy for cy, _ in coin_centres(image, 24))
    groups = np.split(np.asarray(rows), np.flatnonzero(np.diff(rows) > 25) + 1)
    centres = [float(g.mean()) for g in groups]
    gaps = [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    for y in (8, *gaps, h - 8):
        stroke(scribbles, [(y, 15), (y + 3, w * 0.45), (y - 2, w - 15)], 1)
    for x in (6, w - 6):
        stroke(scribbles, [(20, x), (h / 2, x + 2), (h - 20, x)], 1)
    settle(app, 1.0)
    viewer.layers.selection.active = scribbles
    close_toasts(app)
    viewer.screenshot(str(out / "widget_scribbles.png"), canvas_only=False)

    widget.settings_panel.set_settings(
        Settings(budget_kind="seconds", budget=args.seconds, preview_every=2.0, num_threads=1)
    )
    previews = []
    widget.trainer.reported.connect(
        lambda u: previews.append(u) if u.prediction is not None else None
    )
    widget.start_training()
    while widget.trainer.running and len(previews) < 4:
        settle(app, 0.1)
    settle(app, 0.6)
    close_toasts(app)
    viewer.screenshot(str(out / "widget_training.png"), canvas_only=False)
    while widget.trainer.running:
        settle(app, 0.2)
    settle(app, 1.0)
    close_toasts(app)
    viewer.screenshot(str(out / "widget_result.png"), canvas_only=False)

    # where the model is least sure: the uncertainty layer, and the view centred on the most
    # uncertain region not painted yet
    widget.show_me_where()
    settle(app, 1.0)
    close_toasts(app)
    viewer.screenshot(str(out / "widget_where.png"), canvas_only=False)
    viewer.layers["coins uncertainty"].visible = False
    viewer.reset_view()

    # a correction, as a person would after looking at the result: background strokes in the
    # dark rings around a few coins, then Train again (continues from the current model)
    for cy, cx, r in coins(image, 24)[1::4]:
        angles = np.linspace(0.2, 1.8, 6) * np.pi
        ring = [(cy + (r + 5) * np.sin(a), cx + (r + 5) * np.cos(a)) for a in angles]
        stroke(scribbles, ring, 1)
    # and short strokes between the coins of the top row, where the lighting is bright
    top = sorted((cx, cy, r) for cy, cx, r in coins(image, 24) if cy < centres[0] + 15)
    for (xa, ya, ra), (xb, yb, rb) in itertools.pairwise(top):
        x = (xa + ra + xb - rb) / 2
        stroke(scribbles, [((ya + yb) / 2 - 15, x), ((ya + yb) / 2 + 15, x)], 1)
    # and two lines through the brightly lit band above the top row (coins there start below
    # row 25, except at the right end, where the lines stop)
    for y in (14.0, 21.0):
        stroke(scribbles, [(y, 15), (y + 2, w * 0.4), (y, w * 0.72)], 1)
    settle(app, 0.5)
    widget.settings_panel.set_settings(
        Settings(budget_kind="seconds", budget=args.seconds / 2, preview_every=2.0, num_threads=1)
    )
    widget.start_training()
    while widget.trainer.running:
        settle(app, 0.2)
    settle(app, 1.0)
    close_toasts(app)
    viewer.screenshot(str(out / "widget_retrained.png"), canvas_only=False)
    widget.settings_panel.expand(animate=False)
    settle(app, 0.5)
    widget.grab().save(str(out / "widget_panel.png"))
    viewer.close()

    # the same image opened again, in a new viewer: its strokes are offered back
    viewer = napari.Viewer(title="napari-seglab")
    viewer.window.resize(1500, 950)
    viewer.add_image(image, name="coins", colormap="gray")
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    settle(app, 1.0)
    viewer.reset_view()
    close_toasts(app)
    viewer.screenshot(str(out / "widget_restore.png"), canvas_only=False)
    viewer.close()

    channels_picture(out / "widget_channels.png", args.seconds / 2, app, napari, Settings)
    several_picture(out / "widget_several.png", image, args.seconds / 2, app, napari, Settings)
    names = ("scribbles", "training", "result", "where", "retrained", "panel", "restore")
    names += ("channels", "several")
    for name in names:
        print(out / f"widget_{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
