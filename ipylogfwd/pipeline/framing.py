"""Framing: raw bytes from one proc stream -> queue items, in read order.

Two stages per stream:

* ``MarkerScanner`` separates genuine in-band markers (see ``markers``) from data. It finds a
  marker anywhere (mid-line, split across reads) and holds back at most one marker's length
  of bytes that may be the start of one. Look-alikes without the token stay data.
* ``LineFramer`` frames data by ``\\n`` in read order and decodes it as UTF-8 with
  replacement (multi-byte characters split across reads decode whole). Complete lines go
  out as soon as they are read; a partial line is held until a flush point (a marker, EOF,
  or the reader's idle tick) releases it. A line longer than ``max_line`` bytes is split
  with a visible mark, so memory per stream is bounded by ``max_line`` plus one read.

A ``D`` marker (a display bundle's place, on stdout) becomes the bundle itself, taken from
the proc's display pipe by the ``displays`` callable the reader gives the stdout framer.

``\\r`` and every other control character is kept: rendering them is the sink's business.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

from ..wire import markers
from ..wire.markers import MARKER_LEN, PREFIX, Marker
from .items import Barrier, CellStart, Eof, Item, Log

DEFAULT_MAX_LINE = 256 * 1024


def split_mark(max_line: int) -> str:
    """What ends each piece of a line that was split for being longer than ``max_line``."""
    return f" \u21a9 [line longer than {max_line} bytes, split]\n"


class MarkerScanner:
    """Splits a byte stream into data and genuine markers, across arbitrary read boundaries."""

    def __init__(self, token: bytes) -> None:
        self._token = token
        self._held = b""

    def feed(self, data: bytes) -> list[bytes | Marker]:
        """Data segments and markers found in ``data`` (after whatever was held), in order."""
        buf = self._held + data if self._held else data
        self._held = b""
        out: list[bytes | Marker] = []
        n = len(buf)
        start = pos = 0
        while True:
            i = _find_prefix(buf, pos)
            if i < 0:
                end = n - _partial_prefix_at_end(buf, start)
                if end > start:
                    out.append(buf[start:end])
                self._held = buf[end:]
                return out
            if n - i < MARKER_LEN:
                # Maybe a marker whose rest is still in the pipe: decide on the next read.
                if i > start:
                    out.append(buf[start:i])
                self._held = buf[i:]
                return out
            found = markers.decode(self._token, buf[i : i + MARKER_LEN])
            if found is None:
                pos = i + 1  # a look-alike: its bytes stay data
                continue
            if i > start:
                out.append(buf[start:i])
            out.append(found)
            start = pos = i + MARKER_LEN

    def finish(self) -> bytes:
        """At EOF: the bytes still held, which can no longer become a marker."""
        held, self._held = self._held, b""
        return held


def _find_prefix(buf: bytes, pos: int) -> int:
    """Where PREFIX next starts in ``buf`` from ``pos``, or -1."""
    # Most output has no ESC at all: one memchr finds that (a whole-prefix search costs 60
    # times more per byte). Output with escapes of its own (colours) gets the prefix search.
    i = buf.find(PREFIX[:1], pos)
    if i < 0 or buf.startswith(PREFIX, i):
        return i
    return buf.find(PREFIX, i + 1)


def _partial_prefix_at_end(buf: bytes, start: int) -> int:
    """Length of the longest proper prefix of PREFIX that ends ``buf`` at or after ``start``."""
    n = len(buf)
    for k in range(min(len(PREFIX) - 1, n - start), 0, -1):
        if buf.endswith(PREFIX[:k]):
            return k
    return 0


class LineFramer:
    """Frames one stream's data bytes into text of complete lines, bounded per line."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 4:
            raise ValueError("max_line must be at least 4 bytes")
        self.max_line = max_line
        self._mark = split_mark(max_line)
        self._pending = bytearray()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    @property
    def has_partial(self) -> bool:
        return bool(self._pending)

    def feed(self, data: bytes) -> str:
        """Text of the lines ``data`` completes (each ending in ``\\n``); '' if none."""
        nl = data.rfind(b"\n")
        if nl < 0:
            self._pending += data
            return self._split_overlong() if len(self._pending) > self.max_line else ""
        if self._pending:
            self._pending += data[: nl + 1]
            chunk = bytes(self._pending)
            self._pending.clear()
        else:
            chunk = data[: nl + 1]
        self._pending += data[nl + 1 :]
        if len(chunk) > self.max_line and self._may_hold_long_line(chunk):
            text = self._decode_splitting(chunk)
        else:
            text = self._decoder.decode(chunk)
        if len(self._pending) > self.max_line:
            text += self._split_overlong()
        return text

    def take_partial(self, final: bool = False) -> str:
        """The pending partial line, released for display now (it is not repeated later).

        With ``final``, a character cut short is released too (as U+FFFD): at a marker, the
        bytes before it must not be carried past it.
        """
        if not self._pending and not final:
            return ""
        chunk = bytes(self._pending)
        self._pending.clear()
        return self._decoder.decode(chunk, final=final)

    def finish(self) -> str:
        """At EOF: the partial line and any incomplete character, decoded."""
        chunk = bytes(self._pending)
        self._pending.clear()
        return self._decoder.decode(chunk, final=True)

    def _may_hold_long_line(self, chunk: bytes) -> bool:
        """False only if no line in ``chunk`` is longer than ``max_line`` (cheap: a few finds).

        A run of more than ``max_line`` bytes without ``\n`` covers a whole aligned block of
        ``max_line // 2`` bytes; so if every whole block holds a newline, no line is too long.
        """
        half = max(1, self.max_line // 2)
        return any(chunk.find(b"\n", start, start + half) < 0 for start in range(0, len(chunk) - half + 1, half))

    def _split_overlong(self) -> str:
        out = []
        while len(self._pending) > self.max_line:
            piece = bytes(self._pending[: self.max_line])
            del self._pending[: self.max_line]
            out.append(self._decoder.decode(piece) + self._mark)
        return "".join(out)

    def _decode_splitting(self, chunk: bytes) -> str:
        out = []
        for line in chunk.split(b"\n")[:-1]:
            while len(line) > self.max_line:
                out.append(self._decoder.decode(line[: self.max_line]) + self._mark)
                line = line[self.max_line :]
            out.append(self._decoder.decode(line + b"\n"))
        return "".join(out)


class StreamFramer:
    """One proc stream: bytes in, queue items out, raw data bytes to ``log`` as they pass."""

    def __init__(
        self,
        stream: int,
        token: bytes,
        max_line: int = DEFAULT_MAX_LINE,
        log: Callable[[bytes], None] | None = None,
        displays: Callable[[int, int], Item] | None = None,
    ) -> None:
        self.stream = stream
        self._scanner = MarkerScanner(token)
        self._lines = LineFramer(max_line)
        self._log = log
        self._displays = displays  # (display id, stream) -> the bundle's item

    @property
    def has_partial(self) -> bool:
        return self._lines.has_partial

    def feed(self, data: bytes) -> list[Item]:
        items: list[Item] = []
        for seg in self._scanner.feed(data):
            if isinstance(seg, bytes):
                self._data(seg, items)
            else:
                self._release_partial(items, final=True)
                item = self._marker_item(seg)
                if item is not None:
                    items.append(item)
        return items

    def release_partial(self) -> list[Item]:
        """Items that show the pending partial line now (idle tick, weak barrier)."""
        items: list[Item] = []
        self._release_partial(items)
        return items

    def finish(self) -> list[Item]:
        """At EOF: everything still held, then ``Eof``."""
        items: list[Item] = []
        self._data(self._scanner.finish(), items)
        text = self._lines.finish()
        if text:
            items.append(Log(self.stream, text))
        items.append(Eof(self.stream))
        return items

    def _data(self, seg: bytes, items: list[Item]) -> None:
        if not seg:
            return
        if self._log is not None:
            self._log(seg)
        text = self._lines.feed(seg)
        if text:
            items.append(Log(self.stream, text))

    def _release_partial(self, items: list[Item], final: bool = False) -> None:
        text = self._lines.take_partial(final)
        if text:
            items.append(Log(self.stream, text))

    def _marker_item(self, m: Marker) -> Item | None:
        if m.kind == "C":
            return CellStart(self.stream, m.value)
        if m.kind == "D":
            # Only stdout has a display pipe behind it; the proc marks displays nowhere else.
            return None if self._displays is None else self._displays(m.value, self.stream)
        return Barrier(self.stream, ("flush" if m.kind == "B" else "cell", m.value))
