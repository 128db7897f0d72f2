"""A small live loss curve (matplotlib in Qt)."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy, QWidget


class LossPlot(FigureCanvasQTAgg):
    """Loss against step, redrawn at most every ``redraw_ms`` so that it never slows the GUI.

    Runs appended after a :meth:`mark_restart` (a retraining) continue on the same step axis,
    with a vertical dotted line where each run starts.
    """

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 250) -> None:
        fig = Figure(figsize=(3.2, 1.6), dpi=90, layout="constrained")
        super().__init__(fig)
        self.setParent(parent)
        self.setMinimumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(150)
        self.ax = fig.add_subplot(1, 1, 1)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._offset = 0
        self._restarts: list[int] = []
        (self._line,) = self.ax.plot([], [], color="#e69f00", lw=1.2)
        self._style()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self.redraw)

    def _style(self) -> None:
        ax = self.ax
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("loss", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)

    def set_colors(self, background: str, foreground: str, text: str) -> None:
        """Match the viewer's theme: figure ``background``, axes ``foreground``, ``text``."""
        self.figure.set_facecolor(background)
        ax = self.ax
        ax.set_facecolor(foreground)
        for spine in ax.spines.values():
            spine.set_color(text)
        ax.tick_params(colors=text)
        ax.xaxis.label.set_color(text)
        ax.yaxis.label.set_color(text)
        self.draw_idle()

    def clear(self) -> None:
        """Forget every point."""
        self.steps.clear()
        self.losses.clear()
        self._offset = 0
        self._restarts.clear()
        for line in self.ax.lines[1:]:
            line.remove()
        self.redraw()

    def mark_restart(self) -> None:
        """A new run starts: its step 0 is drawn after the last point."""
        self._offset = self.steps[-1] if self.steps else 0
        if self.steps:
            self._restarts.append(self._offset)
            self.ax.axvline(self._offset, color="0.5", lw=0.8, ls=":")

    def append(self, step: int, loss: float) -> None:
        """Add a point (the step of the current run) and schedule a redraw."""
        self.steps.append(self._offset + int(step))
        self.losses.append(float(loss))
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Redraw now."""
        self._line.set_data(self.steps, self.losses)
        self.ax.relim()
        self.ax.autoscale_view()
        self.draw_idle()

    def stop(self) -> None:
        """Stop the redraw timer."""
        self._timer.stop()
