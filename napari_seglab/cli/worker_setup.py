"""Run in each worker process that ``seglab predict --workers`` starts (Dask's ``preload``).

The workers share the terminal's process group, so Ctrl-C reaches them too; they ignore it
and leave the interruption to ``seglab``, which cancels the blocks and stops the cluster
(instead of every worker printing its own traceback).
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: ignore SIGINT in this worker process."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
