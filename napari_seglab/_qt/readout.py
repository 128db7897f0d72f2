"""What the training says, in words and on screen: progress, status, loss, strokes reproduced.

The core's ``TrainReport`` carries ``stroke_recall`` (the running share of each class's painted
pixels the network reproduces) and ``notes`` (what the trainer changed on its own, oldest
first, repeated in every later report of the run). This module turns them into short texts,
keeps track of the notes already shown, so that each is shown once, and shows a session's
training in :class:`RunReadout` (progress bar, status line, device, loss curve, readout).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtWidgets import QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from napari_seglab._qt.loss_plot import LossPlot

if TYPE_CHECKING:
    from napari_seglab._qt.session import Session
    from napari_seglab.core.training import TrainReport

#: Below this share of its painted pixels reproduced, a class is flagged in the readout.
LOW_RECALL = 0.6


def recall_text(recall: np.ndarray | None, names: Sequence[str]) -> str:
    """``"Strokes reproduced: 99% background, 97% foreground"``, or ``""``.

    The share comes before the name, so that a name ending in a number ("class 3") is not
    read as part of it.

    Parameters
    ----------
    recall : np.ndarray or None
        ``(K,)`` share of each class's painted pixels predicted as that class; NaN for a class
        whose strokes were not seen yet. None (the trainer does not measure it): ``""``.
    names : sequence of str
        Class names for ids 1..; missing names read ``"class k"``.
    """
    if recall is None:
        return ""
    values = np.asarray(recall, dtype=np.float64).ravel()
    parts = []
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        name = names[i] if i < len(names) else f"class {i + 1}"
        flag = " (low)" if value < LOW_RECALL else ""
        parts.append(f"{_percent(value)} {name}{flag}")
    if not parts:
        return ""
    return "Strokes reproduced: " + ", ".join(parts)


def _percent(value: float) -> str:
    """``0.996 -> "99%"``: rounded down, so that 100% means every painted pixel."""
    return f"{math.floor(100 * min(1.0, max(0.0, value)))}%"


def note_line(note: str) -> str:
    """A trainer's note as the dock's notes line shows it: those of a step (``"step 30:
    ..."``, the guard's adjustments and the forest teacher's end) as "Adjusted at step 30:
    ...", the others (what the run started with) as they are, capitalised."""
    if note.startswith("step "):
        return f"Adjusted at {note}"
    return note[:1].upper() + note[1:]


class NoteTracker:
    """Hands out each of a run's ``report.notes`` once.

    Every report repeats the notes of the run so far; :meth:`new` returns the ones not returned
    before. :meth:`reset` at the start of a run.
    """

    def __init__(self) -> None:
        self.shown: list[str] = []

    def reset(self) -> None:
        """A new run: no note shown yet."""
        self.shown = []

    def new(self, report: TrainReport) -> list[str]:
        """The notes of ``report`` not returned before (oldest first)."""
        notes = [str(n) for n in getattr(report, "notes", ()) or ()]
        fresh = [n for n in notes[len(self.shown) :] if n not in self.shown]
        self.shown.extend(fresh)
        return fresh


class StatusLabel(QLabel):
    """A label of ``lines`` lines whose size never depends on its text.

    Changing a QLabel's text re-runs the layout of the whole dock; with a constant size hint the
    status can change several times a second during training at no cost to the viewer. With
    ``lines`` > 1 the text wraps at word boundaries within those lines (what does not fit is
    cut, and the tooltip holds all of it).
    """

    def __init__(self, text: str, parent: QWidget | None = None, lines: int = 1) -> None:
        super().__init__(text, parent)
        self._lines = int(lines)
        self.setWordWrap(lines > 1)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._fit()

    def _fit(self) -> None:
        """Height for ``lines`` lines of the font in use, frame and margins included: napari's
        stylesheet sets the font (and a frame) after construction, so this runs again then."""
        metrics = self.fontMetrics()
        text = metrics.height() + (self._lines - 1) * metrics.lineSpacing() + 2
        margins = self.contentsMargins()
        self._height = text + 2 * self.frameWidth() + margins.top() + margins.bottom()
        self.setFixedHeight(self._height)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit()

    def sizeHint(self) -> QSize:
        return QSize(100, self._height)

    def minimumSizeHint(self) -> QSize:
        return QSize(10, self._height)

    def heightForWidth(self, width: int) -> int:
        return self._height

    def setText(self, text: str) -> None:
        if text != self.text():
            super().setText(text)
            self.setToolTip(text)


class RunReadout(QWidget):
    """A session's training on screen: progress, status line, device, loss curve, how well
    the strokes are reproduced and the trainer's notes.

    Bound to the session's ``started``, ``reported``, ``finished`` and ``modelReplaced``
    signals; the status line also shows what the dock writes into :attr:`status_label`.
    Labels, progress and plot are refreshed at most twice a second during training.

    Parameters
    ----------
    session : Session
        The session whose training is shown.
    """

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        # a message naming a layer and what to do runs past a narrow dock's width
        self.status_label = StatusLabel(
            "No model yet: paint background and foreground.", self, lines=2
        )
        self.device_label = StatusLabel("", self)
        self.device_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loss_plot = LossPlot(self, redraw_ms=0)
        # one class name and share per painted class: with three or more it needs a second line
        self.recall_label = StatusLabel("", self, lines=2)
        self.recall_label.setToolTip(
            "Share of each class's painted pixels that the network predicts as that class"
        )
        # "Adjusted at step 30: edge-aware term switched off (only 41% of the painted
        # foreground pixels reproduced)" takes three lines of a narrow dock
        self.notes_label = StatusLabel("", self, lines=3)
        self.notes_label.setVisible(False)
        for w in (
            self.progress,
            self.status_label,
            self.device_label,
            self.loss_plot,
            self.recall_label,
            self.notes_label,
        ):
            layout.addWidget(w)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._show_status)
        session.started.connect(self._on_started)
        session.reported.connect(self._on_report)
        session.finished.connect(self._on_finished)
        session.modelReplaced.connect(self._on_model_replaced)
        session.changed.connect(self._on_changed)

    def show_device(self, device: str, num_threads: int | None = None) -> None:
        """Show ``"Device: CPU, 1 thread"`` for a setting (``"auto"``, ``"cpu"``, ``"cuda"``)
        and the CPU threads a training will use (default: torch's current number)."""
        try:
            from napari_seglab.core.device import describe_device, resolve_device

            text = describe_device(resolve_device(device), num_threads)
        except (ValueError, RuntimeError):  # not available here: the setting as it is
            text = device
        self.device_label.setText(f"Device: {text}")

    def follow_theme(self, theme_name: str) -> None:
        """Colour the loss plot like napari's theme ``theme_name`` (unknown names: ignored)."""
        from napari.utils.theme import get_theme

        try:
            theme = get_theme(theme_name)
        except (KeyError, ValueError):
            return
        self.loss_plot.set_colors(
            theme.background.as_hex(), theme.foreground.as_hex(), theme.text.as_hex()
        )

    def stop(self) -> None:
        """Stop the timers (safe after Qt deleted them)."""
        for stop in (self._timer.stop, self.loss_plot.stop):
            with contextlib.suppress(RuntimeError):  # C++ object already deleted
                stop()

    def _on_started(self, continued: bool) -> None:
        pending = self.session.pending_before  # what Undo training goes back to
        if pending is not None:
            pending.shown = self.loss_plot.history()
        if continued:
            self.loss_plot.mark_restart()
        else:
            self.loss_plot.clear()
        self._show_readout(None)
        self._set_progress(0)

    def _set_progress(self, value: int) -> None:
        """QProgressBar.setValue repaints the window synchronously (the viewer's canvas too:
        200 ms on a large stack with software OpenGL); with updates off the bar joins the next
        ordinary paint."""
        self.progress.setUpdatesEnabled(False)
        self.progress.setValue(value)
        self.progress.setUpdatesEnabled(True)

    def _on_report(self, report: TrainReport) -> None:
        if self.session.closed:
            return
        self.loss_plot.append(report.step, report.loss)
        self._show_notes()
        # labels, progress bar and plot twice a second (a GPU yields hundreds of reports)
        if not self._timer.isActive():
            self._timer.start()

    def _show_status(self) -> None:
        session = self.session
        report = session.trainer.last_report
        if session.closed or report is None or not session.running:
            return
        self._set_progress(int(1000 * session.progress()))
        if not session.stopping:
            overlay = " · forest overlay" if session.overlay_source == "forest" else ""
            self.status_label.setText(
                f"Training… step {report.step} · loss {report.loss:.4f} · "
                f"{report.elapsed:.1f} s{overlay}"
            )
        self.device_label.setText(f"Device: {report.device}")
        self._show_readout(report)
        self.loss_plot.redraw()

    def _show_readout(self, report: TrainReport | None) -> None:
        """How well the strokes are reproduced (None: nothing yet), and the run's notes."""
        recall = None if report is None else getattr(report, "stroke_recall", None)
        self.recall_label.setText(recall_text(recall, [c.name for c in self.session.classes]))
        self._show_notes()

    def _show_notes(self) -> None:
        """The latest thing the trainer changed on its own; all of them in the tooltip."""
        notes = self.session.notes
        self.notes_label.setText(note_line(notes[-1]) if notes else "")
        self.notes_label.setToolTip("\n".join(notes))
        self.notes_label.setVisible(bool(notes))

    def _on_changed(self) -> None:
        """No scribbles layer any more (removed, or none chosen): no strokes to speak of."""
        session = self.session
        if not session.closed and session.scribbles is None and not session.running:
            self.recall_label.setText("")

    def _on_finished(self, report: TrainReport | None) -> None:
        self._timer.stop()
        self.loss_plot.redraw()
        if report is None:
            return
        self.device_label.setText(f"Device: {report.device}")
        self._show_readout(report)
        if report.done and not report.stopped:
            self._set_progress(1000)
        if self.session.trainer.error is None:
            self.status_label.setToolTip(
                "Train again to continue from this model with all current scribbles"
            )

    def _on_model_replaced(self, how: str, shown: object) -> None:
        """The curve of the model that is back after Undo (``shown``), else an empty plot
        that says why."""
        if how == "undo" and shown is not None:
            self.loss_plot.restore(shown)
        elif how == "load":
            self.loss_plot.clear("loss: not kept in a model file")
        else:
            self.loss_plot.clear()
        self._set_progress(0)
        self._show_readout(None)
