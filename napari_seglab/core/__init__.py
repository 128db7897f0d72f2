"""The GUI-free core of napari-seglab: losses, class weights, model, training and prediction.

Nothing in this package imports Qt, napari or magicgui.
"""
