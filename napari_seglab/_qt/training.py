"""Background training and prediction: the core's generators in napari thread workers.

Only numpy copies cross the thread boundary: the widget hands image and scribble arrays to
``Trainer.start``/``Trainer.send`` and receives ``TrainReport`` objects through Qt signals on the
main thread, where it updates the layers.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from qtpy.QtCore import QObject, Signal

if TYPE_CHECKING:
    from napari_seglab.core.model import Prediction, SegModel
    from napari_seglab.core.train import TrainConfig, TrainReport


def _drive(gen: Generator) -> Generator:
    """Generator function around an existing generator (forwards ``send`` and the return)."""
    return (yield from gen)


class _TrainWorker(GeneratorWorker):
    """A ``GeneratorWorker`` that closes its generator on its own thread when it ends.

    superqt's worker leaves an aborted generator suspended; closing it here runs the core's
    ``finally`` block (which frees GPU memory) on the thread that used the device, and ``done``
    lets the main thread wait for the end without an event loop (when closing).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done = threading.Event()

    def work(self):
        try:
            return super().work()
        finally:
            try:
                self._gen.close()
            except Exception:
                pass
            self.done.set()


class Trainer(QObject):
    """Owns the current ``SegModel`` and at most one running training worker.

    Signals
    -------
    reported(TrainReport)
        Every report of the running training, on the main thread.
    finished(object)
        Training ended (budget reached, stopped, or failed); the current model or None.
    failed(str)
        Training raised; a one-line message for the user.
    """

    reported = Signal(object)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model: SegModel | None = None
        self.last_report: TrainReport | None = None
        #: one-line message of the exception that ended the last run, or None
        self.error: str | None = None
        self._worker: _TrainWorker | None = None
        self._gen: Generator | None = None
        self._stop_requested = False

    @property
    def running(self) -> bool:
        """Whether a training worker is alive."""
        return self._worker is not None

    @property
    def worker(self) -> _TrainWorker | None:
        """The running worker (tests wait on its signals)."""
        return self._worker

    def start(self, image: np.ndarray, scribbles: np.ndarray, config: TrainConfig) -> _TrainWorker:
        """Start training on copies of ``image`` and ``scribbles``.

        Continues from :attr:`model` when there is one (it is trained in place).
        """
        from napari_seglab.core.train import train

        if self._worker is not None:
            raise RuntimeError("training is already running")
        self.last_report = None
        self.error = None
        self._stop_requested = False
        gen = train(
            np.array(image, copy=True), np.array(scribbles, copy=True), config, model=self.model
        )
        worker = create_worker(
            _drive,
            gen,
            _worker_class=_TrainWorker,
            _start_thread=False,
            _ignore_errors=True,
            _progress={"desc": "SegLab training"},
        )
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._gen = gen
        worker.start()
        return worker

    def send(self, scribbles: np.ndarray) -> None:
        """Hand a copy of the full scribbles array to the running training."""
        if self._worker is not None and not self._stop_requested:
            self._worker.send(np.array(scribbles, copy=True))

    def stop(self) -> None:
        """Ask the running training to stop at its next step (returns at once)."""
        if self._worker is not None:
            self._stop_requested = True
            self._worker.quit()

    def stop_and_wait(self, timeout: float = 10.0) -> bool:
        """Stop and block until the worker thread has finished; True if it did in time."""
        worker = self._worker
        if worker is None:
            return True
        self.stop()
        return worker.done.wait(timeout)

    def reset(self) -> None:
        """Forget the model: the next training starts from scratch."""
        if self._worker is not None:
            raise RuntimeError("cannot reset the model while training")
        self.model = None
        self.last_report = None

    # -- worker signals (main thread) ------------------------------------------------------
    def _on_yielded(self, report: TrainReport) -> None:
        self.last_report = report
        self.model = report.model
        self.reported.emit(report)

    def _on_returned(self, model: SegModel | None) -> None:
        if model is not None:
            self.model = model

    def _on_errored(self, exc: BaseException) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.failed.emit(self.error)

    def _on_finished(self) -> None:
        gen, self._gen = self._gen, None
        self._worker = None
        if gen is not None:
            try:
                gen.close()  # already closed by the worker; a no-op kept for safety
            except ValueError:  # still executing: the worker closes it
                pass
        self.finished.emit(self.model)


def predict_worker(model: SegModel, image: np.ndarray, **kwargs: Any) -> FunctionWorker:
    """Return an unstarted worker running ``model.predict(image, **kwargs)`` -> Prediction."""

    def _predict() -> Prediction:
        return model.predict(image, **kwargs)

    return create_worker(
        _predict, _start_thread=False, _ignore_errors=True, _progress={"desc": "SegLab predict"}
    )
