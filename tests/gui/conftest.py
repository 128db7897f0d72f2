from __future__ import annotations

import pytest

# pytest-qt and napari's fixtures only in the GUI tests.
pytest.importorskip("napari")
