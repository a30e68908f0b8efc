"""One proc's display pipe, read by the reader thread: frames in, bundles out by id.

The proc writes each bundle as one frame on its display pipe and then a ``D`` marker with the
frame's id on stdout (``wire.displays`` says why). The reader reads the display pipe whenever
it is readable, so a proc is never blocked on it for long, and keeps the bundles whose markers
it has not met yet; at a marker the stdout framer asks ``take(id)`` for the bundle and queues
it in the marker's place. The proc wrote the whole frame before the marker, so a frame not
read yet at its marker is already in the pipe, and ``take`` reads it there and then.

Memory is bounded twice: a frame that claims more than ``cap`` bytes is skipped without being
kept (a note takes its place), and the reader stops reading the pipe while more than
``ahead_budget`` bytes of bundles wait for their markers (``held_back``): the proc's next
frame then blocks on the pipe until the stdout stream catches up.
"""

from __future__ import annotations

import os
import select
import time

from ..wire import displays
from .items import Display, Item, Log

READ_SIZE = 1 << 18
AHEAD_BUDGET = 2 * displays.BUNDLE_CAP + displays.HEADER_LEN
MISSING_WAIT = 1.0  # seconds to wait at a marker for frame bytes that should already be there


class DisplayFrames:
    """The display pipe of one proc. Reader thread only."""

    def __init__(self, fd: int, *, cap: int = displays.BUNDLE_CAP, ahead_budget: int = AHEAD_BUDGET) -> None:
        self.fd = fd
        self.open = True  # the fd is open (the reader closes it once unregistered)
        self.eof = False  # the pipe's end was read: the proc is gone
        self._cap = cap
        self._ahead_budget = ahead_budget
        self._buf = bytearray()
        self._current: tuple[int, int] | None = None  # (id, length) of the frame being read
        self._skipping = 0  # bytes of an over-long frame still to skip
        self._ready: dict[int, Display | str] = {}  # id -> bundle, or a note to show instead
        self._ready_bytes = 0
        self.bad: str | None = None  # set when the pipe carried something that is not frames

    @property
    def ahead(self) -> int:
        """Bytes held for bundles whose markers have not been met."""
        return len(self._buf) + self._ready_bytes

    @property
    def held_back(self) -> bool:
        """Whether to stop reading the pipe until the stdout stream catches up."""
        return self.ahead > self._ahead_budget

    def read(self) -> None:
        """Read what the pipe has now (at its end, ``eof`` is set)."""
        if self.eof:
            return
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._feed(data)
        else:
            self.eof = True

    def take(self, display_id: int, stream: int) -> Item:
        """The bundle of marker ``display_id``, as a queue item of ``stream`` (a note if it
        cannot be had). Frames before it whose markers never came are dropped."""
        deadline = time.monotonic() + MISSING_WAIT
        while display_id not in self._ready and not self.eof and self.bad is None:
            if time.monotonic() > deadline:
                break
            # The frame is in the pipe already (the proc wrote it before the marker).
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                self.read()
        for old in [i for i in self._ready if i < display_id]:
            self._pop(old)
        got = self._pop(display_id)
        if isinstance(got, Display):
            got.stream = stream
            return got
        why = got or self.bad or "its data never arrived"
        return Log(stream, f"[display output not shown: {why}]\n")

    def close(self) -> None:
        """Close the fd (the reader unregisters it first) and drop what is held."""
        if self.open:
            self.open = False
            self.eof = True
            os.close(self.fd)
        self._ready.clear()
        self._ready_bytes = 0
        self._buf.clear()

    def _pop(self, display_id: int) -> Display | str | None:
        got = self._ready.pop(display_id, None)
        if isinstance(got, Display):
            self._ready_bytes -= got.size
        return got

    def _feed(self, data: bytes) -> None:
        if self.bad is not None:
            return  # read and dropped, so that the proc is never blocked on the pipe
        if self._skipping:
            skip = min(self._skipping, len(data))
            self._skipping -= skip
            data = data[skip:]
        self._buf += data
        while self.bad is None:
            if self._current is None:
                if len(self._buf) < displays.HEADER_LEN:
                    return
                header = displays.parse_header(bytes(self._buf[: displays.HEADER_LEN]))
                del self._buf[: displays.HEADER_LEN]
                if header is None:
                    self._broken("the proc's display pipe carried something other than display frames")
                    return
                self._current = header
            display_id, length = self._current
            if length > self._cap:
                # Never kept: skip its bytes as they come, and say so at its marker.
                size, cap = displays.human_size(length), displays.human_size(self._cap)
                self._ready[display_id] = f"{size} is over the limit of {cap} for one output"
                skip = min(length, len(self._buf))
                del self._buf[:skip]
                self._skipping = length - skip
                self._current = None
                if self._skipping:
                    return
                continue
            if len(self._buf) < length:
                return
            payload = bytes(self._buf[:length])
            del self._buf[:length]
            self._current = None
            self._ready[display_id] = self._bundle(payload)
            got = self._ready[display_id]
            if isinstance(got, Display):
                self._ready_bytes += got.size

    def _bundle(self, payload: bytes) -> Display | str:
        try:
            body = displays.decode(payload)
        except ValueError as exc:  # also json's and UTF-8's errors, both ValueErrors
            return f"its data could not be read ({exc})"
        return Display(
            0,
            body["kind"],
            body["data"],
            body["metadata"],
            len(payload),
            body["display_id"],
            body["update"],
        )

    def _broken(self, why: str) -> None:
        """Not frames: from now on the pipe is read and dropped; its markers show notes."""
        self.bad = why
        self._buf.clear()
        self._current = None
