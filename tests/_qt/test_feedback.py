"""What the widget tells the user: how well the strokes are reproduced, what the trainer changed
on its own, layers that are not aligned, and a final status for every action."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import FAST, saved_strokes, synthetic_image  # noqa: E402

from napari_seglab._qt import align  # noqa: E402
from napari_seglab._qt.readout import NoteTracker, note_line, recall_text  # noqa: E402
from napari_seglab._qt.settings import Settings  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402
from napari_seglab.core import guard as core_guard  # noqa: E402
from napari_seglab.core import training as core_training  # noqa: E402


@pytest.fixture
def shown(monkeypatch):
    """``(level, message)`` of every notification the widget shows."""
    messages: list[tuple[str, str]] = []
    for level in ("info", "warning", "error"):
        monkeypatch.setattr(
            f"napari_seglab._qt.widget.show_{level}",
            lambda text, level=level: messages.append((level, text)),
        )
    return messages


def _dock(viewer, qtbot, settings: Settings = FAST) -> SegLabWidget:
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(settings)
    return w


def _with_strokes(viewer, qtbot, add_image: bool = True) -> SegLabWidget:
    """Dock, add scribbles (New scribbles) and write strokes into them."""
    if add_image:
        viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer, qtbot)
    w.new_scribbles().data = saved_strokes()
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    return w


def _train(w, qtbot, timeout=60_000) -> None:
    with qtbot.waitSignal(w.trainer.finished, timeout=timeout):
        assert w.start_training()
    assert w.trainer.error is None


# ------------------------------------------------------------------------------------------
# strokes reproduced, notes
# ------------------------------------------------------------------------------------------
def test_recall_text_in_words():
    assert recall_text(None, ["background", "foreground"]) == ""
    assert recall_text(np.array([np.nan, np.nan]), ["background", "foreground"]) == ""
    text = recall_text(np.array([0.996, 0.2, np.nan]), ["background", "foreground"])
    assert text == "Strokes reproduced: 99% background, 20% foreground (low)"
    # a default name ending in a number is not run into the share
    text = recall_text(np.array([1.0, 1.0, 0.0]), ["background", "foreground", "class 3"])
    assert text == "Strokes reproduced: 100% background, 100% foreground, 0% class 3 (low)"


@pytest.mark.parametrize("style", ["", "QLabel { font-size: 10pt; border: 1px solid; }"])
def test_strokes_reproduced_of_three_classes_fit_a_narrow_dock(qtbot, style):
    """Three classes' shares are wider than a 300 px dock: the line wraps onto its second line
    instead of being cut (it was one line, cut at the dock's edge), and both lines fit in the
    font and frame a stylesheet sets after the label is made (as napari's does)."""
    from qtpy.QtCore import QRect, Qt

    from napari_seglab._qt.readout import StatusLabel

    text = recall_text(np.array([0.996, 0.97, 0.5]), ["background", "nuclei", "membranes"])
    label = StatusLabel("", lines=2)
    qtbot.addWidget(label)
    label.setStyleSheet(style)
    label.ensurePolished()
    label.resize(300, label.height())
    label.setText(text)
    metrics = label.fontMetrics()
    assert metrics.horizontalAdvance(text) > 300  # one line would cut it
    room = label.contentsRect()
    wrapped = metrics.boundingRect(
        QRect(0, 0, room.width(), 10_000), Qt.TextFlag.TextWordWrap, text
    )
    assert wrapped.height() <= room.height() and label.wordWrap()
    # its size does not follow the text (no layout pass per report)
    before = label.sizeHint()
    label.setText("Strokes reproduced: 99% background")
    assert label.sizeHint() == before and label.height() == before.height()


def test_a_long_status_wraps_in_a_narrow_dock(viewer, qtbot):
    """ "Paint in 'coins scribbles': 1 = background, 2 = foreground." was cut after "foregr"."""
    from qtpy.QtCore import QRect, Qt

    w = _with_strokes(viewer, qtbot)
    label = w.status_label
    label.resize(300, label.height())
    text = "Paint in 'coins scribbles': 1 = background, 2 = foreground."
    label.setText(text)
    metrics = label.fontMetrics()
    assert metrics.horizontalAdvance(text) > label.contentsRect().width()
    wrapped = metrics.boundingRect(
        QRect(0, 0, label.contentsRect().width(), 10_000), Qt.TextFlag.TextWordWrap, text
    )
    assert label.wordWrap() and wrapped.height() <= label.contentsRect().height()


def test_note_tracker_hands_out_each_note_once():
    tracker = NoteTracker()
    report = type("R", (), {"notes": ("step 30: a",)})()
    assert tracker.new(report) == ["step 30: a"]
    assert tracker.new(report) == []
    report.notes = ("step 30: a", "step 45: b")
    assert tracker.new(report) == ["step 45: b"]
    tracker.reset()
    assert tracker.new(report) == ["step 30: a", "step 45: b"]


def test_strokes_reproduced_are_shown_during_and_after_training(viewer, qtbot):
    w = _with_strokes(viewer, qtbot)
    w.settings_panel.set_settings(dataclasses.replace(FAST, budget=8))
    assert w.recall_label.text() == ""
    _train(w, qtbot)
    text = w.recall_label.text()
    assert re.fullmatch(r"Strokes reproduced: \d+% background, \d+% foreground.*", text)
    assert w.trainer.last_report.stroke_recall is not None
    # the scribbles layer removed: no strokes left to speak of
    viewer.layers.remove(w.scribbles_layer)
    qtbot.waitUntil(lambda: w.recall_label.text() == "", timeout=3000)


def test_each_note_of_the_trainer_is_shown_once(viewer, qtbot, shown, monkeypatch):
    """An edge term 100x too strong on a textureless image: the trainer's guard switches it
    off (and then raises the foreground weight); every such note is shown once, not with
    every later report."""
    noise = np.random.default_rng(0).normal(0, 1, (64, 64)).astype(np.float32)
    viewer.add_image(noise, name="img")
    w = _with_strokes(viewer, qtbot, add_image=False)
    strong = dataclasses.replace(FAST, budget=50, lambda_edge=200.0)
    # the gate that lets the term act only as far as the strokes are learnt, held open
    monkeypatch.setattr(core_guard, "EDGE_GATE", (-2.0, -1.0))
    monkeypatch.setattr(w.settings_panel, "settings", lambda: strong)
    _train(w, qtbot, timeout=120_000)
    notes = w.trainer.last_report.notes
    assert notes, "the guard did not act: make the run harder"
    assert any("edge-aware term switched off" in n for n in notes)
    infos = [text for level, text in shown if level == "info"]
    for note in notes:
        assert infos.count(f"SegLab: {note}") == 1, infos
    assert w.notes_label.isVisibleTo(w)
    assert notes[-1] in w.notes_label.text()
    assert w.notes_label.toolTip() == "\n".join(notes)
    assert w.status_label.text().startswith("Done: step 50")
    # a new run starts without the old notes
    monkeypatch.setattr(w.settings_panel, "settings", lambda: FAST)
    w.reset_model()
    assert w.notes_label.text() == "" and not w.notes_label.isVisibleTo(w)


# ------------------------------------------------------------------------------------------
# alignment of the scribbles with the image
# ------------------------------------------------------------------------------------------
def test_scribbles_at_another_scale_than_the_image_are_refused(viewer, qtbot, shown):
    viewer.add_image(synthetic_image(), name="img", scale=(2, 2))
    theirs = viewer.add_labels(saved_strokes(), name="img scribbles")  # e.g. reopened from a TIFF
    w = _dock(viewer, qtbot)
    assert w.scribbles_layer is theirs
    assert "scale (2, 2)" in w.status_label.text()  # said when the pair is chosen
    shown.clear()
    assert not w.start_training()
    assert not w.trainer.running
    errors = [text for level, text in shown if level == "error"]
    assert len(errors) == 1, shown
    assert "img scribbles" in errors[0]
    assert "no transform (pixel units)" in errors[0] and "scale (2, 2)" in errors[0]
    assert w.status_label.text().startswith("Training not started")
    np.testing.assert_array_equal(theirs.scale, (1, 1))  # left as it is
    # aligned by the user: trains
    theirs.scale = (2, 2)
    _train(w, qtbot)


TRANSFORMS = [
    {"rotate": 30},
    {
        "scale": (2.0, 1.5),
        "translate": (10.0, -4.0),
        "shear": [0.3],
        "affine": np.array([[1.0, 0.1, 5.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]]),
    },
]


@pytest.mark.parametrize("transform", TRANSFORMS, ids=["rotated", "sheared_affine"])
def test_new_scribbles_and_overlays_copy_the_whole_transform(viewer, qtbot, transform):
    image = viewer.add_image(synthetic_image(), name="img", **transform)
    w = _with_strokes(viewer, qtbot, add_image=False)
    _train(w, qtbot)
    expected = image._data_to_world.affine_matrix
    for name in ("img scribbles", "img prediction", "img probability"):
        layer = viewer.layers[name]
        np.testing.assert_allclose(layer.rotate, image.rotate, err_msg=name)
        np.testing.assert_allclose(layer.affine.affine_matrix, image.affine.affine_matrix)
        np.testing.assert_allclose(layer.scale, image.scale, err_msg=name)
        np.testing.assert_allclose(layer.translate, image.translate, err_msg=name)
        np.testing.assert_allclose(layer._data_to_world.affine_matrix, expected, err_msg=name)
        assert align.same_placement(image, layer, 2)


def test_a_class_axis_in_front_is_left_untransformed(viewer):
    image = viewer.add_image(synthetic_image(), name="img", rotate=30, scale=(2, 2))
    kwargs = align.transform_kwargs(image, 2, leading=1)
    prob = viewer.add_image(np.zeros((3, 64, 64), np.float32), **kwargs)
    matrix = prob._data_to_world.affine_matrix
    np.testing.assert_allclose(matrix[0], [1, 0, 0, 0])
    np.testing.assert_allclose(matrix[1:, 1:], image._data_to_world.affine_matrix)


# ------------------------------------------------------------------------------------------
# every action ends with its own status
# ------------------------------------------------------------------------------------------
def test_a_refused_train_does_not_leave_done(viewer, qtbot, shown):
    w = _with_strokes(viewer, qtbot)
    _train(w, qtbot)
    assert w.status_label.text().startswith("Done")
    w.scribbles_layer.data = np.where(saved_strokes() == 1, 1, 0).astype(np.uint8)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 1, timeout=3000)
    assert not w.start_training()
    assert w.status_label.text() == (
        "Training not started: paint at least two classes (background and foreground)."
    )
    assert ("warning", "SegLab: " + w.status_label.text()) in shown


def test_a_failed_prediction_does_not_leave_predicting(viewer, qtbot, shown, monkeypatch):
    w = _with_strokes(viewer, qtbot)
    _train(w, qtbot)
    shown.clear()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(w.trainer.model.net, "forward", broken)  # as torch's out of memory
    assert w.apply_to_layer(w.image_layer) is not None
    assert w.status_label.text() == "Predicting 'img'…"
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=30_000)
    assert w.status_label.text() == "Prediction of 'img' failed: RuntimeError: out of memory"
    assert shown == [("error", "SegLab: Prediction of 'img' failed: RuntimeError: out of memory")]
    assert w.apply_button.isEnabled()


def test_save_adds_the_suffix_and_a_failed_save_says_so(viewer, qtbot, shown, tmp_path):
    w = _with_strokes(viewer, qtbot)
    _train(w, qtbot)
    path = w.save_model(tmp_path / "model")
    assert path == tmp_path / "model.seglab" and path.is_file()
    assert w.status_label.text() == f"Model saved to {path}"
    shown.clear()
    target = tmp_path / "taken.seglab"
    target.mkdir()  # a folder where the file should go
    assert w.save_model(target) is None
    status = w.status_label.text()
    assert status.startswith(f"Model not saved to {target}: ")
    assert ".tmp" not in status
    assert shown == [("error", f"SegLab: {status}")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.seglab", "taken.seglab"]
    # never under an image's name: the image the model was trained on stays as it was
    image = tmp_path / "coins.tif"
    image.write_bytes(b"II*\x00 an image")
    for name in ("coins.tif", "model.tif", "model.npy"):
        assert w.save_model(tmp_path / name) is None
        assert w.status_label.text() == (
            f"Model not saved to {tmp_path / name}: {name}: name a model file .seglab "
            "(or .safetensors)"
        )
    assert image.read_bytes() == b"II*\x00 an image"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "coins.tif",
        "model.seglab",
        "taken.seglab",
    ]


# ------------------------------------------------------------------------------------------
# one notification per action
# ------------------------------------------------------------------------------------------
def test_a_refused_train_notifies_once(viewer, qtbot, shown):
    w = _with_strokes(viewer, qtbot)
    bad = saved_strokes().astype(np.int16)
    bad[0:4, 0:4] = -1
    w.scribbles_layer.data = bad  # Train before the counter's own recount
    shown.clear()
    assert not w.start_training()
    assert len(shown) == 1, shown
    assert shown[0][0] == "error" and "negative" in shown[0][1]
    assert shown[0][1] == "SegLab: " + w.status_label.text()


def test_a_finished_training_notifies_nothing_and_a_failed_one_once(
    viewer, qtbot, shown, monkeypatch
):
    w = _with_strokes(viewer, qtbot)
    shown.clear()
    _train(w, qtbot)
    assert w.trainer.last_report.notes == ()
    assert shown == []  # the status line says "Done"
    assert w.status_label.text().startswith("Done")

    _fail_training_with(monkeypatch, ValueError("loss is nan"))
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        assert w.start_training()
    assert shown == [("error", "SegLab: Training failed: loss is nan")]


def test_an_image_with_nan_leaves_no_empty_overlay_layers(viewer, qtbot, shown):
    """The worker finds the NaN (the dock reads no image in full): the empty prediction and
    probability layers added for the run's previews are taken away again."""
    image = synthetic_image().astype(np.float32)
    image[5, 5] = np.nan
    viewer.add_image(image, name="img")
    w = _with_strokes(viewer, qtbot, add_image=False)
    names = [layer.name for layer in viewer.layers]
    shown.clear()
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        assert w.start_training()
    assert len(shown) == 1 and shown[0][0] == "error", shown
    assert "Training failed" in shown[0][1] and "NaN" in shown[0][1]
    assert [layer.name for layer in viewer.layers] == names


def _fail_training_with(monkeypatch, exc: Exception) -> None:
    """The core's training raises ``exc`` after its first step."""
    core_train = core_training
    real_train = core_train.train

    def failing_train(*args, **kwargs):
        gen = real_train(*args, **kwargs)
        yield next(gen)
        raise exc

    monkeypatch.setattr(core_train, "train", failing_train)


def test_a_runtime_error_in_training_ends_the_run(viewer, qtbot, shown, monkeypatch):
    """torch's out-of-memory error is a RuntimeError, which napari's workers take for a
    deleted worker (no errored, no finished): the widget must still end the run and say so."""
    w = _with_strokes(viewer, qtbot)
    _fail_training_with(monkeypatch, RuntimeError("CUDA out of memory"))
    shown.clear()
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        assert w.start_training()
    assert not w.trainer.running
    assert shown == [("error", "SegLab: Training failed: RuntimeError: CUDA out of memory")]
    assert w.train_button.isEnabled()


def _interrupt_a_long_run(viewer, qtbot, shown, action, w=None) -> SegLabWidget:
    """Start a 120 s training (of ``w``, default a dock with strokes), wait for its first
    report, then do ``action()``, which must end the run."""
    w = w or _with_strokes(viewer, qtbot)
    w.settings_panel.set_settings(dataclasses.replace(FAST, budget_kind="seconds", budget=120))
    with qtbot.waitSignal(w.trainer.reported, timeout=60_000):
        assert w.start_training()
    shown.clear()
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        action()
    assert w.status_label.text().startswith("Stopped")
    return w


@pytest.mark.parametrize("shape", [(64, 64), (80, 96)])
def test_replacing_the_images_data_stops_the_training(viewer, qtbot, shown, shape):
    """The run trains on a copy of the old pixels: it went on to "Done" and left an overlay of
    the old shape over the new image. It stops as for a renamed layer, without the final
    prediction, and says why once."""

    def replace() -> None:
        viewer.layers["img"].data = np.zeros(shape, np.float32)

    w = _interrupt_a_long_run(viewer, qtbot, shown, replace)
    assert shown == [
        (
            "info",
            "SegLab: Training stopped because the image's data was replaced; press Train to "
            "train on the new data.",
        )
    ]
    w.cleanup()


@pytest.mark.parametrize("removed", ["img scribbles", "img"])
def test_a_stop_because_a_layer_was_removed_notifies_once(viewer, qtbot, shown, removed):
    # the removal also changes the layer choice
    w = _interrupt_a_long_run(viewer, qtbot, shown, lambda: viewer.layers.remove(removed))
    assert len(shown) == 1, shown
    assert shown[0] == ("info", f"SegLab: Training stopped because layer '{removed}' was removed.")
    w.cleanup()


def test_a_new_model_for_a_new_class_is_said_once(viewer, qtbot, shown):
    w = _with_strokes(viewer, qtbot)
    _train(w, qtbot)
    w.add_class()
    w.scribbles_layer.paint((5, 60), 3, refresh=True)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 3, timeout=3000)
    shown.clear()
    _train(w, qtbot)
    assert w.trainer.model.num_classes == 3
    said = [text for _, text in shown if "new model" in text]
    assert len(said) == 1, shown
    # the other notices are the trainer's notes (the new class is painted on a few pixels)
    assert all("forest" in text for _, text in shown if "new model" not in text), shown


def test_the_notes_line_says_adjustments_at_a_step_and_other_notes_as_they_are():
    from napari_seglab._qt.readout import note_line

    assert note_line("step 30: edge-aware term switched off") == (
        "Adjusted at step 30: edge-aware term switched off"
    )
    assert note_line("the random forest teaches foreground (11 painted pixels)") == (
        "The random forest teaches foreground (11 painted pixels)"
    )


def test_a_failed_run_also_takes_away_an_overlay_it_made_anew(viewer, qtbot, shown):
    """An own prediction layer of another shape (the image's data replaced by a crop) is
    replaced at the run's start; the run fails on a NaN: the new empty overlays go too."""
    from napari_seglab._qt import layers as lyr

    layer = viewer.add_image(np.zeros((80, 80), np.float32), name="img")
    old_pred, old_prob = lyr.ensure_prediction_layers(viewer, layer, 2, [])
    image = synthetic_image().astype(np.float32)
    image[5, 5] = np.nan
    layer.data = image
    w = _with_strokes(viewer, qtbot, add_image=False)
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        assert w.start_training()
    assert "Training failed" in shown[-1][1]
    names = [lyr_.name for lyr_ in viewer.layers]
    assert "img prediction" not in names and "img probability" not in names, names
    assert old_pred not in viewer.layers and old_prob not in viewer.layers


def test_ensure_prediction_layers_lists_what_it_added(viewer):
    from napari_seglab._qt import layers as lyr

    image = viewer.add_image(np.zeros((40, 50), np.float32), name="img")
    created: list = []
    pred, prob = lyr.ensure_prediction_layers(viewer, image, 2, [], created=created)
    assert created == [prob, pred]
    again: list = ["kept"]
    assert lyr.ensure_prediction_layers(viewer, image, 2, [], created=again) == (pred, prob)
    assert again == ["kept"]
    image.data = np.zeros((30, 50), np.float32)  # another shape: both made anew
    new: list = []
    pred2, prob2 = lyr.ensure_prediction_layers(viewer, image, 2, [], created=new)
    assert new == [prob2, pred2] and pred2 is not pred and pred2.data.shape == (30, 50)
    names = [layer.name for layer in viewer.layers]
    assert names == ["img", "img probability", "img prediction"], names


@pytest.mark.parametrize("action", ["replace", "rename", "remove"])
def test_changing_an_extra_channel_layer_stops_the_training(viewer, qtbot, shown, action):
    """A layer trained on as an extra channel is watched as the image is: the run trains on a
    copy of its pixels (it went on to "Done" with the old ones)."""
    viewer.add_image(synthetic_image(), name="img")
    viewer.add_image(synthetic_image(seed=1), name="gfp")

    def change() -> None:
        gfp = viewer.layers["gfp"]
        if action == "replace":
            gfp.data = np.zeros((64, 64), np.float32)
        elif action == "rename":
            gfp.name = "gfp old"
        else:
            viewer.layers.remove(gfp)

    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["img"])
    w.new_scribbles().data = saved_strokes()
    w.channel_picker.set_checked(["img", "gfp"])
    assert [layer.name for layer in w.session.channel_choice.extra] == ["gfp"]
    _interrupt_a_long_run(viewer, qtbot, shown, change, w)
    why = {
        "replace": "the data of layer 'gfp' was replaced; press Train to train on the new data",
        "rename": "a training layer was renamed (now 'gfp old')",
        "remove": "layer 'gfp' was removed",
    }[action]
    assert shown == [("info", f"SegLab: Training stopped because {why}.")]
    # and the status line keeps the reason once the run has ended
    assert w.status_label.text().startswith(f"Stopped because {why}: step "), w.status_label.text()
    w.cleanup()


@pytest.mark.parametrize(
    "style",
    ["", "QWidget { font-size: 14pt; } QHeaderView::section { padding: 6px; border: 2px solid; }"],
)
def test_the_class_table_shows_every_row_whatever_the_stylesheet(qtbot, style):
    """Docked with two classes, the table had a scroll bar and its second row was cut: its
    height was measured before napari's stylesheet made the header and rows taller."""
    from napari_seglab._qt.classes import default_class
    from napari_seglab._qt.weights_panel import WeightsPanel

    panel = WeightsPanel()
    qtbot.addWidget(panel)
    panel.set_classes([default_class(1), default_class(2)])
    panel.set_counts(np.array([1750, 240]))
    panel.setStyleSheet(style)  # after the rows exist, as napari's arrives
    panel.show()
    qtbot.waitExposed(panel)
    table = panel.table
    rows = sum(table.rowHeight(r) for r in range(table.rowCount()))
    header = table.horizontalHeader().height()
    assert header + rows + 2 * table.frameWidth() <= table.height()
    assert not table.verticalScrollBar().isVisible()


def test_the_longest_note_fits_the_notes_line_of_a_narrow_dock(viewer, qtbot):
    """ "The random forest teaches foreground (48 painted p" was cut: one line only."""
    from qtpy.QtCore import QRect, Qt

    w = _with_strokes(viewer, qtbot)
    label = w.readout.notes_label
    label.resize(300, label.height())
    text = note_line(
        "step 30: edge-aware term switched off (only 41% of the painted foreground pixels "
        "reproduced)"
    )
    label.setText(text)
    room = label.contentsRect()
    wrapped = label.fontMetrics().boundingRect(
        QRect(0, 0, room.width(), 10_000), Qt.TextFlag.TextWordWrap, text
    )
    assert label.wordWrap() and wrapped.height() <= room.height()
