"""Choosing the channels the model sees in the dock: an RGB layer's own channels, and other open
layers of the image's shape as channels."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from gui_data import dock as _dock  # noqa: E402
from gui_data import saved_strokes, synthetic_image  # noqa: E402
from qtpy.QtCore import Qt  # noqa: E402


def _listed(w) -> list[str]:
    return [w.channel_picker.texts()[r] for r in range(w.channel_picker.list.count())]


def _train(w, qtbot) -> None:
    assert w.start_training(), w.status_label.text()
    qtbot.waitUntil(lambda: not w.session.running, timeout=60000)


def _paint(w) -> None:
    layer = w.new_scribbles()
    layer.data = saved_strokes()


def test_a_one_channel_image_alone_has_no_channel_choice(viewer, qtbot):
    viewer.add_image(synthetic_image(), name="cells")
    w = _dock(viewer, qtbot)
    assert w.channel_picker.isHidden()
    assert w.session.channel_choice.channels is None


def test_an_rgb_layers_own_channels_are_picked(viewer, qtbot):
    gray = synthetic_image()
    rgb = np.stack([np.zeros_like(gray), gray, np.ones_like(gray)], axis=-1)
    viewer.add_image(rgb, name="tissue", rgb=True)
    w = _dock(viewer, qtbot)
    assert not w.channel_picker.isHidden()
    assert _listed(w) == ["tissue: red", "tissue: green", "tissue: blue"]
    w.channel_picker.set_checked(["tissue: green"])
    _paint(w)
    _train(w, qtbot)
    model = w.trainer.model
    assert model.in_channels == 3 and model.config.channels == (1,)
    # the last checked channel cannot be unchecked
    item = w.channel_picker.list.item(1)
    item.setCheckState(Qt.CheckState.Unchecked)
    assert item.checkState() == Qt.CheckState.Checked
    assert w.session.channel_choice.channels == (1,)


def test_other_layers_of_the_images_shape_are_channels_too(viewer, qtbot):
    dapi = synthetic_image(seed=0)
    gfp = synthetic_image(seed=1)
    viewer.add_image(dapi, name="dapi")
    viewer.add_image(gfp, name="gfp")
    viewer.add_image(np.zeros((32, 32), np.float32), name="small")  # another shape: not listed
    viewer.add_image(synthetic_image(seed=2), name="other cells")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["dapi"])
    assert _listed(w) == ["dapi", "gfp", "other cells"]
    w.channel_picker.set_checked(["dapi", "gfp"])
    choice = w.session.channel_choice
    assert [layer.name for layer in choice.extra] == ["gfp"] and choice.channels is None
    _paint(w)
    _train(w, qtbot)
    model = w.trainer.model
    assert model.in_channels == 2 and model.config.channels is None
    # Apply to the image stacks the same layers
    w.apply_to_layer(viewer.layers["dapi"])
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=30000)
    assert "Predicted 'dapi'" in w.status_label.text()
    # a one-channel image cannot be predicted by a two-channel model: said, not crashed
    w.apply_to_layer(viewer.layers["other cells"])
    qtbot.waitUntil(lambda: w.session.apply_worker is None, timeout=30000)
    text = w.status_label.text()
    assert "Not predicted: 'other cells' has 1 channel(s)" in text and "takes 2 channel" in text
    # another choice: a new model, and the status says why
    w.channel_picker.set_checked(["gfp"])
    assert w.session.channel_choice.channels == (1,)
    texts = []
    w.session.status.connect(lambda text, *_: texts.append(text))
    assert w.start_training()
    said = [t for t in texts if t.startswith("Training a new model")]
    assert said == [
        "Training a new model: it took 2 channel(s), now gfp "
        "(Undo training brings the model before it back)."
    ], texts
    qtbot.waitUntil(lambda: not w.session.running, timeout=60000)
    assert w.trainer.model.config.channels == (1,)
    # a layer removed is no longer a channel
    viewer.layers.remove("gfp")
    assert _listed(w) == ["dapi", "other cells"]
    assert w.session.channel_choice == type(w.session.channel_choice)()  # dapi alone again
    assert w.channel_picker.list.item(0).checkState() == Qt.CheckState.Checked


def test_the_channel_list_follows_a_rename_and_a_new_shape(viewer, qtbot):
    """A renamed layer was listed under its old name until another layer event."""
    viewer.add_image(synthetic_image(seed=0), name="dapi")
    viewer.add_image(synthetic_image(seed=1), name="gfp")
    w = _dock(viewer, qtbot)
    w.image_combo.set_layer(viewer.layers["dapi"])
    assert _listed(w) == ["dapi", "gfp"]
    viewer.layers["gfp"].name = "gfp renamed"
    assert _listed(w) == ["dapi", "gfp renamed"]
    viewer.layers["gfp renamed"].data = np.zeros((20, 20), np.float32)  # no longer a channel
    assert _listed(w) == ["dapi"]
