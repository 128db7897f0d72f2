"""A small live loss curve, drawn with QPainter.

A matplotlib canvas of this size costs about 100 ms per redraw on a busy 2-core machine, which
freezes the viewer once a second during training; drawing a polyline with QPainter costs about
a millisecond.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: At most this many points are drawn (the curve is decimated beyond).
MAX_POINTS = 2000


def _nice(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.3g}"


class LossPlot(QWidget):
    """Loss against step, repainted at most every ``redraw_ms`` (0: only on :meth:`redraw`).

    Runs appended after :meth:`mark_restart` (a retraining) continue on the same step axis, with
    a dotted vertical line where each run starts.

    Attributes
    ----------
    steps : list of int
        Step of every point (continuing across runs).
    losses : list of float
        Loss of every point.
    """

    def __init__(self, parent: QWidget | None = None, redraw_ms: int = 250) -> None:
        super().__init__(parent)
        self.setMinimumHeight(110)
        self.setFixedHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._offset = 0
        self._restarts: list[int] = []
        #: Shown while there is no point.
        self.placeholder = "loss"
        self._background = QColor("#262930")
        self._foreground = QColor("#414851")
        self._text = QColor("#f0f1f2")
        self._line = QColor("#e69f00")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self.redraw)

    def set_colors(self, background: str, foreground: str, text: str) -> None:
        """Match the viewer's theme."""
        self._background = QColor(background)
        self._foreground = QColor(foreground)
        self._text = QColor(text)
        self.update()

    def clear(self, placeholder: str = "loss") -> None:
        """Forget every point; ``placeholder`` is shown until the next one."""
        self.steps.clear()
        self.losses.clear()
        self._offset = 0
        self._restarts.clear()
        self.placeholder = placeholder
        self.redraw()

    def history(self) -> tuple[list[int], list[float], list[int], str]:
        """A copy of the curve: steps, losses, where each later run starts, and the text
        shown without points."""
        return list(self.steps), list(self.losses), list(self._restarts), self.placeholder

    def restore(self, history: tuple[list[int], list[float], list[int], str]) -> None:
        """Show a curve :meth:`history` returned, instead of the current one."""
        steps, losses, restarts, placeholder = history
        self.clear(placeholder)
        self.steps.extend(steps)
        self.losses.extend(losses)
        self._restarts.extend(restarts)
        self._offset = restarts[-1] if restarts else 0
        self.redraw()

    def mark_restart(self) -> None:
        """A new run starts: its steps continue after the last point."""
        self._offset = self.steps[-1] if self.steps else 0
        if self.steps:
            self._restarts.append(self._offset)

    def append(self, step: int, loss: float) -> None:
        """Add a point (the step of the current run) and schedule a repaint."""
        self.steps.append(self._offset + int(step))
        self.losses.append(float(loss))
        if self._timer.interval() > 0 and not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Repaint now (on the next paint event)."""
        self.update()

    def stop(self) -> None:
        """Stop the repaint timer."""
        self._timer.stop()

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), self._background)
        font = QFont(self.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        p.setFont(font)
        fm = p.fontMetrics()
        left = fm.horizontalAdvance("0.000e+00") + 6
        bottom = fm.height() + 4
        plot = QRectF(left, 6, self.width() - left - 8, self.height() - bottom - 10)
        p.fillRect(plot, self._foreground)
        p.setPen(QPen(self._text, 1))
        p.drawRect(plot)

        pts = [(s, v) for s, v in zip(self.steps, self.losses, strict=True) if math.isfinite(v)]
        if not pts:
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, self.placeholder)
            return
        if len(pts) > MAX_POINTS:
            stride = math.ceil(len(pts) / MAX_POINTS)
            pts = [*pts[::stride], pts[-1]]
        x0, x1 = pts[0][0], max(pts[-1][0], pts[0][0] + 1)
        y0 = min(v for _, v in pts)
        y1 = max(v for _, v in pts)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = 0.05 * (y1 - y0)
        y0, y1 = (y0 - pad if y0 - pad >= 0 or y0 < 0 else 0.0), y1 + pad

        def to_px(s: float, v: float) -> QPointF:
            return QPointF(
                plot.left() + (s - x0) / (x1 - x0) * plot.width(),
                plot.bottom() - (v - y0) / (y1 - y0) * plot.height(),
            )

        # axis labels: loss range on the left, step range below
        p.drawText(
            QRectF(0, plot.top() - 2, left - 4, fm.height()),
            Qt.AlignmentFlag.AlignRight,
            _nice(y1),
        )
        p.drawText(
            QRectF(0, plot.bottom() - fm.height() + 2, left - 4, fm.height()),
            Qt.AlignmentFlag.AlignRight,
            _nice(y0),
        )
        below = QRectF(plot.left(), plot.bottom() + 2, plot.width(), fm.height())
        p.drawText(below, Qt.AlignmentFlag.AlignLeft, f"step {x0}")
        p.drawText(below, Qt.AlignmentFlag.AlignHCenter, "loss")
        p.drawText(below, Qt.AlignmentFlag.AlignRight, f"{pts[-1][0]}")

        # where each retraining started
        p.setPen(QPen(self._text, 1, Qt.PenStyle.DotLine))
        for r in self._restarts:
            if x0 <= r <= x1:
                top, bot = to_px(r, y1), to_px(r, y0)
                p.drawLine(top, bot)

        # raw losses faint, their exponential moving average on top
        faint = QColor(self._line)
        faint.setAlphaF(0.35)
        path = QPainterPath(to_px(*pts[0]))
        for s, v in pts[1:]:
            path.lineTo(to_px(s, v))
        p.setPen(QPen(faint, 1.0))
        p.drawPath(path)
        alpha = 2.0 / (1.0 + min(50.0, max(2.0, len(pts) / 10)))
        ema = pts[0][1]
        smooth = QPainterPath(to_px(pts[0][0], ema))
        for s, v in pts[1:]:
            ema += alpha * (v - ema)
            smooth.lineTo(to_px(s, ema))
        p.setPen(QPen(self._line, 1.8))
        p.drawPath(smooth)
