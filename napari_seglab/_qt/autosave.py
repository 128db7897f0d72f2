"""No stroke lost: scribbles saved as they are painted, offered back on reopening.

:class:`AutoSaver` follows the session's image and scribbles layer, and every other image
with a ``"<image> scribbles"`` layer. Every stroke (a napari paint event) marks its bounding
box; half a second after the last one, the chunks of
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
from concurrent.futures import ThreadPoolExecutor
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


class _Follower(QObject):
    """The saving of one image's scribbles layer: what changed since the last save, and
    where it goes (``store``, None before the first stroke)."""

    def __init__(self, saver: AutoSaver, image: Image, key: str) -> None:
        super().__init__(saver)
        self.image, self.key = image, key
        self.scribbles: Labels | None = None
        self.sync: ScribbleSync | None = None
        self.store = StrokeStore.find(saver.root, key)
        if self.store is not None and self.store.shape != lyr.spatial_shape(image):
            self.store = None
        #: saved strokes the layer lacks and the user has not restored or discarded: strokes
        #: are saved on top of them, nothing is erased
        self.pending = False
        self.answered = False
        self.dirty: tuple[slice, ...] | None = None
        self.whole = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(SAVE_DELAY_MS)
        self.timer.timeout.connect(lambda: saver.flush(self))

    def follow(self, scribbles: Labels | None) -> None:
        """Save ``scribbles`` from now on (None: none)."""
        if self.sync is not None:
            self.sync.close()
            self.sync = None
        self.scribbles = scribbles
        if scribbles is not None:
            self.sync = ScribbleSync(scribbles, delay_ms=200, parent=self)
            self.sync.edited.connect(self._on_edited)
            self.sync.replaced.connect(self._on_replaced)
        if not self.answered:
            self.pending = self.store is not None and _missing(self.store, scribbles)

    def _on_edited(self, edits: list) -> None:
        self.dirty = _union(self.dirty, _bbox(edits))
        self.timer.start()

    def _on_replaced(self) -> None:
        self.whole = True
        self.timer.start()

    def close(self) -> None:
        self.follow(None)
        with contextlib.suppress(RuntimeError):  # Qt deleted the timer already
            self.timer.stop()


class AutoSaver(QObject):
    """Saves the scribbles of every open image while they are painted; offers saved ones back
    for the session's image.

    Followed are the session's image with its scribbles layer (also one the user picked) and
    every other image with a ``"<image> scribbles"`` layer.

    Parameters
    ----------
    session : Session
    root : path, optional
        Folder of the saved sessions (default: :func:`~napari_seglab.core.autosave.autosave_root`,
        read when the saver is made).

    Signals
    -------
    offerChanged(object)
        The saved session offered for the session's image (a
        :class:`~napari_seglab.core.autosave.SavedSession`), or None when there is none.
    saved()
        Strokes were written.
    failed(str)
        A save failed (disk full, folder not writable): why, once per image and cause. Saving
        goes on with the next stroke.
    """

    offerChanged = Signal(object)
    saved = Signal()
    failed = Signal(str)
    _written = Signal(str)  # from the writer thread: "" or why a write failed

    def __init__(self, session: Session, root: str | Path | None = None, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.root = Path(root) if root is not None else autosave_root()
        # the files are written on one thread of their own, in order: a whole array after an
        # undo on a large stack takes a fraction of a second the viewer must not wait for
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seglab-autosave")
        self._closed = False
        self._written.connect(self._on_written)
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._followers: dict[int, _Follower] = {}
        # a picked layer (not named after an image) -> the image it was picked for
        self._owners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._current: _Follower | None = None
        self._failures: set[str] = set()
        session.changed.connect(self._follow)
        session.classesChanged.connect(self._on_classes)
        self._follow()

    # ------------------------------------------------------------------------------------
    @property
    def offer(self) -> SavedSession | None:
        """The saved session offered for the session's image, or None."""
        f = self._current
        return f.store.info() if f is not None and f.pending and f.store is not None else None

    def key(self, image: Image) -> str:
        """:func:`~napari_seglab.core.autosave.image_key` of a layer's data (computed once
        per layer)."""
        key = self._keys.get(image)
        if key is None:
            key = image_key(image.data)
            self._keys[image] = key
        return key

    # ------------------------------------------------------------------------------------
    def _wanted(self) -> dict[int, tuple[Image, Labels | None]]:
        from napari.layers import Image as ImageLayer

        viewer = self.session.viewer
        if viewer is None:
            return {}
        wanted = {}
        for layer in viewer.layers:
            if isinstance(layer, ImageLayer) and lyr.role(layer) is None:
                scribbles = lyr.find_scribbles(viewer, layer)
                if scribbles is not None:
                    wanted[id(layer)] = (layer, scribbles)
        # layers picked by the user stay saved as their image's while another is chosen
        for layer, owner in list(self._owners.items()):
            if layer in viewer.layers and owner in viewer.layers:
                wanted.setdefault(id(owner), (owner, layer))
        image = self.session.image
        if image is not None and image in viewer.layers:
            wanted[id(image)] = (image, self._own_scribbles(image))
        return wanted

    def _own_scribbles(self, image: Image) -> Labels | None:
        """The session's scribbles when they are ``image``'s: its ``"<image> scribbles"``
        layer, or a layer the user picked while ``image`` was chosen (its owner from then on;
        the session keeps the previous image's scribbles when another image is chosen, and
        they are not that image's); else ``image``'s own layer if there is one."""
        viewer, chosen = self.session.viewer, self.session.scribbles
        own = lyr.find_scribbles(viewer, image)
        if chosen is None or chosen is own:
            return own
        names = {lyr.scribbles_name(layer) for layer in viewer.layers if layer is not image}
        if own is not None or chosen.name in names:
            return own
        owner = self._owners.get(chosen)
        if owner is None and tuple(chosen.data.shape) == lyr.spatial_shape(image):
            self._owners[chosen] = owner = image
        return chosen if owner is image else None

    def _follow(self) -> None:
        """Follow the (image, scribbles) pairs of the viewer as they are now."""
        wanted = self._wanted()
        for ident in list(self._followers):
            f = self._followers[ident]
            if ident not in wanted or wanted[ident][0] is not f.image:
                self.flush(f)
                f.close()
                del self._followers[ident]
        for ident, (image, scribbles) in wanted.items():
            f = self._followers.get(ident)
            if f is None:
                f = self._followers[ident] = _Follower(self, image, self.key(image))
                f.follow(scribbles)
            elif f.scribbles is not scribbles:
                self.flush(f)
                f.follow(scribbles)
        image = self.session.image
        self._current = self._followers.get(id(image)) if image is not None else None
        self.offerChanged.emit(self.offer)

    def _on_classes(self) -> None:
        f = self._current
        if f is not None and f.store is not None and f.scribbles is not None:
            f.whole = f.whole or f.dirty is None
            f.timer.start()

    def _classes(self, f: _Follower) -> list[tuple[str, str]]:
        if f is self._current:
            classes = [(c.name, c.color) for c in self.session.classes]
        else:
            stored = classes_from_layer(f.scribbles) if f.scribbles is not None else None
            classes = [(c.name, c.color) for c in stored or []]
        if f.pending and f.store is not None and len(f.store.info().classes) > len(classes):
            classes = f.store.info().classes
        return classes

    def flush(self, follower: _Follower | None = None) -> None:
        """Write what changed since the last save, now (of one image; default: all)."""
        for f in [follower] if follower is not None else list(self._followers.values()):
            self._flush(f)

    def _flush(self, f: _Follower) -> None:
        with contextlib.suppress(RuntimeError):  # Qt deleted the timer already
            f.timer.stop()
        if self._closed:
            return
        # an undo, a redo or a new array still in the sync's delay counts now
        region, whole = f.dirty, f.whole or (f.sync is not None and f.sync.pending)
        f.dirty, f.whole = None, False
        layer, image = f.scribbles, f.image
        if layer is None or (region is None and not whole):
            return
        data = np.asarray(layer.data)
        try:
            if f.store is None:
                if not np.any(data):
                    return
                f.store = StrokeStore.create(
                    self.root,
                    f.key,
                    data.shape,
                    image_name=image.name,
                    source=str(getattr(image.source, "path", None) or ""),
                )
                whole = True
            region = f.store.chunk_region(None if whole else region)
            part = np.array(data[region])  # a copy: the layer may change meanwhile
        except (OSError, ValueError) as exc:
            self._on_written(f"the strokes of '{image.name}' are not saved ({self.root}): {exc}")
            return
        store, classes, keep, name = f.store, self._classes(f), f.pending, image.name

        def write() -> None:
            try:
                store.write(part, region, classes, keep_saved=keep)
            except (OSError, ValueError) as exc:
                self._written.emit(f"the strokes of '{name}' are not saved ({self.root}): {exc}")
            else:
                self._written.emit("")

        self._writer.submit(write)

    def _on_written(self, problem: str) -> None:
        if not problem:
            self.saved.emit()
        elif problem not in self._failures:  # once, not after every stroke
            self._failures.add(problem)
            self.failed.emit(problem)

    def wait(self) -> None:
        """Block until what was handed to the writer thread is on disk."""
        self._writer.submit(lambda: None).result()

    # ------------------------------------------------------------------------------------
    def restore(self) -> Labels | None:
        """Put the offered strokes into the scribbles layer (made when there is none), under
        any painted since; returns the layer (None when nothing was offered)."""
        f = self._current
        if self.offer is None:
            return None
        info = f.store.info()
        saved = f.store.read()
        classes = [SegClass(n, c) for n, c in info.classes] or list(self.session.classes)
        layer = f.scribbles
        if layer is None or tuple(layer.data.shape) != saved.shape:
            layer = lyr.new_scribbles_layer(self.session.viewer, f.image, classes)
            f.follow(layer)
        current = np.asarray(layer.data)
        merged = np.where(current != 0, current, saved).astype(current.dtype, copy=False)
        f.pending, f.answered = False, True  # the store follows the layer from now on
        if len(classes) > len(classes_from_layer(layer) or self.session.classes):
            apply_classes(layer, classes)
        layer.data = merged
        self.session.set_scribbles(layer)  # (again: it reads the classes the layer holds)
        self.session.scribblesChosen.emit(layer)
        f.whole = True
        self.flush(f)
        self.offerChanged.emit(None)
        return layer

    def discard(self) -> None:
        """Forget the offered strokes; the layer's own (if any) are saved in their place."""
        f = self._current
        if self.offer is None:
            return
        f.pending, f.answered = False, True
        if f.scribbles is not None and _painted(f.scribbles):
            f.whole = True
            self.flush(f)
        else:
            self.wait()  # no write of it still under way
            f.store.discard()
            f.store = None
        self.offerChanged.emit(None)

    def close(self) -> None:
        """Write what is pending, wait for it, and stop following the viewer (idempotent)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._writer.shutdown(wait=True)
        for f in self._followers.values():
            f.close()
        self._followers, self._current = {}, None
        with contextlib.suppress(TypeError, RuntimeError):
            self.session.changed.disconnect(self._follow)
            self.session.classesChanged.disconnect(self._on_classes)


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
