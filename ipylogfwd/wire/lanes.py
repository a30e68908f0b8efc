"""Lanes: ordered, exactly-once delivery over a link that may drop what is in flight.

ZeroMQ reconnects by itself after a network blip, but whatever was in flight when the
connection broke is gone. So everything that must arrive (a rank's output, a control
message) travels on a lane: each message gets the next sequence number, the receiver takes
only the next one it expects and acknowledges cumulatively, and the sender keeps what is not
yet acknowledged and sends it all again when acks stop coming (go-back-N), or at once after
a reconnect. A partition shorter than the lease therefore loses and duplicates nothing.

A data lane also carries credit: the receiver allows the sender a cumulative ``limit`` of
item size (what the kernel's queues count), granted as the kernel's dispatcher drains, so a
rank never has more than a window in flight or waiting in the kernel however fast it prints.

These classes are plain state, driven by the one thread that owns the socket.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

RESEND_AFTER = 1.0

P = TypeVar("P")


@dataclass
class _Held(Generic[P]):
    seq: int
    payload: P
    cost: int
    sent: bool = False


class Outbox(Generic[P]):
    """The sending end of a lane: numbered messages, kept until acknowledged."""

    def __init__(self, resend_after: float = RESEND_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self._held: deque[_Held[P]] = deque()
        self._next = 1
        self._resend_after = resend_after
        self._clock = clock
        self._progress = clock()  # when an ack last moved, or the first unacked message was sent
        self.cost = 0  # of the messages held (sent or not)

    def push(self, payload: P, cost: int = 0) -> int:
        """Queue ``payload`` as the next message; its sequence number."""
        seq = self._next
        self._next += 1
        if not self._held:
            self._progress = self._clock()
        self._held.append(_Held(seq, payload, cost))
        self.cost += cost
        return seq

    def ack(self, upto: int) -> None:
        """Everything up to ``upto`` arrived: forget it."""
        moved = False
        while self._held and self._held[0].seq <= upto:
            self.cost -= self._held.popleft().cost
            moved = True
        if moved:
            self._progress = self._clock()

    def due(self) -> list[tuple[int, P]]:
        """(seq, payload) to send now: whatever was never sent, and, once acks have stalled
        for ``resend_after``, everything unacknowledged again, in order."""
        if self._held and self._held[0].sent and self._clock() - self._progress >= self._resend_after:
            self.rewind()
        out = []
        for held in self._held:
            if not held.sent:
                held.sent = True
                out.append((held.seq, held.payload))
        return out

    def unsend(self, seq: int) -> None:
        """Messages from ``seq`` on could not be handed to the link: send them again later."""
        for held in self._held:
            if held.seq >= seq:
                held.sent = False

    def rewind(self) -> None:
        """Send everything unacknowledged again (the link was re-established)."""
        for held in self._held:
            held.sent = False
        self._progress = self._clock()

    @property
    def unacked(self) -> int:
        return len(self._held)

    @property
    def last_seq(self) -> int:
        return self._next - 1


class Inbox:
    """The receiving end of a lane: takes each message once, in order."""

    def __init__(self) -> None:
        self.expected = 1

    def accept(self, seq: int) -> bool:
        """True if ``seq`` is the next message (take it); False for a repeat or one past a gap
        (drop it: the sender sends the gap again)."""
        if seq != self.expected:
            return False
        self.expected += 1
        return True

    @property
    def acked(self) -> int:
        """The cumulative acknowledgement to send back."""
        return self.expected - 1


class Credit:
    """The sender's side of a data lane's flow control, in units of item size."""

    def __init__(self, window: int) -> None:
        self.limit = window  # cumulative: what the receiver allows in all
        self.sent = 0  # cumulative: what was taken to send

    def grant(self, limit: int) -> None:
        """The receiver now allows ``limit`` in all (grants only grow)."""
        self.limit = max(self.limit, limit)

    @property
    def room(self) -> int:
        return self.limit - self.sent

    def spend(self, size: int) -> None:
        self.sent += size


def window_for(ranks: int, total: int = 64 << 20, low: int = 64 << 10, high: int = 1 << 20) -> int:
    """Each remote rank's credit window: ``total`` shared by every rank, within [low, high], so
    the kernel holds at most about ``total`` (plus one frame per rank) however many print."""
    return max(low, min(high, total // max(1, ranks)))
