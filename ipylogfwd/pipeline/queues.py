"""Per-proc FIFO queues: the mailbox between the reader and the dispatcher.

Each proc has one queue carrying its ``Log`` data and its ``Barrier``/``CellStart``/``Eof``
items in the one order the reader produced them: a barrier is always behind every byte read
before it, on that proc's stream (the in-band property the whole design rests on). There is
no order across procs.

The reader is the only producer and never blocks on a queue; it pauses reading a proc whose
queue holds more than its byte budget, so the pipe (and then the proc's writes) take the
back-pressure and kernel memory stays bounded. The dispatcher is the only consumer.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from .items import Item, Log, item_size


@dataclass
class _Box:
    items: deque[Item] = field(default_factory=deque)
    size: int = 0


class Mailboxes:
    """One FIFO per proc, with one condition so the dispatcher can wait on all of them."""

    def __init__(self, budget: int = 8 << 20) -> None:
        self.budget = budget
        # One lock for all boxes: the single consumer waits on "any box has items".
        self._cond = threading.Condition()
        self._boxes: dict[int, _Box] = {}
        self._urgent = False  # a barrier or EOF is queued: the consumer should not linger

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
            self._cond.notify()

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
            self._cond.wait(timeout)
            return any(b.items for b in self._boxes.values())

    def linger(self, timeout: float) -> None:
        """Wait up to ``timeout`` for more data to coalesce, but not past an urgent item."""
        with self._cond:
            self._cond.wait_for(lambda: self._urgent, timeout)

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
                    box.size = 0
            return out
