from __future__ import annotations

import pytest

# pytest-qt and napari's fixtures only in the GUI tests.
pytest.importorskip("napari")


@pytest.fixture
def viewer(make_napari_viewer):
    """A napari viewer, closed after the test (napari's own fixture)."""
    return make_napari_viewer()
