"""The GUI-free core of napari-seglab: losses, class weights, model, training and prediction.

Nothing in this package imports Qt, napari or magicgui.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder

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

#: Modules of 0.1 whose names are now the functions this package exports, and where their
#: contents went (docs/api.md, "Changes in 0.2").
MOVED_MODULES = {
    f"{__name__}.train": (
        "napari_seglab.core.train became napari_seglab.core.training in 0.2 (TrainConfig and "
        "TrainReport: napari_seglab.core.config; train_to_end is gone: 'for report in "
        "train(...): pass', then report.model); napari_seglab.core.train is the function"
    ),
    f"{__name__}.predict": (
        "napari_seglab.core.predict became napari_seglab.core.inference in 0.2; "
        "napari_seglab.core.predict is the function"
    ),
}


class _MovedModules(MetaPathFinder):
    """Says where a 0.1 module went instead of Python's bare "No module named ...". Only the
    names of :data:`MOVED_MODULES` are answered; every other import is left to the others."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED_MODULES:
            raise ModuleNotFoundError(MOVED_MODULES[fullname], name=fullname)
        return None


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())
