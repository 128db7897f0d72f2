"""A small 2D U-Net and :class:`SegModel`, the network together with what prediction needs."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from napari_seglab.core.data import MAX_CLASSES, Normalization, check_channels

Norm = Literal["batch", "group", "instance", "none"]
BinaryMode = Literal["softmax", "sigmoid"]
NORMS: tuple[str, ...] = get_args(Norm)
BINARY_MODES: tuple[str, ...] = get_args(BinaryMode)
UPSAMPLING = ("transpose", "bilinear")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the U-Net.

    Attributes
    ----------
    depth : int
        Number of down-sampling steps (input sizes are padded to a multiple of ``2**depth``).
    width : int
        Feature channels of the first level; doubled at each level down. 32 by default: width
        16 makes more, faster steps but learns less stably from few painted pixels
        (``benchmarks/results/synthetic_width.md``).
    norm : str
        ``"group"`` (default: learns fastest from few painted pixels in our benchmarks),
        ``"batch"`` (tiled prediction then equals whole-image prediction exactly), ``"instance"``
        or ``"none"``. Group and instance norm use the statistics of whatever they are given, so
        these models predict in tiles the size of their training crops
        (:func:`napari_seglab.core.inference.default_tile`).
    binary_mode : str
        For two classes: ``"softmax"`` (2 outputs) or ``"sigmoid"`` (1 output = foreground).
        More classes always use softmax.
    upsampling : str
        ``"transpose"`` (learned 2x2 transposed convolution) or ``"bilinear"``.
    z_context : int or None
        Neighbouring slices on each side that the network sees with each slice of a stack
        (their channels are stacked: "2.5D"); at the ends of a stack the edge slice repeats.
        None = automatic: ``DEFAULT_Z_CONTEXT`` (4) when training on a stack, 0 on a 2D image.
    bias : bool
        Convolutions before a normalisation layer have a bias (default True). Without it,
        convolution then group normalisation gives the same output for ``x`` and ``0.3 * x``:
        the network cannot tell a dim object seen alone from a bright one, so it cannot learn
        "the objects are the bright ones". With biases, the biases of the channels that share a
        group survive the normalisation and brightness gets through (groups of one channel, as
        instance normalisation, remove them: brightness-blind either way). Trained on a bright
        disk as foreground and its 0.3x copy as background, a width-16 network without biases
        gave both 0.90 foreground, with biases 0.97 and 0.002 (``tests/core/test_robustness.py``).
        Model files written before this setting existed have no biases and load as
        ``bias=False``.
    channels : tuple of int or None
        The image channels (0-based indices along its channel axis) the network sees; None =
        all. The model still takes images with all their channels (``SegModel.in_channels``, and
        the normalisation, count them all) and picks these at the network's input, so every
        prediction path picks the same ones; an image with another channel count is refused.
        Stored in the model file.
    """

    depth: int = 3
    width: int = 32
    norm: Norm = "group"
    binary_mode: BinaryMode = "softmax"
    upsampling: str = "transpose"
    z_context: int | None = None
    bias: bool = True
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:
            try:
                chosen = tuple(int(c) for c in self.channels)
            except (TypeError, ValueError):
                raise ValueError(
                    f"channels must be channel indices (0, 1, ...), got {self.channels!r}"
                ) from None
            if not chosen or min(chosen) < 0 or len(set(chosen)) != len(chosen):
                raise ValueError(
                    f"channels must be distinct channel indices from 0, got {self.channels!r}"
                )
            if max(chosen) >= MAX_IN_CHANNELS:
                raise ValueError(
                    f"channel {max(chosen)} is beyond the {MAX_IN_CHANNELS} channels a model takes"
                )
            object.__setattr__(self, "channels", chosen)
        if self.z_context is not None and not 0 <= int(self.z_context) <= 8:
            raise ValueError(f"z_context {self.z_context} must be between 0 and 8")
        if not 1 <= int(self.depth) <= 6:
            raise ValueError(f"depth {self.depth} must be between 1 and 6")
        if not 1 <= int(self.width) <= 256:
            raise ValueError(f"width {self.width} must be between 1 and 256")
        if self.norm not in NORMS:
            raise ValueError(f"norm {self.norm!r} must be one of {NORMS}")
        if self.binary_mode not in BINARY_MODES:
            raise ValueError(f"binary_mode {self.binary_mode!r} must be one of {BINARY_MODES}")
        if self.upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling {self.upsampling!r} must be one of {UPSAMPLING}")

    @property
    def z_window(self) -> int:
        """Slices the network sees at once: ``2 * z_context + 1``."""
        return 2 * int(self.z_context or 0) + 1

    @property
    def multiple(self) -> int:
        """Spatial sizes the network works on internally are multiples of this."""
        return 2 ** int(self.depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        d = {"bias": False, **d}  # files from before the setting existed: no biases
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}")
        return cls(**d)


#: The most input channels a model takes.
MAX_IN_CHANNELS = 64

#: The largest network built (about 600 MB of float32 weights, a few GB to train): width 128 at
#: depth 4 or width 64 at depth 5; the default (width 32, depth 3) has about 2 M. Width 256 at
#: depth 6 would have 8 billion.
MAX_PARAMETERS = 150_000_000


def input_select(config: ModelConfig, in_channels: int) -> list[int] | None:
    """Indices of the network input's channels that ``config.channels`` keeps (None: all).

    The input stacks the ``z_window`` slices' channels: ``(z_window * in_channels, H, W)``,
    slice by slice, so channel ``c`` of slice ``k`` is ``k * in_channels + c``.
    """
    if config.channels is None:
        return None
    return [k * in_channels + c for k in range(config.z_window) for c in config.channels]


def parameter_count(
    config: ModelConfig,
    in_channels: int,
    out_channels: int,
    select: Sequence[int] | None = None,
) -> int:
    """Parameters of the U-Net ``config`` describes, counted without allocating it (torch's
    ``meta`` device); ``in_channels`` of the network's input (all slices' channels), of which
    it sees ``select`` (:func:`input_select`; None: all)."""
    with torch.device("meta"):
        net = UNet(in_channels, out_channels, config, select=select)
    return sum(p.numel() for p in net.parameters())


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = max(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def _block(c_in: int, c_out: int, norm: str, bias: bool) -> nn.Sequential:
    bias = bias or norm == "none"
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A 2D U-Net whose output has the input's spatial size, for any size.

    Parameters
    ----------
    in_channels : int
        Image channels.
    out_channels : int
        Output channels (logits).
    config : ModelConfig, optional

    Notes
    -----
    ``forward(x)``: ``x (B, in_channels, H, W)`` -> logits ``(B, out_channels, H, W)``. Inputs are
    reflect-padded to a multiple of ``2**depth`` and the output is cropped back.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        config: ModelConfig | None = None,
        select: Sequence[int] | None = None,
    ):
        super().__init__()
        self.config = config = config or ModelConfig()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        # input channels the first convolution sees (not saved with the weights: the model's
        # config holds them)
        self.register_buffer(
            "select",
            None if select is None else torch.as_tensor(list(select), dtype=torch.long),
            persistent=False,
        )
        widths = [config.width * 2**i for i in range(config.depth + 1)]
        self.encoder = nn.ModuleList()
        c = self.in_channels if select is None else len(select)
        for w in widths:
            self.encoder.append(_block(c, w, config.norm, config.bias))
            c = w
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w in reversed(widths[:-1]):
            if config.upsampling == "transpose":
                self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            else:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                        nn.Conv2d(c, w, 1),
                    )
                )
            self.decoder.append(_block(2 * w, w, config.norm, config.bias))
            c = w
        self.head = nn.Conv2d(c, self.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.select is not None:
            x = x.index_select(1, self.select)
        h, w = x.shape[-2:]
        m = self.config.multiple
        # Pad to a multiple of 2**depth, and to at least 2 pixels at the bottleneck (which
        # instance normalisation needs).
        ph, pw = max((-h) % m, 2 * m - h), max((-w) % m, 2 * m - w)
        if ph or pw:
            # Reflection needs the pad to be smaller than the size; replicate otherwise.
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        skips = []
        for i, block in enumerate(self.encoder):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, block in zip(self.up, self.decoder, strict=True):
            x = up(x)
            x = block(torch.cat([x, skips.pop()], dim=1))
        x = self.head(x)
        if ph or pw:
            x = x[..., ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        return x


@dataclass
class SegModel:
    """A trained (or training) network with everything prediction needs.

    Attributes
    ----------
    net : UNet
    num_classes : int
        K; predictions are class ids 1..K.
    in_channels : int
    normalization : Normalization
        Applied to every image before the network (measured on the training image).
    config : ModelConfig
    train_settings : dict
        What the model was trained with (loss, class weights, steps, seconds, ...), for the record.
    class_names : list of str
        One name per class id 1..K.
    version : str
        napari-seglab version that created the model.
    optimizer_state : dict or None
        The ``state_dict()`` of the Adam optimiser at the end of the last training when that
        training had ``TrainConfig.resume_optimizer`` (tensors on the CPU; else None), which
        a continued training with that option resumes; saved with the model and loaded with
        it (:func:`~napari_seglab.core.modelio.save_model`).
    """

    net: UNet
    num_classes: int
    in_channels: int
    normalization: Normalization
    config: ModelConfig = field(default_factory=ModelConfig)
    train_settings: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    version: str = ""
    optimizer_state: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.class_names:
            self.class_names = default_class_names(self.num_classes)
        if not self.version:
            from napari_seglab import __version__

            self.version = __version__

    @classmethod
    def create(
        cls,
        num_classes: int,
        in_channels: int,
        normalization: Normalization,
        config: ModelConfig | None = None,
        seed: int | None = None,
    ) -> SegModel:
        """A fresh, untrained model for ``num_classes`` classes (2 to :data:`MAX_CLASSES`).

        Raises
        ------
        ValueError
            ``num_classes`` or ``in_channels`` out of range (class ids above 255 would not fit
            the uint8 predictions), a normalisation that is not finite, has an empty range or
            another channel count, or a network over :data:`MAX_PARAMETERS` parameters
            (checked before anything is allocated).
        """
        if num_classes < 2:
            raise ValueError(f"a model needs at least 2 classes, got {num_classes}")
        if num_classes > MAX_CLASSES:
            raise ValueError(f"num_classes {num_classes} must be between 2 and {MAX_CLASSES}")
        if not 1 <= in_channels <= MAX_IN_CHANNELS:
            raise ValueError(f"in_channels {in_channels} must be between 1 and {MAX_IN_CHANNELS}")
        if len(normalization.low) != in_channels:
            raise ValueError(
                f"normalisation has {len(normalization.low)} channels, expected {in_channels}"
            )
        low, high = np.asarray(normalization.low, float), np.asarray(normalization.high, float)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(
                f"normalisation low {normalization.low} / high {normalization.high} is not finite"
            )
        if not (high > low).all():
            raise ValueError(
                f"normalisation range is empty: low {normalization.low} >= high "
                f"{normalization.high}"
            )
        config = config or ModelConfig()
        if config.channels is not None:
            check_channels(config.channels, in_channels)
        n_in, n_out = in_channels * config.z_window, output_channels(num_classes, config)
        select = input_select(config, in_channels)
        n_params = parameter_count(config, n_in, n_out, select)
        if n_params > MAX_PARAMETERS:
            raise ValueError(
                f"a U-Net of width {config.width} and depth {config.depth} for {num_classes} "
                f"classes has {n_params / 1e6:.0f} M parameters ({4 * n_params / 2**30:.1f} GiB "
                f"of weights); at most {MAX_PARAMETERS / 1e6:.0f} M: choose a smaller width or "
                "depth"
            )
        if seed is not None:
            torch.manual_seed(seed)
        net = UNet(n_in, n_out, config, select=select)
        return cls(net, int(num_classes), int(in_channels), normalization, config)

    def check_continued(
        self,
        channels: int,
        image_shape: tuple[int, ...],
        wanted: tuple[int, ...] | None,
        top_class: int,
    ) -> None:
        """Whether training may continue on an image of ``channels`` channels (shape
        ``image_shape``), with the channels ``wanted`` (None: as the model's) and scribbles
        whose highest class is ``top_class``.

        Raises
        ------
        ValueError
            Another channel count or choice of channels, or more classes than the model's.
        """
        if self.in_channels != channels:
            raise ValueError(
                f"the model takes {self.input_note()} but the image has {channels} (shape "
                f"{image_shape})"
            )
        if wanted is not None and wanted != self.config.channels:
            raise ValueError(
                f"the model takes {self.input_note()}; channels {list(wanted)} need a new model"
            )
        if top_class > self.num_classes:
            raise ValueError(
                f"scribbles hold label {top_class} but the model has {self.num_classes} classes"
            )

    def input_note(self) -> str:
        """What the model takes, for messages: ``"3 channels, of which it uses 0, 2"``."""
        text = f"{self.in_channels} channel(s)"
        if self.config.channels is not None:
            text += ", of which it uses " + ", ".join(str(c) for c in self.config.channels)
        return text

    @property
    def sigmoid(self) -> bool:
        """True when the network has one sigmoid output (binary model)."""
        return self.net.out_channels == 1

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C_out, H, W)`` -> class probabilities ``(B, K, H, W)`` float32."""
        logits = logits.float()
        if self.sigmoid:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(logits, dim=1)

    # Deprecated in 0.2, to be removed in 0.3: the free functions of ``napari_seglab.core``
    # replace these methods, so that the model (the network and its settings) knows nothing of
    # prediction or files. The imports inside them are the only ones from this module upwards
    # (listed as such in the import-linter layers contract).
    def predict(self, image: np.ndarray, **kwargs: Any) -> Any:
        """Deprecated: use ``napari_seglab.core.predict(model, image, ...)``."""
        from napari_seglab.core.inference import predict

        _deprecated("model.predict(image, ...)", "predict(model, image, ...)")
        return predict(self, image, **kwargs)

    def save(self, path: str | Path) -> None:
        """Deprecated: use ``napari_seglab.core.save_model(model, path)``."""
        from napari_seglab.core.modelio import save_model

        _deprecated("model.save(path)", "save_model(model, path)")
        save_model(self, path)

    @classmethod
    def load(cls, path: str | Path) -> SegModel:
        """Deprecated: use ``napari_seglab.core.load_model(path)``."""
        from napari_seglab.core.modelio import load_model

        _deprecated("SegModel.load(path)", "load_model(path)")
        return load_model(path)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in napari-seglab 0.3; use "
        f"napari_seglab.core.{new}",
        DeprecationWarning,
        stacklevel=3,
    )


def output_channels(num_classes: int, config: ModelConfig) -> int:
    """Network outputs for K classes: 1 for a sigmoid binary model, else K."""
    return 1 if num_classes == 2 and config.binary_mode == "sigmoid" else int(num_classes)


@contextlib.contextmanager
def explaining_channels(model: SegModel) -> Iterator[None]:
    """Add to a ``ValueError`` about channels which ones the model uses, when it picks some:
    "... (it was trained on channel(s) 0, 2 of 3-channel images)"."""
    try:
        yield
    except ValueError as exc:
        if model.config.channels is None or "channel" not in str(exc):
            raise
        used = ", ".join(str(c) for c in model.config.channels)
        raise ValueError(
            f"{exc} (it was trained on channel(s) {used} of {model.in_channels}-channel images)"
        ) from None


def default_class_names(num_classes: int) -> list[str]:
    names = ["background", "foreground"]
    return [names[i] if i < 2 else f"class {i + 1}" for i in range(num_classes)]
