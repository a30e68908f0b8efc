"""What the widget sink holds per proc: bounded tails of text, and the budget that paces
what all widgets of a kernel send.

A ``Tail`` keeps at most about ``limit`` lines and ``max_chars`` characters of one proc's
text, and ``max_display_bytes`` of its display bundles (always the newest one: a bundle is at
most ``wire.displays.BUNDLE_CAP``), counting what it dropped, so memory stays bounded however
much a proc prints or displays. Each chunk keeps when the kernel read it: the lines that
start in a chunk show that time (a partial line continued later keeps the time it started
at; the lines after it in the same text start a chunk of their own). The
``MessageBudget`` is a set of token buckets shared by every widget: messages per second (the
server's IOPub rate limit counts them), lines and characters per second (what the page must
render).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..wire.displays import BUNDLE_CAP
from ..wire.view_messages import DISPLAY

DEFAULT_MAX_LINES = 2000
DEFAULT_MAX_CHARS = 1 << 20
DEFAULT_MAX_DISPLAY_BYTES = BUNDLE_CAP


class MessageBudget:
    """Token buckets for what widgets send, shared by every widget of the kernel: messages
    (the server's IOPub rate limit counts them), lines and characters (what the page must
    render: many short lines, or a few huge ones)."""

    def __init__(
        self,
        rate: float = 250.0,
        burst: float = 100.0,
        line_rate: float = 16_000.0,
        line_burst: float = 16_000.0,
        char_rate: float = 4 * 1024 * 1024,
        char_burst: float = 4 * 1024 * 1024,
    ) -> None:
        self.rate, self.burst = rate, burst
        self.line_rate, self.line_burst = line_rate, line_burst
        self.char_rate, self.char_burst = char_rate, char_burst
        self._tokens, self._lines, self._chars = burst, line_burst, char_burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()  # the dispatcher threads of several groups share it

    def take(self, lines: int, chars: int = 0) -> bool:
        """Spend one message, ``lines`` lines and ``chars`` characters if all are available now."""
        with self._lock:
            now = time.monotonic()
            elapsed, self._stamp = now - self._stamp, now
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._lines = min(self.line_burst, self._lines + elapsed * self.line_rate)
            self._chars = min(self.char_burst, self._chars + elapsed * self.char_rate)
            # A batch larger than a whole bucket may go once that bucket is full.
            cost, char_cost = min(lines, self.line_burst), min(chars, self.char_burst)
            if self._tokens >= 1.0 and self._lines >= cost and self._chars >= char_cost:
                self._tokens -= 1.0
                self._lines -= cost
                self._chars -= char_cost
                return True
            return False


BUDGET = MessageBudget()


@dataclass
class Tail:
    """Chunks of output holding at most about ``limit`` lines, ``max_chars`` characters of
    text and ``max_display_bytes`` bytes of bundles (but always the newest bundle), and how
    many lines were dropped. A bundle is a chunk ``[DISPLAY, piece, size]`` and counts as one
    line; what is dropped is always the oldest, so the tail stays the newest stretch of output.
    A text chunk is ``[stream, text, at]``, a bundle ``[DISPLAY, piece, at, size]`` (``at``:
    when the kernel read it, ``time.time()``)."""

    limit: int
    max_chars: int = DEFAULT_MAX_CHARS
    max_display_bytes: int = DEFAULT_MAX_DISPLAY_BYTES
    chunks: deque[list[Any]] = field(default_factory=deque)  # [stream, text, at] or [DISPLAY, piece, at, size]
    lines: int = 0
    chars: int = 0
    dropped: int = 0
    displays: int = 0
    display_bytes: int = 0

    def add(self, stream: int, text: str, newlines: int, at: float = 0.0) -> None:
        last = self.chunks[-1] if self.chunks else None
        if last is not None and last[0] == stream and not last[1].endswith("\n"):
            # Continue a partial line in place; the lines after it start a chunk of their own.
            end = text.find("\n")
            if end < 0 or end == len(text) - 1:
                last[1] += text
            else:
                last[1] += text[: end + 1]
                self.chunks.append([stream, text[end + 1 :], at])
        else:
            self.chunks.append([stream, text, at])
        self.lines += newlines
        self.chars += len(text)
        if self.lines > 2 * self.limit or self.chars > 2 * self.max_chars:
            self.trim()

    def add_display(
        self, piece: dict[str, Any], size: int, at: float = 0.0, *, keep_orphan_update: bool = True
    ) -> None:
        """Add a bundle. An update of a bundle still held replaces it in place; one whose
        bundle is gone is kept only with ``keep_orphan_update`` (the view may still show it)."""
        if piece.get("update") and piece.get("display_id"):
            for chunk in reversed(self.chunks):
                if chunk[0] == DISPLAY and chunk[1].get("display_id") == piece["display_id"]:
                    chunk[1] = {**piece, "update": chunk[1].get("update", False)}
                    self.display_bytes += size - chunk[3]
                    chunk[3] = size
                    return
            if not keep_orphan_update:
                return
        self.chunks.append([DISPLAY, piece, at, size])
        self.lines += 1
        self.displays += 1
        self.display_bytes += size
        if self.lines > 2 * self.limit or self.display_bytes > self.max_display_bytes:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest whole lines until at most ``limit`` lines, about ``max_chars``
        characters (one line longer than that keeps only its end) and ``max_display_bytes``
        of bundles (or the newest bundle alone) remain."""
        self._trim_lines()
        self._trim_chars()
        self._trim_displays()

    def _drop_first(self) -> None:
        chunk = self.chunks.popleft()
        if chunk[0] == DISPLAY:
            n = 1
            self.displays -= 1
            self.display_bytes -= chunk[3]
        else:
            n = chunk[1].count("\n")
            self.chars -= len(chunk[1])
        self.lines -= n
        self.dropped += n

    def _trim_displays(self) -> None:
        while self.display_bytes > self.max_display_bytes and self.displays > 1:
            while self.chunks[0][0] != DISPLAY:
                self._drop_first()
            self._drop_first()

    def _trim_chars(self) -> None:
        while self.chars > self.max_chars and self.chunks:
            if self.chunks[0][0] == DISPLAY:
                self._drop_first()
                continue
            text = self.chunks[0][1]
            over = self.chars - self.max_chars
            # Whole lines from the front, through the first newline at or past the excess.
            cut = text.find("\n", over - 1)
            if 0 <= cut < len(text) - 1 or (cut == len(text) - 1 and len(self.chunks) > 1):
                n = text.count("\n", 0, cut + 1)
                if cut == len(text) - 1:
                    self.chunks.popleft()
                else:
                    self.chunks[0][1] = text[cut + 1 :]
                self.lines -= n
                self.dropped += n
                self.chars -= cut + 1
                continue
            if len(self.chunks) > 1:
                # The chunk is one line's end (or a partial line): it goes whole.
                self._drop_first()
                continue
            # One line longer than the budget (a huge line, a long run of \r redraws): keep its
            # end, from a \r where there is one, so a redrawn line still shows its last state.
            keep = text[-self.max_chars :]
            cr = keep.find("\r")
            if cr > 0:
                keep = keep[cr:]
            n = text.count("\n") - keep.count("\n")  # whole lines cut off before the kept end
            self.chunks[0][1] = keep
            self.chars = len(keep)
            self.lines -= n
            self.dropped += n

    def _trim_lines(self) -> None:
        excess = self.lines - self.limit
        while excess > 0 and self.chunks:
            if self.chunks[0][0] == DISPLAY:
                self._drop_first()
                excess -= 1
                continue
            text = self.chunks[0][1]
            n = text.count("\n")
            if n <= excess:
                self._drop_first()
                excess -= n
            else:
                cut = -1
                for _ in range(excess):
                    cut = text.index("\n", cut + 1)
                self.chunks[0][1] = text[cut + 1 :]
                self.lines -= excess
                self.dropped += excess
                self.chars -= cut + 1
                excess = 0

    def take(self) -> tuple[int, list[list[Any]]]:
        chunks, dropped = list(self.chunks), self.dropped
        self.chunks.clear()
        self.lines = self.chars = self.dropped = self.displays = self.display_bytes = 0
        return dropped, chunks
