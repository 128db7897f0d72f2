"""Undo training: back to the model and overlay from before the last training."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

napari = pytest.importorskip("napari")

from gui_data import FAST, saved_strokes, synthetic_image  # noqa: E402

from napari_seglab._qt import layers as lyr  # noqa: E402
from napari_seglab._qt import model_actions  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402


@pytest.fixture
def widget(viewer, qtbot):
    image = viewer.add_image(synthetic_image(), name="img")
    viewer.add_labels(saved_strokes(), name="img scribbles")  # the user's own strokes layer
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(FAST)
    assert w.session.image is image and w.session.scribbles is viewer.layers["img scribbles"]
    yield w
    w.cleanup(timeout=20)


def _train(widget, qtbot):
    with qtbot.waitSignal(widget.trainer.finished, timeout=60_000):
        assert widget.start_training()


def _weights(model):
    return {k: v.detach().clone() for k, v in model.net.state_dict().items()}


def _overlays(viewer):
    return {
        name: np.array(viewer.layers[name].data) for name in ("img prediction", "img probability")
    }


def test_undo_goes_back_to_the_model_and_overlay_before_the_last_training(widget, viewer, qtbot):
    assert not widget.undo_button.isEnabled()  # nothing trained yet
    _train(widget, qtbot)
    assert not widget.undo_button.isEnabled()  # the first model replaced none
    first_weights, first_overlays = _weights(widget.trainer.model), _overlays(viewer)
    first_steps = widget.trainer.model.train_settings["steps_done"]
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1  # more background, then a second click
    viewer.layers["img scribbles"].refresh()
    _train(widget, qtbot)
    second = _overlays(viewer)
    assert any(not np.array_equal(first_overlays[k], second[k]) for k in second)
    assert widget.undo_button.isEnabled()
    strokes = np.array(viewer.layers["img scribbles"].data)

    widget.undo_button.click()

    model = widget.trainer.model
    for k, v in _weights(model).items():
        torch.testing.assert_close(v, first_weights[k])
    assert model.train_settings["steps_done"] == first_steps
    for name, data in _overlays(viewer).items():
        np.testing.assert_array_equal(data, first_overlays[name])
    np.testing.assert_array_equal(viewer.layers["img scribbles"].data, strokes)  # untouched
    assert "Training undone: the model and its overlay are back" in widget.status_label.text()
    assert not widget.undo_button.isEnabled()  # one step back
    # the next click on Train continues the model gone back to
    _train(widget, qtbot)
    assert widget.trainer.model is model and widget.undo_button.isEnabled()


def test_reset_and_load_forget_what_undo_would_go_back_to(widget, qtbot, tmp_path):
    _train(widget, qtbot)
    _train(widget, qtbot)
    assert widget.session.can_undo_training
    path = widget.save_model(tmp_path / "m.seglab")
    widget.load_model(path)
    assert not widget.undo_button.isEnabled()
    plot = widget.loss_plot
    assert plot.steps == [] and plot.placeholder == "loss: not kept in a model file"
    _train(widget, qtbot)
    assert widget.undo_button.isEnabled()
    assert len(plot.steps) == FAST.budget and plot._restarts == []
    widget.undo_training()  # the loaded model, and its empty plot, are back
    assert plot.steps == [] and plot.placeholder == "loss: not kept in a model file"
    _train(widget, qtbot)
    widget.reset_button.click()
    assert not widget.undo_button.isEnabled()
    assert widget.undo_training() is None
    assert "Nothing undone" in widget.status_label.text()


def test_undo_after_a_failed_training_shows_the_curve_of_the_model_it_brings_back(
    widget, qtbot, monkeypatch
):
    """A training that fails before changing the model leaves Undo where it was, and the
    curve Undo shows with it (it showed the curve of the undone model)."""
    from napari_seglab.core import training

    _train(widget, qtbot)
    first = widget.loss_plot.history()
    _train(widget, qtbot)
    assert len(widget.loss_plot.steps) == 2 * FAST.budget

    def fail(*args, **kwargs):
        raise ValueError("the image is broken")

    monkeypatch.setattr(training, "check_not_constant", fail)
    _train(widget, qtbot)
    assert "the image is broken" in widget.status_label.text()
    widget.undo_training()
    assert "Training undone" in widget.status_label.text()
    assert widget.loss_plot.history() == first


def test_an_overlay_too_large_to_keep_is_said_and_the_model_still_goes_back(
    widget, viewer, qtbot, monkeypatch
):
    monkeypatch.setattr(model_actions, "UNDO_OVERLAY_BYTES", 100)
    _train(widget, qtbot)
    first_weights = _weights(widget.trainer.model)
    _train(widget, qtbot)
    second = _overlays(viewer)
    widget.undo_training()
    for k, v in _weights(widget.trainer.model).items():
        torch.testing.assert_close(v, first_weights[k])
    for name, data in _overlays(viewer).items():  # left as the last training made it
        np.testing.assert_array_equal(data, second[name])
    assert "its overlay is not" in widget.status_label.text()


def test_undo_finds_its_overlays_after_the_image_was_renamed(widget, viewer, qtbot):
    _train(widget, qtbot)
    first = _overlays(viewer)
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1
    viewer.layers["img scribbles"].refresh()
    _train(widget, qtbot)
    viewer.layers["img"].name = "raw"
    widget.undo_training()
    for name, data in _overlays(viewer).items():
        np.testing.assert_array_equal(data, first[name])
    assert "Training undone: the model and its overlay are back" in widget.status_label.text()


@pytest.mark.parametrize("renamed", ["img prediction", "img probability"])
def test_undo_leaves_an_overlay_renamed_to_keep_it(widget, viewer, qtbot, renamed):
    """Renaming an overlay layer is how a napari user keeps it: the next training makes a new
    one, and Undo no longer writes the first training's result into it, nor into the other
    overlay (prediction and probability stay of one model, as the status says)."""
    _train(widget, qtbot)
    first_weights = _weights(widget.trainer.model)
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1
    viewer.layers["img scribbles"].refresh()
    _train(widget, qtbot)
    second = _overlays(viewer)
    viewer.layers[renamed].name = "kept v2"
    widget.undo_training()
    for k, v in _weights(widget.trainer.model).items():  # the model still goes back
        torch.testing.assert_close(v, first_weights[k])
    np.testing.assert_array_equal(viewer.layers["kept v2"].data, second[renamed])
    other = ({"img prediction", "img probability"} - {renamed}).pop()
    np.testing.assert_array_equal(viewer.layers[other].data, second[other])
    assert "its overlay is not" in widget.status_label.text()


def test_undo_is_refused_while_training(widget, qtbot):
    _train(widget, qtbot)
    _train(widget, qtbot)
    widget.settings_panel.set_settings(dataclasses.replace(FAST, budget_kind="seconds", budget=120))
    assert widget.start_training()
    qtbot.waitUntil(lambda: widget.trainer.last_report is not None, timeout=30_000)
    assert not widget.undo_button.isEnabled()
    assert widget.session.undo_training() is None
    with qtbot.waitSignal(widget.trainer.finished, timeout=10_000):
        widget.stop_training()
    assert widget.undo_button.isEnabled()  # the stopped training can be undone


def test_the_kept_overlays_are_copies_of_the_layers_made_here_only(viewer):
    image = viewer.add_image(synthetic_image(), name="img")
    assert model_actions.keep_before(viewer, image, None) is None
    from napari_seglab.core.data import Normalization, as_zcyx
    from napari_seglab.core.model import ModelConfig, SegModel

    data = synthetic_image()
    model = SegModel.create(2, 1, Normalization.fit(as_zcyx(data)), ModelConfig(width=8))
    viewer.add_labels(np.ones((64, 64), np.uint8), name=lyr.prediction_name(image))  # the user's
    kept = model_actions.keep_before(viewer, image, model)
    assert kept.overlays == [] and kept.kept and kept.model is not model
    assert kept.original is model
    viewer.layers.remove(lyr.prediction_name(image))
    pred, prob = lyr.ensure_prediction_layers(viewer, image, 2, [])
    pred.data[:] = 2
    kept = model_actions.keep_before(viewer, image, model)
    assert [ref() for ref, _, _ in kept.overlays] == [pred, prob] and kept.kept
    assert [name for _, name, _ in kept.overlays] == ["img prediction", "img probability"]
    pred.data[:] = 1
    assert (kept.overlays[0][2] == 2).all()


def test_undo_never_writes_into_a_layer_of_the_users_and_survives_their_names(
    widget, viewer, qtbot
):
    """An overlay renamed since is the user's to keep (the next training makes a new one) and
    is not written; a user's layer that took an overlay's, the image's or the uncertainty
    layer's name is left alone."""
    _train(widget, qtbot)
    viewer.add_image(np.full((64, 64), 5.0, np.float32), name="img uncertainty")  # the user's
    first = _overlays(viewer)
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1
    _train(widget, qtbot)
    second = np.array(viewer.layers["img prediction"].data)
    assert not np.array_equal(second, first["img prediction"])
    viewer.layers["img prediction"].name = "kept prediction"
    own = viewer.add_labels(np.full((64, 64), 7, np.uint8), name="img prediction")
    viewer.layers["img"].name = "raw"
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="img")
    widget.undo_button.click()
    assert (own.data == 7).all()
    assert (viewer.layers["img uncertainty"].data == 5.0).all()
    np.testing.assert_array_equal(viewer.layers["kept prediction"].data, second)
    assert "Training undone: the model is back, its overlay is not" in widget.status_label.text()
    assert not widget.undo_button.isEnabled()


def test_overlays_made_for_another_image_by_the_undone_training_are_emptied(widget, viewer, qtbot):
    _train(widget, qtbot)
    other = viewer.add_image(synthetic_image(seed=1), name="other")
    viewer.add_labels(saved_strokes(), name="other scribbles")
    widget.image_combo.set_layer(other)
    assert widget.session.scribbles is viewer.layers["other scribbles"]
    _train(widget, qtbot)  # continues the model, on the other image
    assert viewer.layers["other prediction"].data.any()
    widget.undo_training()
    assert not viewer.layers["other prediction"].data.any()  # as before that training: empty
    assert not viewer.layers["other probability"].data.any()
    assert "overlay layers that were not there before the training are emptied" in (
        widget.status_label.text()
    )


def test_a_training_that_changed_nothing_keeps_the_way_back(widget, qtbot, monkeypatch):
    _train(widget, qtbot)
    first_weights = _weights(widget.trainer.model)
    _train(widget, qtbot)
    from napari_seglab._qt import training as qt_training

    def fails(*args, **kwargs):
        raise RuntimeError("no step made")

    monkeypatch.setattr(qt_training, "_run_training", fails)
    with qtbot.waitSignal(widget.trainer.finished, timeout=60_000):
        assert widget.start_training()
    assert widget.trainer.last_report is None and widget.trainer.error is not None
    assert widget.undo_button.isEnabled()
    widget.undo_training()
    for k, v in _weights(widget.trainer.model).items():  # back to the first, not the second
        torch.testing.assert_close(v, first_weights[k])


def test_a_training_that_failed_after_changing_the_weights_can_be_undone(
    widget, qtbot, monkeypatch
):
    """A run that diverges in its first step has already changed the weights (the core's
    check follows the optimiser's step): Undo goes back to before it."""
    _train(widget, qtbot)
    _train(widget, qtbot)
    second = _weights(widget.trainer.model)
    from napari_seglab._qt import training as qt_training

    model = widget.trainer.model

    def diverges(*args, **kwargs):
        with torch.no_grad():
            for p in model.net.parameters():
                p.fill_(float("nan"))
        raise RuntimeError("training diverged: loss is nan at step 1")

    monkeypatch.setattr(qt_training, "_run_training", diverges)
    with qtbot.waitSignal(widget.trainer.finished, timeout=60_000):
        assert widget.start_training()
    assert widget.trainer.error is not None and widget.undo_button.isEnabled()
    widget.undo_training()
    for k, v in _weights(widget.trainer.model).items():
        torch.testing.assert_close(v, second[k])


def test_a_large_overlay_is_copied_in_a_thread_and_previews_wait_for_the_copy(
    widget, viewer, qtbot, monkeypatch
):
    """Overlays over UNDO_COPY_IN_THREAD_BYTES are copied off the GUI thread; the training's
    previews (its quick-forest overlay included) wait for that copy, then show in order, and
    Undo restores what was there when Train was clicked."""
    _train(widget, qtbot)
    first = _overlays(viewer)
    release = threading.Event()
    copied = []

    def slow_copies(arrays):
        assert threading.current_thread() is not threading.main_thread()
        release.wait(30)
        copied.append(True)
        return [a.copy() for a in arrays]

    monkeypatch.setattr(model_actions, "UNDO_COPY_IN_THREAD_BYTES", 0)
    monkeypatch.setattr(model_actions, "_copies", slow_copies)
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1  # more background, then a second click
    viewer.layers["img scribbles"].refresh()
    with qtbot.waitSignal(widget.trainer.finished, timeout=60_000):
        assert widget.start_training()  # returns at once: the copy runs in the thread
        assert not widget.session.pending_before.ready
    assert not copied
    for name, data in _overlays(viewer).items():  # no preview has written into them
        np.testing.assert_array_equal(data, first[name])
    assert widget.session._held[0]  # the previews wait, the last one among them

    release.set()
    qtbot.waitUntil(lambda: not widget.session._held[0], timeout=10_000)
    second = _overlays(viewer)
    assert any(not np.array_equal(first[k], second[k]) for k in second)

    widget.undo_button.click()
    for name, data in _overlays(viewer).items():
        np.testing.assert_array_equal(data, first[name])
    assert "the model and its overlay are back" in widget.status_label.text()


def test_undo_before_the_held_previews_are_shown_drops_them(widget, viewer, qtbot, monkeypatch):
    _train(widget, qtbot)
    first = _overlays(viewer)
    release = threading.Event()

    def slow_copies(arrays):
        release.wait(30)
        return [a.copy() for a in arrays]

    monkeypatch.setattr(model_actions, "UNDO_COPY_IN_THREAD_BYTES", 0)
    monkeypatch.setattr(model_actions, "_copies", slow_copies)
    _train(widget, qtbot)
    assert widget.session._held[0]
    threading.Timer(0.2, release.set).start()
    widget.undo_button.click()  # waits for the copy, then restores
    qtbot.wait(200)
    assert not widget.session._held[0]
    for name, data in _overlays(viewer).items():  # not overwritten by the dropped previews
        np.testing.assert_array_equal(data, first[name])


def test_a_new_model_for_a_third_class_says_so_and_undo_brings_the_old_one_back(
    widget, viewer, qtbot
):
    _train(widget, qtbot)
    first = widget.trainer.model
    first_weights, first_overlays = _weights(first), _overlays(viewer)
    strokes = viewer.layers["img scribbles"]
    strokes.data[0:3, 0:30] = 3  # a third class: the 2-class model cannot continue
    strokes.refresh()
    texts = []
    widget.session.status.connect(lambda text, *_: texts.append(text))
    _train(widget, qtbot)
    said = [t for t in texts if t.startswith("Training a new model")]
    assert said == [
        "Training a new model: the model had 2 classes and the scribbles hold 3 "
        "(Undo training brings the 2-class model back)."
    ], texts
    assert widget.trainer.model.num_classes == 3
    assert viewer.layers["img probability"].data.shape[0] == 3  # a class axis now
    widget.undo_button.click()
    model = widget.trainer.model
    assert model.num_classes == 2
    for k, v in _weights(model).items():
        torch.testing.assert_close(v, first_weights[k])
    for name, data in _overlays(viewer).items():
        np.testing.assert_array_equal(data, first_overlays[name])


@pytest.mark.parametrize("case", ["free name deleted", "name taken"])
def test_undo_after_a_third_class_never_writes_a_users_layer(widget, viewer, qtbot, case):
    """A third class remakes the probability layer; then the user deletes the prediction
    layer. Undo raised KeyError when that overlay had a free name ("img prediction [1]",
    beside a layer of the user's they deleted too), and wrote the old prediction into a
    layer of the user's that took the name "img prediction"."""
    if case == "free name deleted":
        theirs = viewer.add_labels(np.full((64, 64), 7, np.uint8), name="img prediction")
    _train(widget, qtbot)
    ours = "img prediction [1]" if case == "free name deleted" else "img prediction"
    assert lyr.role(viewer.layers[ours]) == "prediction"
    strokes = viewer.layers["img scribbles"]
    strokes.data[0:3, 0:30] = 3
    strokes.refresh()
    _train(widget, qtbot)
    assert viewer.layers["img probability"].data.shape[0] == 3  # remade with a class axis
    viewer.layers.remove(ours)
    if case == "free name deleted":
        viewer.layers.remove(theirs)
    else:
        theirs = viewer.add_labels(np.full((64, 64), 7, np.uint8), name="img prediction")
    assert widget.undo_training() is not None
    assert "Training undone" in widget.status_label.text()
    assert widget.trainer.model.num_classes == 2
    if case == "name taken":
        np.testing.assert_array_equal(theirs.data, np.full((64, 64), 7, np.uint8))
        assert lyr.role(theirs) is None


def test_undo_leaves_a_free_named_overlay_renamed_to_the_plain_name(widget, viewer, qtbot):
    """The overlay "img prediction [1]" (beside a layer of the user's) renamed by the user
    to "img prediction": Undo emptied it as a layer "not there before the training"."""
    theirs = viewer.add_labels(np.full((64, 64), 5, np.uint8), name="img prediction")
    _train(widget, qtbot)
    _train(widget, qtbot)
    theirs.name = "old"
    ours = viewer.layers["img prediction [1]"]
    ours.name = "img prediction"
    kept = np.array(ours.data)
    assert len(np.unique(kept)) == 2
    widget.undo_training()
    np.testing.assert_array_equal(ours.data, kept)
    assert "its overlay is not" in widget.status_label.text()


def test_undo_keeps_a_probability_layer_remade_under_the_plain_name(widget, viewer, qtbot):
    """Overlays "[1]" beside the user's layers; a third class remakes the probabilities; the
    user deletes their layers. Undo put the old probabilities into a layer made under the
    now free plain name, then emptied it as one "not there before"."""
    for name in ("img prediction", "img probability"):
        viewer.add_labels(np.full((64, 64), 5, np.uint8), name=name)
    _train(widget, qtbot)
    first = {
        n: np.array(viewer.layers[n].data) for n in ("img prediction [1]", "img probability [1]")
    }
    strokes = viewer.layers["img scribbles"]
    strokes.data[0:3, 0:30] = 3
    strokes.refresh()
    _train(widget, qtbot)
    viewer.layers.remove("img prediction")
    viewer.layers.remove("img probability")
    widget.undo_training()
    assert "the model and its overlay are back" in widget.status_label.text()
    np.testing.assert_array_equal(
        viewer.layers["img prediction [1]"].data, first["img prediction [1]"]
    )
    prob = lyr.overlay_layer(viewer, "probability", type(viewer.layers["img"]), "img probability")
    np.testing.assert_array_equal(prob.data, first["img probability [1]"])


@pytest.mark.parametrize("deleted", [["img prediction"], ["img prediction", "img probability"]])
def test_undo_says_so_when_it_empties_overlays_that_were_not_there(widget, viewer, qtbot, deleted):
    """The user deleted overlay layers; the next training made them again. Undo said "the
    model and its overlay are back" over the layers it had emptied."""
    _train(widget, qtbot)
    first = _overlays(viewer)
    for name in deleted:
        viewer.layers.remove(name)
    viewer.layers["img scribbles"].data[0:4, 0:60] = 1
    viewer.layers["img scribbles"].refresh()
    _train(widget, qtbot)
    assert viewer.layers["img prediction"].data.any()
    widget.undo_button.click()
    text = widget.status_label.text()
    assert "the model is back; overlay layers that were not there before the training" in text
    assert not viewer.layers["img prediction"].data.any()
    if len(deleted) == 1:  # the probabilities were there: put back
        np.testing.assert_array_equal(
            viewer.layers["img probability"].data, first["img probability"]
        )
    else:
        assert not viewer.layers["img probability"].data.any()
