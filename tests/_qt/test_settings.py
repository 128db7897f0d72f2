"""The settings panel starts on the core's defaults (the ones ``seglab train`` and the Python
API use), read from the core when the widget opens."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_seglab._qt import settings as qt_settings  # noqa: E402
from napari_seglab._qt.widget import SegLabWidget  # noqa: E402
from napari_seglab.core.device import default_num_threads  # noqa: E402
from napari_seglab.core.losses.registry import LOSSES  # noqa: E402
from napari_seglab.core.model import ModelConfig  # noqa: E402
from napari_seglab.core.training import TrainConfig  # noqa: E402
from napari_seglab.core.weights import SCHEMES  # noqa: E402

#: TrainConfig fields the widget chooses itself: an interactive run has a time budget and a
#: live overlay where the core trains until stopped and previews nothing.
WIDGET_OWN = {"seconds", "steps", "preview_every"}


def _docked(viewer) -> SegLabWidget:
    viewer.add_image(np.zeros((32, 32), np.float32), name="img")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    assert isinstance(w, SegLabWidget)
    return w


def _assert_shows(w: SegLabWidget, core: TrainConfig, arch: ModelConfig) -> None:
    panel = w.settings_panel
    config = panel.settings().train_config()
    for f in dataclasses.fields(TrainConfig):
        if f.name in WIDGET_OWN:
            continue
        expected = getattr(core, f.name)
        if f.name == "num_threads":
            expected = expected or default_num_threads()
        elif f.name == "model":
            expected = arch
        assert getattr(config, f.name) == expected, f.name
    # what the user sees
    assert panel.loss.currentData() == core.loss
    assert panel.scheme.currentData() == core.class_weighting
    scheme = core.class_weighting.replace("_", " ")
    assert w.weights_panel.scheme_label.text().endswith(f"weights: {scheme}")
    assert panel.lambda_dice.value() == core.lambda_dice
    assert panel.lambda_ce.value() == core.lambda_ce
    if core.lambda_edge is None:
        assert panel.lambda_edge.text() == "auto"
    else:
        assert panel.lambda_edge.value() == core.lambda_edge
    assert panel.forest_teacher.value() == core.forest_teacher
    assert panel.edge_flux.value() == core.edge_flux
    assert panel.device.currentText() == core.device
    assert panel.num_threads.value() == (core.num_threads or default_num_threads())
    size = panel.model_size.currentText()
    assert qt_settings.model_config(size) == arch
    assert (arch.depth, arch.width) == (config.model.depth, config.model.width)


def test_initial_settings_are_the_core_defaults(make_napari_viewer):
    w = _docked(make_napari_viewer())
    _assert_shows(w, TrainConfig(), ModelConfig())


def test_initial_settings_follow_changed_core_defaults(make_napari_viewer, monkeypatch):
    """The widget reads the core's defaults when it opens: changing them changes the widget."""

    @dataclasses.dataclass(frozen=True)
    class OtherArchitecture(ModelConfig):
        depth: int = 4
        width: int = 8

    @dataclasses.dataclass(frozen=True)
    class OtherDefaults(TrainConfig):
        loss: str = "focal"
        class_weighting: str = "median_frequency"
        lambda_dice: float = 0.5
        lambda_ce: float = 2.0
        lambda_edge: float | None = 0.5
        forest_teacher: float = 0.7
        edge_flux: float = 6.0
        num_threads: int | None = 1
        model: ModelConfig = dataclasses.field(default_factory=OtherArchitecture)

    monkeypatch.setattr(qt_settings, "TrainConfig", OtherDefaults)
    monkeypatch.setattr(qt_settings, "ModelConfig", OtherArchitecture)
    w = _docked(make_napari_viewer())
    _assert_shows(w, OtherDefaults(), OtherArchitecture())


def test_the_panel_offers_exactly_the_cores_choices():
    """The loss and class-weight lists of the panel are the core's, each once: a loss added to
    the core's registry shows up here, a name the core does not know cannot be chosen."""
    assert [value for value, _label in qt_settings.LOSSES] == list(LOSSES)
    assert sorted(value for value, _label in qt_settings.WEIGHT_SCHEMES) == sorted(SCHEMES)
    labels = [label for _value, label in (*qt_settings.LOSSES, *qt_settings.WEIGHT_SCHEMES)]
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize(
    ("name", "typed", "shown"), [("forest_teacher", 0.0, 1.5), ("edge_flux", 8.0, 0.0)]
)
def test_a_weight_typed_or_shown_in_the_panel_reaches_the_training(
    make_napari_viewer, name, typed, shown
):
    """The forest teacher's and the flux term's weights: typed in the panel (0 switches them
    off), or shown by ``set_settings``, they are what the training gets."""
    w = _docked(make_napari_viewer())
    panel = w.settings_panel
    getattr(panel, name).setValue(typed)
    assert getattr(panel.settings().train_config(), name) == typed
    panel.set_settings(dataclasses.replace(panel.settings(), **{name: shown}))
    assert getattr(panel, name).value() == shown
    assert getattr(panel.settings().train_config(), name) == shown
