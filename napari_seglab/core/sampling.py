"""Training crops: where they are taken, and their augmentation.

Crops are views of the ``(Z, C, Y, X)`` image of :func:`napari_seglab.core.data.as_zcyx`,
normalised with the image's :class:`~napari_seglab.core.data.Normalization`.
"""

from __future__ import annotations

import numpy as np

from napari_seglab.core.data import ImageView, Normalization, context_slices
from napari_seglab.core.edits import ScribbleEdit

#: A crop is moved off the painted pixel it is centred on by up to half its edge, less this
#: many pixels: the pixel lands anywhere in the crop but this close to its edge. Moved by at
#: most a quarter (as before), a class painted in one place (an 11-pixel stroke) is always seen
#: in the middle of the crop with the same surroundings, and some runs learnt those pixels rather
#: than what they are (``docs/real-images.md``, "Crops that move").
SHIFT_MARGIN = 4


class CropSampler:
    """Draw training crops that always contain painted pixels.

    Each crop holds a painted pixel, anywhere but within :data:`SHIFT_MARGIN` pixels of its
    edge (the crop is centred on the pixel and moved by up to half its size); which class that
    pixel belongs to is chosen uniformly among the painted classes, so rare classes are seen as
    often as common ones. For stacks, crops come from the slices that hold labels only.

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
        #: ``(Z, Y, X)`` uint8 class ids a teacher gives (0 = none), cropped with the labels
        #: (:meth:`set_teacher`); None: no teacher.
        self.teacher: np.ndarray | None = None
        self.set_labels(labels)

    def set_teacher(self, teacher: np.ndarray | None) -> None:
        """Crop ``teacher`` (the labels' shape, 0 = no class) with the labels from now on:
        :meth:`batch` then returns its crops as a second label channel."""
        if teacher is not None:
            teacher = np.ascontiguousarray(teacher, np.uint8).reshape(self.labels.shape)
        self.teacher = teacher

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
        """One crop: image ``(C, h, w)`` float32 normalised, labels ``(h, w)`` int64 (``(2, h,
        w)`` with a teacher)."""
        rng = self.rng
        k = int(rng.choice(self.classes))
        idx = int(self.coords[k][rng.integers(len(self.coords[k]))])
        _, _, H, W = self.view.data.shape
        z, rem = divmod(idx, H * W)
        y, x = divmod(rem, W)
        dy, dx = (self.max_shift(c) for c in self.crop)
        y += int(rng.integers(-dy, dy + 1))
        x += int(rng.integers(-dx, dx + 1))
        return self._crop(z, y, x)

    def max_shift(self, edge: int) -> int:
        """How far (pixels, along one axis) a crop ``edge`` pixels long is moved at most off
        the painted pixel it is centred on: half its size less :data:`SHIFT_MARGIN`."""
        return max(int(edge) // 2 - SHIFT_MARGIN, 0)

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
        if self.teacher is not None:  # (2, h, w): the strokes, then the teacher
            lab = np.stack([lab, self.teacher[z, y0:y1, x0:x1]])
        if py0 or py1 or px0 or px1:
            img = np.pad(img, ((0, 0), (py0, py1), (px0, px1)), mode="symmetric")
            pad = ((0, 0),) * (lab.ndim - 2) + ((py0, py1), (px0, px1))
            lab = np.pad(lab, pad, mode="constant")
        if self.augment if augment is None else augment:
            img, lab = self._augment(img, lab)
        return np.ascontiguousarray(img), np.ascontiguousarray(lab)

    def _augment(self, img: np.ndarray, lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        if rng.random() < 0.5:
            img, lab = img[:, :, ::-1], lab[..., ::-1]
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[..., ::-1, :]
        if img.shape[1] == img.shape[2] and rng.random() < 0.5:
            img, lab = img.transpose(0, 2, 1), np.swapaxes(lab, -1, -2)
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
        """A batch: images ``(B, C, h, w)`` float32, labels ``(B, 1, h, w)`` int64; with a
        teacher (:meth:`set_teacher`) labels ``(B, 2, h, w)``, the teacher's classes second."""
        pairs = [self.sample() for _ in range(size)]
        x = np.stack([p[0] for p in pairs])
        y = np.stack([p[1] for p in pairs])
        return x, (y[:, None] if y.ndim == 3 else y)
