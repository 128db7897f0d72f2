"""The core must be importable and usable without Qt, napari or magicgui."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = (
    "qtpy",
    "napari",
    "magicgui",
    "superqt",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6",
    "vispy",
)


def test_core_imports_no_gui_package():
    code = (
        "import sys, pkgutil, importlib\n"
        "import napari_seglab.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'napari_seglab.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported GUI packages: {out.stdout.strip()}"
