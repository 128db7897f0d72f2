"""The plugin as napari sees it: manifest, dock widget, sample data, the seglab command."""

from __future__ import annotations

import numpy as np

from napari_seglab import cli


def test_manifest_contributions():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-seglab")
    assert manifest.display_name == "SegLab"
    assert [w.display_name for w in manifest.contributions.widgets] == ["SegLab"]
    assert [s.key for s in manifest.contributions.sample_data] == ["coins"]


def test_dock_widget_through_manifest(make_napari_viewer):
    from napari_seglab._qt.widget import SegLabWidget

    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-seglab", "SegLab")
    assert isinstance(widget, SegLabWidget)


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-seglab", "coins")
    (layer,) = viewer.layers
    assert layer.data.ndim == 2
    assert layer.data.shape == (303, 384)
    assert np.ptp(layer.data) > 0


def test_seglab_gui_screenshot(tmp_path, monkeypatch):
    """`seglab gui --screenshot` opens napari with the sample and the docked widget."""
    import napari

    out = tmp_path / "shot.png"
    assert cli.main(["gui", "--screenshot", str(out)]) == 0
    from skimage.io import imread

    img = imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert napari.current_viewer() is None


def test_bad_subcommand_exits_nonzero(capsys):
    assert cli.main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seglab: error:") and "no-such-command" in err
    assert len(err.strip().splitlines()) == 1
