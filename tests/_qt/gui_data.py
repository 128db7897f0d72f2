"""Images, strokes and settings shared by the GUI tests (importable: pytest puts this folder on
``sys.path``)."""

from __future__ import annotations

import numpy as np

from napari_seglab._qt.settings import Settings

#: A few steps of the small model, no previews, one thread.
FAST = Settings(model_size="small", budget_kind="steps", budget=4, preview_every=0.0, num_threads=1)


def synthetic_image(size: int = 64, seed: int = 0) -> np.ndarray:
    """Bright disks on a dark noisy background, ``(size, size)`` float32."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size), np.float32)
    for cy, cx in ((16, 16), (16, 46), (44, 30)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = 1.0
    return img + rng.normal(0, 0.2, img.shape).astype(np.float32)


def saved_strokes(size: int = 64) -> np.ndarray:
    """Scribbles as they come back from a file: background (1) and foreground (2) strokes."""
    s = np.zeros((size, size), np.uint8)
    s[30:33, 2:10] = 1
    s[58:61, 50:62] = 1
    s[14:18, 12:20] = 2
    s[42:46, 26:34] = 2
    return s


def dock(viewer, qtbot, settings: Settings = FAST):
    """The SegLab dock on ``viewer`` with ``settings`` (closed with the test)."""
    from napari_seglab._qt.widget import SegLabWidget

    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(settings)
    return w


def wait_applied(qtbot, widget, timeout: int = 60_000) -> None:
    """Wait until the dock's prediction of a layer (Apply) has ended and been handled.

    The dock clears ``session.apply_worker`` in its own handler of the worker's end. Waiting
    for the worker's ``finished`` signal instead could miss it: the worker is running when
    ``apply_to_layer`` returns, and on a loaded machine it can end before a test connects.
    """
    qtbot.waitUntil(lambda: widget.session.apply_worker is None, timeout=timeout)
