"""The proc's Python-level stdout and stderr, and how each buffers.

* stdout is block-buffered: a ``print`` costs no system call, and the control thread pushes
  the buffer into the pipe every flush interval, at every barrier and at every cell end.
* stderr is line-buffered while the proc writes it at a rate a person can read, as Python
  does, so a line written just before a crash (a segfault, ``os._exit``) is in the pipe. A
  proc that floods stderr (``FLOOD_WRITES`` lines or more within one flush interval) pays a
  system call and a wake-up of the kernel's reader per line: then stderr is block-buffered
  like stdout until an interval in which less than ``CALM_BYTES`` reached it, and back to
  line-buffered after that. A crash in the middle of a flood can lose at most one interval of
  stderr; nothing else changes (order per stream is kept in both modes).
* A buffer that fills, or is flushed, in the middle of a line writes it cut: the kernel's
  reader holds a cut line until its rest comes (``pipeline.reader``). stdout's raw file is
  Python's own ``FileIO``: a buffer over any other class looks up ``closed`` on every write
  (13% more CPU per ``print``); stderr's counts what reaches it, for the flood rule.

The control thread flushes both streams (and switches stderr's mode) while the main thread
writes to them. That keeps program order: a flush detaches the text layer's pending text
before it enters the ``BufferedWriter``, whose lock orders it before anything the main thread
writes after; both steps run under the GIL. (Passing every write straight through to the
``BufferedWriter`` instead costs the proc a third more CPU per ``print``.)
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

BUFFER_SIZE = 1 << 16
FLOOD_WRITES = 64
"""stderr writes within one flush interval from which stderr is block-buffered (at the
default 50 ms interval: 1,280 lines a second)."""
CALM_BYTES = 2048
"""stderr bytes within one flush interval below which a flooded stderr is line-buffered
again."""


class _CountingFile(io.FileIO):
    """The raw file under stderr's buffer: counts the writes and bytes that reach the fd."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "w", closefd=False)
        # Read by the control thread once an interval; a count off by one is of no concern.
        self.writes = 0
        self.written = 0

    def write(self, b: Any, /) -> int:
        n = super().write(b)
        self.writes += 1
        self.written += n
        return n


class StdStreams:
    """Sets up ``sys.stdout`` and ``sys.stderr`` on fds 1 and 2; ``tick`` keeps them live."""

    def __init__(self) -> None:
        # stdout's raw file is Python's own: a BufferedWriter over any other class checks
        # whether it is closed with an attribute lookup per write (13% more CPU per print).
        self._err_raw = _CountingFile(2)
        self.stdout = io.TextIOWrapper(
            io.BufferedWriter(io.FileIO(1, "w", closefd=False), buffer_size=BUFFER_SIZE),
            encoding="utf-8",
            errors="backslashreplace",
        )
        self.stderr = io.TextIOWrapper(
            io.BufferedWriter(self._err_raw, buffer_size=BUFFER_SIZE),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        self.flooded = False
        self._seen = (0, 0)  # stderr's (writes, bytes) at the last tick

    def install(self) -> None:
        """Make these the process's ``sys.stdout`` and ``sys.stderr`` (and their originals)."""
        sys.stdout, sys.stderr = self.stdout, self.stderr
        # The originals point at the same fds but were set up before them; one writer per fd.
        sys.__stdout__, sys.__stderr__ = self.stdout, self.stderr  # type: ignore[misc]

    def flush(self) -> None:
        """Everything written so far to ``sys.stdout`` and ``sys.stderr`` (these, or streams a
        cell put in their place) has left Python's buffers when this returns."""
        self._flush_replaced(sys.stdout, sys.stderr)
        self._push()

    def tick(self) -> None:
        """Once a flush interval, from the control thread: push buffered output into the
        pipes, and choose stderr's buffering from how much reached it since the last tick."""
        self._flush_replaced(sys.stdout)
        self._push()
        writes, written = self._err_raw.writes, self._err_raw.written
        with contextlib.suppress(ValueError, OSError):  # a closed stderr keeps its mode
            self._pace_stderr(writes - self._seen[0], written - self._seen[1])
        self._seen = (writes, written)

    def _push(self) -> None:
        """Our two streams' buffered output into their pipes."""
        for stream in (self.stdout, self.stderr):
            with contextlib.suppress(ValueError, OSError):  # closed or broken: nothing to push
                stream.flush()

    def _flush_replaced(self, *streams: Any) -> None:
        for stream in streams:
            if stream is not None and stream is not self.stdout and stream is not self.stderr:
                # A stream a cell put in place, whatever it raises, must not stop a barrier.
                with contextlib.suppress(Exception):
                    stream.flush()

    def _pace_stderr(self, writes: int, written: int) -> None:
        if not self.flooded and writes >= FLOOD_WRITES:
            self.flooded = True
            self.stderr.reconfigure(line_buffering=False)
        elif self.flooded and written < CALM_BYTES:
            self.flooded = False
            self.stderr.reconfigure(line_buffering=True)
