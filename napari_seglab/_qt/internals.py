"""Every place the widget and the app reach into a library's private parts, in one module.

Each function says what it relies on and why nothing public does the job, so that an upgrade of
napari or superqt that moves these is found here, and only here.
"""

from __future__ import annotations

from typing import Any


def real_viewer(viewer: Any) -> Any:
    """The viewer behind napari's ``PublicOnlyProxy``.

    napari hands plugin widgets a proxy whose attributes are fresh proxies on every access; the
    widget compares layers by identity (``layer is self.image``), so it keeps the real viewer.
    Relies on: the proxy's ``__wrapped__`` (wrapt's convention). Without a proxy: the viewer.
    """
    return getattr(viewer, "__wrapped__", viewer)


def worker_generator(worker: Any) -> Any:
    """The generator a superqt ``GeneratorWorker`` runs.

    superqt leaves an aborted generator suspended; the training worker closes it on its own
    thread so that the core's ``finally`` block (which frees GPU memory) runs where the device
    was used. Relies on: ``GeneratorWorker._gen``; superqt has no public accessor.
    """
    return worker._gen


def close_notification_popups() -> None:
    """Close napari's notification pop-ups (such as its notice about the Qt binding), for a
    clean screenshot of the window.

    Relies on: the pop-up's class name ``NapariQtNotification`` (not exported by napari).
    """
    from qtpy.QtWidgets import QApplication

    for widget in QApplication.allWidgets():
        if type(widget).__name__ == "NapariQtNotification":
            widget.close()
