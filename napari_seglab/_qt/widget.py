"""The SegLab dock widget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

if TYPE_CHECKING:
    import napari


class SegLabWidget(QWidget):
    """Dock widget: paint scribbles, train in the background, watch the overlay."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("SegLab"))
        layout.addStretch(1)
