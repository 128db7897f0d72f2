"""Input handling: image layouts, percentile normalisation, scribble checks and crop sampling.

Internally every image is viewed as ``(Z, C, Y, X)``: ``Z = 1`` for a 2D image, ``C`` channels
(1 for grayscale). Nothing is copied until a crop or tile is taken, so huge images stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_seglab.core.edits import ScribbleEdit

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
            n = int((~np.isfinite(part)).sum())
            raise ValueError(
                f"{what} contains NaN or infinite values ({n}+ pixels); fix them first"
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
    ndim = len(shape)
    if spatial_shape is not None:
        spatial_shape = tuple(int(s) for s in spatial_shape)
        if shape == spatial_shape:
            if ndim == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4:
                raise ValueError(
                    f"the scribbles have the shape of the image, {shape}, which looks like a "
                    "colour (RGB) image: scribbles hold one integer label per pixel, shape "
                    f"{shape[:2]} here; save them as a single-channel (grey or label) image"
                )
            return None
        if ndim == len(spatial_shape) + 1:
            for axis in (ndim - 1, 0, *range(1, ndim - 1)):
                if shape[:axis] + shape[axis + 1 :] == spatial_shape:
                    if ndim == 3 and axis != ndim - 1:
                        _ask_channel_axis(shape, spatial_shape, axis)
                    return axis
        raise ValueError(
            f"scribbles shape {spatial_shape} does not match image shape {shape} "
            "(expected the image's spatial dimensions)"
        )
    if in_channels is not None and in_channels > 1:
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
            "has that size; pass channel_axis"
        )
    if in_channels == 1:
        if ndim == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4:
            raise ValueError(
                f"image shape {shape} looks like RGB(A) but the model expects 1 channel "
                "(a grayscale image)"
            )
        if ndim in (2, 3):
            return None
        if ndim == 4:
            for axis in (3, 0, 1):
                if shape[axis] == 1:
                    return axis
        raise ValueError(f"image shape {shape} is not 2D (Y, X) or 3D (Z, Y, X)")
    # No hint: 2D grayscale, RGB(A) last, or a grayscale stack.
    if ndim == 2:
        return None
    if ndim == 3:
        return 2 if shape[-1] in (3, 4) else None
    if ndim == 4:
        return 3 if shape[-1] <= 4 else 0
    raise ValueError(f"image shape {shape} is not supported: expected 2 to 4 dimensions")


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
    shape = tuple(int(s) for s in image.shape)
    if channel_axis is None:
        axis = _detect_channel_axis(shape, spatial_shape, in_channels)
    else:
        if not -image.ndim <= channel_axis < image.ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for image shape {shape}")
        axis = channel_axis % image.ndim
    if axis is None:
        data = image[..., None]
        spatial = shape
    else:
        data = np.moveaxis(image, axis, -1)
        spatial = shape[:axis] + shape[axis + 1 :]
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
    if in_channels is not None and data.shape[-1] != in_channels:
        raise ValueError(
            f"the model expects {in_channels} channel(s) but the image has {data.shape[-1]} "
            f"(shape {shape}, channel axis {axis})"
        )
    if len(spatial) == 2:
        data = data[None]
    # (Z, Y, X, C) -> (Z, C, Y, X)
    data = np.moveaxis(data, -1, 1)
    return ImageView(data=data, spatial_shape=tuple(spatial), channel_axis=axis)


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


class CropSampler:
    """Draw training crops that always contain painted pixels.

    Each crop is centred (with a random jitter) on a painted pixel; which class that pixel
    belongs to is chosen uniformly among the painted classes, so rare classes are seen as often
    as common ones. For stacks, crops come from the slices that hold labels only.

    Parameters
    ----------
    view : ImageView
        The image, ``(Z, C, Y, X)``.
    labels : np.ndarray
        ``(Y, X)`` or ``(Z, Y, X)`` uint8 scribbles.
    normalization : Normalization
    crop_size : int
        Edge of the square crops; clipped to the image (rounded up to ``multiple``).
    multiple : int
        Crop edges are multiples of this (the network's ``2**depth``).
    rng : np.random.Generator
    augment : bool
        Random flips and 90 degree rotations (and reversal of the slice order with z context).
    z_context : int
        Neighbouring slices on each side stacked as channels (``C * (2 * z_context + 1)``).
    intensity : float
        Strength of the random intensity changes (contrast, brightness, gamma, noise); 0 = none.
    """

    def __init__(
        self,
        view: ImageView,
        labels: np.ndarray,
        normalization: Normalization,
        crop_size: int,
        multiple: int,
        rng: np.random.Generator,
        augment: bool = True,
        intensity: float = 0.0,
        z_context: int = 0,
    ) -> None:
        self.view = view
        self.z_context = int(z_context)
        self.intensity = float(intensity)
        self.norm = normalization
        self.rng = rng
        self.augment = augment
        _, _, h, w = view.data.shape

        def fit(n: int) -> int:
            return min(int(crop_size), -(-n // multiple) * multiple)

        self.crop = (max(multiple, fit(h)), max(multiple, fit(w)))
        self.set_labels(labels)

    def set_labels(self, labels: np.ndarray) -> None:
        """Replace the scribbles (same shape); recomputes the per-class pixel lists.

        The sampler keeps a copy (:meth:`apply_edit` edits it, never the array given).
        """
        self.spatial_shape = tuple(int(n) for n in labels.shape)
        labels3 = np.array(labels if labels.ndim == 3 else labels[None], copy=True, order="C")
        self.labels = labels3
        flat = labels3.reshape(-1)
        painted = np.flatnonzero(flat)  # scribbles are sparse: sort only the painted pixels
        values = flat[painted].astype(np.int64)  # k + 1 below must not wrap at a dtype's top
        order = np.argsort(values, kind="stable")
        painted, values = painted[order], values[order]
        self.coords: dict[int, np.ndarray] = {}
        for k in np.unique(values):
            a, b = np.searchsorted(values, [k, k + 1])
            self.coords[int(k)] = painted[a:b]
        if not self.coords:
            raise ValueError("scribbles hold no labels; paint at least one stroke")
        self.classes = np.array(sorted(self.coords), dtype=np.int64)

    def apply_edit(self, edit: ScribbleEdit, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Apply a scribble edit to the labels and the per-class pixel lists in place.

        Costs time proportional to the edit and the painted pixels of the classes it touches,
        not to the image. The labels, lists and classes are then exactly what
        :meth:`set_labels` computes from the edited array.

        Parameters
        ----------
        edit : ScribbleEdit
            Indices per spatial axis ``(Y, X)`` or ``(Z, Y, X)`` and new class ids.
        num_classes : int
            K: new values must be in ``0..K``.

        Returns
        -------
        old, new : np.ndarray
            ``(M,)`` uint8 values before and after of the pixels that changed (for
            :meth:`napari_seglab.core.weights.ClassCounts.update`).

        Raises
        ------
        ValueError
            For an invalid edit (see :meth:`ScribbleEdit.resolve`), or one that would erase
            every painted pixel; nothing is changed then.
        """
        flat, new = edit.resolve(self.spatial_shape, num_classes)
        labels = self.labels.reshape(-1)  # a view: the labels are contiguous
        old = labels[flat]
        changed = old != new
        flat, old, new = flat[changed], old[changed], new[changed]
        if flat.size == 0:
            return old, new
        coords = dict(self.coords)
        for k in np.union1d(old[old > 0], new[new > 0]).tolist():
            current = coords.get(k, np.zeros(0, np.int64))
            gone = flat[old == k]  # sorted: flat is
            if gone.size:
                current = np.delete(current, np.searchsorted(current, gone))
            added = flat[new == k]
            if added.size:
                current = np.insert(current, np.searchsorted(current, added), added)
            if current.size:
                coords[k] = current
            else:
                coords.pop(k, None)
        if not coords:
            raise ValueError(
                "the edit erases every painted pixel; training needs painted pixels "
                "(1 = background, 2 = foreground)"
            )
        labels[flat] = new
        self.coords = coords
        self.classes = np.array(sorted(coords), dtype=np.int64)
        return old, new

    def _window(self, center: int, size: int, n: int) -> tuple[int, int, int, int]:
        """Start/stop in the image and the padding before/after for a window of ``size``."""
        start = center - size // 2
        if n >= size:
            start = min(max(start, 0), n - size)
            return start, start + size, 0, 0
        return 0, n, (size - n) // 2, size - n - (size - n) // 2

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """One crop: image ``(C, h, w)`` float32 normalised, labels ``(h, w)`` int64."""
        rng = self.rng
        k = int(rng.choice(self.classes))
        idx = int(self.coords[k][rng.integers(len(self.coords[k]))])
        _, _, H, W = self.view.data.shape
        z, rem = divmod(idx, H * W)
        y, x = divmod(rem, W)
        ch, cw = self.crop
        y += int(rng.integers(-(ch // 4), ch // 4 + 1))
        x += int(rng.integers(-(cw // 4), cw // 4 + 1))
        return self._crop(z, y, x)

    def uniform_batch(self, size: int) -> np.ndarray:
        """Crops ``(B, C, h, w)`` at uniformly random places of the whole image (no labels
        needed, no augmentation), e.g. to measure batch-norm statistics."""
        rng = self.rng
        Z, _, H, W = self.view.data.shape
        out = []
        for _ in range(size):
            z = int(rng.integers(Z))
            y, x = int(rng.integers(H)), int(rng.integers(W))
            img, _ = self._crop(z, y, x, augment=False)
            out.append(img)
        return np.stack(out)

    def _crop(
        self, z: int, y: int, x: int, augment: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        ch, cw = self.crop
        _, _, H, W = self.view.data.shape
        y0, y1, py0, py1 = self._window(y, ch, H)
        x0, x1, px0, px1 = self._window(x, cw, W)
        img = np.concatenate(
            [
                self.norm.apply(self.view.data[zi, :, y0:y1, x0:x1])
                for zi in context_slices(z, self.z_context, self.view.data.shape[0])
            ]
        )
        lab = self.labels[z, y0:y1, x0:x1].astype(np.int64)
        if py0 or py1 or px0 or px1:
            img = np.pad(img, ((0, 0), (py0, py1), (px0, px1)), mode="symmetric")
            lab = np.pad(lab, ((py0, py1), (px0, px1)), mode="constant")
        if self.augment if augment is None else augment:
            img, lab = self._augment(img, lab)
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)

    def _augment(self, img: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if rng.random() < 0.5:
            img, lab = img[:, :, ::-1], lab[:, ::-1]
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[::-1]
        if img.shape[1] == img.shape[2] and rng.random() < 0.5:
            img, lab = img.transpose(0, 2, 1), lab.T
        if self.z_context and rng.random() < 0.5:
            c = self.view.channels
            img = img.reshape(-1, c, *img.shape[1:])[::-1].reshape(img.shape)
        a = self.intensity
        if a > 0:
            # Intensity: contrast, brightness, gamma and noise, per sample.
            if rng.random() < 0.8:
                img = img * np.exp(rng.uniform(-0.3, 0.3) * a) + rng.uniform(-0.15, 0.15) * a
            if rng.random() < 0.3:
                gamma = np.exp(rng.uniform(-0.4, 0.4) * a)
                img = np.sign(img) * np.abs(img) ** gamma
            if rng.random() < 0.3:
                sigma = rng.uniform(0.0, 0.05 * a)
                img = img + rng.normal(0.0, sigma, img.shape).astype(np.float32)
        return img.astype(np.float32, copy=False), lab

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch: images ``(B, C, h, w)`` float32, labels ``(B, 1, h, w)`` int64."""
        pairs = [self.sample() for _ in range(size)]
        x = np.stack([p[0] for p in pairs])
        y = np.stack([p[1] for p in pairs])[:, None]
        return x, y
