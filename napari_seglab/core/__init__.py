"""The GUI-free core of napari-seglab: losses, class weights, model, training and prediction.

Nothing in this package imports Qt, napari or magicgui.
"""

from __future__ import annotations

from napari_seglab.core.data import Normalization
from napari_seglab.core.device import describe_device, resolve_device
from napari_seglab.core.edits import ScribbleEdit
from napari_seglab.core.inference import Prediction, predict
from napari_seglab.core.losses.registry import LOSSES
from napari_seglab.core.model import ModelConfig, SegModel, UNet
from napari_seglab.core.modelio import ModelFileError, load_model, save_model
from napari_seglab.core.training import TrainConfig, TrainReport, train

__all__ = [
    "LOSSES",
    "ModelConfig",
    "ModelFileError",
    "Normalization",
    "Prediction",
    "ScribbleEdit",
    "SegModel",
    "TrainConfig",
    "TrainReport",
    "UNet",
    "describe_device",
    "load_model",
    "predict",
    "resolve_device",
    "save_model",
    "train",
]
