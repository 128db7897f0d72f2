"""Several images in one model from the dock, and Apply to a folder with a progress bar."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile

napari = pytest.importorskip("napari")

from gui_data import FAST, synthetic_image  # noqa: E402
from gui_data import dock as _dock  # noqa: E402

from napari_seglab.core.modelio import save_model  # noqa: E402


def _strokes(label: int) -> np.ndarray:
    s = np.zeros((64, 64), np.uint8)
    if label == 2:
        s[14:18, 12:20] = 2
        s[42:46, 26:34] = 2
    else:
        s[30:33, 2:10] = 1
        s[58:61, 50:62] = 1
    return s


def _trained_dock(viewer, qtbot):
    """A dock with a model trained on image "a" and both classes painted."""
    viewer.add_image(synthetic_image(seed=0), name="a")
    w = _dock(viewer, qtbot)
    w.new_scribbles().data = np.maximum(_strokes(1), _strokes(2))
    assert w.start_training()
    qtbot.waitUntil(lambda: not w.session.running, timeout=60000)
    return w


def test_one_model_from_two_open_images_each_with_its_scribbles(viewer, qtbot):
    viewer.add_image(synthetic_image(seed=0), name="a")
    viewer.add_image(synthetic_image(seed=1), name="b")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    assert w.others_picker.isHidden()  # no other image has scribbles yet
    w.new_scribbles().data = _strokes(2)  # only foreground here
    viewer.add_labels(_strokes(1), name="b scribbles")  # only background there
    assert not w.others_picker.isHidden()
    assert w.others_picker.texts() == ["also b"]
    # alone, a's strokes are one class: refused
    assert not w.start_training()
    assert "two classes" in w.status_label.text()
    assert w.weights_panel.counts.tolist() == [0, int((_strokes(2) == 2).sum())]
    w.others_picker.set_checked(["also b"])
    assert [layer.name for layer in w.session.other_images] == ["b"]
    # the class table pools the counts the weights come from
    pooled = [int((_strokes(1) == 1).sum()), int((_strokes(2) == 2).sum())]
    assert w.weights_panel.counts.tolist() == pooled
    assert "in 2 images" in w.weights_panel.scheme_label.text()
    assert w.start_training(), w.status_label.text()
    qtbot.waitUntil(lambda: not w.session.running, timeout=60000)
    model = w.trainer.model
    assert model.train_settings["images"] == 2
    assert model.train_settings["image_names"] == ["a", "b"]
    # no previews while training on several images: the image is predicted after
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=30000)
    assert "Predicted 'a'" in w.status_label.text()
    labels = np.asarray(viewer.layers["a prediction"].data)
    assert set(np.unique(labels)) == {1, 2}


def test_other_images_need_their_scribbles_layer(viewer, qtbot):
    viewer.add_image(synthetic_image(seed=0), name="a")
    viewer.add_image(synthetic_image(seed=1), name="b")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    layer = w.new_scribbles()
    layer.data = np.maximum(_strokes(1), _strokes(2))
    b_scribbles = viewer.add_labels(_strokes(1), name="b scribbles")
    w.others_picker.set_checked(["also b"])
    bad = _strokes(1).astype(np.int16)
    bad[0, 0] = -1  # no longer usable as scribbles
    b_scribbles.data = bad
    assert not w.start_training()
    assert "no usable 'b scribbles' layer for 'b'" in w.status_label.text()
    instances = _strokes(1).astype(np.uint16)
    instances[0, 0] = 60000  # an instance id: counted, it made 60000 classes
    b_scribbles.data = instances
    w.others_picker.refresh()
    assert len(w.classes) == 2 and w.weights_panel.table.rowCount() == 2
    b_scribbles.name = "renamed"  # no longer b's scribbles: b leaves the list at once
    assert "also b" not in w.others_picker.texts() and w.session.other_images == []


def test_apply_to_a_folder_shows_progress_and_names_the_bad_files(viewer, qtbot, tmp_path):
    from napari_seglab.core.modelio import load_model

    w = _trained_dock(viewer, qtbot)
    save_model(w.trainer.model, tmp_path / "m.seglab")
    src = tmp_path / "images"
    src.mkdir()
    for i in range(3):
        tifffile.imwrite(src / f"img{i}.tif", synthetic_image(seed=10 + i))
    tifffile.imwrite(src / "img0_scribbles.tif", _strokes(1))  # not an image to predict
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "labels"
    seen = []
    w.session.batchProgress.connect(lambda done, total: seen.append((done, total)))
    worker = w.apply_to_folder(src, out)
    assert worker is not None and not w.folder_button.isEnabled()
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=60000)
    assert seen[0] == (0, 4) and seen[-1] == (4, 4) and (2, 4) in seen
    assert w.folder_progress.isHidden() and w.folder_button.isEnabled()
    assert sorted(p.name for p in out.iterdir()) == ["img0.tif", "img1.tif", "img2.tif"]
    text = w.status_label.text()
    assert "Predicted 3 of 4 images" in text and "broken.png" in text
    assert "Zarr" not in text
    model = load_model(tmp_path / "m.seglab")
    from napari_seglab.core.inference import predict

    expected = predict(model, synthetic_image(seed=11)).labels
    np.testing.assert_array_equal(tifffile.imread(out / "img1.tif"), expected)
    # a second run replaces nothing
    before = (out / "img1.tif").stat().st_mtime_ns
    w.apply_to_folder(src, out)
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=60000)
    assert (out / "img1.tif").stat().st_mtime_ns == before
    assert "Predicted 0 of 4 images" in w.status_label.text()
    assert "exists and is not replaced" in w.status_label.text()


def test_apply_to_folder_says_which_zarr_stores_it_leaves_to_seglab_predict(
    viewer, qtbot, tmp_path
):
    import zarr

    w = _trained_dock(viewer, qtbot)
    src = tmp_path / "images"
    src.mkdir()
    zarr.create_array(str(src / "plate.zarr"), data=synthetic_image(seed=5))
    assert w.apply_to_folder(src, tmp_path / "labels") is None  # nothing else to predict
    text = w.status_label.text()
    assert "holds no image" in text and "skipped 1 Zarr store(s) (plate.zarr)" in text
    assert "seglab predict" in text
    tifffile.imwrite(src / "cells.tif", synthetic_image(seed=4))
    w.apply_to_folder(src, tmp_path / "labels")
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=60000)
    text = w.status_label.text()
    assert "Predicted 1 of 1 images" in text and "skipped 1 Zarr store(s) (plate.zarr)" in text
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["cells.tif"]


def test_a_constant_image_is_predicted_with_a_warning(viewer, qtbot, tmp_path):
    """Apply to layer, and to a folder, on a blank image: the status says that its
    prediction means nothing instead of 'Predicted'."""
    w = _trained_dock(viewer, qtbot)
    blank = viewer.add_image(np.zeros_like(synthetic_image(seed=3)), name="blank")
    assert w.apply_to_layer(blank) is not None
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=30000)
    text = w.status_label.text()
    assert "Predicted 'blank', but the image is constant (every pixel 0)" in text
    assert viewer.layers["blank prediction"].data.shape == blank.data.shape
    src = tmp_path / "images"
    src.mkdir()
    tifffile.imwrite(src / "blank.tif", np.zeros_like(synthetic_image(seed=3)))
    tifffile.imwrite(src / "cells.tif", synthetic_image(seed=4))
    w.apply_to_folder(src, tmp_path / "labels")
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=60000)
    text = w.status_label.text()
    assert "Predicted 2 of 2 images" in text
    assert "constant, its prediction meaningless: blank.tif" in text


def test_apply_to_folder_refuses_the_images_folder_and_clashing_names(viewer, qtbot, tmp_path):
    w = _trained_dock(viewer, qtbot)
    src = tmp_path / "images"
    src.mkdir()
    tifffile.imwrite(src / "c.tif", synthetic_image(seed=3))
    assert w.apply_to_folder(src, src) is None
    assert (
        "the labels folder" in w.status_label.text() and "holds the images" in w.status_label.text()
    )
    from skimage import io

    io.imsave(src / "c.png", (synthetic_image(seed=4) * 50 + 100).clip(0, 255).astype(np.uint8))
    assert w.apply_to_folder(src, tmp_path / "out") is None
    assert "c.png and c.tif would write one labels file" in w.status_label.text()
    assert not (tmp_path / "out").exists()
    assert w.folder_progress.isHidden() and w.folder_button.isEnabled()


def test_only_images_that_can_share_a_model_are_offered(viewer, qtbot):
    viewer.add_image(synthetic_image(seed=0), name="a")
    viewer.add_image(np.stack([synthetic_image(seed=1)] * 2), name="stack")
    viewer.add_labels(np.zeros((2, 64, 64), np.uint8), name="stack scribbles")
    rgb = np.stack([synthetic_image(seed=2)] * 3, axis=-1)
    viewer.add_image(rgb, name="rgb", rgb=True)
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="rgb scribbles")
    viewer.add_image(synthetic_image(seed=3), name="b")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="b scribbles")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    assert w.others_picker.texts() == ["also b"]


def test_replacing_an_other_images_data_stops_the_training(viewer, qtbot):
    """An other image trained on is watched as the image is (the run trains on a copy)."""
    viewer.add_image(synthetic_image(seed=0), name="a")
    viewer.add_image(synthetic_image(seed=1), name="b")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    w.new_scribbles().data = _strokes(2)
    viewer.add_labels(_strokes(1), name="b scribbles")
    w.others_picker.set_checked(["also b"])
    w.settings_panel.set_settings(dataclasses.replace(FAST, budget_kind="seconds", budget=120))
    with qtbot.waitSignal(w.trainer.reported, timeout=60_000):
        assert w.start_training()
    said = []
    w.session.status.connect(lambda text, *_: said.append(text))
    with qtbot.waitSignal(w.trainer.finished, timeout=30_000):
        viewer.layers["b"].data = np.zeros((64, 64), np.float32)
    why = "the data of layer 'b' was replaced; press Train to train on the new data"
    assert f"Training stopped because {why}." in said, said


def test_a_class_painted_in_the_other_image_only_gets_a_name_and_colour(viewer, qtbot):
    """Its table row had an empty colour swatch and no name to rename."""
    viewer.add_image(synthetic_image(seed=0), name="a")
    viewer.add_image(synthetic_image(seed=1), name="b")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["a"])
    w.new_scribbles().data = np.maximum(_strokes(1), _strokes(2))
    third = np.maximum(_strokes(1), _strokes(2))
    third[60:63, 5:40] = 3
    viewer.add_labels(third, name="b scribbles")
    w.others_picker.set_checked(["also b"])
    qtbot.waitUntil(lambda: w.weights_panel.table.rowCount() == 3, timeout=3000)
    assert [c.name for c in w.classes] == ["background", "foreground", "class 3"]
    assert w.classes[2].color
    assert w.weights_panel.table.item(2, 1).text() == "class 3"
