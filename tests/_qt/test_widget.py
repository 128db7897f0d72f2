"""The SegLab dock widget in a real viewer (under Xvfb): layers, live weights, training."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import saved_strokes, synthetic_image, wait_applied  # noqa: E402

from napari_seglab._qt import layers as lyr  # noqa: E402
from napari_seglab._qt.classes import PALETTE, classes_from_layer  # noqa: E402
from napari_seglab._qt.settings import Settings  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402
from napari_seglab.core import training as core_training  # noqa: E402
from napari_seglab.core.config import DEFAULT_CLASS_WEIGHTS  # noqa: E402
from napari_seglab.core.guard import DEFAULT_LAMBDA_EDGE  # noqa: E402
from napari_seglab.core.inference import predict  # noqa: E402
from napari_seglab.core.training import TrainConfig  # noqa: E402
from napari_seglab.core.weights import class_weights  # noqa: E402

# Tiny runs: the machine is shared.
FAST = Settings(
    model_size="small", budget_kind="steps", budget=6, preview_every=0.01, num_threads=1
)
LONG = Settings(
    model_size="small", budget_kind="seconds", budget=120, preview_every=0.5, num_threads=1
)


def paint_two_classes(layer) -> None:
    """Paint background and foreground strokes the way napari's brush does (paint events)."""
    layer.paint((32, 5), 1, refresh=True)
    layer.paint((60, 60), 1, refresh=True)
    layer.paint((16, 16), 2, refresh=True)
    layer.paint((44, 30), 2, refresh=True)


@pytest.fixture
def widget(viewer, qtbot):
    viewer.add_image(synthetic_image(), name="img")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(FAST)
    yield w
    # never leave a worker running
    w.cleanup(timeout=20)
    assert not w.trainer.running or w.trainer.worker.done.is_set()


def _scribbled(widget, qtbot):
    layer = widget.new_scribbles()
    layer.brush_size = 5
    paint_two_classes(layer)
    qtbot.waitUntil(lambda: np.count_nonzero(widget.weights_panel.counts) == 2, timeout=3000)
    return layer


def _train(widget, qtbot, timeout=60_000):
    with qtbot.waitSignal(widget.trainer.finished, timeout=timeout):
        assert widget.start_training()
    assert not widget.trainer.running


# ------------------------------------------------------------------------------------------
# layers and classes
# ------------------------------------------------------------------------------------------
def test_docked_through_manifest_selects_image_scribbles_pair(viewer):
    viewer.add_image(synthetic_image(), name="other")
    image = viewer.add_image(synthetic_image(seed=1), name="cells")
    scribbles = viewer.add_labels(np.zeros((64, 64), np.uint8), name="cells scribbles")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="unrelated")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    assert isinstance(w, SegLabWidget)
    assert w.image_layer is image
    assert w.scribbles_layer is scribbles
    assert w.train_button.text() == "Train"


def test_new_scribbles_layer_shape_names_colours(widget, viewer):
    layer = widget.new_scribbles()
    assert layer.name == "img scribbles"
    assert layer.data.shape == (64, 64)
    assert layer.data.dtype == np.uint8
    assert not layer.data.any()
    assert layer.mode == "paint"
    assert layer.selected_label == 2
    assert viewer.layers.selection.active is layer
    colors = layer.colormap.color_dict
    np.testing.assert_allclose(colors[1][:3], _rgb(PALETTE[0]), atol=1e-3)
    np.testing.assert_allclose(colors[2][:3], _rgb(PALETTE[1]), atol=1e-3)
    assert colors[0][3] == 0  # unlabeled is transparent
    assert list(layer.features["class"])[1:] == ["background", "foreground"]
    assert [c.name for c in classes_from_layer(layer)] == ["background", "foreground"]
    assert widget.scribbles_layer is layer
    # a second click selects the existing layer instead of adding another
    assert widget.new_scribbles() is layer
    assert len(viewer.layers) == 2


@pytest.mark.parametrize(
    ("data", "rgb", "spatial"),
    [
        (np.zeros((5, 32, 40), np.float32), False, (5, 32, 40)),
        (np.zeros((32, 40, 3), np.uint8), True, (32, 40)),
    ],
)
def test_new_scribbles_layer_3d_and_rgb(viewer, qtbot, data, rgb, spatial):
    viewer.add_image(data, name="vol", rgb=rgb, scale=(2.0,) * len(spatial))
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    layer = w.new_scribbles()
    assert layer.data.shape == spatial
    assert tuple(layer.scale) == (2.0,) * len(spatial)
    w.cleanup()


def test_add_and_rename_class(widget):
    layer = widget.new_scribbles()
    cls = widget.add_class()
    assert cls.name == "class 3"
    assert layer.selected_label == 3
    np.testing.assert_allclose(layer.colormap.color_dict[3][:3], _rgb(PALETTE[2]), atol=1e-3)
    assert widget.weights_panel.table.rowCount() == 3
    widget.weights_panel.table.item(2, 1).setText("membrane")
    assert widget.classes[2].name == "membrane"
    assert list(layer.features["class"])[3] == "membrane"


# ------------------------------------------------------------------------------------------
# live class weights
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(64, 64), (6, 64, 64)])
def test_painting_updates_weights_panel(viewer, qtbot, shape):
    image = viewer.add_image(np.zeros(shape, np.float32), name="img")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    layer = w.new_scribbles()
    assert w.weights_panel.missing_classes() == ["background", "foreground"]
    assert w.weights_panel.warning_label.isVisibleTo(w)
    layer.brush_size = 7
    # a stroke: napari's paint() records the changed pixels and fires events.paint
    center = (2, 30, 30) if len(shape) == 3 else (30, 30)
    layer.paint(center, 2)
    qtbot.waitUntil(lambda: w.weights_panel.counts[1] > 0, timeout=3000)
    assert w.weights_panel.missing_classes() == ["background"]
    # a programmatic edit through the history (as tools do): data_setitem fires events.paint
    idx = tuple(
        np.array([0, 1, 2]) if d == len(shape) - 1 else np.zeros(3, int) for d in range(len(shape))
    )
    layer.data_setitem(idx, 1)
    qtbot.waitUntil(lambda: w.weights_panel.counts[0] == 3, timeout=3000)
    expected = np.bincount(layer.data.ravel(), minlength=3)[1:]
    np.testing.assert_array_equal(w.weights_panel.counts, expected)
    np.testing.assert_allclose(
        w.weights_panel.weights, class_weights(expected, scheme=DEFAULT_CLASS_WEIGHTS)
    )
    assert not w.weights_panel.warning_label.isVisibleTo(w)
    # overpainting foreground with background moves pixels between classes
    layer.paint(center, 1)
    qtbot.waitUntil(lambda: w.weights_panel.counts[1] == 0, timeout=3000)
    np.testing.assert_array_equal(
        w.weights_panel.counts, np.bincount(layer.data.ravel(), minlength=3)[1:]
    )
    assert image is w.image_layer
    w.cleanup()


def test_weights_follow_the_scheme_setting(widget, qtbot):
    _scribbled(widget, qtbot)
    counts = widget.weights_panel.counts
    idx = widget.settings_panel.scheme.findData("median_frequency")
    widget.settings_panel.scheme.setCurrentIndex(idx)
    np.testing.assert_allclose(
        widget.weights_panel.weights, class_weights(counts, scheme="median_frequency")
    )
    assert "median frequency" in widget.weights_panel.scheme_label.text()


def test_incremental_counts_need_no_full_recount(viewer, qtbot, monkeypatch):
    """Strokes on a volume above the recount limit are counted from the changed pixels only."""
    from napari_seglab._qt import weights_panel

    monkeypatch.setattr(weights_panel, "FULL_RECOUNT_LIMIT", 10)
    viewer.add_image(np.zeros((4, 64, 64), np.float32), name="img")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    layer = w.new_scribbles()
    calls = []
    monkeypatch.setattr(w.counter, "recount", lambda: calls.append(1))
    layer.brush_size = 5
    layer.paint((1, 20, 20), 2)
    layer.paint((1, 40, 40), 1)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    np.testing.assert_array_equal(
        w.weights_panel.counts, np.bincount(layer.data.ravel(), minlength=3)[1:]
    )
    assert calls == []
    w.cleanup()


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------
def test_train_creates_and_refreshes_prediction_layers(widget, viewer, qtbot, monkeypatch):
    _scribbled(widget, qtbot)
    reports = []
    widget.trainer.reported.connect(reports.append)
    shown = []
    real_show = lyr.show_prediction

    def recording_show(*args, **kwargs):
        result = real_show(*args, **kwargs)
        shown.append(result)
        return result

    monkeypatch.setattr(lyr, "show_prediction", recording_show)
    with qtbot.waitSignal(widget.trainer.finished, timeout=60_000):
        assert widget.start_training()
        assert widget.train_button.text() == "Stop"
        assert not widget.settings_panel.isEnabled()
    pred = viewer.layers["img prediction"]
    prob = viewer.layers["img probability"]
    # refreshed several times, always the same two layers (created once)
    assert len(shown) >= 2
    assert all(p is pred and q is prob for p, q in shown)
    assert widget.train_button.text() == "Train"
    assert reports[0].source == "forest"  # a new model's first overlay, before step 1
    assert len(reports) == FAST.budget + 1
    assert reports[-1].report.done
    assert sum(r.prediction is not None for r in reports) == len(shown)
    # created once, below the scribbles, same colours as the scribbles
    assert [ly.name for ly in viewer.layers] == [
        "img",
        "img probability",
        "img prediction",
        "img scribbles",
    ]
    assert pred.data.shape == (64, 64)
    assert set(np.unique(pred.data)) <= {1, 2}
    np.testing.assert_array_equal(pred.data, reports[-1].prediction.labels)
    np.testing.assert_allclose(prob.data, reports[-1].prediction.probabilities[1])
    assert pred.colormap.color_dict[2].tolist() == (
        viewer.layers["img scribbles"].colormap.color_dict[2].tolist()
    )
    # loss plot and status
    assert widget.loss_plot.steps == list(range(1, FAST.budget + 1))
    np.testing.assert_allclose(widget.loss_plot.losses, [u.report.loss for u in reports[1:]])
    assert widget.status_label.text().startswith("Done: step 6")
    assert widget.device_label.text() == "Device: CPU, 1 thread"
    assert widget.trainer.model is reports[-1].report.model
    assert widget.save_button.isEnabled()


def test_every_class_has_a_colour_of_its_own():
    """The 8-colour palette repeated: class 9 was as blue as the background."""
    from napari_seglab._qt.classes import MAX_CLASSES, default_classes

    colors = [c.color for c in default_classes(MAX_CLASSES)]
    assert colors[: len(PALETTE)] == list(PALETTE)
    assert len(set(colors)) == MAX_CLASSES
    assert all(c.startswith("#") and len(c) == 7 for c in colors)


def test_the_device_line_says_the_threads_the_next_training_will_use(widget):
    """Before any training it showed torch's thread count, not the one set in Settings."""
    panel = widget.settings_panel
    panel.device.setCurrentText("cpu")
    for n in (1, 2):
        if n <= panel.num_threads.maximum():
            panel.num_threads.setValue(n)
            assert widget.device_label.text() == f"Device: CPU, {n} thread{'s' * (n > 1)}"


def test_stop_stops_within_a_second(widget, qtbot):
    _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(LONG)
    with qtbot.waitSignal(widget.trainer.reported, timeout=30_000):
        assert widget.start_training()
    with qtbot.waitSignal(widget.trainer.finished, timeout=1000):
        widget.train_button.click()
    assert widget.train_button.text() == "Train"
    assert widget.status_label.text().startswith("Stopped")
    model = widget.trainer.model
    assert model is not None  # the model so far is kept
    # the run's last report predicted the image with the model kept (no prediction of the
    # session's own), and Train is available again at once
    assert widget.session.apply_worker is None and widget.train_button.isEnabled()
    assert widget.trainer.last_report.stopped
    assert widget.trainer.last_report.prediction is not None
    pred = widget.viewer.layers["img prediction"]
    np.testing.assert_array_equal(pred.data, predict(model, widget.image_layer.data).labels)
    assert widget.status_label.text().startswith("Stopped")


def test_edge_term_setting_reaches_the_training(widget, qtbot):
    panel = widget.settings_panel
    assert panel.lambda_edge.text() == "auto"
    assert panel.settings().lambda_edge is None is TrainConfig().lambda_edge
    _scribbled(widget, qtbot)
    _train(widget, qtbot)  # a 2D image: auto means on
    assert widget.trainer.model.train_settings["lambda_edge_used"] == DEFAULT_LAMBDA_EDGE
    widget.reset_button.click()
    panel.lambda_edge.setValue(0.0)
    assert panel.settings().train_config().lambda_edge == 0.0
    _train(widget, qtbot)
    assert widget.trainer.model.train_settings["lambda_edge_used"] == 0.0
    panel.set_settings(FAST)  # back to auto
    assert panel.lambda_edge.text() == "auto"


def test_retrain_continues_from_the_current_model(widget, qtbot):
    _scribbled(widget, qtbot)
    _train(widget, qtbot)
    model = widget.trainer.model
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    first_losses = list(widget.loss_plot.losses)
    (first_steps,) = {float(s["step"]) for s in model.optimizer_state["state"].values()}
    reports = []
    widget.trainer.reported.connect(reports.append)
    _train(widget, qtbot)
    assert widget.trainer.model is model  # trained in place, not a new model
    # the second click resumed the first training's optimiser (TrainConfig.resume_optimizer)
    resumed = {float(s["step"]) for s in model.optimizer_state["state"].values()}
    assert resumed == {2 * first_steps}
    assert all(u.report.model is model for u in reports)
    after = model.net.state_dict()
    assert any(not np.allclose(before[k].numpy(), after[k].numpy()) for k in before)
    # the plot continues after the first run
    assert widget.loss_plot.losses[: len(first_losses)] == first_losses
    assert widget.loss_plot.steps[-1] == 2 * FAST.budget
    # Undo training: the first model, and its curve (the plot was empty after Undo)
    first_steps_plotted = widget.loss_plot.steps[: len(first_losses)]
    widget.undo_training()
    assert widget.loss_plot.losses == first_losses
    assert widget.loss_plot.steps == first_steps_plotted
    # a third training continues that curve, with one restart mark
    _train(widget, qtbot)
    assert widget.loss_plot.losses[: len(first_losses)] == first_losses
    assert widget.loss_plot.steps[-1] == 2 * FAST.budget
    assert widget.loss_plot._restarts == [FAST.budget]
    # Reset model starts over
    widget.reset_button.click()
    assert widget.trainer.model is None
    assert widget.loss_plot.steps == []
    assert widget.loss_plot.placeholder == "loss"


def test_strokes_reach_the_running_trainer(widget, qtbot):
    layer = _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(LONG)
    assert widget.start_training()
    # the first update may be the quick forest's overlay, which has no report
    qtbot.waitUntil(lambda: widget.trainer.last_report is not None, timeout=30_000)
    first = widget.trainer.last_report.counts.copy()
    layer.paint((44, 46), 2)  # a new stroke while training
    qtbot.waitUntil(lambda: widget.trainer.last_report.counts[1] > first[1], timeout=10_000)
    np.testing.assert_array_equal(
        widget.trainer.last_report.counts, np.bincount(layer.data.ravel(), minlength=3)[1:]
    )
    with qtbot.waitSignal(widget.trainer.finished, timeout=5000):
        widget.stop_training()


@pytest.mark.parametrize("action", ["remove_scribbles", "remove_image", "rename_image"])
def test_layer_removal_or_rename_stops_training(widget, viewer, qtbot, action):
    layer = _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(LONG)
    with qtbot.waitSignal(widget.trainer.reported, timeout=30_000):
        assert widget.start_training()
    with qtbot.waitSignal(widget.trainer.finished, timeout=5000):
        if action == "remove_scribbles":
            viewer.layers.remove(layer)
        elif action == "remove_image":
            viewer.layers.remove(viewer.layers["img"])
        else:
            viewer.layers["img"].name = "renamed"
    assert widget.train_button.text() == "Train"
    assert widget.trainer.model is not None


def test_save_load_round_trip(widget, qtbot, tmp_path):
    _scribbled(widget, qtbot)
    widget.add_class()  # renamed classes travel with the model
    widget.weights_panel.table.item(1, 1).setText("coin")
    _train(widget, qtbot)
    model = widget.trainer.model
    image = widget.image_layer.data
    expected = predict(model, image).labels
    path = widget.save_model(tmp_path / "model.seglab")
    assert path is not None and path.exists()
    widget.reset_model()
    assert widget.trainer.model is None
    loaded = widget.load_model(path)
    assert loaded is widget.trainer.model
    assert loaded.num_classes == model.num_classes
    np.testing.assert_array_equal(predict(loaded, image).labels, expected)
    assert widget.classes[1].name == "coin"
    assert widget.apply_button.isEnabled()


def test_load_rejects_a_foreign_file(widget, tmp_path, monkeypatch):
    errors = []
    monkeypatch.setattr("napari_seglab._qt.widget.show_error", errors.append)
    bad = tmp_path / "model.seglab"
    bad.write_bytes(b"not a model")
    assert widget.load_model(bad) is None
    assert errors and "could not load" in errors[0].lower()
    assert widget.trainer.model is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: h["normalization"].update(low=[float("nan")]), "not finite"),
        (lambda h: h.update(num_classes=1_000_000_000), "num_classes"),
        (lambda h: h["model_config"].update(width=256, depth=6), "at most 150 M"),
        (lambda h: h["normalization"].update(percentiles=[]), "invalid model header"),
    ],
    ids=["nan_normalisation", "1e9_classes", "31GB_network", "empty_percentiles"],
)
def test_load_refuses_a_damaged_model_and_keeps_the_work(
    widget, qtbot, tmp_path, monkeypatch, change, reason
):
    """A damaged model file through Load: one error naming the reason; the trained model, the
    strokes and the classes stay as they were (nothing is allocated for the damaged sizes)."""
    import json

    from safetensors.torch import save_file

    from napari_seglab.core.modelio import HEADER_KEY, model_header

    errors = []
    monkeypatch.setattr("napari_seglab._qt.widget.show_error", errors.append)
    layer = _scribbled(widget, qtbot)
    _train(widget, qtbot)
    model, strokes = widget.trainer.model, np.array(layer.data)
    header = model_header(model)
    change(header)
    tensors = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    path = tmp_path / "damaged.seglab"
    save_file(tensors, str(path), metadata={HEADER_KEY: json.dumps(header)})
    assert widget.load_model(path) is None
    assert len(errors) == 1 and reason in errors[0] and "Traceback" not in errors[0]
    assert widget.trainer.model is model
    np.testing.assert_array_equal(layer.data, strokes)
    assert [c.name for c in widget.classes] == ["background", "foreground"]
    assert widget.train_button.isEnabled()


def test_apply_to_another_layer(widget, viewer, qtbot):
    _scribbled(widget, qtbot)
    _train(widget, qtbot)
    other = viewer.add_image(synthetic_image(48, seed=3), name="new")
    widget.apply_combo.set_layer(other)
    worker = widget.apply_to_layer()
    assert worker is not None
    wait_applied(qtbot, widget)
    pred = viewer.layers["new prediction"]
    assert pred.data.shape == (48, 48)
    assert set(np.unique(pred.data)) <= {1, 2}
    assert widget.apply_button.isEnabled()


def test_error_in_worker_is_notified_and_widget_stays_usable(widget, qtbot, monkeypatch):

    core_train = core_training

    errors = []
    monkeypatch.setattr("napari_seglab._qt.widget.show_error", errors.append)
    real_train = core_train.train

    def failing_train(image, scribbles, config, model=None, previewer=None):
        gen = real_train(image, scribbles, config, model, previewer)

        def run():
            yield next(gen)
            raise FloatingPointError("training diverged: loss is nan at step 2")

        return run()

    monkeypatch.setattr(core_train, "train", failing_train)
    _scribbled(widget, qtbot)
    with qtbot.waitSignal(widget.trainer.finished, timeout=30_000):
        assert widget.start_training()
    assert errors == [
        "SegLab: Training failed: FloatingPointError: training diverged: loss is nan at step 2"
    ]
    assert widget.status_label.text() == errors[0].removeprefix("SegLab: ")
    assert widget.train_button.text() == "Train" and widget.train_button.isEnabled()
    monkeypatch.setattr(core_train, "train", real_train)
    _train(widget, qtbot)  # usable again
    assert widget.trainer.last_report.done


def test_bad_input_is_refused_with_a_message(widget, qtbot, monkeypatch):
    warnings = []
    monkeypatch.setattr("napari_seglab._qt.widget.show_warning", warnings.append)
    layer = widget.new_scribbles()
    layer.paint((10, 10), 2)
    qtbot.waitUntil(lambda: widget.weights_panel.counts[1] > 0, timeout=3000)
    assert not widget.start_training()
    assert "paint at least two classes" in warnings[-1]
    assert not widget.trainer.running


def test_closing_the_widget_stops_the_worker(widget, qtbot):
    _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(LONG)
    with qtbot.waitSignal(widget.trainer.reported, timeout=30_000):
        assert widget.start_training()
    worker = widget.trainer.worker
    widget.close()
    assert worker.done.is_set()


def _docked_and_training(viewer, qtbot):
    """Dock SegLab through the manifest, paint and start a long training; the widget and its
    running worker."""
    viewer.add_image(synthetic_image(), name="img")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    w.settings_panel.set_settings(LONG)
    _scribbled(w, qtbot)
    with qtbot.waitSignal(w.trainer.reported, timeout=30_000):
        assert w.start_training()
    return w, w.trainer.worker


def test_removing_the_dock_stops_the_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    w, worker = _docked_and_training(viewer, qtbot)
    viewer.window.remove_dock_widget(w)  # the dock's close button
    assert worker.done.wait(5)
    qtbot.waitUntil(lambda: not w.trainer.running, timeout=5000)


def test_closing_the_viewer_stops_the_worker(viewer, qtbot):
    w, worker = _docked_and_training(viewer, qtbot)
    viewer.close()
    assert worker.done.wait(5)
    w.cleanup()


def _rgb(hex_color: str) -> list[float]:
    return [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]


# ------------------------------------------------------------------------------------------
# previews of the visible region
# ------------------------------------------------------------------------------------------
def test_previews_of_a_region_update_only_that_region(widget, viewer, qtbot):
    from napari_seglab.core.preview import Previewer

    _scribbled(widget, qtbot)
    _train(widget, qtbot)
    model = widget.trainer.model
    image = widget.image_layer.data
    pred, prob = lyr.ensure_prediction_layers(viewer, widget.image_layer, 2, widget.classes)
    pred.data[...] = 0
    prob.data[...] = 0
    region = (slice(10, 30), slice(20, 50))
    previewer = Previewer(image.shape, every=0.0001, band_pixels=200)  # 6 bands
    previewer.region = region
    previewer.start()
    time.sleep(0.01)
    assert previewer.due(1)
    prediction, got_region = previewer.predict(model, image)
    # the next preview waits twice this one's cost (asked at once: the whole-image prediction
    # below may take longer than that on a busy machine)
    assert not previewer.due(2)
    assert got_region == region
    assert prediction.labels.shape == (20, 30)
    lyr.update_prediction_layers(pred, prob, prediction, got_region)
    full = predict(model, image)
    # Exact with batch norm; group norm (the default) normalises with the statistics of the
    # window it is given, and a region is predicted with 32 px of context, not the whole image.
    exact = model.config.norm == "batch"
    same = pred.data[region] == full.labels[region]
    assert same.all() if exact else same.mean() > 0.99
    outside = np.ones(pred.data.shape, bool)
    outside[region] = False
    assert not pred.data[outside].any() and not prob.data[outside].any()
    np.testing.assert_allclose(
        prob.data[region], full.probabilities[1][region], atol=1e-5 if exact else 1e-2
    )
    # the whole image, in bands of 32 rows, equals one prediction of the whole image
    previewer.region = None
    prediction, got_region = previewer.predict(model, image)
    assert got_region is None
    np.testing.assert_array_equal(prediction.labels, full.labels)
    np.testing.assert_allclose(prediction.probabilities, full.probabilities, atol=1e-5)
    # a stop request abandons the preview at the next band
    previewer.stopped.set()
    assert previewer.predict(model, image) is None
    assert not previewer.due(3)


def test_first_overlay_is_the_quick_forest_then_the_network(widget, viewer, qtbot):
    """With previews on, a new model's first overlay is the forest's, before the network's
    first step; the network's last prediction replaces it."""
    _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(dataclasses.replace(FAST, preview_every=0.5))
    updates = []
    widget.trainer.reported.connect(updates.append)
    _train(widget, qtbot)
    assert updates[0].source == "forest" and updates[0].report is None
    first = updates[0].prediction
    assert first.labels.shape == (64, 64) and first.probabilities.shape == (2, 64, 64)
    # the forest separates the painted classes on its own strokes
    painted = widget.scribbles_layer.data > 0
    assert np.mean(first.labels[painted] == widget.scribbles_layer.data[painted]) > 0.95
    assert all(u.source == "cnn" for u in updates[1:])
    assert widget.session.overlay_source == "cnn"  # the final prediction replaced it
    pred = viewer.layers["img prediction"].data
    np.testing.assert_array_equal(pred, updates[-1].prediction.labels)
    # training on from this model starts with the network's own previews
    updates.clear()
    _train(widget, qtbot)
    assert updates and all(u.source == "cnn" for u in updates)


def test_visible_region_follows_the_camera(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(np.zeros((512, 512), np.float32), name="big")
    viewer.reset_view()
    qtbot.wait(50)
    assert lyr.visible_region(image) is None  # all of it on screen
    lyr.camera(viewer).zoom *= 8
    qtbot.waitUntil(lambda: lyr.visible_region(image) is not None, timeout=3000)
    region = lyr.visible_region(image)
    assert all(0 < s.stop - s.start < 512 for s in region)
    assert all(s.start <= 256 < s.stop for s in region)  # centred view


def test_strokes_before_the_first_step_are_not_lost(widget, qtbot):
    layer = _scribbled(widget, qtbot)
    widget.settings_panel.set_settings(LONG)
    assert widget.start_training()
    layer.paint((44, 46), 2)  # right after the click, before the worker's first report
    expected = np.bincount(layer.data.ravel(), minlength=3)[1:]
    qtbot.waitUntil(
        lambda: (
            widget.trainer.last_report is not None
            and np.array_equal(widget.trainer.last_report.counts, expected)
        ),
        timeout=30_000,
    )
    with qtbot.waitSignal(widget.trainer.finished, timeout=5000):
        widget.stop_training()


@pytest.mark.parametrize("kind", ["stack", "rgb"])
def test_train_on_a_stack_and_an_rgb_image(viewer, qtbot, kind):
    base = synthetic_image(48)
    if kind == "stack":
        data = np.stack([base, np.roll(base, 3, axis=1), np.roll(base, 6, axis=1)])
        point = lambda y, x: (1, y, x)  # noqa: E731 - strokes on the middle slice only
    else:
        data = (np.clip(np.stack([base] * 3, axis=-1), 0, 1) * 255).astype(np.uint8)
        point = lambda y, x: (y, x)  # noqa: E731
    image = viewer.add_image(data, name="img", rgb=kind == "rgb")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(FAST)
    layer = w.new_scribbles()
    layer.brush_size = 5
    layer.paint(point(16, 16), 2)
    layer.paint(point(44, 30), 2)
    layer.paint(point(32, 4), 1)
    layer.paint(point(4, 44), 1)
    qtbot.waitUntil(lambda: np.count_nonzero(w.weights_panel.counts) == 2, timeout=3000)
    _train(w, qtbot)
    pred = viewer.layers["img prediction"]
    assert pred.data.shape == lyr.spatial_shape(image)
    assert set(np.unique(pred.data)) <= {1, 2}
    assert w.trainer.last_report.done
    w.cleanup()


def test_closing_the_dock_keeps_an_unsaved_model(viewer, qtbot, autosave_home):
    """The dock closed with a trained, unsaved model: it was gone without a word."""
    from napari_seglab.core.modelio import load_model

    viewer.add_image(synthetic_image(), name="img")
    w = SegLabWidget(viewer)
    qtbot.addWidget(w)
    w.settings_panel.set_settings(FAST)
    w.new_scribbles().data = saved_strokes()
    with qtbot.waitSignal(w.trainer.finished, timeout=60_000):
        assert w.start_training()
    assert w.session.model_unsaved
    w.cleanup()
    models = autosave_home.parent / "models"
    (kept,) = models.glob("img-*.seglab")
    assert load_model(kept).num_classes == 2
    # a saved model is not kept again
    w2 = SegLabWidget(viewer)
    qtbot.addWidget(w2)
    w2.settings_panel.set_settings(FAST)
    with qtbot.waitSignal(w2.trainer.finished, timeout=60_000):
        assert w2.start_training()
    assert w2.save_model(models.parent / "mine.seglab") is not None
    w2.cleanup()
    assert len(list(models.glob("*.seglab"))) == 1
