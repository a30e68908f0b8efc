"""Per-proc FIFO queues: the mailbox between the reader and the dispatcher.

Each proc has one queue carrying its ``Log`` data and its ``Barrier``/``CellStart``/``Eof``
items in the one order the reader produced them: a barrier is always behind every byte read
before it, on that proc's stream (the in-band property the whole design rests on). There is
no order across procs.

The reader is the only producer and never blocks on a queue; it pauses reading a proc whose
queue holds more than its byte budget, so the pipe (and then the proc's writes) take the
back-pressure and kernel memory stays bounded. The dispatcher is the only consumer (or, on
a remote host, the agent's pump, which ``take``s what the kernel's credit allows). Each
queue counts what was taken from it (``drained``): the kernel grants remote ranks credit
from that count.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .items import Item, Log, item_size


@dataclass
class _Box:
    items: deque[Item] = field(default_factory=deque)
    size: int = 0
    drained: int = 0  # the size of everything ever taken out


DEFAULT_BUDGET = 8 << 20
GROUP_BUDGET = 64 << 20
MIN_BUDGET = 1 << 20


def budget_for(procs: int) -> int:
    """Each queue's budget in a group of ``procs`` procs on this machine: an even share of
    ``GROUP_BUDGET``, between ``MIN_BUDGET`` and ``DEFAULT_BUDGET``, so that what a group can
    hold in the kernel's memory does not grow with its size (64 procs at 8 MiB each could
    hold 512 MiB while the frontend falls behind)."""
    return max(MIN_BUDGET, min(DEFAULT_BUDGET, GROUP_BUDGET // max(1, procs)))


class Mailboxes:
    """One FIFO per proc, with one condition so the dispatcher can wait on all of them."""

    def __init__(self, budget: int = DEFAULT_BUDGET, notify: Callable[[], None] | None = None) -> None:
        """``notify()`` (optional) is called, under the queues' lock and so quickly, whenever
        items are put: a consumer that waits on something else (a socket) can wake up."""
        self.budget = budget
        self._notify = notify
        # One lock for all boxes: the single consumer waits on "any box has items".
        self._cond = threading.Condition()
        self._boxes: dict[int, _Box] = {}
        self._urgent = False  # a barrier or EOF is queued: the consumer should not linger
        # What the consumer waits for now (under the lock): "any" (wait), "urgent" (linger) or
        # None. A put wakes it only for that: a lingering consumer woken by every put of a
        # flood would only go back to sleep, a context switch and a GIL handoff each time.
        self._waiting: str | None = None

    def add(self, rank: int) -> None:
        with self._cond:
            self._boxes.setdefault(rank, _Box())

    def put(self, rank: int, items: list[Item]) -> None:
        """Append items to ``rank``'s queue, in order. Never blocks on space."""
        if not items:
            return
        with self._cond:
            box = self._boxes.setdefault(rank, _Box())
            box.items.extend(items)
            box.size += sum(item_size(i) for i in items)
            if not self._urgent and any(not isinstance(i, Log) for i in items):
                self._urgent = True
            if self._waiting == "any" or (self._waiting == "urgent" and self._urgent):
                self._cond.notify()
            if self._notify is not None:
                self._notify()

    def over_budget(self, rank: int) -> bool:
        with self._cond:
            box = self._boxes.get(rank)
            return box is not None and box.size > self.budget

    def below(self, rank: int, fraction: float) -> bool:
        with self._cond:
            box = self._boxes.get(rank)
            return box is None or box.size <= self.budget * fraction

    def wait(self, timeout: float) -> bool:
        """Wait until some queue has items; True if one has."""
        with self._cond:
            if any(b.items for b in self._boxes.values()):
                return True
            self._waiting = "any"
            try:
                self._cond.wait(timeout)
            finally:
                self._waiting = None
            return any(b.items for b in self._boxes.values())

    def linger(self, timeout: float) -> None:
        """Wait up to ``timeout`` for more data to coalesce, but not past an urgent item."""
        with self._cond:
            self._waiting = "urgent"
            try:
                self._cond.wait_for(lambda: self._urgent, timeout)
            finally:
                self._waiting = None

    def wake(self) -> None:
        """Wake a waiting consumer without adding anything (used to stop it)."""
        with self._cond:
            self._urgent = True
            self._cond.notify_all()

    def drain(self) -> list[tuple[int, list[Item]]]:
        """Take every queued item: per rank, in queue order."""
        with self._cond:
            self._urgent = False
            out = []
            for rank, box in self._boxes.items():
                if box.items:
                    out.append((rank, list(box.items)))
                    box.items.clear()
                    box.drained += box.size
                    box.size = 0
            return out

    def take(self, rank: int, max_size: int) -> list[Item]:
        """Take items from the front of ``rank``'s queue, in order, while their sizes add up to
        at most ``max_size`` (the first item goes even if it alone is larger, when
        ``max_size`` is positive: one item is the most a consumer is ever over)."""
        with self._cond:
            box = self._boxes.get(rank)
            out: list[Item] = []
            if box is None or max_size <= 0:
                return out
            taken = 0
            while box.items:
                size = item_size(box.items[0])
                if out and taken + size > max_size:
                    break
                out.append(box.items.popleft())
                taken += size
            box.size -= taken
            box.drained += taken
            return out

    def drained(self, rank: int) -> int:
        """The total size of what was ever taken from ``rank``'s queue."""
        with self._cond:
            box = self._boxes.get(rank)
            return 0 if box is None else box.drained

    def queued(self, rank: int) -> int:
        """The size of what ``rank``'s queue holds now."""
        with self._cond:
            box = self._boxes.get(rank)
            return 0 if box is None else box.size

    def ranks(self) -> list[int]:
        """The ranks whose queues hold items now."""
        with self._cond:
            return [rank for rank, box in self._boxes.items() if box.items]
