"""No stroke lost: strokes saved while painting, offered back when the image is opened again,
also after the napari process was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import dock as _dock  # noqa: E402
from gui_data import synthetic_image  # noqa: E402

from napari_seglab.core.autosave import StrokeStore, image_key  # noqa: E402


def _paint(layer) -> None:
    layer.brush_size = 5
    layer.selected_label = 2
    for y, x in ((16, 16), (17, 18), (44, 30)):
        layer.paint((y, x), 2, refresh=True)
    for y, x in ((2, 2), (60, 60), (2, 60)):
        layer.paint((y, x), 1, refresh=True)


def _reopen(make_napari_viewer, qtbot, old, image, name):
    """Close the dock ``old`` and its viewer; open the same pixels in a new viewer and dock."""
    viewer = old.viewer
    old.cleanup()
    viewer.close()
    viewer = make_napari_viewer()
    viewer.add_image(image.copy(), name=name)
    return viewer, _dock(viewer, qtbot)


def _saved_before(home, image) -> np.ndarray:
    """Strokes of ``image`` saved in an earlier session (two classes); returns them."""
    strokes = np.zeros((64, 64), np.uint8)
    strokes[10:13, 5:30] = 2
    strokes[50:53, 5:30] = 1
    classes = [("background", "#0072b2"), ("foreground", "#e69f00")]
    StrokeStore.create(home, image_key(image), strokes.shape).save(strokes, classes)
    return strokes


def _saved(home, image) -> StrokeStore | None:
    return StrokeStore.find(home, image_key(image))


def test_strokes_are_saved_while_painting_and_restored_on_reopening(
    make_napari_viewer, qtbot, autosave_home
):
    image = synthetic_image()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="cells")
    w = _dock(viewer, qtbot)
    assert w.restore_banner.isHidden()  # nothing saved for this image yet
    layer = w.new_scribbles()
    _paint(layer)
    w.add_class()
    w.session.rename_class(3, "debris")
    layer.paint((30, 50), 3, refresh=True)
    expected = np.asarray(layer.data).copy()
    names = ["background", "foreground", "debris"]
    # the strokes are written before session.json: wait for both
    qtbot.waitUntil(
        lambda: (
            _saved(autosave_home, image) is not None
            and np.array_equal(_saved(autosave_home, image).read(), expected)
            and [n for n, _ in _saved(autosave_home, image).info().classes] == names
        ),
        timeout=5000,
    )
    info = _saved(autosave_home, image).info()
    assert [name for name, _ in info.classes] == names
    assert info.painted == np.count_nonzero(expected)
    assert info.image_name == "cells"
    # the same pixels opened again, under another name, in a new viewer
    viewer, w = _reopen(make_napari_viewer, qtbot, w, image, "cells again")
    assert not w.restore_banner.isHidden()
    assert f"{np.count_nonzero(expected):,} painted pixels" in w.restore_banner.label.text()
    assert "debris" in w.restore_banner.label.text()
    assert w.scribbles_layer is None  # nothing is put in a layer before the user says so
    qtbot.mouseClick(w.restore_banner.restore_button, _left())
    restored = w.scribbles_layer
    assert restored is not None and restored.name == "cells again scribbles"
    np.testing.assert_array_equal(restored.data, expected)
    assert [c.name for c in w.classes] == ["background", "foreground", "debris"]
    assert w.restore_banner.isHidden()
    qtbot.waitUntil(lambda: w.weights_panel.counts.sum() == np.count_nonzero(expected))
    assert w.start_training()  # the restored strokes train
    qtbot.waitUntil(lambda: not w.session.running, timeout=60000)
    assert w.trainer.model is not None


def _left():
    from qtpy.QtCore import Qt

    return Qt.MouseButton.LeftButton


def test_files_are_written_off_the_viewers_thread(make_napari_viewer, qtbot, monkeypatch):
    """A whole array after an undo on a large stack takes a fraction of a second: never on
    the thread that draws the viewer."""
    import threading

    threads = []
    real = StrokeStore.write

    def recording(self, *args, **kwargs):
        threads.append(threading.current_thread())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StrokeStore, "write", recording)
    viewer = make_napari_viewer()
    viewer.add_image(synthetic_image(seed=13), name="img")
    w = _dock(viewer, qtbot)
    layer = w.new_scribbles()
    _paint(layer)
    qtbot.waitUntil(lambda: len(threads) >= 1, timeout=5000)
    layer.undo()  # the whole array
    qtbot.waitUntil(lambda: len(threads) >= 2, timeout=5000)
    assert all(t is not threading.main_thread() for t in threads)


def test_strokes_painted_before_answering_keep_the_saved_ones(
    make_napari_viewer, qtbot, autosave_home
):
    image = synthetic_image(seed=3)
    old = _saved_before(autosave_home, image)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    w = _dock(viewer, qtbot)
    assert not w.restore_banner.isHidden()
    layer = w.new_scribbles()
    assert not w.restore_banner.isHidden()  # an empty layer: still offered
    layer.brush_size = 3
    layer.paint((30, 40), 1, refresh=True)
    both = np.where(np.asarray(layer.data) != 0, np.asarray(layer.data), old)
    qtbot.waitUntil(lambda: np.array_equal(_saved(autosave_home, image).read(), both), timeout=5000)
    # Restore: the saved strokes go under the new one
    w.autosaver.restore()
    np.testing.assert_array_equal(layer.data, both)
    assert w.scribbles_layer is layer and w.restore_banner.isHidden()
    # from now on the store follows the layer, erasing included
    layer.paint((11, 10), 0, refresh=True)
    qtbot.waitUntil(
        lambda: np.array_equal(_saved(autosave_home, image).read(), np.asarray(layer.data)),
        timeout=5000,
    )


def test_discard_forgets_the_saved_strokes(make_napari_viewer, qtbot, autosave_home):
    image = synthetic_image(seed=4)
    _saved_before(autosave_home, image)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    w = _dock(viewer, qtbot)
    qtbot.mouseClick(w.restore_banner.discard_button, _left())
    assert w.restore_banner.isHidden()
    assert _saved(autosave_home, image) is None
    assert w.scribbles_layer is None


def test_a_layer_holding_the_saved_strokes_is_not_offered_them(
    make_napari_viewer, qtbot, autosave_home
):
    """Scribbles reopened from a file along with the image: nothing to restore."""
    image = synthetic_image(seed=5)
    strokes = _saved_before(autosave_home, image)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    viewer.add_labels(strokes.copy(), name="img scribbles")
    w = _dock(viewer, qtbot)
    assert w.scribbles_layer is not None
    assert w.restore_banner.isHidden()


def test_the_strokes_of_every_open_image_are_saved(make_napari_viewer, qtbot, autosave_home):
    """Not only the image chosen in the dock: another image's "<image> scribbles" too."""
    a, b = synthetic_image(seed=8), synthetic_image(seed=9)
    viewer = make_napari_viewer()
    viewer.add_image(a, name="a")
    viewer.add_image(b, name="b")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    own = w.new_scribbles()  # a's, empty
    other = viewer.add_labels(np.zeros((64, 64), np.uint8), name="b scribbles")
    assert w.scribbles_layer is own
    other.brush_size = 3
    other.paint((20, 20), 2, refresh=True)
    other.paint((50, 50), 1, refresh=True)
    qtbot.waitUntil(
        lambda: (
            _saved(autosave_home, b) is not None
            and np.array_equal(_saved(autosave_home, b).read(), np.asarray(other.data))
        ),
        timeout=5000,
    )
    assert _saved(autosave_home, a) is None  # nothing painted there
    # b opened again alone: its strokes are offered
    viewer, w = _reopen(make_napari_viewer, qtbot, w, b, "b")
    assert not w.restore_banner.isHidden()
    np.testing.assert_array_equal(w.autosaver.restore().data, other.data)


def test_restore_goes_to_the_chosen_images_own_layer(make_napari_viewer, qtbot, autosave_home):
    """Choosing an image without scribbles while the previous image's layer is still in use:
    its saved strokes go to a new layer of its own, never into the other image's."""
    a, b = synthetic_image(seed=11), np.stack([synthetic_image(seed=12)] * 3)
    saved = np.zeros((3, 64, 64), np.uint8)
    saved[1, 10:14, 10:30], saved[2, 40:44, 10:30] = 2, 1
    StrokeStore.create(autosave_home, image_key(b), saved.shape).save(saved)
    viewer = make_napari_viewer()
    viewer.add_image(a, name="a")
    viewer.add_image(b, name="stack")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    own = w.new_scribbles()
    _paint(own)
    painted = np.asarray(own.data).copy()
    w.image_combo.set_layer(viewer.layers["stack"])
    assert not w.restore_banner.isHidden()
    restored = w.autosaver.restore()
    assert restored is not own and restored.name == "stack scribbles"
    np.testing.assert_array_equal(restored.data, saved)
    np.testing.assert_array_equal(own.data, painted)  # a's layer untouched
    assert w.scribbles_layer is restored
    w.autosaver.flush()
    w.autosaver.wait()
    np.testing.assert_array_equal(_saved(autosave_home, b).read(), saved)
    qtbot.waitUntil(lambda: np.array_equal(_saved(autosave_home, a).read(), painted), timeout=5000)


def test_an_undo_just_before_closing_is_saved(make_napari_viewer, qtbot, autosave_home):
    image = synthetic_image(seed=14)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    w = _dock(viewer, qtbot)
    layer = w.new_scribbles()
    _paint(layer)
    qtbot.waitUntil(lambda: _saved(autosave_home, image) is not None, timeout=5000)
    layer.undo()
    layer.undo()  # announced by napari without pixels, after a delay: closing does not wait
    w.cleanup()
    np.testing.assert_array_equal(_saved(autosave_home, image).read(), layer.data)


def test_a_picked_layer_stays_the_strokes_of_the_image_it_was_picked_for(
    make_napari_viewer, qtbot, autosave_home
):
    a, c = synthetic_image(seed=15), synthetic_image(seed=16)
    viewer = make_napari_viewer()
    viewer.add_image(a, name="a")
    viewer.add_image(c, name="c")
    mine = viewer.add_labels(np.zeros((64, 64), np.uint8), name="mine")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    w.scribbles_combo.set_layer(mine)
    assert w.scribbles_layer is mine
    _paint(mine)
    w.image_combo.set_layer(viewer.layers["c"])  # "mine" stays chosen: it is not c's
    mine.paint((30, 30), 1, refresh=True)
    w.autosaver.flush()
    w.autosaver.wait()
    qtbot.waitUntil(
        lambda: np.array_equal(_saved(autosave_home, a).read(), np.asarray(mine.data)),
        timeout=5000,
    )
    assert _saved(autosave_home, c) is None


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import napari
    from qtpy.QtWidgets import QApplication
    sys.path.insert(0, sys.argv[2])
    from gui_data import synthetic_image
    from napari_seglab._qt.widget import SegLabWidget

    viewer = napari.Viewer(show=False)
    viewer.add_image(synthetic_image(seed=7), name="cells")
    w = SegLabWidget(viewer)
    layer = w.new_scribbles()
    layer.brush_size = 4
    saves = []
    w.autosaver.saved.connect(lambda: saves.append(1))
    rng = np.random.default_rng(0)
    for i in range(12):
        y, x = rng.integers(2, 62, 2)
        layer.paint((int(y), int(x)), 1 + i % 2, refresh=True)
        if i % 4 == 3:  # a pause now and then, as a person makes
            t = time.time()
            while time.time() - t < 0.8:
                QApplication.processEvents()
                time.sleep(0.02)
    t = time.time()
    while time.time() - t < 1.5:
        QApplication.processEvents()
        time.sleep(0.02)
    np.save(sys.argv[1], np.asarray(layer.data))
    print("painted", len(saves), flush=True)
    while True:  # mid-session: the viewer stays open until the process is killed
        QApplication.processEvents()
        time.sleep(0.05)
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL here")
def test_every_stroke_comes_back_after_the_process_is_killed(
    make_napari_viewer, qtbot, autosave_home, tmp_path
):
    expected_path = tmp_path / "painted.npy"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(expected_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the napari process ended early: {proc.stderr.read()[-3000:]}")
        assert line.startswith("painted"), line
        assert int(line.split()[1]) >= 2  # saved in steps, not once at the end
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    expected = np.load(expected_path)
    assert np.count_nonzero(expected == 1) and np.count_nonzero(expected == 2)

    viewer = make_napari_viewer()
    viewer.add_image(synthetic_image(seed=7), name="cells")
    w = _dock(viewer, qtbot)
    assert not w.restore_banner.isHidden()
    layer = w.autosaver.restore()
    np.testing.assert_array_equal(layer.data, expected)
