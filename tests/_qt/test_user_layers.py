"""The dock widget with the layers a user already has: scribbles made before docking, other
images, instance segmentations and masks it must not touch, overlays on new images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import FAST, saved_strokes, synthetic_image, wait_applied  # noqa: E402

from napari_seglab._qt import layers as lyr  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402


def instance_segmentation(size: int = 64, n: int = 87) -> np.ndarray:
    """A user's instance labels: ``n`` small square objects with ids 1..n."""
    labels = np.zeros((size, size), np.int32)
    side = int(np.ceil(np.sqrt(n)))
    step = size // side
    for i in range(n):
        y, x = divmod(i, side)
        labels[y * step + 1 : y * step + step - 1, x * step + 1 : x * step + step - 1] = i + 1
    return labels


def _pixels_column(widget) -> list[int]:
    table = widget.weights_panel.table
    return [int(table.item(r, 2).text().replace(",", "")) for r in range(table.rowCount())]


def _dock(viewer):
    _dock_widget, w = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    assert isinstance(w, SegLabWidget)
    w.settings_panel.set_settings(FAST)
    return w


def _train(widget, qtbot, timeout=60_000):
    with qtbot.waitSignal(widget.trainer.finished, timeout=timeout):
        assert widget.start_training()
    assert widget.trainer.error is None
    assert widget.trainer.last_report is not None and widget.trainer.last_report.done


def _expect_counted(widget, qtbot, scribbles):
    expected = np.bincount(np.asarray(scribbles.data).ravel(), minlength=3)[1:3].tolist()
    qtbot.waitUntil(lambda: widget.weights_panel.counts[:2].tolist() == expected, timeout=3000)
    assert _pixels_column(widget)[:2] == expected
    assert widget.weights_panel.missing_classes() == []


@pytest.fixture
def notes(monkeypatch):
    """Messages the widget shows the user (warnings, errors and infos)."""
    shown: list[str] = []
    for name in ("show_warning", "show_error", "show_info"):
        monkeypatch.setattr(f"napari_seglab._qt.widget.{name}", shown.append)
    return shown


# ------------------------------------------------------------------------------------------
# scribbles that exist before the dock opens
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["saved", "painted"])
def test_scribbles_made_before_docking_are_counted_and_trainable(viewer, qtbot, source):
    image = viewer.add_image(synthetic_image(), name="img")
    if source == "saved":  # a scribbles file opened as a Labels layer
        scribbles = viewer.add_labels(saved_strokes(), name="img scribbles")
    else:  # painted in napari with its own colours before SegLab was docked
        scribbles = viewer.add_labels(np.zeros((64, 64), np.uint8), name="img scribbles")
        scribbles.brush_size = 5
        for point, label in (((32, 5), 1), ((60, 60), 1), ((16, 16), 2), ((44, 30), 2)):
            scribbles.paint(point, label, refresh=True)
    w = _dock(viewer)
    assert w.image_layer is image
    assert w.scribbles_layer is scribbles
    _expect_counted(w, qtbot, scribbles)
    # the strokes take the classes' colours
    assert scribbles.colormap.color_dict[2].tolist() != [0, 0, 0, 0]
    assert [c.name for c in w.classes] == ["background", "foreground"]
    _train(w, qtbot)
    assert viewer.layers["img prediction"].data.shape == (64, 64)


@pytest.mark.parametrize(
    "order",
    [
        ("other", "cells", "cells scribbles"),
        ("cells scribbles", "other", "cells"),
        ("other", "cells scribbles", "cells"),
    ],
)
def test_pair_of_a_second_image_is_counted_whatever_the_order(viewer, qtbot, order):
    layers = {}
    for name in order:
        if name == "other":
            layers[name] = viewer.add_image(synthetic_image(seed=2), name=name)
        elif name == "cells":
            layers[name] = viewer.add_image(synthetic_image(seed=1), name=name)
        else:
            layers[name] = viewer.add_labels(saved_strokes(), name=name)
    w = _dock(viewer)
    assert w.image_layer is layers["cells"]
    assert w.scribbles_layer is layers["cells scribbles"]
    _expect_counted(w, qtbot, layers["cells scribbles"])
    _train(w, qtbot)


def test_closing_and_reopening_the_dock_keeps_the_scribbles(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    layer = w.new_scribbles()
    layer.data = saved_strokes()
    _expect_counted(w, qtbot, layer)
    viewer.window.remove_dock_widget(w)
    qtbot.waitUntil(lambda: w._closed, timeout=3000)
    layer.paint((4, 60), 2, refresh=True)  # painted while the dock is closed
    w2 = _dock(viewer)
    assert w2 is not w
    assert w2.scribbles_layer is layer
    _expect_counted(w2, qtbot, layer)
    _train(w2, qtbot)
    w2.cleanup()


# ------------------------------------------------------------------------------------------
# layers the widget did not make
# ------------------------------------------------------------------------------------------
def _snapshot(layer) -> dict:
    return {
        "data": np.array(layer.data, copy=True),
        "colormap": layer.colormap.model_dump() if hasattr(layer.colormap, "model_dump") else None,
        "colormap_type": type(layer.colormap),
        "features": layer.features.copy(deep=True),
        "metadata": dict(layer.metadata),
    }


def _assert_untouched(layer, before: dict) -> None:
    np.testing.assert_array_equal(layer.data, before["data"])
    assert type(layer.colormap) is before["colormap_type"]
    if before["colormap"] is not None:
        assert layer.colormap.model_dump() == before["colormap"]
    assert list(layer.features.columns) == list(before["features"].columns)
    assert layer.features.equals(before["features"])
    assert dict(layer.metadata) == before["metadata"]


def _pick(combo, layer) -> None:
    """Choose ``layer`` in a layer combo box as a user does (by index)."""
    index = [ly is layer for ly in combo.layers()].index(True)
    combo.setCurrentIndex(index)


@pytest.mark.parametrize("ids", [87, 60000])
def test_instance_segmentation_is_never_taken_over(viewer, qtbot, notes, ids):
    viewer.add_image(synthetic_image(), name="img")
    labels = instance_segmentation()
    if ids > 87:
        labels[0, 0] = ids
    inst = viewer.add_labels(
        labels, name="nuclei", features={"area": np.bincount(labels.ravel())[1:]}
    )
    inst.metadata["source"] = "stardist"
    before = _snapshot(inst)
    w = _dock(viewer)
    assert w.scribbles_layer is None  # not picked on its own
    assert w.weights_panel.table.rowCount() == 2
    assert not w.train_button.isEnabled()
    _assert_untouched(inst, before)
    # the user picks it: refused with a message, left as it was
    _pick(w.scribbles_combo, inst)
    assert w.scribbles_layer is None
    assert any("nuclei" in n and "scribbles" in n for n in notes), notes
    assert "nuclei" in w.status_label.text()
    assert w.weights_panel.table.rowCount() == 2
    _assert_untouched(inst, before)
    # New scribbles still works beside it
    layer = w.new_scribbles()
    assert w.scribbles_layer is layer
    layer.data = saved_strokes()
    _expect_counted(w, qtbot, layer)
    _assert_untouched(inst, before)


@pytest.mark.parametrize("n", [8, 25])
def test_an_instance_segmentation_within_the_class_range_is_refused(viewer, qtbot, notes, n):
    """25 objects with ids 1..25 and nothing else (no features, no metadata) were taken as
    25 classes: the layer restyled, a 25-row table and a 25-class model."""
    viewer.add_image(synthetic_image(), name="img")
    inst = viewer.add_labels(instance_segmentation(n=n), name="objects")
    before = _snapshot(inst)
    w = _dock(viewer)
    _pick(w.scribbles_combo, inst)
    assert w.scribbles_layer is None
    assert any(
        "objects" in n_ and f"its {n} labels are one connected object each" in n_ for n_ in notes
    ), notes
    assert w.weights_panel.table.rowCount() == 2
    _assert_untouched(inst, before)


@pytest.mark.parametrize(
    ("name", "second_stroke"), [("eight classes", True), ("img scribbles [1]", False)]
)
def test_scribbles_of_many_classes_are_not_taken_for_instances(viewer, qtbot, name, second_stroke):
    """Eight classes, each painted once, but background in two strokes: scribbles; each in one
    stroke, as a scribbles file reopened (no SegLab metadata) can be: scribbles by its name."""
    viewer.add_image(synthetic_image(), name="img")
    data = np.zeros((64, 64), np.uint8)
    for k in range(1, 9):
        data[4 + 7 * k : 6 + 7 * k, 5:40] = k
    if second_stroke:
        data[2, 50:60] = 1
    layer = viewer.add_labels(data, name=name)
    w = _dock(viewer)
    _pick(w.scribbles_combo, layer)
    assert w.scribbles_layer is layer
    qtbot.waitUntil(lambda: w.weights_panel.table.rowCount() == 8, timeout=3000)


def test_a_user_layer_with_a_features_table_is_refused(viewer, qtbot, notes):
    viewer.add_image(synthetic_image(), name="img")
    mask = viewer.add_labels(
        saved_strokes(), name="regions", features={"area": [100.0, 24.0, 64.0]}
    )
    before = _snapshot(mask)
    w = _dock(viewer)
    assert w.scribbles_layer is None
    _pick(w.scribbles_combo, mask)
    assert w.scribbles_layer is None
    assert any("regions" in n and "features" in n for n in notes), notes
    _assert_untouched(mask, before)


def test_a_plain_labels_layer_picked_by_the_user_is_used(viewer, qtbot, notes):
    """Strokes in a layer of another name are used once the user picks them."""
    viewer.add_image(synthetic_image(), name="img")
    strokes = viewer.add_labels(saved_strokes(), name="my strokes")
    w = _dock(viewer)
    assert w.scribbles_layer is None
    _pick(w.scribbles_combo, strokes)
    assert w.scribbles_layer is strokes
    _expect_counted(w, qtbot, strokes)
    _train(w, qtbot)


# ------------------------------------------------------------------------------------------
# negative labels
# ------------------------------------------------------------------------------------------
def _negative_mask() -> np.ndarray:
    mask = saved_strokes().astype(np.int16)
    mask[0:4, 0:4] = -1
    return mask


def test_negative_labels_before_docking(viewer, qtbot, notes):
    viewer.add_image(synthetic_image(), name="img")
    mask = viewer.add_labels(_negative_mask(), name="mask")
    before = _snapshot(mask)
    w = _dock(viewer)  # opens
    assert w.scribbles_layer is None
    _pick(w.scribbles_combo, mask)
    assert w.scribbles_layer is None
    assert any("mask" in n and "negative" in n for n in notes), notes
    _assert_untouched(mask, before)


def test_negative_labels_added_after_docking(viewer, qtbot, notes):
    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    layer = w.new_scribbles()
    layer.data = saved_strokes()
    _expect_counted(w, qtbot, layer)
    mask = viewer.add_labels(_negative_mask(), name="mask")  # no traceback
    assert w.scribbles_layer is layer
    _train(w, qtbot)
    _pick(w.scribbles_combo, mask)
    assert any("negative" in n for n in notes), notes
    assert w.scribbles_layer is layer  # the refused pick leaves the previous scribbles


def test_negative_value_in_a_scribbles_layer_gives_a_message(viewer, qtbot, notes):
    """A layer named like scribbles but holding a negative value: a message, no traceback."""
    viewer.add_image(synthetic_image(), name="img")
    bad = viewer.add_labels(_negative_mask(), name="img scribbles")
    before = _snapshot(bad)
    w = _dock(viewer)
    assert w.scribbles_layer is None
    assert any("negative" in n for n in notes), notes
    assert not w.start_training()
    _assert_untouched(bad, before)


# ------------------------------------------------------------------------------------------
# overlays and the camera
# ------------------------------------------------------------------------------------------
def test_apply_to_an_image_opened_after_training_shows_above_it(viewer, qtbot):
    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)
    other = viewer.add_image(synthetic_image(48, seed=3), name="new")
    w.apply_combo.set_layer(other)
    worker = w.apply_to_layer()
    assert worker is not None
    wait_applied(qtbot, w)
    qtbot.waitUntil(lambda: "new prediction" in viewer.layers, timeout=5000)
    names = [ly.name for ly in viewer.layers]
    i = names.index("new")
    assert names[i + 1 : i + 3] == ["new probability", "new prediction"]
    assert w.status_label.text() == "Predicted 'new'."


def test_training_uses_no_deprecated_camera(viewer, qtbot):
    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _train(w, qtbot)
    assert not [c for c in caught if "camera" in str(c.message)]


def test_negative_values_written_into_the_scribbles_give_a_message(viewer, qtbot, notes):
    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    layer = w.new_scribbles()
    layer.data = saved_strokes()
    _expect_counted(w, qtbot, layer)
    layer.data = _negative_mask()  # e.g. a script replaces the data: no traceback
    qtbot.waitUntil(lambda: any("negative" in n for n in notes), timeout=3000)
    assert "negative" in w.status_label.text()
    notes.clear()
    assert not w.start_training()
    assert any("negative" in n for n in notes), notes
    assert not w.trainer.running
    layer.data = saved_strokes()  # repaired: counted and trainable again
    _expect_counted(w, qtbot, layer)
    _train(w, qtbot)


def test_a_user_layer_named_like_the_prediction_is_left_alone(viewer, qtbot):
    """A layer of the user's called "img prediction" used to block Train until renamed; the
    overlay now takes a free name beside it, as napari names a second layer, and keeps it."""
    from napari_seglab._qt.layers import role

    viewer.add_image(synthetic_image(), name="img")
    theirs = viewer.add_labels(instance_segmentation(n=9), name="img prediction")
    before = _snapshot(theirs)
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)
    ours = viewer.layers["img prediction [1]"]
    assert role(ours) == "prediction" and len(np.unique(ours.data)) == 2
    assert role(viewer.layers["img probability"]) == "probability"
    _assert_untouched(theirs, before)
    names = [layer.name for layer in viewer.layers]
    _train(w, qtbot)  # the same overlay again, not an "img prediction [2]"
    w.apply_button.click()
    wait_applied(qtbot, w)
    assert "Predicted 'img'" in w.status_label.text()
    assert [layer.name for layer in viewer.layers] == names
    assert viewer.layers["img prediction [1]"] is ours
    _assert_untouched(theirs, before)
    w.undo_training()
    assert "Training undone" in w.status_label.text()
    _assert_untouched(theirs, before)
    # the image closed and opened again finds the same overlay, not an "[2]" above it
    viewer.layers.remove("img")
    image = viewer.add_image(synthetic_image(), name="img")
    viewer.layers.move(viewer.layers.index(image), 0)
    w.image_combo.set_layer(image)
    _train(w, qtbot)
    assert sorted(layer.name for layer in viewer.layers) == sorted(names)
    assert viewer.layers["img prediction [1]"] is ours
    _assert_untouched(theirs, before)


@pytest.mark.parametrize("role_name", ["prediction", "probability"])
def test_a_copy_of_an_overlay_is_the_users(viewer, qtbot, role_name):
    """napari's Duplicate Layer copies an overlay's metadata with it. A copy the user renamed
    to the overlay's name, the overlay removed, used to be taken for SegLab's and written over
    by the next training; it is the user's, and the overlay is made again beside it."""
    from napari.layers import Layer

    from napari_seglab._qt.layers import role

    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)
    name = f"img {role_name}"
    ours = viewer.layers[name]
    assert role(ours) == role_name
    data, state, kind = ours.as_layer_data_tuple()  # what Duplicate Layer does
    state["name"] = f"{name} copy"
    copy = Layer.create(np.array(data), state, kind)
    viewer.layers.append(copy)
    assert copy.metadata == ours.metadata
    viewer.layers.remove(ours)
    copy.name = name
    copy.data = np.zeros_like(copy.data)  # the user's own edit
    before = (np.array(copy.data), dict(copy.metadata), copy.name)
    _train(w, qtbot)
    np.testing.assert_array_equal(copy.data, before[0])
    assert role(copy) is None
    remade = viewer.layers[f"{name} [1]"]
    assert role(remade) == role_name and remade is not copy
    assert float(np.asarray(remade.data).max()) > 0
    w.undo_training()
    np.testing.assert_array_equal(copy.data, before[0])
    assert (dict(copy.metadata), copy.name) == before[1:]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("image", "img prediction"),
        ("points", "img prediction"),
        ("labels", "img probability"),
        ("points", "img probability"),
    ],
)
def test_a_user_layer_of_another_kind_named_like_an_overlay_is_left_alone(
    viewer, qtbot, kind, name
):
    """Another type with an overlay's name once made a new "img prediction [1]" at every
    preview (14 layers after two short trainings), then blocked Train; now one overlay of a
    free name is made beside it, once, and the user's layer is never written."""
    viewer.add_image(synthetic_image(), name="img")
    add = {
        "image": lambda: viewer.add_image(np.full((64, 64), 3.0, np.float32), name=name),
        "labels": lambda: viewer.add_labels(np.zeros((64, 64), np.uint8), name=name),
        "points": lambda: viewer.add_points([[5.0, 5.0]], name=name),
    }[kind]
    theirs = add()
    before = np.array(theirs.data)
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)
    _train(w, qtbot)
    names = sorted(layer.name for layer in viewer.layers)
    other = "img probability" if name == "img prediction" else "img prediction"
    assert names == sorted(["img", "img scribbles", name, f"{name} [1]", other])
    assert theirs.name == name
    np.testing.assert_array_equal(theirs.data, before)


def test_switching_scribbles_layers_never_gives_one_the_others_classes(viewer, qtbot):
    """A layer of classes 1-3 chosen, then one of 1-2 chosen again: the second once got a
    "class 3" in its metadata, features and the table (the first layer was recounted in the
    second's classes before the switch)."""
    from napari_seglab._qt.classes import classes_from_layer

    viewer.add_image(synthetic_image(), name="img")
    two_data = saved_strokes()
    three_data = saved_strokes()
    three_data[40:43, 10:30] = 3
    two = viewer.add_labels(two_data, name="two classes")
    three = viewer.add_labels(three_data, name="three classes")
    w = _dock(viewer)
    _pick(w.scribbles_combo, two)
    _expect_counted(w, qtbot, two)
    assert len(classes_from_layer(two)) == 2
    _pick(w.scribbles_combo, three)
    qtbot.waitUntil(lambda: w.weights_panel.table.rowCount() == 3, timeout=3000)
    _pick(w.scribbles_combo, two)
    _expect_counted(w, qtbot, two)
    qtbot.wait(200)  # a late count of the other layer would land here
    assert len(classes_from_layer(two)) == 2
    assert [c.name for c in w.classes] == ["background", "foreground"]
    assert w.weights_panel.table.rowCount() == 2
    assert len(classes_from_layer(three)) == 3


def test_a_plain_layer_of_fewer_classes_picked_after_another_gets_its_own_count(viewer, qtbot):
    """Classes 1-3 in use, then a plain layer of classes 1-2 picked for the first time: two
    classes, not three with an empty "class 3" (the list only grew); the names of the classes
    it keeps carry over."""
    from napari_seglab._qt.classes import classes_from_layer

    viewer.add_image(synthetic_image(), name="img")
    three_data = saved_strokes()
    three_data[40:43, 10:30] = 3
    three = viewer.add_labels(three_data, name="three classes")
    two = viewer.add_labels(saved_strokes(), name="two classes")
    w = _dock(viewer)
    _pick(w.scribbles_combo, three)
    qtbot.waitUntil(lambda: w.weights_panel.table.rowCount() == 3, timeout=3000)
    w.session.rename_class(2, "nucleus")
    _pick(w.scribbles_combo, two)
    _expect_counted(w, qtbot, two)
    assert [c.name for c in w.classes] == ["background", "nucleus"]
    assert w.weights_panel.table.rowCount() == 2
    assert len(classes_from_layer(two)) == 2
    assert len(classes_from_layer(three)) == 3


def test_another_images_scribbles_are_not_chosen_by_themselves(viewer, qtbot):
    """The scribbles layer deleted, the combo chose another image's "cell scribbles" of
    another shape; Train only then said the shapes differ. Picked by hand, a layer of another
    shape is said at once."""
    viewer.add_image(synthetic_image(), name="img")
    viewer.add_image(np.zeros((80, 96), np.float32), name="cell")
    cell_strokes = viewer.add_labels(np.zeros((80, 96), np.uint8), name="cell scribbles")
    w = _dock(viewer)
    w.image_combo.set_layer(viewer.layers["img"])
    strokes = w.new_scribbles()
    assert w.session.scribbles is strokes
    viewer.layers.remove(strokes)
    assert w.session.scribbles is None and w.scribbles_combo.layer() is None
    _pick(w.scribbles_combo, cell_strokes)
    assert w.session.scribbles is cell_strokes  # the user's choice
    assert (
        w.status_label.text()
        == "Layer 'cell scribbles' cannot be trained on: its shape (80, 96) is not the spatial "
        "shape of 'img', (64, 64)."
    )


def test_a_user_layer_named_like_the_uncertainty_is_left_alone(viewer, qtbot, notes):
    """Training, Apply and Undo refresh the uncertainty layer SegLab made; one of the user's
    with its name is never written and raises nothing; "Where to paint next" shows the
    uncertainty in a layer of a free name beside it, and refreshes that one after."""
    viewer.add_image(synthetic_image(), name="img")
    theirs = viewer.add_image(np.full((64, 64), 5.0, np.float32), name="img uncertainty")
    before = (np.array(theirs.data), dict(theirs.metadata), theirs.colormap.name)
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)
    _train(w, qtbot)
    assert w.trainer.error is None
    w.apply_button.click()
    wait_applied(qtbot, w)
    assert "Predicted 'img'" in w.status_label.text()
    w.undo_training()
    assert "Training undone" in w.status_label.text()
    assert w.show_me_where() is not None
    ours = viewer.layers["img uncertainty [1]"]
    assert ours.visible and float(ours.data.max()) > 0
    _train(w, qtbot)
    assert "img uncertainty [2]" not in viewer.layers
    assert viewer.layers["img uncertainty [1]"] is ours
    np.testing.assert_array_equal(theirs.data, before[0])
    assert (dict(theirs.metadata), theirs.colormap.name) == before[1:]


def test_apply_to_a_lazy_layer_predicts_it_block_by_block(viewer, qtbot, tmp_path):
    """A Zarr-backed stack (as napari opens one) and a Dask image: Apply predicts them in
    blocks, never reading the whole image at once, with the labels of an in-memory prediction."""
    import dask.array as da
    import zarr

    from napari_seglab.core.inference import predict

    viewer.add_image(synthetic_image(), name="img")
    w = _dock(viewer)
    w.new_scribbles().data = saved_strokes()
    _expect_counted(w, qtbot, w.scribbles_layer)
    _train(w, qtbot)

    stack = np.stack([synthetic_image(48, seed=s) for s in range(3)])
    reads = []

    def record(block, block_info=None):
        reads.append(block.shape)
        return block

    stored = zarr.create_array(str(tmp_path / "stack.zarr"), data=stack, chunks=(1, 48, 48))
    lazy = da.from_zarr(stored).map_blocks(record, dtype=stack.dtype)
    layer = viewer.add_image(lazy, name="lazy")
    w.apply_combo.set_layer(layer)
    reads.clear()  # napari read the plane on screen
    worker = w.apply_to_layer()
    assert "block by block" in w.status_label.text()
    assert worker is not None
    wait_applied(qtbot, w)
    qtbot.waitUntil(lambda: "lazy prediction" in viewer.layers, timeout=5000)
    expected = predict(w.trainer.model, stack).labels
    assert np.array_equal(viewer.layers["lazy prediction"].data, expected)
    assert "lazy probability" not in viewer.layers  # no float copy of a large image
    assert w.status_label.text() == "Predicted 'lazy'."
    assert reads and all(shape == (1, 48, 48) for shape in reads)  # plane by plane

    plain = viewer.add_image(da.from_array(synthetic_image(64, seed=7), chunks=32), name="dask")
    w.apply_combo.set_layer(plain)
    worker = w.apply_to_layer()
    assert worker is not None
    wait_applied(qtbot, w)
    qtbot.waitUntil(lambda: "dask prediction" in viewer.layers, timeout=5000)
    expected = predict(w.trainer.model, synthetic_image(64, seed=7)).labels
    assert np.array_equal(viewer.layers["dask prediction"].data, expected)


def test_where_to_paint_next_shows_the_uncertainty_and_moves_the_view(viewer, qtbot):
    from napari_seglab.core.uncertainty import most_uncertain_window, uncertainty

    image = viewer.add_image(synthetic_image(), name="img", scale=(2.0, 2.0))
    w = _dock(viewer)
    assert w.show_me_where() is None  # nothing predicted yet
    assert "Train first" in w.status_label.text()
    scribbles = w.new_scribbles()
    scribbles.data = saved_strokes()
    _expect_counted(w, qtbot, scribbles)
    _train(w, qtbot)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        window = w.show_me_where()
    assert not [c for c in caught if "camera" in str(c.message)]  # no deprecated camera
    assert window is not None and "Paint here next: rows" in w.status_label.text()
    layer = viewer.layers["img uncertainty"]
    assert layer.visible and layer.data.shape == (64, 64)
    assert layer.data.min() >= 0.0 and layer.data.max() <= 1.0
    # the uncertainty is the margin of what the probability layer shows (foreground)
    p = viewer.layers["img probability"].data
    expected = uncertainty(np.stack([1 - p, p]))
    np.testing.assert_allclose(layer.data, expected, atol=1e-6)
    assert window == most_uncertain_window(expected, scribbles.data != 0, 64)
    # the view is centred on the window, in world coordinates (the image's scale of 2)
    center = [(s.start + s.stop - 1) / 2 * 2.0 for s in window]
    np.testing.assert_allclose(lyr.camera(viewer).center[-2:], center)
    names = [ly.name for ly in viewer.layers]  # over the overlays, under the scribbles
    assert names.index("img uncertainty") == names.index("img prediction") + 1
    assert names.index("img uncertainty") < names.index(scribbles.name)
    assert layer.scale.tolist() == image.scale.tolist()
    assert w.apply_combo.findText("img uncertainty") < 0  # not offered as an input image
    # a preview of part of the image refreshes that part only
    from napari_seglab._qt import guidance

    prob = viewer.layers["img probability"]
    before = layer.data.copy()
    prob.data = np.where(np.arange(64)[None, :] < 32, 0.5, prob.data).astype(np.float32)
    guidance.refresh(viewer, image, region=(slice(0, 64), slice(0, 16)))
    assert np.allclose(layer.data[:, :16], 1.0) and np.array_equal(
        layer.data[:, 16:], before[:, 16:]
    )
    # a new training's previews refresh it
    before = layer.data.copy()
    scribbles.data = saved_strokes() * 0 + np.where(saved_strokes() > 0, 3 - saved_strokes(), 0)
    _expect_counted(w, qtbot, scribbles)
    _train(w, qtbot)
    assert not np.array_equal(viewer.layers["img uncertainty"].data, before)
