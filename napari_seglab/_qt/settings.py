"""Training settings in a collapsible section: loss, class weights, model size, budget, device."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

# the module: its constants are read when a panel is built, not copied at import
from napari_seglab.core import guard as core_guard
from napari_seglab.core.device import default_num_threads
from napari_seglab.core.model import ModelConfig
from napari_seglab.core.training import TrainConfig

#: (value passed to TrainConfig.loss, label shown)
LOSSES: tuple[tuple[str, str], ...] = (
    ("dice_ce", "Dice + CE"),
    ("ce", "Cross-entropy"),
    ("dice", "Dice"),
    ("focal", "Focal"),
    ("generalized_dice", "Generalized Dice"),
    ("dice_focal", "Dice + focal"),
)

#: (value passed to TrainConfig.class_weighting, label shown)
WEIGHT_SCHEMES: tuple[tuple[str, str], ...] = (
    ("inverse_frequency", "inverse frequency"),
    ("median_frequency", "median frequency"),
    ("effective_number", "effective number"),
    ("none", "none (all 1)"),
)

#: model size name -> ModelConfig keyword arguments; "medium" (no arguments) is the core's
#: default architecture, the one the benchmarks measure; "small" trains and previews about
#: twice as fast for large images on a CPU.
MODEL_SIZES: dict[str, dict[str, int]] = {
    "small": {"depth": 3, "width": 16},
    "medium": {},
    "large": {"depth": 4, "width": 32},
}
#: The size a new widget starts with: the core's default architecture.
DEFAULT_MODEL_SIZE = "medium"

#: What the widget chooses itself (the core trains until stopped and previews nothing by
#: default; an interactive session wants a budget and a live overlay).
DEFAULT_BUDGET_KIND = "seconds"
DEFAULT_BUDGET = 60.0
DEFAULT_PREVIEW_EVERY = 2.0


def model_config(size: str) -> ModelConfig:
    """The ``ModelConfig`` of a size in :data:`MODEL_SIZES` (core defaults for the rest)."""
    return ModelConfig(**MODEL_SIZES[size])


def _core_default(name: str) -> Any:
    """``TrainConfig().<name>``, read when a ``Settings`` is made (never copied here)."""
    return field(default_factory=lambda: getattr(TrainConfig(), name))


def available_devices() -> list[str]:
    """Devices offered in the settings: ``auto``, ``cpu`` and the accelerators torch sees."""
    devices = ["auto", "cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devices.append("mps")
    except ImportError:  # pragma: no cover
        pass
    return devices


@dataclass(frozen=True)
class Settings:
    """Values chosen in the settings panel (plain data, turned into a ``TrainConfig``).

    Every default that ``TrainConfig`` or ``ModelConfig`` has is read from them when a
    ``Settings`` is made; only the budget and the overlay refresh are the widget's own.
    """

    loss: str = _core_default("loss")
    class_weighting: str = _core_default("class_weighting")
    lambda_dice: float = _core_default("lambda_dice")
    lambda_ce: float = _core_default("lambda_ce")
    #: None: the core's choice (see ``TrainConfig.lambda_edge``)
    lambda_edge: float | None = _core_default("lambda_edge")
    edge_flux: float = _core_default("edge_flux")
    forest_teacher: float = _core_default("forest_teacher")
    model_size: str = DEFAULT_MODEL_SIZE
    budget_kind: str = DEFAULT_BUDGET_KIND
    budget: float = DEFAULT_BUDGET
    device: str = _core_default("device")
    num_threads: int = field(
        default_factory=lambda: TrainConfig().num_threads or default_num_threads()
    )
    preview_every: float = DEFAULT_PREVIEW_EVERY

    def train_config(self, **overrides: Any) -> TrainConfig:
        """Return the core ``TrainConfig`` for these settings (``overrides`` win)."""
        kwargs: dict[str, Any] = {
            "loss": self.loss,
            "class_weighting": self.class_weighting,
            "lambda_dice": self.lambda_dice,
            "lambda_ce": self.lambda_ce,
            "lambda_edge": self.lambda_edge,
            "edge_flux": self.edge_flux,
            "forest_teacher": self.forest_teacher,
            "seconds": float(self.budget) if self.budget_kind == "seconds" else None,
            "steps": int(self.budget) if self.budget_kind == "steps" else None,
            "device": self.device,
            "num_threads": self.num_threads,
            "preview_every": self.preview_every,
            "model": model_config(self.model_size),
        }
        kwargs.update(overrides)
        return TrainConfig(**kwargs)


def _weight_row(
    form: QFormLayout, label: str, bounds: tuple[float, float, float], tooltip: str
) -> QDoubleSpinBox:
    """A spin box for a loss term's weight (``bounds``: lowest, highest, step), added to
    ``form`` as the row ``label``."""
    box = QDoubleSpinBox(form.parentWidget())
    box.setRange(bounds[0], bounds[1])
    box.setSingleStep(bounds[2])
    box.setToolTip(tooltip)
    form.addRow(label, box)
    return box


class SettingsPanel(QCollapsible):
    """Collapsible "Settings" section.

    Signals
    -------
    schemeChanged(str)
        The class-weight scheme changed (the weights panel follows it).
    """

    schemeChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Settings", parent)
        body = QWidget(self)
        form = QFormLayout(body)
        form.setContentsMargins(0, 0, 0, 0)

        self.loss = QComboBox(body)
        for value, label in LOSSES:
            self.loss.addItem(label, value)
        self.loss.setToolTip("Loss computed on the painted pixels only")
        form.addRow("Loss", self.loss)

        self.scheme = QComboBox(body)
        for value, label in WEIGHT_SCHEMES:
            self.scheme.addItem(label, value)
        self.scheme.setToolTip("Per-class weights from the painted pixel counts")
        form.addRow("Class weights", self.scheme)

        mix = QWidget(body)
        mix_layout = QHBoxLayout(mix)
        mix_layout.setContentsMargins(0, 0, 0, 0)
        self.lambda_dice = QDoubleSpinBox(mix)
        self.lambda_ce = QDoubleSpinBox(mix)
        for box, name in ((self.lambda_dice, "Dice"), (self.lambda_ce, "CE")):
            box.setRange(0.0, 10.0)
            box.setSingleStep(0.1)
            box.setPrefix(f"{name} ")
            mix_layout.addWidget(box)
        mix.setToolTip("Weights of the Dice part and of the CE (or focal) part of the loss")
        form.addRow("Mix", mix)

        self.lambda_edge = _weight_row(
            form,
            "Edge term",
            (-1.0, 10.0, 0.5),  # -1 shows "auto"
            "Weight of the edge-aware term on all pixels (lambda_edge; seglab train "
            "--lambda-edge): puts class boundaries on intensity edges where nothing is painted. "
            f"auto: {core_guard.DEFAULT_LAMBDA_EDGE:g} for 2D images, off for stacks; 0 = off",
        )
        self.lambda_edge.setSpecialValueText("auto")
        self.edge_flux = _weight_row(
            form,
            "Flux term",
            (0.0, 32.0, 1.0),
            "Weight of the flux term within the edge term (edge_flux; seglab train --edge-flux): "
            "moves boundaries onto the image's edges, so that thin filaments and crowded "
            "objects come out less thick; objects with a relief of their own can lose "
            "foreground along their inner edges. Two classes only; 0 = off",
        )
        self.forest_teacher = _weight_row(
            form,
            "Forest teacher",
            (0.0, 10.0, 0.1),
            "Weight of the random forest's teaching of a class painted on fewer than "
            f"{TrainConfig.forest_teacher_painted} pixels (forest_teacher; seglab train "
            "--forest-teacher): a forest fitted on the strokes generalises from a short stroke "
            "where the network alone learns those pixels. 0 = off",
        )

        self.model_size = QComboBox(body)
        self.model_size.addItems(list(MODEL_SIZES))
        sizes = {name: model_config(name) for name in MODEL_SIZES}
        self.model_size.setToolTip(
            "U-Net size: "
            + "; ".join(f"{k}: depth {m.depth}, width {m.width}" for k, m in sizes.items())
        )
        form.addRow("Model size", self.model_size)

        budget = QWidget(body)
        budget_layout = QHBoxLayout(budget)
        budget_layout.setContentsMargins(0, 0, 0, 0)
        self.budget = QDoubleSpinBox(budget)
        self.budget.setDecimals(0)
        self.budget.setRange(1, 1_000_000)
        self.budget_kind = QComboBox(budget)
        self.budget_kind.addItems(["seconds", "steps"])
        budget_layout.addWidget(self.budget, 1)
        budget_layout.addWidget(self.budget_kind)
        form.addRow("Train for", budget)

        self.device = QComboBox(body)
        self.device.addItems(available_devices())
        form.addRow("Device", self.device)

        self.num_threads = QSpinBox(body)
        self.num_threads.setRange(1, max(1, os.cpu_count() or 1))
        self.num_threads.setToolTip("CPU threads used by training; one core is left to the viewer")
        form.addRow("CPU threads", self.num_threads)

        self.preview_every = QDoubleSpinBox(body)
        self.preview_every.setRange(0.0, 600.0)
        self.preview_every.setSingleStep(0.5)
        self.preview_every.setSuffix(" s")
        self.preview_every.setToolTip("Refresh the prediction overlay this often (0 = at the end)")
        form.addRow("Overlay every", self.preview_every)

        self.addWidget(body)
        self.scheme.currentIndexChanged.connect(
            lambda _i: self.schemeChanged.emit(self.scheme.currentData())
        )
        self.loss.currentIndexChanged.connect(self._update_enabled)
        self.set_settings(Settings())  # the core's defaults
        self._update_enabled()

    def _update_enabled(self, *_args) -> None:
        combined = self.loss.currentData() in ("dice_ce", "dice_focal")
        self.lambda_dice.setEnabled(combined)
        self.lambda_ce.setEnabled(combined)

    def settings(self) -> Settings:
        """The current values."""
        return Settings(
            loss=self.loss.currentData(),
            class_weighting=self.scheme.currentData(),
            lambda_dice=self.lambda_dice.value(),
            lambda_ce=self.lambda_ce.value(),
            lambda_edge=None if self.lambda_edge.value() < 0 else self.lambda_edge.value(),
            edge_flux=self.edge_flux.value(),
            forest_teacher=self.forest_teacher.value(),
            model_size=self.model_size.currentText(),
            budget_kind=self.budget_kind.currentText(),
            budget=self.budget.value(),
            device=self.device.currentText(),
            num_threads=self.num_threads.value(),
            preview_every=self.preview_every.value(),
        )

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` (used by tests, scripts and benchmarks)."""
        for combo, value, what in (
            (self.loss, settings.loss, "loss"),
            (self.scheme, settings.class_weighting, "class-weight scheme"),
        ):
            if combo.findData(value) < 0:
                raise ValueError(f"{what} {value!r} is not offered in the settings")
        if settings.model_size not in MODEL_SIZES:
            raise ValueError(
                f"model size {settings.model_size!r} is not one of {', '.join(MODEL_SIZES)}"
            )
        self.loss.setCurrentIndex(self.loss.findData(settings.loss))
        self.scheme.setCurrentIndex(self.scheme.findData(settings.class_weighting))
        self.lambda_dice.setValue(settings.lambda_dice)
        self.lambda_ce.setValue(settings.lambda_ce)
        self.lambda_edge.setValue(-1.0 if settings.lambda_edge is None else settings.lambda_edge)
        self.edge_flux.setValue(settings.edge_flux)
        self.forest_teacher.setValue(settings.forest_teacher)
        self.model_size.setCurrentText(settings.model_size)
        self.budget_kind.setCurrentText(settings.budget_kind)
        self.budget.setValue(settings.budget)
        if self.device.findText(settings.device) < 0:
            raise ValueError(f"device {settings.device!r} is not available here")
        self.device.setCurrentText(settings.device)
        self.num_threads.setValue(settings.num_threads)
        self.preview_every.setValue(settings.preview_every)
