"""Qt widgets of napari-seglab (the only place that imports qtpy and napari)."""
