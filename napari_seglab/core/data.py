"""Input handling: image layouts, percentile normalisation, scribble checks and scores.

Internally every image is viewed as ``(Z, C, Y, X)``: ``Z = 1`` for a 2D image, ``C`` channels
(1 for grayscale). Nothing is copied until a crop or tile is taken, so huge images stay cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Default lower and upper percentiles of the intensity normalisation.
DEFAULT_PERCENTILES = (1.0, 99.8)


@dataclass(frozen=True)
class ImageView:
    """An image seen as ``(Z, C, Y, X)`` without copying.

    Attributes
    ----------
    data : np.ndarray
        ``(Z, C, Y, X)`` view of the original array (original dtype).
    spatial_shape : tuple of int
        ``(Y, X)`` for a 2D image, ``(Z, Y, X)`` for a stack.
    channel_axis : int or None
        The channel axis of the original array (non-negative), None for single-channel input.
    """

    data: np.ndarray
    spatial_shape: tuple[int, ...]
    channel_axis: int | None

    @property
    def is_3d(self) -> bool:
        return len(self.spatial_shape) == 3

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])


def check_channels(channels: Sequence[int], available: int) -> None:
    """Raise ``ValueError`` for a channel index outside ``0..available-1``."""
    bad = [int(c) for c in channels if not 0 <= int(c) < available]
    if bad:
        have = "1 channel (0)" if available == 1 else f"{available} channels (0-{available - 1})"
        raise ValueError(f"channel {bad[0]} is not in the image: it has {have}")


def select_channels(view: ImageView, channels: Sequence[int]) -> ImageView:
    """The view with only ``channels`` (indices along its channel axis), in that order.

    Raises
    ------
    ValueError
        A channel the image does not have.
    """
    check_channels(channels, view.channels)
    chosen = [int(c) for c in channels]
    return ImageView(view.data[:, chosen], view.spatial_shape, view.channel_axis)


def _check_dtype(image: np.ndarray, what: str = "image") -> None:
    if image.dtype == bool:
        return
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(
            f"{what} dtype {image.dtype} is not supported; use an integer or float array"
        )


def check_finite(image: np.ndarray, what: str = "image", chunk: int = 1 << 24) -> None:
    """Raise ValueError if a float image holds NaN or infinite values (checked in chunks)."""
    if not np.issubdtype(image.dtype, np.floating):
        return
    flat = image.reshape(-1) if image.flags.c_contiguous else np.ravel(image)
    for start in range(0, flat.size, chunk):
        part = flat[start : start + chunk]
        if not np.isfinite(part).all():
            n = sum(
                int((~np.isfinite(flat[i : i + chunk])).sum())
                for i in range(start, flat.size, chunk)
            )
            raise ValueError(
                f"{what} contains NaN or infinite values ({n} pixel{'s' * (n > 1)}); fix them first"
            )


def constant_pixel(
    zcyx: np.ndarray, channels: Sequence[int] | None = None
) -> tuple[float, ...] | None:
    """The one value per channel that every pixel of a ``(Z, C, Y, X)`` image has (a blank
    image, or a picture of one colour), else None (also for an empty image).

    Parameters
    ----------
    zcyx : np.ndarray
        The image as :func:`as_zcyx` lays it out (:attr:`ImageView.data`).
    channels : sequence of int, optional
        Only these channels (those a model sees); None = all. Indices outside the image are
        left out (whoever checks the channels says so).
    """
    data = np.asarray(zcyx)
    count = data.shape[1] if data.ndim == 4 else 0
    chosen = range(count) if channels is None else [c for c in channels if 0 <= c < count]
    if not data.size or not chosen:
        return None
    values = []
    for c in chosen:
        plane = data[:, c]  # a view, not a copy
        low, high = plane.min(), plane.max()
        if low != high:
            return None
        values.append(low.item())
    return tuple(values)


def constant_words(values: tuple[float, ...], channels: Sequence[int] | None = None) -> str:
    """``"every pixel 0"``, ``"every pixel (10, 120, 250)"`` for several channels, and with
    ``channels`` (those a model sees, when it picks some) ``"every pixel 0 in channel 1, the
    one the model sees"``."""
    if len(values) == 1:
        words = f"every pixel {values[0]:g}"
    else:
        words = "every pixel (" + ", ".join(f"{v:g}" for v in values) + ")"
    if channels is None:
        return words
    many = len(channels) > 1
    which = ", ".join(str(c) for c in channels)
    return (
        f"{words} in channel{'s' * many} {which}, {'those' if many else 'the one'} the model sees"
    )


def check_not_constant(
    zcyx: np.ndarray, what: str = "image", channels: Sequence[int] | None = None
) -> None:
    """Raise ValueError when every pixel of a ``(Z, C, Y, X)`` image has one value in each
    channel (of ``channels``, the ones a model sees; default all): no intensity or colour
    can tell classes apart, and a network trained on it predicts one class."""
    values = constant_pixel(zcyx, channels)
    if values is not None:
        raise ValueError(
            f"the {what} is constant ({constant_words(values, channels)}): nothing in it tells the "
            "classes apart; open the image itself, not an empty or saturated channel"
        )


def planes_read_as_channels(
    shape: tuple[int, ...],
    plane_axes: dict[int, str],
    channel_axis: int | None,
    in_channels: int,
    give: str = "(seglab: --channel-axis; Python: channel_axis=)",
) -> str | None:
    """Why an image cannot be read as a model of ``in_channels`` channels would read it: the
    axis it would take for channels is one that the image's file names as planes of a stack
    (``plane_axes``, by position: ``"Z"`` depth or ``"T"`` time; see
    :func:`napari_seglab.core.io.file_plane_axes`). A model of 3 channels took a ``ZYX``
    file of 3 planes for colours. None when there is nothing against it, or the channel axis
    is known (given, or named by the file). ``give`` ends the message: how the caller's user
    gives the channel axis."""
    if channel_axis is not None or not plane_axes:
        return None
    try:
        axis, _ = image_layout(shape, None, in_channels=in_channels)
    except ValueError:
        return None  # the prediction says what is wrong with the layout
    if axis not in plane_axes:
        return None
    what = "planes" if plane_axes[axis] == "Z" else "time points"
    return (
        f"its file says that axis {axis} (size {shape[axis]}) holds {what}, not the "
        f"{in_channels} channels the model takes; if another axis holds them, give it "
        f"{give}"
    )


def _ask_channel_axis(shape: tuple[int, ...], spatial_shape: tuple[int, ...], axis: int) -> None:
    """A 3D image with 2D scribbles whose extra axis is not the last: channels, or planes of a
    stack painted in 2D? Both are common, so the caller must say (never guessed)."""
    raise ValueError(
        f"image shape {shape} with 2D scribbles {spatial_shape}: is axis {axis} (size "
        f"{shape[axis]}) {shape[axis]} channels, or {shape[axis]} planes of a stack? For channels "
        f"pass the channel axis (seglab: --channel-axis {axis}; Python: channel_axis={axis}); "
        f"for a stack, paint scribbles of the stack's shape {shape}"
    )


def _detect_channel_axis(
    shape: tuple[int, ...], spatial_shape: tuple[int, ...] | None, in_channels: int | None
) -> int | None:
    if spatial_shape is not None:
        return _axis_from_scribbles(shape, tuple(int(s) for s in spatial_shape))
    if in_channels is not None and in_channels > 1:
        return _axis_from_channels(shape, in_channels)
    if in_channels == 1:
        return _axis_of_grey(shape)
    # No hint: 2D grayscale, RGB(A) last, or a grayscale stack.
    ndim = len(shape)
    if ndim == 2:
        return None
    if ndim == 3:
        return 2 if shape[-1] in (3, 4) else None
    if ndim == 4:
        return 3 if shape[-1] <= 4 else 0
    raise ValueError(f"image shape {shape} is not supported: expected 2 to 4 dimensions")


def colour_scribbles_problem(
    image_shape: tuple[int, ...], scribbles_shape: tuple[int, ...]
) -> str | None:
    """Why scribbles of ``scribbles_shape`` look like a colour picture of the image (a last
    axis of 3 or 4 over the image's rows and columns), or None."""
    image, strokes = tuple(image_shape), tuple(scribbles_shape)
    if len(strokes) != 3 or strokes[-1] not in (3, 4) or min(strokes[:2]) <= 4:
        return None
    if image == strokes:
        return (
            f"the scribbles have the shape of the image, {strokes}, which looks like a "
            "colour (RGB) image: scribbles hold one integer label per pixel, shape "
            f"{strokes[:2]} here; save them as a single-channel (grey or label) image"
        )
    if image[:2] == strokes[:2]:
        return (
            f"the scribbles are a colour picture, shape {strokes}: scribbles hold one integer "
            f"label per pixel, shape {strokes[:2]} here; save them as a single-channel (grey, "
            "label or palette) image"
        )
    return None


def _axis_from_scribbles(shape: tuple[int, ...], spatial_shape: tuple[int, ...]) -> int | None:
    """The channel axis of an image ``shape`` painted with scribbles of ``spatial_shape``."""
    ndim = len(shape)
    problem = colour_scribbles_problem(shape, spatial_shape)
    if problem is not None:
        raise ValueError(problem)
    if shape == spatial_shape:
        return None
    if ndim == len(spatial_shape) + 1:
        for axis in (ndim - 1, 0, *range(1, ndim - 1)):
            if shape[:axis] + shape[axis + 1 :] == spatial_shape:
                if ndim == 3 and axis != ndim - 1 and shape[axis] > 1:  # 1 plane = 1 channel
                    _ask_channel_axis(shape, spatial_shape, axis)
                return axis
    raise ValueError(
        f"scribbles shape {spatial_shape} does not match image shape {shape} "
        "(expected the image's spatial dimensions)"
    )


def _axis_from_channels(shape: tuple[int, ...], in_channels: int) -> int:
    """The axis of ``shape`` that holds a model's ``in_channels`` (> 1) channels."""
    ndim = len(shape)
    if ndim < 3:
        raise ValueError(
            f"the model expects {in_channels} channels but the image has shape {shape}"
        )
    if shape[-1] == in_channels:
        return ndim - 1
    if shape[0] == in_channels:
        return 0
    if ndim == 4 and shape[1] == in_channels:
        return 1
    raise ValueError(
        f"the model expects {in_channels} channels but no axis of image shape {shape} "
        "has that size; pass the channel axis (seglab: --channel-axis; Python: channel_axis=)"
    )


#: A last axis this small before two larger ones holds channels (``(Y, X, C)``), not the
#: columns of a stack's planes.
FEW_CHANNELS = 8


def looks_channels_last(shape: tuple[int, ...]) -> bool:
    """Whether a 3D ``shape`` reads as ``(Y, X, C)``: a last axis of at most
    :data:`FEW_CHANNELS` before two larger ones (``(303, 384, 2)``; a stack of 303 planes
    two pixels wide is not an image anyone segments)."""
    return len(shape) == 3 and shape[-1] <= FEW_CHANNELS < min(shape[:2])


def looks_channels_first(shape: tuple[int, ...]) -> bool:
    """Whether a 3D ``shape`` could be ``(C, Y, X)``: a first axis of at most
    :data:`FEW_CHANNELS` before two larger ones. Unlike :func:`looks_channels_last` this is
    not decided: a few planes of a stack are as common (``(3, 512, 512)``), so a reader that
    takes it as planes says so."""
    return len(shape) == 3 and shape[0] <= FEW_CHANNELS < min(shape[1:])


def _axis_of_grey(shape: tuple[int, ...]) -> int | None:
    """The (size 1) channel axis, if any, of an image for a one-channel model."""
    ndim = len(shape)
    if ndim == 3 and shape[-1] == 1:
        return 2  # (Y, X, 1)
    if ndim == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4:
        raise ValueError(
            f"image shape {shape} looks like RGB(A) but the model expects 1 channel "
            "(a grayscale image)"
        )
    if looks_channels_last(shape):
        raise ValueError(
            f"image shape {shape} looks like {shape[-1]} channels (Y, X, C) but the model "
            f"expects 1 channel (a grayscale image); a model trained on {shape[-1]} channels "
            "predicts it"
        )
    if ndim in (2, 3):
        return None
    if ndim == 4:
        for axis in (3, 0, 1):
            if shape[axis] == 1:
                return axis
    raise ValueError(f"image shape {shape} is not 2D (Y, X) or 3D (Z, Y, X)")


def as_zcyx(
    image: np.ndarray,
    *,
    channel_axis: int | None = None,
    spatial_shape: tuple[int, ...] | None = None,
    in_channels: int | None = None,
) -> ImageView:
    """View an image as ``(Z, C, Y, X)``.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)``, ``(Y, X, C)``, ``(C, Y, X)``, ``(Z, Y, X)`` or ``(Z, Y, X, C)`` /
        ``(C, Z, Y, X)``; any integer or float dtype.
    channel_axis : int, optional
        The channel axis. When omitted it is detected from ``spatial_shape`` (the scribbles'
        shape), else from ``in_channels`` (a model's channel count), else: a last axis of size
        3 or 4 of a 3D array is RGB(A); other 3D arrays are grayscale stacks. A 3D image with
        2D scribbles is read as channels-last without asking; any other axis is refused (it
        could be channels or the planes of a stack), so ``(5, Y, X)`` needs ``channel_axis=0``.
    spatial_shape, in_channels
        Hints for the detection, see above.

    Raises
    ------
    ValueError
        For an unsupported dtype or layout, or a mismatch with the hints.
    """
    image = np.asarray(image)
    _check_dtype(image)
    axis, spatial = image_layout(image.shape, channel_axis, spatial_shape, in_channels)
    data = image[..., None] if axis is None else np.moveaxis(image, axis, -1)
    if len(spatial) == 2:
        data = data[None]
    # (Z, Y, X, C) -> (Z, C, Y, X)
    data = np.moveaxis(data, -1, 1)
    return ImageView(data=data, spatial_shape=tuple(spatial), channel_axis=axis)


def image_layout(
    shape: tuple[int, ...],
    channel_axis: int | None = None,
    spatial_shape: tuple[int, ...] | None = None,
    in_channels: int | None = None,
) -> tuple[int | None, tuple[int, ...]]:
    """The channel axis (non-negative, or None) and the spatial shape of an image of ``shape``.

    The rules and hints of :func:`as_zcyx`, which uses it, as does the block-wise prediction
    of lazy images.

    Raises
    ------
    ValueError
        For a layout that is not a 2D image or a stack, an empty one, or a mismatch with the
        hints.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if channel_axis is None:
        axis = _detect_channel_axis(shape, spatial_shape, in_channels)
    else:
        if not -ndim <= channel_axis < ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for image shape {shape}")
        axis = channel_axis % ndim
    spatial = shape if axis is None else shape[:axis] + shape[axis + 1 :]
    if len(spatial) not in (2, 3):
        raise ValueError(
            f"image shape {shape} (channel axis {axis}) has {len(spatial)} spatial dimensions; "
            "expected 2 (Y, X) or 3 (Z, Y, X)"
        )
    if spatial_shape is not None and tuple(spatial) != tuple(spatial_shape):
        raise ValueError(
            f"scribbles shape {tuple(spatial_shape)} does not match image shape {shape} "
            f"(spatial shape {tuple(spatial)})"
        )
    if min(spatial) < 1:
        raise ValueError(f"image shape {shape} is empty")
    channels = 1 if axis is None else shape[axis]
    if in_channels is not None and channels != in_channels:
        raise ValueError(
            f"the model expects {in_channels} channel(s) but the image has {channels} "
            f"(shape {shape}, channel axis {axis})"
        )
    return axis, tuple(spatial)


#: Normalised values are clipped to +-this: outliers millions of ranges away (a no-data value,
#: a float64 image beyond float32) would otherwise become inf in float32 and NaN in the network.
NORM_LIMIT = 1e6
#: At most this many grey levels of an image are compared before and after normalisation.
LEVELS_CHECKED = 4096


def _check_range(
    values: np.ndarray,
    lo: float,
    hi: float,
    percentiles: tuple[float, float],
    channel: int,
    channels: int,
) -> None:
    """Raise ValueError when normalising to ``lo..hi`` in float32 would merge most grey levels.

    That happens when extreme values fill more than a percentile's share of the image (a
    no-data margin of -3.4e38 around a float image maps every real pixel to one constant), or
    when a range is tiny next to the values' magnitude.
    """
    where = f" in channel {channel}" if channels > 1 else ""
    if not np.isfinite(hi - lo):
        raise ValueError(
            f"the image's values{where} span {lo:.4g} to {hi:.4g}, wider than a float64 can "
            "hold; rescale the image first"
        )
    sample = values[:: max(1, values.size // 200_000)]
    levels = np.unique(sample)
    if len(levels) < 2:  # a constant image: nothing to merge
        return
    if len(levels) > LEVELS_CHECKED:  # an even spread of levels, not only the extremes
        levels = levels[np.linspace(0, len(levels) - 1, LEVELS_CHECKED).astype(np.int64)]
    kept = len(
        np.unique(np.clip((levels - lo) / (hi - lo), -NORM_LIMIT, NORM_LIMIT).astype(np.float32))
    )
    if kept >= max(2, len(levels) // 2):
        return
    vmin, vmax = float(values.min()), float(values.max())
    at_min, at_max = float(np.mean(values == vmin)), float(np.mean(values == vmax))
    extreme, share = (vmin, at_min) if at_min >= at_max else (vmax, at_max)
    cause = (
        f"the value {extreme:.4g} on {share:.1%} of its pixels stretches the normalisation "
        f"range (percentiles {percentiles[0]:g}-{percentiles[1]:g}) to {lo:.4g}..{hi:.4g}. "
        "A no-data value? Replace it with a value within the image's range, or crop it away"
        if share >= 0.01 * min(percentiles[0], 100 - percentiles[1])
        else f"its range {lo:.4g}..{hi:.4g} is too narrow for values of that size"
    )
    raise ValueError(
        f"the image cannot be normalised{where}: only {kept} of {len(levels)} grey levels "
        f"would stay distinct, because {cause}"
    )


@dataclass(frozen=True)
class Normalization:
    """Per-channel percentile normalisation ``(x - low) / (high - low)``, stored with a model.

    Attributes
    ----------
    low, high : tuple of float
        Per-channel intensities mapped to 0 and 1.
    percentiles : tuple of float
        The percentiles they were measured at.
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    @classmethod
    def fit(
        cls,
        view: ImageView,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
        max_samples: int = 2_000_000,
        seed: int = 0,
    ) -> Normalization:
        """Measure the percentiles of each channel (on a random subsample of big images)."""
        lo_p, hi_p = (float(p) for p in percentiles)
        if not 0 <= lo_p < hi_p <= 100:
            raise ValueError(f"percentiles {percentiles} must satisfy 0 <= low < high <= 100")
        data = view.data
        n_pix = int(np.prod(view.spatial_shape))
        lows, highs = [], []
        rng = np.random.default_rng(seed)
        for c in range(view.channels):
            channel = data[:, c]
            if n_pix > max_samples:
                idx = rng.integers(0, n_pix, size=max_samples)
                values = channel.reshape(-1)[idx] if channel.flags.c_contiguous else None
                if values is None:
                    values = np.ravel(channel)[idx]
            else:
                values = channel.reshape(-1)
            values = values.astype(np.float64, copy=False)
            lo, hi = np.percentile(values, [lo_p, hi_p])
            if not hi > lo:
                lo, hi = float(values.min()), float(values.max())
            if not hi > lo:
                hi = lo + 1.0
            _check_range(values, float(lo), float(hi), (lo_p, hi_p), c, view.channels)
            lows.append(float(lo))
            highs.append(float(hi))
        return cls(tuple(lows), tuple(highs), (lo_p, hi_p))

    def apply(self, x: np.ndarray, channel_axis: int = -3) -> np.ndarray:
        """Normalise ``x`` (channels on ``channel_axis``, default ``(..., C, Y, X)``) to float32.

        Values that float32 cannot hold exactly (32- and 64-bit integers, float64) are shifted
        in float64 first: a uint32 image with a 2**31 offset keeps every grey level. Results are
        clipped to +-:data:`NORM_LIMIT`.
        """
        x = np.asarray(x)
        exact = (x.dtype.kind in "biu" and x.dtype.itemsize <= 2) or x.dtype in (
            np.float16,
            np.float32,
        )
        work = np.float32 if exact else np.float64
        shape = [1] * x.ndim
        shape[channel_axis] = len(self.low)
        low = np.asarray(self.low, work).reshape(shape)
        scale = 1.0 / np.asarray(np.subtract(self.high, self.low), work).reshape(shape)
        with np.errstate(over="ignore", invalid="ignore"):
            out = (x.astype(work, copy=False) - low) * scale
        # outliers far beyond the range (inf where float32 overflowed) are clipped, so that
        # they cannot overflow float32 or swamp the network
        np.clip(out, -NORM_LIMIT, NORM_LIMIT, out=out)
        return out.astype(np.float32, copy=False)

    def to_dict(self) -> dict:
        return {
            "low": list(self.low),
            "high": list(self.high),
            "percentiles": list(self.percentiles),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        low = tuple(float(v) for v in d["low"])
        high = tuple(float(v) for v in d["high"])
        if len(low) != len(high) or not low:
            raise ValueError("normalisation low/high lists differ in length or are empty")
        p = tuple(float(v) for v in d.get("percentiles", DEFAULT_PERCENTILES))
        return cls(low, high, (p[0], p[1]))


def context_slices(z: int, z_context: int, depth: int) -> list[int]:
    """Slice indices ``z - z_context .. z + z_context``, clamped to ``0 .. depth - 1``."""
    return [min(max(zi, 0), depth - 1) for zi in range(z - z_context, z + z_context + 1)]


#: The most classes a model is trained for (class ids 1..MAX_CLASSES), in the core, the
#: command line and the widget alike. A label above it is far more often a mask in another
#: convention (0/255, instance ids) than a class.
MAX_CLASSES = 32


def check_scribbles(
    scribbles: np.ndarray, spatial_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Validate scribbles and return them as an integer array.

    Parameters
    ----------
    scribbles : np.ndarray
        Integer labels, 0 = unlabeled, 1 = background, 2 = foreground, 3.. more classes.
        Float arrays holding whole numbers are accepted.
    spatial_shape : tuple of int, optional
        The image's spatial shape that the scribbles must match.

    Raises
    ------
    ValueError
        For a shape mismatch, negative or non-integer values, or a label above
        :data:`MAX_CLASSES`.
    """
    s = np.asarray(scribbles)
    if spatial_shape is not None and tuple(s.shape) != tuple(spatial_shape):
        raise ValueError(
            f"scribbles shape {tuple(s.shape)} does not match the image's spatial shape "
            f"{tuple(spatial_shape)}"
        )
    if s.dtype == bool:
        raise ValueError(
            "scribbles must be integer labels (1 = background, 2 = foreground), not bool"
        )
    if np.issubdtype(s.dtype, np.floating):
        check_finite(s, "scribbles")
        if not np.array_equal(s, np.round(s)):
            raise ValueError("scribbles must hold whole-number labels")
        s = s.astype(np.int64)
    elif not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"scribbles dtype {s.dtype} is not an integer type")
    if s.size and s.min() < 0:
        raise ValueError(
            f"scribbles hold a negative label ({int(s.min())}); labels are 0 = unlabeled, "
            f"1 = background, 2 = foreground, 3..{MAX_CLASSES} further classes"
        )
    if s.size and s.max() > MAX_CLASSES:
        raise ValueError(
            f"scribbles hold label {int(s.max())}; labels are 0 = unlabeled, 1 = background, "
            f"2 = foreground, 3..{MAX_CLASSES} further classes (a 0/255 mask or instance ids "
            "are not scribbles: paint 1 and 2)"
        )
    if s.dtype != np.uint8:
        s = s.astype(np.uint8)
    return s


def present_classes(scribbles: np.ndarray) -> np.ndarray:
    """Class ids (>= 1) that have at least one painted pixel."""
    counts = np.bincount(scribbles.reshape(-1), minlength=2)
    return np.flatnonzero(counts[1:]) + 1


def painted_accuracy(predicted: np.ndarray, scribbles: np.ndarray, num_classes: int) -> np.ndarray:
    """Per class 1..K, the share of its painted pixels that ``predicted`` labels as it.

    Parameters
    ----------
    predicted, scribbles : np.ndarray
        Class ids of the same shape ``(*spatial)``; 0 in ``scribbles`` = unpainted.
    num_classes : int

    Returns
    -------
    np.ndarray
        ``(K,)`` float64; NaN for a class with no painted pixel.
    """
    if predicted.shape != scribbles.shape:
        raise ValueError(f"prediction shape {predicted.shape} != scribbles {scribbles.shape}")
    painted = scribbles > 0
    truth = scribbles[painted].astype(np.int64)
    k1 = int(num_classes) + 1
    seen = np.bincount(truth, minlength=k1)[1:k1]
    right = np.bincount(truth[predicted[painted] == truth], minlength=k1)[1:k1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, right / np.maximum(seen, 1), np.nan)
