"""What the training report says in words: how well the strokes are reproduced, what changed.

The core's ``TrainReport`` carries ``stroke_recall`` (the running share of each class's painted
pixels the network reproduces) and ``notes`` (what the trainer changed on its own, oldest
first, repeated in every later report of the run). This module turns them into short texts and
keeps track of the notes already shown, so that each is shown once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_seglab.core.train import TrainReport

#: Below this share of its painted pixels reproduced, a class is flagged in the readout.
LOW_RECALL = 0.6


def recall_text(recall: np.ndarray | None, names: Sequence[str]) -> str:
    """``"Painted pixels reproduced: background 99%, foreground 97%"``, or ``""``.

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
        parts.append(f"{name} {_percent(value)}{flag}")
    if not parts:
        return ""
    return "Painted pixels reproduced: " + ", ".join(parts)


def _percent(value: float) -> str:
    """``0.996 -> "99%"``: rounded down, so that 100% means every painted pixel."""
    return f"{math.floor(100 * min(1.0, max(0.0, value)))}%"


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
