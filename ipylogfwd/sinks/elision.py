"""Elision: what text output leaves out when procs print faster than a notebook can take.

Text output (the fallback when no widget frontend answers) goes out as IOPub ``stream``
messages, and a Jupyter server drops stream data past 1 MB/s (averaged over 3 s) without
telling the kernel. So a kernel's text sinks share a ``TextBudget``; past it, a sink shows
nothing of what arrives and counts it in an ``Elided`` per proc and stream instead. About
once a second, at every barrier, and when the budget allows again, the sink shows for each
proc how many lines it left out, where the full log is, and the last few lines it left out,
so progress stays visible and the count makes up what is missing: nothing is lost without a
note, and every byte is in the log file.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

TEXT_RATE = 192 * 1024
TEXT_BURST = 768 * 1024
TAIL_LINES = 5
MAX_TAIL_LINE = 1000
MAX_PARTIAL = 4096


def _size(n: float) -> str:
    return f"{n / 1024:.3g} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.3g} MiB"


class TextBudget:
    """Characters per second for the text output of every cell of a kernel.

    The most it lets out in the server's 3 s window is ``burst + 3 * rate`` characters; the
    defaults (1.3 MiB) stay under the server's 3 MB even where escaped control characters or
    multi-byte characters make a message twice its length in characters.
    """

    def __init__(
        self, rate: float = TEXT_RATE, burst: float = TEXT_BURST, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate: float | None = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._stamp = clock()
        self._lock = threading.Lock()  # the dispatcher threads of several groups share it

    def configure(self, rate: float | None) -> None:
        """Change the limit (``None``: no limit; bursts stay four seconds' worth) and start
        from a full budget."""
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
            raise ValueError(
                f"the text output limit must be a positive number of characters per second or None, not {rate!r}"
            )
        with self._lock:
            self.rate = rate
            self.burst = rate * TEXT_BURST / TEXT_RATE if rate is not None else 0.0
            self._tokens = self.burst
            self._stamp = self.clock()

    def describe(self) -> str:
        """The limit, as the notes state it."""
        return f"{_size(self.rate)}/s" if self.rate is not None else "no limit"

    def _refill(self) -> None:
        now = self.clock()
        if self.rate is None:
            self._tokens = float("inf")
        else:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self, chars: int) -> bool:
        """Spend ``chars`` if the budget has them now (a batch larger than the whole burst
        may go when the budget is full)."""
        with self._lock:
            self._refill()
            if self._tokens >= min(chars, self.burst):
                self._tokens -= chars
                return True
            return False

    def spend(self, chars: int) -> None:
        """Spend ``chars`` even if that runs the budget into debt (notes must be shown)."""
        with self._lock:
            self._refill()
            self._tokens -= chars

    def recovered(self) -> bool:
        """Whether the budget has refilled enough to show text again."""
        with self._lock:
            self._refill()
            return self._tokens >= self.burst / 2


TEXT_BUDGET = TextBudget()


def set_text_limit(chars_per_second: float | None) -> float | None:
    """Limit the text output of every cell of this kernel to about ``chars_per_second``
    (bursts of four seconds' worth go at once); ``None`` shows everything, for a kernel no
    server stands between (nbconvert, a client on jupyter_client). Returns the old limit.

    The default keeps a Jupyter server's IOPub data limit (1 MB/s) from dropping output.
    Widgets have their own budget and are not affected.
    """
    old = TEXT_BUDGET.rate
    TEXT_BUDGET.configure(chars_per_second)
    return old


def _clip(line: str) -> str:
    return line if len(line) <= MAX_TAIL_LINE else line[:MAX_TAIL_LINE] + " …"


class Elided:
    """What a sink left out of one proc's stream: a count of lines, the last few of them,
    and the line in progress (bounded)."""

    def __init__(self) -> None:
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.partial = ""

    def add(self, text: str) -> int:
        """Leave ``text`` out (it continues the line in progress, if any); how many newlines
        it held."""
        count = text.count("\n")
        if count == 0:
            self.partial = self._bounded(self.partial + text)
            return 0
        head, *rest = text.rsplit("\n", TAIL_LINES)
        partial = rest.pop()
        first = self.partial + head if count <= TAIL_LINES else head.rpartition("\n")[2]
        self.tail.append(_clip(first))
        self.tail.extend(_clip(line) for line in rest)
        self.lines += count
        self.partial = self._bounded(partial)
        return count

    @staticmethod
    def _bounded(partial: str) -> str:
        return partial if len(partial) <= MAX_PARTIAL else "…" + partial[-MAX_PARTIAL:]

    @property
    def hidden(self) -> int:
        """Lines left out and not in the tail."""
        return self.lines - len(self.tail)

    def take_lines(self) -> tuple[int, list[str]]:
        """(lines not shown, the tail's lines), and forget both; the line in progress stays."""
        taken = (self.hidden, list(self.tail))
        self.lines = 0
        self.tail.clear()
        return taken

    def take_partial(self) -> str:
        partial, self.partial = self.partial, ""
        return partial

    def __bool__(self) -> bool:
        return bool(self.lines or self.partial)
