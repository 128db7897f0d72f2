"""No stroke lost: the session's scribbles saved as they are painted, offered back on reopening.

:class:`AutoSaver` follows the session's image and scribbles layer. Every stroke (a napari
paint event) marks its bounding box; half a second after the last one, the chunks of
:class:`~napari_seglab.core.autosave.StrokeStore` under that box are rewritten, with the class
names and colours. An undo, a redo or a replaced array rewrites the whole array.

When an image is chosen whose strokes were saved before and the scribbles layer in use is
empty or missing, the saver offers them (:attr:`AutoSaver.offer`; the widget shows a banner
with Restore and Discard). Until the user answers, strokes painted meanwhile are saved on top
of the old ones (painted pixels win, nothing is erased from the saved ones), so neither is
lost; Restore puts the saved strokes into the layer under the new ones, Discard forgets them.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from napari_seglab._qt import layers as lyr
from napari_seglab._qt.classes import SegClass, apply_classes, classes_from_layer
from napari_seglab._qt.scribble_sync import ScribbleSync
from napari_seglab.core.autosave import SavedSession, StrokeStore, autosave_root, image_key

if TYPE_CHECKING:
    from napari.layers import Image, Labels

    from napari_seglab._qt.session import Session

#: Quiet time (ms) after a stroke before it is written.
SAVE_DELAY_MS = 500


def _bbox(edits: list) -> tuple[slice, ...] | None:
    """The bounding box of some :class:`~napari_seglab.core.edits.ScribbleEdit` objects."""
    lows, highs = None, None
    for edit in edits:
        if not edit.indices or edit.indices[0].size == 0:
            continue
        lo = [int(i.min()) for i in edit.indices]
        hi = [int(i.max()) + 1 for i in edit.indices]
        lows = lo if lows is None else [min(a, b) for a, b in zip(lows, lo, strict=True)]
        highs = hi if highs is None else [max(a, b) for a, b in zip(highs, hi, strict=True)]
    if lows is None:
        return None
    return tuple(slice(a, b) for a, b in zip(lows, highs, strict=True))


def _union(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...] | None:
    if a is None or b is None:
        return a or b
    return tuple(
        slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b, strict=True)
    )


class AutoSaver(QObject):
    """Saves the session's scribbles while they are painted; offers saved ones back.

    Parameters
    ----------
    session : Session
    root : path, optional
        Folder of the saved sessions (default: :func:`~napari_seglab.core.autosave.autosave_root`,
        read when the saver is made).

    Signals
    -------
    offerChanged(object)
        The saved session offered for the current image (a
        :class:`~napari_seglab.core.autosave.SavedSession`), or None when there is none.
    saved()
        Strokes were written.
    failed(str)
        A save failed (disk full, folder not writable): why. Saving goes on with the next
        stroke.
    """

    offerChanged = Signal(object)
    saved = Signal()
    failed = Signal(str)

    def __init__(self, session: Session, root: str | Path | None = None, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.root = Path(root) if root is not None else autosave_root()
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._image: Image | None = None
        self._scribbles: Labels | None = None
        self._key: str | None = None
        self._store: StrokeStore | None = None
        self._offer: StrokeStore | None = None
        self._sync: ScribbleSync | None = None
        self._dirty: tuple[slice, ...] | None = None
        self._whole = False
        self._answered = False  # the user restored or discarded the current image's offer
        self._last_failure = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.flush)
        session.changed.connect(self._follow)
        session.classesChanged.connect(self._on_classes)
        self._follow()

    # ------------------------------------------------------------------------------------
    @property
    def offer(self) -> SavedSession | None:
        """The saved session offered for the current image, or None."""
        return self._offer.info() if self._offer is not None else None

    @property
    def store(self) -> StrokeStore | None:
        """Where the current image's strokes are saved (None before its first stroke)."""
        return self._store

    def key(self, image: Image) -> str:
        """:func:`~napari_seglab.core.autosave.image_key` of a layer's data (computed once
        per layer)."""
        key = self._keys.get(image)
        if key is None:
            key = image_key(image.data)
            self._keys[image] = key
        return key

    # ------------------------------------------------------------------------------------
    def _follow(self) -> None:
        """Follow the session's (image, scribbles) pair when it changed."""
        image, scribbles = self.session.image, self.session.scribbles
        if image is not None and image not in self.session.viewer.layers:
            image = None
        if scribbles is not None and image is None:
            scribbles = None
        if image is self._image and scribbles is self._scribbles:
            return
        self.flush()
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        if image is not self._image:
            self._key = self.key(image) if image is not None else None
            self._store = self._offer = None
            self._answered = False
            if self._key is not None:
                found = StrokeStore.find(self.root, self._key)
                if found is not None and found.shape == lyr.spatial_shape(image):
                    self._store = found
        self._image, self._scribbles = image, scribbles
        if scribbles is not None:
            self._sync = ScribbleSync(scribbles, delay_ms=200, parent=self)
            self._sync.edited.connect(self._on_edited)
            self._sync.replaced.connect(self._on_replaced)
        if not self._answered and self._store is not None:
            # offered while the saved strokes hold some that the layer (if any) has not
            self._offer = self._store if _missing(self._store, scribbles) else None
        self.offerChanged.emit(self.offer)

    def _on_edited(self, edits: list) -> None:
        self._dirty = _union(self._dirty, _bbox(edits))
        self._timer.start()

    def _on_replaced(self) -> None:
        self._whole = True
        self._timer.start()

    def _on_classes(self) -> None:
        if self._store is not None and self._scribbles is not None:
            self._whole = self._whole or self._dirty is None
            self._timer.start()

    def flush(self) -> None:
        """Write what changed since the last save, now."""
        self._timer.stop()
        layer, image = self._scribbles, self._image
        region, whole = self._dirty, self._whole
        self._dirty, self._whole = None, False
        if layer is None or image is None or (region is None and not whole):
            return
        data = np.asarray(layer.data)
        try:
            if self._store is None:
                if not np.any(data):
                    return
                self._store = StrokeStore.create(
                    self.root,
                    self._key,
                    data.shape,
                    image_name=image.name,
                    source=str(getattr(image.source, "path", None) or ""),
                )
                whole = True
            classes = [(c.name, c.color) for c in self.session.classes]
            offer = self._offer  # not answered yet: new strokes go on top of the saved ones
            if offer is not None and len(offer.info().classes) > len(classes):
                classes = offer.info().classes
            self._store.save(
                data, classes, region=None if whole else region, keep_saved=offer is not None
            )
        except (OSError, ValueError) as exc:
            message = f"the strokes of '{image.name}' are not saved ({self.root}): {exc}"
            if message != self._last_failure:  # once, not after every stroke
                self._last_failure = message
                self.failed.emit(message)
            return
        self.saved.emit()

    # ------------------------------------------------------------------------------------
    def restore(self) -> Labels | None:
        """Put the offered strokes into the scribbles layer (made when there is none), under
        any painted since; returns the layer (None when nothing was offered)."""
        offer, image = self._offer, self._image
        if offer is None or image is None:
            return None
        info = offer.info()
        saved = offer.read()
        classes = [SegClass(n, c) for n, c in info.classes] or list(self.session.classes)
        layer = self._scribbles
        if layer is None:
            layer = lyr.new_scribbles_layer(self.session.viewer, image, classes)
        current = np.asarray(layer.data)
        merged = np.where(current != 0, current, saved).astype(current.dtype, copy=False)
        self._offer, self._answered = None, True  # the store follows the layer from now on
        if len(classes) > len(classes_from_layer(layer) or self.session.classes):
            apply_classes(layer, classes)
        layer.data = merged
        if layer is not self.session.scribbles:
            self.session.set_scribbles(layer)
            self.session.scribblesChosen.emit(layer)
        else:
            self.session.set_scribbles(layer)  # reads the classes it now holds
        self._whole = True
        self.flush()
        self.offerChanged.emit(None)
        return layer

    def discard(self) -> None:
        """Forget the offered strokes; the layer's own (if any) are saved in their place."""
        if self._offer is None:
            return
        self._offer, self._answered = None, True
        if self._scribbles is not None and _painted(self._scribbles):
            self._whole = True
            self.flush()
        elif self._store is not None:
            self._store.discard()
            self._store = None
        self.offerChanged.emit(None)

    def close(self) -> None:
        """Write what is pending and stop following the session (idempotent)."""
        with contextlib.suppress(RuntimeError):
            self.flush()
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        with contextlib.suppress(TypeError, RuntimeError):
            self.session.changed.disconnect(self._follow)
            self.session.classesChanged.disconnect(self._on_classes)
        self._image = self._scribbles = None


def _painted(layer: Labels) -> bool:
    return bool(np.any(np.asarray(layer.data)))


def _missing(store: StrokeStore, layer: Labels | None) -> bool:
    """Whether ``store`` holds strokes that ``layer`` (None: no layer) does not."""
    if store.info().painted == 0:
        return False
    if layer is None or tuple(layer.data.shape) != store.shape or not _painted(layer):
        return True
    saved = store.read()
    return bool(np.any((saved != 0) & (np.asarray(layer.data) != saved)))


class RestoreBanner(QWidget):
    """A line under the layer choice: "Strokes saved ... [Restore] [Discard]", shown while
    the saver offers strokes."""

    def __init__(self, saver: AutoSaver, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.saver = saver
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.restore_button = QPushButton("Restore", self)
        self.restore_button.setToolTip("Put the saved strokes back into the scribbles layer")
        self.discard_button = QPushButton("Discard", self)
        self.discard_button.setToolTip("Forget the saved strokes of this image")
        row.addWidget(self.label, 1)
        row.addWidget(self.restore_button)
        row.addWidget(self.discard_button)
        self.restore_button.clicked.connect(saver.restore)
        self.discard_button.clicked.connect(saver.discard)
        saver.offerChanged.connect(self.show_offer)
        self.show_offer(saver.offer)

    def show_offer(self, offer: SavedSession | None) -> None:
        if offer is None:
            self.hide()
            return
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(offer.saved_at))
        names = ", ".join(name for name, _ in offer.classes) or "no class names"
        self.label.setText(
            f"Strokes saved for this image on {when}: {offer.painted:,} painted pixels ({names})."
        )
        self.show()
