"""Strokes reach a running training as edits; undo and replaced arrays as whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_seglab._qt.scribble_sync import edits_from_paint  # noqa: E402
from napari_seglab._qt.settings import Settings  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402
from napari_seglab.core.edits import ScribbleEdit  # noqa: E402

# until stopped; previews off: only the steps matter here
LONG = Settings(
    model_size="small", budget_kind="seconds", budget=120, preview_every=0.0, num_threads=1
)


def _image(shape=(3, 48, 48)) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.2, shape).astype(np.float32)
    img[..., 10:20, 10:20] += 1.0
    return img


@pytest.fixture
def running(viewer, qtbot):
    """A widget training on a stack with two painted classes, and what it sends."""
    viewer.add_image(_image(), name="img")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(LONG)
    layer = w.new_scribbles()
    layer.brush_size = 3
    layer.paint((1, 15, 15), 2, refresh=True)
    layer.paint((1, 35, 35), 1, refresh=True)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    sent = []
    real_send = w.trainer.send
    w.trainer.send = lambda item: (sent.append(item), real_send(item))
    reports = []
    w.trainer.reported.connect(lambda u: reports.append(u.report))
    assert w.start_training()
    qtbot.waitUntil(lambda: len(reports) >= 1, timeout=60_000)
    yield w, layer, sent, reports
    w.cleanup(timeout=30)
    assert not w.trainer.running or w.trainer.worker.done.is_set()


def _counts(layer) -> list[int]:
    return np.bincount(np.asarray(layer.data).ravel(), minlength=3)[1:].tolist()


def _wait_for_counts(qtbot, reports, layer) -> None:
    expected = _counts(layer)
    n = len(reports)
    qtbot.waitUntil(
        lambda: len(reports) > n + 1 and reports[-1].counts.tolist() == expected, timeout=20_000
    )


def test_strokes_during_training_travel_as_edits(running, qtbot):
    w, layer, sent, reports = running
    layer.paint((2, 40, 10), 2, refresh=True)  # a new stroke on another slice
    layer.paint((1, 15, 15), 1, refresh=True)  # over foreground
    layer.paint((1, 35, 35), 0, refresh=True)  # erase part of the background
    assert len(sent) == 3
    for item in sent:
        assert isinstance(item, list) and all(isinstance(e, ScribbleEdit) for e in item)
        assert sum(e.size for e in item) < 20  # the stroke's pixels, not the stack's
    _wait_for_counts(qtbot, reports, layer)
    assert w.trainer.running


def test_undo_and_a_new_array_send_the_whole_array(running, qtbot):
    w, layer, sent, reports = running
    layer.paint((2, 40, 10), 2, refresh=True)
    _wait_for_counts(qtbot, reports, layer)
    sent.clear()
    layer.undo()
    qtbot.waitUntil(lambda: len(sent) == 1, timeout=3000)
    assert sent[0] is layer.data  # the worker copies it
    _wait_for_counts(qtbot, reports, layer)
    replaced = np.asarray(layer.data).copy()
    replaced[0, :4, :4] = 1
    layer.data = replaced
    qtbot.waitUntil(lambda: len(sent) == 2, timeout=3000)
    _wait_for_counts(qtbot, reports, layer)
    assert w.trainer.running


def test_painting_a_class_beyond_the_model_stops_training(running, qtbot):
    w, layer, sent, _ = running
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        layer.paint((0, 5, 5), 3, refresh=True)
    assert sent == []
    assert w.trainer.error is None


def test_erasing_every_stroke_stops_training(running, qtbot):
    w, layer, sent, _ = running
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        layer.data_setitem(np.nonzero(np.asarray(layer.data)), 0)
    assert sent == []
    assert w.trainer.error is None


def test_edits_from_napari_paint_atoms(viewer):
    layer = viewer.add_labels(np.zeros((2, 16, 16), np.uint8))
    events = []
    layer.events.paint.connect(lambda e: events.append(e.value))
    layer.brush_size = 3
    layer.paint((1, 8, 8), 2)
    layer.fill((0, 3, 3), 1)  # the whole slice
    layer.data_setitem((np.array([1]), np.array([0]), np.array([0])), 1)
    truth = np.zeros((2, 16, 16), np.uint8)
    for value in events:
        for edit in edits_from_paint(value):
            flat, values = edit.resolve(truth.shape, 2)
            truth.reshape(-1)[flat] = values
    np.testing.assert_array_equal(truth, layer.data)
