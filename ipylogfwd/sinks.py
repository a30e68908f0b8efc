"""Sinks: where a cell's proc output is shown.

A sink belongs to one cell. The dispatcher writes each proc's text into it in per-proc,
per-stream order and then publishes it: all the text gathered since the last publish goes
out as one message per stream, which keeps the message rate low however fast procs print.

The text sinks prefix each line with the proc's rank. A partial line (released at a barrier
or when its stream went quiet) is shown as it is; if the same rank continues it, the rest
follows on the same line, and if another rank writes first, the partial line is ended so
that ranks never share a line.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol, TextIO

from .queues import STDERR, STDOUT, STREAM_NAMES


class Sink(Protocol):
    """What the dispatcher needs of a cell's output (text or widgets)."""

    def accepts(self, rank: int) -> bool:
        """Whether this sink shows ``rank`` (a widget sink shows only its cell's targets)."""
        ...

    def write(self, rank: int, stream: int, text: str) -> None: ...

    def publish(self) -> None:
        """Send what was written since the last publish (or as much as the budget allows)."""
        ...

    def has_deferred(self) -> bool:
        """True if written text is held back: the dispatcher publishes again soon."""
        ...

    def barrier(self, rank: int, version: int) -> None:
        """Everything of ``rank`` written so far precedes barrier ``version`` (sent after publish)."""
        ...

    def sync(self, timeout: float) -> bool:
        """Wait until what was published has left this process."""
        ...

    def render_wait(self, rank: int, version: int, timeout: float) -> tuple[str, float | None]:
        """("rendered", when its ack arrived on ``time.monotonic()``) once the view shows
        everything before barrier ``version``, else (why not, None)."""
        ...

    @property
    def pending(self) -> int: ...


NO_WIDGET_FRONTEND = "text output, no widget frontend (terminal, nbconvert/nbval, or no ipylogfwd extension)"


class TextSink:
    """Rank-prefixed text per stream; subclasses say where published text goes."""

    def __init__(self) -> None:
        self._parts: dict[int, list[str]] = {STDOUT: [], STDERR: []}
        self._open: dict[int, int | None] = {STDOUT: None, STDERR: None}
        self._pending = 0

    @property
    def pending(self) -> int:
        """Characters written but not yet published."""
        return self._pending

    def accepts(self, rank: int) -> bool:
        return True

    def has_deferred(self) -> bool:
        return False

    def barrier(self, rank: int, version: int) -> None:
        pass  # text has no view to acknowledge it: published is as far as it goes

    def render_wait(self, rank: int, version: int, timeout: float) -> tuple[str, float | None]:
        return NO_WIDGET_FRONTEND, None

    def write(self, rank: int, stream: int, text: str) -> None:
        parts = self._parts[stream]
        prefix = f"[{rank}] "
        open_rank = self._open[stream]
        if open_rank is not None and open_rank != rank:
            parts.append("\n")
        if text.endswith("\n"):
            body, tail, self._open[stream] = text[:-1], "\n", None
        else:
            body, tail, self._open[stream] = text, "", rank
        out = body.replace("\n", "\n" + prefix)
        if open_rank != rank:
            out = prefix + out
        parts.append(out + tail)
        self._pending += len(out) + 1

    def publish(self) -> None:
        for stream, parts in self._parts.items():
            if parts:
                text = "".join(parts)
                parts.clear()
                self._emit(STREAM_NAMES[stream], text)
        self._pending = 0

    def sync(self, timeout: float) -> bool:
        """Wait until published text has left this process; False if not within ``timeout``."""
        return True

    def _emit(self, name: str, text: str) -> None:
        raise NotImplementedError


class StdioTextSink(TextSink):
    """Publishes to this process's stdout/stderr (plain Python, terminal IPython)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        super().__init__()
        self._streams = {"stdout": out or sys.stdout, "stderr": err or sys.stderr}

    def _emit(self, name: str, text: str) -> None:
        stream = self._streams[name]
        stream.write(text)
        stream.flush()


class IOPubTextSink(TextSink):
    """Publishes ``stream`` messages on the kernel's IOPub channel, as output of one cell."""

    def __init__(self, kernel: Any, parent: dict[str, Any]) -> None:
        super().__init__()
        self._session = kernel.session
        self._socket = kernel.iopub_socket
        self.parent = parent

    def _emit(self, name: str, text: str) -> None:
        self._session.send(
            self._socket,
            "stream",
            {"name": name, "text": text},
            parent=self.parent,
            ident=b"stream." + name.encode(),
        )

    def sync(self, timeout: float) -> bool:
        return iopub_sync(self._socket, timeout)


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


def text_sink() -> TextSink:
    """A text sink for the cell now executing, or for this process's stdio outside a kernel."""
    kernel = current_kernel()
    if kernel is not None:
        return IOPubTextSink(kernel, kernel.get_parent())
    return StdioTextSink()


def default_sink(ranks: list[int], pids: dict[int, int | None], log_paths: dict[int, list[str]]) -> Sink:
    """The cell's proc widgets where a widget frontend has answered, else text."""
    kernel = current_kernel()
    if kernel is not None:
        from .acks import hub_for

        hub = hub_for(kernel)
        if hub.frontend_seen:
            from .widget_sink import WidgetSink

            return WidgetSink(ranks, hub, pids=pids, log_paths=log_paths)
    return text_sink()
