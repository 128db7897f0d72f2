from __future__ import annotations

import pytest

# pytest-qt and napari's fixtures only in the GUI tests.
pytest.importorskip("napari")


@pytest.fixture
def viewer(make_napari_viewer):
    """A napari viewer, closed after the test (napari's own fixture)."""
    return make_napari_viewer()


@pytest.fixture(autouse=True)
def autosave_home(tmp_path_factory, monkeypatch):
    """Saved strokes go to a fresh user data folder per test (platformdirs reads
    ``XDG_DATA_HOME`` on Linux), never to the real one."""
    home = tmp_path_factory.mktemp("data_home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home / "napari-seglab" / "autosave"
