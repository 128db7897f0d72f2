"""Background training and prediction: the core's generators in napari thread workers.

The widget hands the layers' arrays to ``Trainer.start`` and stroke edits or whole arrays to
``Trainer.send``; nothing proportional to the image runs on the main thread: the worker copies
the arrays (and loads lazy ones), checks and counts them, then trains on its copies. Edits set
pixels to values, so a copy taken while the user paints is brought up to date by the edits that
follow it. ``TrainReport`` objects come back through Qt signals on the main thread, where the
widget updates the layers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from qtpy.QtCore import QObject, Signal

from napari_seglab._qt.internals import worker_generator
from napari_seglab.core.preview import Previewer

if TYPE_CHECKING:
    from napari.layers import Image, Labels

    from napari_seglab._qt.scribble_sync import ScribbleSync
    from napari_seglab.core.inference import Prediction
    from napari_seglab.core.model import SegModel
    from napari_seglab.core.training import TrainConfig, TrainReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """What the training worker yields: the core's report and, now and then, a preview.

    Attributes
    ----------
    report : TrainReport or None
        None for the quick forest's overlay, which comes before the network's first step.
    prediction : Prediction or None
        The prediction of ``region`` (or of the whole image when ``region`` is None).
    region : tuple of slice or None
        Where ``prediction`` belongs (one slice per spatial axis).
    source : str
        ``"cnn"`` (the network) or ``"forest"`` (:meth:`Previewer.quick_forest`).
    """

    report: TrainReport | None
    prediction: Prediction | None = None
    region: tuple[slice, ...] | None = None
    source: str = "cnn"


_warm_up_lock = threading.Lock()
_warmed_up = False


def warm_up() -> threading.Thread | None:
    """Import in a background thread what torch imports lazily on the first training step.

    ``torch.optim`` imports ``torch._dynamo`` (seconds of pure-Python module code) the first
    time an optimizer is made; done in the training worker, that import holds the GIL and the
    import lock and freezes the viewer. The widget calls this when it opens, while the user is
    still painting. The quick forest's libraries (scikit-learn's forest, scikit-image's
    features: about a second of imports) are imported there too. Returns the started thread
    (None when already done in this process).
    """
    global _warmed_up
    with _warm_up_lock:
        if _warmed_up:
            return None
        _warmed_up = True

    def _import() -> None:
        import torch

        torch.optim.Adam([torch.zeros(1, requires_grad=True)])
        import skimage.feature
        import skimage.future  # noqa: F401
        import sklearn.ensemble  # noqa: F401

    thread = threading.Thread(target=_import, name="seglab-warm-up", daemon=True)
    thread.start()
    return thread


class Inbox:
    """What the main thread sends to a running training, waiting for the worker's next step.

    Edits accumulate in order (none may be lost, unlike a worker's single ``send`` slot); a
    whole array makes everything sent before it moot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []

    def put(self, item: Any) -> None:
        """Queue a ``ScribbleEdit``, a list of them, or a whole scribbles array."""
        from napari_seglab.core.edits import ScribbleEdit

        with self._lock:
            if isinstance(item, ScribbleEdit):
                self._items.append(item)
            elif isinstance(item, (list, tuple)):
                self._items.extend(item)
            else:
                self._items = [item]

    def take(self) -> list[Any] | None:
        """Everything queued (whole arrays copied here, on the worker), or None."""
        from napari_seglab.core.edits import ScribbleEdit

        with self._lock:
            items, self._items = self._items, []
        if not items:
            return None
        return [x if isinstance(x, ScribbleEdit) else np.array(x, copy=True) for x in items]


def _drive(
    start: Callable[[], tuple[Generator, Callable[[], Any] | None]],
    inbox: Inbox,
) -> Generator:
    """Create the core's training generator (copies and checks run here, on the worker), show
    the quick forest's overlay first when asked, then run it; passes on what was sent through
    ``inbox``, and the return. A ``RuntimeError`` leaves as :class:`WorkerError`."""
    try:
        return (yield from _run_training(start, inbox))
    except RuntimeError as exc:
        raise WorkerError(f"{type(exc).__name__}: {exc}") from exc


def _run_training(
    start: Callable[[], tuple[Generator, Callable[[], Any] | None]], inbox: Inbox
) -> Generator:
    gen, forest = start()
    try:
        if forest is not None:
            got = forest()
            if got is not None:
                yield Update(None, got[0], got[1], source="forest")
        try:
            report = next(gen)
        except StopIteration as stop:
            return stop.value
        while True:
            yield Update(report, report.prediction, report.region)
            try:
                report = gen.send(inbox.take())
            except StopIteration as stop:
                return stop.value
    finally:
        gen.close()  # on this thread: the core's clean-up (device memory, threads)


@dataclass
class Run:
    """The running training.

    Attributes
    ----------
    image, scribbles : napari.layers.Image, napari.layers.Labels
        The layers trained on (stopping when they are removed or renamed).
    sync : ScribbleSync
        Sends the strokes painted into ``scribbles`` to the training.
    num_classes : int
        Classes of the model being trained.
    seconds, steps : float or None, int or None
        The budget.
    device : str
        The device setting (also used for the prediction after a Stop).
    others : int
        Other images trained on with the image (their model is applied to the image after).
    made : list of napari.layers.Layer
        The overlay layers this run added when it started (empty until its first preview):
        removed again when it fails before showing one.
    inputs : tuple of napari.layers.Image
        The other layers it trains on: extra channel layers and other images (watched, as the
        image is, for their data replaced, a new name or their removal).
    """

    image: Image
    scribbles: Labels
    sync: ScribbleSync
    num_classes: int
    seconds: float | None
    steps: int | None
    device: str
    others: int = 0
    made: list = field(default_factory=list)
    inputs: tuple = ()


class WorkerError(Exception):
    """An exception raised in a worker, carried as a type that napari's workers report.

    superqt reads a ``RuntimeError`` raised in a worker (torch's out-of-memory error is one) as
    "the worker was deleted" and emits neither ``errored`` nor ``finished``: the widget would
    wait for ever. The worker raises this instead, with the same message.
    """


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
                worker_generator(self).close()
            except Exception:
                # the run ends either way; what went wrong is kept for whoever looks
                logger.exception("closing the training generator failed")
            self.done.set()


class Trainer(QObject):
    """Owns the current ``SegModel`` and at most one running training worker.

    Signals
    -------
    reported(Update)
        Every report of the running training (with a preview now and then), on the main
        thread.
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
        self._previewer: Previewer | None = None
        self._inbox = Inbox()
        self._stop_requested = False

    @property
    def running(self) -> bool:
        """Whether a training worker is alive."""
        return self._worker is not None

    @property
    def worker(self) -> _TrainWorker | None:
        """The running worker (tests wait on its signals)."""
        return self._worker

    def start(
        self,
        image: np.ndarray,
        scribbles: np.ndarray,
        config: TrainConfig,
        region: tuple[slice, ...] | None = None,
        quick_forest: bool | None = None,
        others: Sequence[tuple[Any, Any]] = (),
        names: Sequence[str] | None = None,
    ) -> _TrainWorker:
        """Start training on copies of ``image`` and ``scribbles``, made by the worker.

        ``image`` and ``scribbles`` may be any array the layers hold (numpy, dask, zarr): the
        worker copies (loads) them, and the core checks and counts its copies, so that Train
        costs the main thread nothing proportional to the image. A problem with the inputs
        ends the run through :attr:`failed`.

        Continues from :attr:`model` when there is one (it is trained in place). Previews come
        every ``config.preview_every`` seconds, of ``region`` (see :meth:`set_region`), with
        the averaged weights (:class:`~napari_seglab.core.preview.Previewer`). With
        ``quick_forest`` (default: when a new model starts and previews are on) the first
        overlay is the quick random forest's, shown before the network's first step and
        replaced once the network does better.

        With ``others``, ``(image, scribbles)`` arrays of more images, one model trains on all
        of them (:func:`~napari_seglab.core.multi.train_many`, ``names`` for its record): no
        previews, no quick forest and no final prediction; strokes sent are the first image's.
        """
        from napari_seglab.core.multi import train_many
        from napari_seglab.core.training import train

        if self._worker is not None:
            raise RuntimeError("training is already running")
        self.last_report = None
        self.error = None
        self._stop_requested = False
        self._inbox = Inbox()
        previewer = Previewer(tuple(np.shape(scribbles)), config.preview_every)
        previewer.region = region
        config = replace(config, final_prediction=True)
        model = self.model
        if quick_forest is None:
            quick_forest = model is None and config.preview_every > 0 and not others

        def start() -> tuple[Generator, Callable[[], Any] | None]:  # on the worker thread
            # the scribbles first: edits sent from now on bring this copy up to date
            labels = np.array(scribbles, copy=True)
            data = np.array(image, copy=True)
            if others:
                images = [data, *(np.array(i, copy=True) for i, _ in others)]
                strokes = [labels, *(np.array(s, copy=True) for _, s in others)]
                return train_many(images, strokes, config, model=model, names=names), None
            gen = train(data, labels, config, model=model, previewer=previewer)
            if not quick_forest:
                return gen, None
            return gen, lambda: previewer.quick_forest(
                data, labels, config.channel_axis, channels=config.model.channels
            )

        self._previewer = previewer
        worker = create_worker(
            _drive,
            start,
            self._inbox,
            _worker_class=_TrainWorker,
            _start_thread=False,
            _ignore_errors=True,
        )
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()
        return worker

    def set_region(self, region: tuple[slice, ...] | None) -> None:
        """Preview only ``region`` of the image from now on (None: all of it)."""
        if self._previewer is not None:
            self._previewer.region = region

    def send(self, scribbles: Any) -> None:
        """Hand new scribbles to the running training, at its next step.

        ``scribbles`` is a :class:`~napari_seglab.core.edits.ScribbleEdit` or a list of them
        (what strokes changed: cheap), or the whole array (after an undo or a replaced layer
        array; the worker copies it). Nothing sent is lost, whenever it is sent.
        """
        if self._worker is None or self._stop_requested:
            return
        self._inbox.put(scribbles)

    def stop(self) -> None:
        """Ask the running training to end at its next step (returns at once).

        The core then keeps the averaged weights and predicts the region in view band by
        band for its last report (:attr:`~napari_seglab.core.preview.Previewer.finish`), so the
        overlay shows the model kept (before the first step: after that step, so that the
        overlay is never the quick forest's while the model is the network's). Asked a second
        time, the run is abandoned at once instead (:meth:`abort`).
        """
        if self._worker is None:
            return
        if self._stop_requested or self._previewer is None:
            self.abort()
            return
        self._stop_requested = True
        self._previewer.finish.set()

    def abort(self) -> None:
        """End the running training at its next step or band, without a final prediction."""
        if self._worker is not None:
            self._stop_requested = True
            if self._previewer is not None:
                self._previewer.finish.set()
                self._previewer.stopped.set()
            self._worker.quit()

    def stop_and_wait(self, timeout: float = 10.0) -> bool:
        """Abort and block until the worker thread has finished; True if it did in time."""
        worker = self._worker
        if worker is None:
            return True
        self.abort()
        return worker.done.wait(timeout)

    def reset(self) -> None:
        """Forget the model: the next training starts from scratch."""
        if self._worker is not None:
            raise RuntimeError("cannot reset the model while training")
        self.model = None
        self.last_report = None

    # -- worker signals (main thread) ------------------------------------------------------
    def _on_yielded(self, update: Update) -> None:
        if update.report is not None:
            self.last_report = update.report
            self.model = update.report.model
        self.reported.emit(update)

    def _on_returned(self, model: SegModel | None) -> None:
        if model is not None:
            self.model = model

    def _on_errored(self, exc: BaseException) -> None:
        # the core's ValueErrors say what is wrong with the input: their message is enough
        plain = isinstance(exc, (WorkerError, ValueError))
        self.error = str(exc) if plain else f"{type(exc).__name__}: {exc}"
        self.failed.emit(self.error)

    def _on_finished(self) -> None:
        self._worker = None
        self._previewer = None
        self.finished.emit(self.model)


def predict_worker(model: SegModel, image: Any, **kwargs: Any) -> FunctionWorker:
    """Return an unstarted worker running ``predict(model, image, **kwargs)`` -> Prediction.

    A lazy image (Dask, Zarr: :func:`napari_seglab._qt.layers.is_lazy`) is predicted block by
    block (:func:`napari_seglab.core.blockwise.predict_dask` on Dask's threads) into the labels
    alone, so it is never read whole; the prediction then has no probabilities.
    ``worker.done`` (a ``threading.Event``) is set when the prediction has ended.
    """
    from napari_seglab._qt.layers import is_lazy
    from napari_seglab.core.inference import predict

    done = threading.Event()

    def _predict() -> Prediction:
        try:
            if is_lazy(image):
                return _predict_lazy(model, image, kwargs.get("device"))
            return predict(model, image, **kwargs)
        finally:
            done.set()

    worker = create_worker(_predict, _start_thread=False, _ignore_errors=True)
    worker.done = done
    return worker


def _predict_lazy(model: SegModel, image: Any, device: str | None) -> Prediction:
    """The labels of a lazy image, computed block by block into one uint8 array."""
    import dask.array as da

    from napari_seglab.core.blockwise import predict_dask
    from napari_seglab.core.inference import Prediction, evaluating

    with evaluating(model, device):
        lazy = predict_dask(model, image).labels
        labels = np.empty(lazy.shape, np.uint8)
        da.store(lazy, labels, lock=False, scheduler="threads")
    return Prediction(labels=labels, probabilities=None)
