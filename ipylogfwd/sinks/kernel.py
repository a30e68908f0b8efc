"""The running kernel, as the sinks need it: whether there is one, and when what was sent on
its IOPub socket has left the process."""

from __future__ import annotations

import threading
from typing import Any


def iopub_sync(socket: Any, timeout: float) -> bool:
    """Wait until everything sent so far on the kernel's IOPub socket has left the process."""
    io_thread = getattr(socket, "io_thread", None)
    if io_thread is None:
        return True
    sent = threading.Event()
    # The IOPub thread runs scheduled work in order: when this runs, our sends have gone.
    io_thread.schedule(sent.set)
    return sent.wait(timeout)


def current_kernel() -> Any | None:
    """The running ipykernel kernel, if this code runs inside one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "session") or not hasattr(kernel, "iopub_socket"):
        return None
    return kernel
