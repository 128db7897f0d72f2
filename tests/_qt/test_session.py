"""The session behind the dock: counts after an undo on a large volume, and stopping or closing
while a final prediction runs."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import FAST, synthetic_image  # noqa: E402

from napari_seglab._qt import weights_panel  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402


def _dock(viewer, qtbot, settings=FAST) -> SegLabWidget:
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(settings)
    return w


def _bincount(layer) -> list[int]:
    return np.bincount(np.asarray(layer.data).ravel(), minlength=3)[1:].tolist()


# ------------------------------------------------------------------------------------------
# counts of a large volume
# ------------------------------------------------------------------------------------------
def test_undo_on_a_large_volume_is_recounted_off_the_gui_thread(viewer, qtbot, monkeypatch):
    monkeypatch.setattr(weights_panel, "FULL_RECOUNT_LIMIT", 10)  # every layer is "large"
    threads = []
    real_count = weights_panel._count

    def recording_count(data, k):
        threads.append(threading.current_thread())
        return real_count(data, k)

    monkeypatch.setattr(weights_panel, "_count", recording_count)
    viewer.add_image(np.zeros((4, 64, 64), np.float32), name="img")
    w = _dock(viewer, qtbot)
    layer = w.new_scribbles()
    layer.brush_size = 5
    layer.paint((1, 20, 20), 2)
    layer.paint((1, 40, 40), 1)
    layer.paint((2, 40, 40), 1)
    qtbot.waitUntil(lambda: w.weights_panel.counts.tolist() == _bincount(layer), timeout=3000)
    threads.clear()
    layer.undo()
    qtbot.waitUntil(lambda: w.weights_panel.counts.tolist() == _bincount(layer), timeout=5000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    layer.redo()
    qtbot.waitUntil(lambda: w.weights_panel.counts.tolist() == _bincount(layer), timeout=5000)
    # a stroke right after an undo does not cancel its recount
    layer.undo()
    layer.paint((3, 10, 10), 2)
    qtbot.waitUntil(lambda: not w.counter.recount_pending, timeout=5000)
    qtbot.wait(50)
    assert w.weights_panel.counts.tolist() == _bincount(layer)
    w.cleanup()


# ------------------------------------------------------------------------------------------
# stop and close while a final prediction runs
# ------------------------------------------------------------------------------------------
@pytest.fixture
def final_prediction(monkeypatch):
    """The core's final prediction of a run (its first band), held at its start until
    ``release`` is set (the runs below make no previews)."""
    from napari_seglab.core import preview

    real_predict = preview.predict
    entered, release = threading.Event(), threading.Event()

    def held_predict(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(preview, "predict", held_predict)
    yield entered, release
    release.set()


def _training_into_final_prediction(viewer, qtbot, entered, size=384):
    viewer.add_image(synthetic_image(size), name="img")
    w = _dock(viewer, qtbot, dataclasses.replace(FAST, budget=2))
    layer = w.new_scribbles()
    layer.brush_size = 7
    for point, label in (((30, 5), 1), ((size - 10, size - 10), 1), ((16, 16), 2)):
        layer.paint(point, label, refresh=True)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    assert w.start_training()
    worker = w.trainer.worker
    qtbot.waitUntil(entered.is_set, timeout=60_000)
    return w, worker


def test_stop_during_the_final_prediction(viewer, qtbot, final_prediction):
    entered, release = final_prediction
    w, worker = _training_into_final_prediction(viewer, qtbot, entered)
    with qtbot.waitSignal(w.trainer.finished, timeout=120_000):
        w.stop_training()
        assert w.status_label.text().startswith("Stopping…")
        release.set()
    assert worker.done.is_set()
    assert not w.trainer.running and w.trainer.error is None
    assert w.status_label.text().startswith(("Done", "Stopped"))
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=120_000)
    assert w.train_button.isEnabled()
    w.cleanup()


def test_close_during_the_final_prediction(viewer, qtbot, final_prediction):
    entered, release = final_prediction
    w, worker = _training_into_final_prediction(viewer, qtbot, entered)
    release.set()
    w.close()  # returns once the worker has ended
    assert worker.done.is_set()
    assert w.session.apply_worker is None
    assert w.session.closed and w.viewer is None


def _stopped_into_final_prediction(viewer, qtbot, monkeypatch):
    """A 1024x1024 run stopped by the user, held in the first band of the core's final
    prediction (four bands of 256 rows); returns the dock, the worker, the release event and
    the bands started."""
    from napari_seglab.core import preview

    real_predict = preview.predict
    entered, release, bands = threading.Event(), threading.Event(), []

    def held_predict(*args, **kwargs):
        bands.append(kwargs.get("region"))
        entered.set()
        release.wait(30)
        return real_predict(*args, **kwargs)

    size = 1024
    viewer.add_image(synthetic_image(size), name="img")
    w = _dock(viewer, qtbot, dataclasses.replace(FAST, budget_kind="seconds", budget=120))
    layer = w.new_scribbles()
    layer.brush_size = 7
    for point, label in (((30, 5), 1), ((size - 10, size - 10), 1), ((16, 16), 2)):
        layer.paint(point, label, refresh=True)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    with qtbot.waitSignal(w.trainer.reported, timeout=60_000):
        assert w.start_training()
    worker = w.trainer.worker
    monkeypatch.setattr(preview, "predict", held_predict)
    w.train_button.click()  # Stop
    assert w.status_label.text().startswith("Stopping")
    try:
        qtbot.waitUntil(entered.is_set, timeout=60_000)  # the final prediction's first band
    finally:
        if not entered.is_set():
            release.set()
    assert w.session.apply_worker is None  # the core's prediction, not one of the session's
    assert bands[0] is not None and bands[0][-2] == slice(0, 256)
    return w, worker, release, bands


def test_stop_ends_with_the_core_s_final_prediction_and_close_abandons_it(
    viewer, qtbot, monkeypatch
):
    """Stop ends the run with the core's final prediction (the model so far, the whole image,
    band by band); closing during it returns within a band instead of after the whole
    image."""
    w, worker, release, bands = _stopped_into_final_prediction(viewer, qtbot, monkeypatch)
    try:
        release.set()
        w.close()  # returns once the worker has ended
    finally:
        release.set()
    assert worker.done.is_set()
    assert 1 <= len(bands) < 4  # abandoned at the next band, not after the whole image
    assert w.session.closed and w.viewer is None


def test_skip_prediction_after_stop(viewer, qtbot, monkeypatch):
    """While the final prediction runs, the button offers to skip it: the run then ends
    within a band, the model is kept and Train is available again."""
    w, worker, release, bands = _stopped_into_final_prediction(viewer, qtbot, monkeypatch)
    try:
        assert w.train_button.text() == "Skip prediction" and w.train_button.isEnabled()
        with qtbot.waitSignal(w.trainer.finished, timeout=60_000):
            w.train_button.click()
            release.set()
    finally:
        release.set()
    assert worker.done.is_set() and 1 <= len(bands) < 4
    assert w.trainer.model is not None and w.trainer.error is None
    assert w.status_label.text().startswith("Stopped")
    assert w.train_button.text() == "Train" and w.train_button.isEnabled()
    w.cleanup()
