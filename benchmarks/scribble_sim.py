"""Benchmark data: simulated scribbles, synthetic nuclei images and the IoU score.

Pure numpy / scikit-image / scipy, no torch, so that the tests can exercise it in a second.

Label convention: 0 = unlabeled, 1 = background, 2 = foreground.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage as ndi
from skimage import draw, filters, measure, morphology

UNLABELED, BACKGROUND, FOREGROUND = 0, 1, 2


# --------------------------------------------------------------------------------------------
# score


def foreground_iou(pred_fg: np.ndarray, true_fg: np.ndarray, scribbles: np.ndarray | None) -> float:
    """Foreground intersection over union, counted on the unlabeled pixels only.

    Parameters
    ----------
    pred_fg, true_fg : np.ndarray
        Boolean (or 0/1) arrays of the same spatial shape ``(*spatial)``.
    scribbles : np.ndarray or None
        Scribbles ``(*spatial)``; pixels with a label (> 0) are left out of the score, since a
        method is told their class. ``None`` counts every pixel.

    Returns
    -------
    float
        ``|pred & true| / |pred | true|`` over the counted pixels; 1.0 when both are empty there.
    """
    pred_fg = np.asarray(pred_fg, bool)
    true_fg = np.asarray(true_fg, bool)
    if pred_fg.shape != true_fg.shape:
        raise ValueError(f"prediction shape {pred_fg.shape} does not match mask {true_fg.shape}")
    if scribbles is not None:
        if scribbles.shape != true_fg.shape:
            raise ValueError(f"scribbles shape {scribbles.shape} does not match {true_fg.shape}")
        keep = scribbles == UNLABELED
        pred_fg, true_fg = pred_fg[keep], true_fg[keep]
    union = np.count_nonzero(pred_fg | true_fg)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pred_fg & true_fg) / union)


# --------------------------------------------------------------------------------------------
# scribble simulator


def _object_stroke(obj: np.ndarray, rng: np.random.Generator, margin: int) -> np.ndarray:
    """A gently curved line along the long axis of one object, kept ``margin`` px inside it.

    ``obj`` is a boolean crop holding a single object; returns a boolean crop of the same shape.
    """
    inside = ndi.distance_transform_edt(np.pad(obj, 1))[1:-1, 1:-1]
    deep = inside > margin
    if not deep.any():  # a small object: a dot at its innermost pixel
        out = np.zeros_like(obj)
        out[np.unravel_index(np.argmax(inside), obj.shape)] = True
        return out
    props = measure.regionprops(obj.astype(np.uint8))[0]
    cy, cx = props.centroid
    theta = props.orientation + rng.normal(0, 0.25)  # a person's hand is not exact
    half = 0.5 * max(props.axis_major_length, 2.0)
    t = np.linspace(-half, half, max(8, int(4 * half)))
    bend = rng.normal(0, 0.08) * (t**2 - half**2) / max(half, 1.0)  # slight arc
    rows = cy + t * np.cos(theta) - bend * np.sin(theta)
    cols = cx + t * np.sin(theta) + bend * np.cos(theta)
    rr = np.clip(np.round(rows).astype(int), 0, obj.shape[0] - 1)
    cc = np.clip(np.round(cols).astype(int), 0, obj.shape[1] - 1)
    out = np.zeros_like(obj)
    out[rr, cc] = True
    out &= deep
    if not out.any():
        out[np.unravel_index(np.argmax(inside), obj.shape)] = True
    return out


def _background_stroke(
    allowed: np.ndarray, rng: np.random.Generator, length: int
) -> np.ndarray | None:
    """A smooth random walk through ``allowed`` pixels (boolean ``(Y, X)``), or None."""
    ys, xs = np.nonzero(allowed)
    if len(ys) == 0:
        return None
    i = rng.integers(len(ys))
    y, x = float(ys[i]), float(xs[i])
    heading = rng.uniform(0, 2 * np.pi)
    turn = rng.normal(0, 0.02)  # a steady curvature plus jitter, like a wrist movement
    pts = [(y, x)]
    h, w = allowed.shape
    for _ in range(length):
        heading += turn + rng.normal(0, 0.08)
        y, x = y + np.sin(heading), x + np.cos(heading)
        iy, ix = round(y), round(x)
        if not (0 <= iy < h and 0 <= ix < w) or not allowed[iy, ix]:
            break
        pts.append((y, x))
    if len(pts) < 3:
        return None
    out = np.zeros_like(allowed)
    for (y0, x0), (y1, x1) in itertools.pairwise(pts):
        rr, cc = draw.line(round(y0), round(x0), round(y1), round(x1))
        out[rr, cc] = True
    return out & allowed


def _scribble_plane(
    instances: np.ndarray,
    n_fg: int,
    n_bg: int,
    rng: np.random.Generator,
    *,
    brush: int,
    margin: int,
) -> np.ndarray:
    """Scribbles ``(Y, X)`` uint8 for one plane with about ``n_fg`` / ``n_bg`` painted pixels."""
    out = np.zeros(instances.shape, np.uint8)
    fg = instances > 0
    disk = morphology.disk(brush) if brush > 0 else np.ones((1, 1), bool)

    # Foreground: one stroke per object, objects in random order, until n_fg pixels are painted.
    regions = measure.regionprops(instances)
    order = rng.permutation(len(regions))
    painted = 0
    for k in order:
        if painted >= n_fg:
            break
        reg = regions[k]
        y0, x0, y1, x1 = reg.bbox
        obj = reg.image
        # A margin of 2 px inside an object, or less for small objects.
        m = min(margin, max(0, int(ndi.distance_transform_edt(np.pad(obj, 1)).max()) - 2))
        line = _object_stroke(obj, rng, m)
        wide = ndi.binary_dilation(np.pad(line, brush), disk)[
            brush : brush + obj.shape[0], brush : brush + obj.shape[1]
        ]
        inner = ndi.binary_erosion(np.pad(obj, 1), iterations=max(1, m // 2))[1:-1, 1:-1]
        wide &= inner if inner.any() else obj
        view = out[y0:y1, x0:x1]
        new = wide & (view == UNLABELED)
        view[new] = FOREGROUND
        painted += int(new.sum())

    # Background: smooth strokes kept a few pixels away from every object.
    allowed = ~ndi.binary_dilation(fg, morphology.disk(margin + brush + 2))
    short = max(10, min(instances.shape) // 12)
    painted, tries = 0, 0
    while painted < n_bg and tries < 200:
        tries += 1
        line = _background_stroke(allowed, rng, int(rng.integers(short, 3 * short)))
        if line is None:
            continue
        wide = ndi.binary_dilation(line, disk) & ~ndi.binary_dilation(fg, morphology.disk(margin))
        new = wide & (out == UNLABELED)
        out[new] = BACKGROUND
        painted += int(new.sum())
    return out


def simulate_scribbles(
    mask: np.ndarray,
    *,
    fraction: float = 0.01,
    fg_share: float = 0.5,
    slices: int = 3,
    brush: int = 1,
    margin: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Simulate sparse scribbles that a person would paint, from a ground-truth mask.

    Foreground strokes run along the long axis of randomly chosen objects, a couple of pixels
    inside them; background strokes are smooth curved random walks kept away from the objects.
    Strokes are added until about ``fraction`` of all pixels are painted.

    Parameters
    ----------
    mask : np.ndarray
        Instance labels or a binary mask, ``(Y, X)`` or ``(Z, Y, X)``; 0 = background.
        A binary mask is split into connected components.
    fraction : float
        Target painted fraction of all pixels (of the whole volume for 3D).
    fg_share : float
        Share of the painted pixels that are foreground.
    slices : int
        For a 3D mask, the number of evenly spaced ``Z`` planes that are painted.
    brush : int
        Brush radius in pixels (1 = a 3 px wide stroke).
    margin : int
        Strokes stay this many pixels away from object boundaries.
    seed : int
        Random seed; the same seed gives the same scribbles.

    Returns
    -------
    np.ndarray
        uint8 scribbles of ``mask.shape``: 0 unlabeled, 1 background, 2 foreground.
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (Y, X) or (Z, Y, X), got shape {mask.shape}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    planes = mask[None] if mask.ndim == 2 else mask
    if mask.ndim == 2:
        zs = np.array([0])
    else:
        n = max(1, min(slices, planes.shape[0]))
        zs = np.unique(np.linspace(0, planes.shape[0] - 1, n + 2)[1:-1].round().astype(int))
    total = fraction * mask.size / len(zs)
    out = np.zeros(planes.shape, np.uint8)
    for z in zs:
        inst = planes[z]
        if inst.dtype == bool or inst.max() <= 1:
            inst = measure.label(inst > 0)
        out[z] = _scribble_plane(
            inst.astype(np.int64, copy=False),
            round(total * fg_share),
            round(total * (1 - fg_share)),
            rng,
            brush=brush,
            margin=margin,
        )
    return out[0] if mask.ndim == 2 else out


# --------------------------------------------------------------------------------------------
# synthetic nuclei image


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to [0, 1]."""
    field = filters.gaussian(rng.standard_normal(shape), sigma=sigma)
    field -= field.min()
    return field / max(float(field.max()), 1e-12)


def synthetic_nuclei(
    shape: tuple[int, int] = (512, 512),
    *,
    n_objects: int | None = None,
    radius: tuple[float, float] = (7.0, 16.0),
    snr: float = 6.0,
    blur: float = 1.2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A 2D fluorescence-like image of nuclei with its ground truth.

    Irregular, partly touching blobs with varying brightness (some dim) and chromatin texture,
    blurred by a point spread function, on an uneven background with out-of-focus haze, with
    Poisson and read noise.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` image size.
    n_objects : int or None
        Number of nuclei; None picks a density of about one per 45x45 pixels.
    radius : tuple of float
        Range of the nuclei's mean radius in pixels.
    snr : float
        Typical nucleus-over-background contrast in units of the noise (smaller is harder).
    blur : float
        Standard deviation, in pixels, of the Gaussian point spread function.
    seed : int
        Random seed.

    Returns
    -------
    image : np.ndarray
        uint16 ``(Y, X)``.
    labels : np.ndarray
        uint16 ``(Y, X)`` instance labels, 0 = background.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    if n_objects is None:
        n_objects = max(1, int(h * w / 45**2))
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float64)
    texture = _smooth_noise(shape, 1.5, rng)
    label = 0
    for _ in range(n_objects * 4):
        if label >= n_objects:
            break
        r0 = rng.uniform(*radius)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        # Star-convex outline: an ellipse with a few low harmonics.
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        elong = rng.uniform(1.0, 1.6)
        rot = rng.uniform(0, np.pi)
        rad = r0 * (
            1 + sum(rng.normal(0, 0.05) * np.cos(k * angles + rng.uniform(0, 6)) for k in (2, 3, 4))
        )
        ry = rad * np.sin(angles) / np.sqrt(elong)
        rx = rad * np.cos(angles) * np.sqrt(elong)
        rr, cc = draw.polygon(
            cy + ry * np.cos(rot) - rx * np.sin(rot),
            cx + ry * np.sin(rot) + rx * np.cos(rot),
            shape,
        )
        if len(rr) < 20:
            continue
        if np.count_nonzero(labels[rr, cc]) > 0.15 * len(rr):  # allow touching, not stacking
            continue
        label += 1
        labels[rr, cc] = label
        brightness = float(np.clip(rng.lognormal(0.0, 0.45), 0.25, 3.0))
        signal[rr, cc] = brightness * (0.7 + 0.6 * texture[rr, cc])
    # Nuclei are brighter in the middle than at the rim.
    dist = ndi.distance_transform_edt(labels > 0)
    signal *= 0.75 + 0.25 * np.tanh(dist / 3.0)
    signal = filters.gaussian(signal, sigma=blur)
    # Uneven background: illumination gradient, out-of-focus haze, a few blurred dim blobs.
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gy, gx = rng.normal(0, 0.6, 2)
    illumination = (
        1.0 + 0.35 * (gy * (yy - 0.5) + gx * (xx - 0.5)) - 0.3 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2)
    )
    haze = 0.25 * _smooth_noise(shape, max(h, w) / 10, rng)
    debris = np.zeros(shape)
    for _ in range(max(1, n_objects // 6)):
        rr, cc = draw.disk((rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(4, 12), shape=shape)
        debris[rr, cc] = rng.uniform(0.1, 0.3)
    debris = filters.gaussian(debris, sigma=6)
    clean = illumination * (0.3 + haze + debris + signal)
    # Photon and read noise: the median nucleus (brightness 1) stands about snr noise std out.
    photons = (snr**2) / 0.7  # shot noise std at the nucleus level ~ 1/snr of its contrast
    noisy = rng.poisson(np.clip(clean, 0, None) * photons) / photons
    noisy += rng.normal(0, 0.3 / snr, shape)
    image = np.clip(100 + noisy * 1000, 0, 65535).astype(np.uint16)
    return image, labels


# --------------------------------------------------------------------------------------------
# a second scribble style: skeletons of a few objects, short background lines far from objects


def simulate_sparse_scribbles(
    mask: np.ndarray,
    *,
    objects: float = 0.12,
    bg_strokes: int = 25,
    bg_margin: int = 4,
    max_stroke: int | None = None,
    slices: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Scribbles in the style many users paint: few objects traced, short background lines.

    Unlike :func:`simulate_scribbles` (equal foreground and background, strokes 2 px from every
    border), this paints a 3 px wide line along the skeleton of a random ``objects`` share of
    the objects (eroded by 2 px first, when they are big enough) and ``bg_strokes`` short
    straight background lines kept ``bg_margin`` px away from every object. About 1% of a 2D
    image ends up painted, mostly background; thin objects are painted to their borders.

    Parameters
    ----------
    mask : np.ndarray
        Instance labels or a binary mask, ``(Y, X)`` or ``(Z, Y, X)``; 0 = background.
    objects : float
        Share of the objects that get a foreground stroke (at least one object).
    bg_strokes : int
        Background lines per painted plane.
    bg_margin : int
        Background lines stay this many pixels away from objects.
    max_stroke : int, optional
        Longest foreground stroke in pixels (a piece of a long vessel, not all of it).
    slices : int
        For a 3D mask, the number of evenly spaced ``Z`` planes that are painted.
    seed : int

    Returns
    -------
    np.ndarray
        uint8 scribbles of ``mask.shape``: 0 unlabeled, 1 background, 2 foreground.
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"mask must be (Y, X) or (Z, Y, X), got shape {mask.shape}")
    rng = np.random.default_rng(seed)
    if mask.ndim == 2:
        return _sparse_plane(mask, objects, bg_strokes, bg_margin, max_stroke, rng)
    out = np.zeros(mask.shape, np.uint8)
    n = max(1, min(slices, mask.shape[0]))
    zs = np.unique(np.linspace(0, mask.shape[0] - 1, n + 2)[1:-1].round().astype(int))
    for z in zs:
        out[z] = _sparse_plane(mask[z], objects, bg_strokes, bg_margin, max_stroke, rng)
    return out


def _sparse_plane(
    mask: np.ndarray,
    objects: float,
    bg_strokes: int,
    bg_margin: int,
    max_stroke: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    inst = np.asarray(mask)
    if inst.dtype == bool or inst.max() <= 1:
        inst = measure.label(inst > 0)
    fg = inst > 0
    out = np.zeros(inst.shape, np.uint8)
    regions = measure.regionprops(inst)
    if regions:
        k = max(1, round(len(regions) * objects))
        for i in rng.choice(len(regions), k, replace=False):
            reg = regions[i]
            y0, x0, y1, x1 = reg.bbox
            obj = np.pad(reg.image, 3)
            core = ndi.binary_erosion(obj, morphology.disk(2))
            if core.sum() < 4:
                core = obj
            skeleton = morphology.skeletonize(core)
            if max_stroke:
                # Only a piece of a long object: skeleton pixels near a random one of them.
                ys, xs = np.nonzero(skeleton)
                j = rng.integers(len(ys))
                near = np.hypot(ys - ys[j], xs - xs[j]) <= max_stroke / 2
                skeleton = np.zeros_like(skeleton)
                skeleton[ys[near], xs[near]] = True
            line = ndi.binary_dilation(skeleton, morphology.disk(1))
            line = (line & obj)[3:-3, 3:-3]
            out[y0:y1, x0:x1][line] = FOREGROUND
    far = ~ndi.binary_dilation(fg, morphology.disk(bg_margin)) if fg.any() else ~fg
    h, w = inst.shape
    short, long_ = max(4, min(h, w) // 30), max(8, min(h, w) // 12)
    placed = 0
    for _ in range(20000):
        if placed >= bg_strokes:
            break
        r0, c0 = int(rng.integers(h)), int(rng.integers(w))
        if not far[r0, c0]:
            continue
        angle, length = rng.uniform(0, np.pi), int(rng.integers(short, long_))
        r1 = int(np.clip(r0 + length * np.sin(angle), 0, h - 1))
        c1 = int(np.clip(c0 + length * np.cos(angle), 0, w - 1))
        rr, cc = draw.line(r0, c0, r1, c1)
        if far[rr, cc].mean() < 0.95:
            continue
        line = np.zeros(inst.shape, bool)
        line[rr, cc] = True
        paint = ndi.binary_dilation(line, morphology.disk(1)) & far & (out == UNLABELED)
        out[paint] = BACKGROUND
        placed += 1
    return out


# --------------------------------------------------------------------------------------------
# thin curvilinear structures


def synthetic_filaments(
    shape: tuple[int, int] = (512, 512),
    *,
    n_filaments: int | None = None,
    width: tuple[float, float] = (1.0, 2.5),
    snr: float = 5.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Thin bright curvilinear structures (vessels, neurites, fibres) with their ground truth.

    Smooth random curves 2-5 px wide, of varying brightness, blurred, on an uneven background
    with Poisson and read noise; about 5% of the pixels are foreground (512x512).

    Returns
    -------
    image : np.ndarray
        uint16 ``(Y, X)``.
    labels : np.ndarray
        uint16 ``(Y, X)``: one id per curve, 0 = background.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    if n_filaments is None:
        n_filaments = max(2, int(h * w / 16000))
    labels = np.zeros(shape, np.uint16)
    signal = np.zeros(shape, np.float64)
    for i in range(1, n_filaments + 1):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        heading = rng.uniform(0, 2 * np.pi)
        turn = rng.normal(0, 0.01)
        radius = rng.uniform(*width)
        brightness = float(np.clip(rng.lognormal(0.0, 0.4), 0.3, 2.5))
        length = int(rng.uniform(0.3, 1.0) * max(h, w))
        line = np.zeros(shape, bool)
        for _ in range(length):
            heading += turn + rng.normal(0, 0.05)
            y, x = y + np.sin(heading), x + np.cos(heading)
            if not (0 <= y < h and 0 <= x < w):
                break
            line[int(y), int(x)] = True
        tube = ndi.distance_transform_edt(~line) <= radius
        labels[tube & (labels == 0)] = i
        signal[tube] = np.maximum(signal[tube], brightness)
    signal = filters.gaussian(signal, sigma=1.0)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    gy, gx = rng.normal(0, 0.6, 2)
    illumination = 1.0 + 0.35 * (gy * (yy - 0.5) + gx * (xx - 0.5))
    haze = 0.3 * _smooth_noise(shape, max(h, w) / 8, rng)
    clean = illumination * (0.3 + haze + signal)
    photons = (snr**2) / 0.7
    noisy = rng.poisson(np.clip(clean, 0, None) * photons) / photons
    noisy += rng.normal(0, 0.3 / snr, shape)
    image = np.clip(100 + noisy * 1000, 0, 65535).astype(np.uint16)
    return image, labels
