"""Lanes over a fake transport that drops, duplicates and reorders: every message arrives
exactly once and in order, and what is in flight never exceeds the credit window."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ipylogfwd.wire.lanes import Credit, Inbox, Outbox, window_for


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class LossyChannel:
    """Delivers each message after a random delay, or never, or twice."""

    def __init__(self, rng: random.Random, drop: float, dup: float) -> None:
        self.rng, self.drop, self.dup = rng, drop, dup
        self.in_flight: list[tuple[float, object]] = []

    def send(self, now: float, msg: object) -> None:
        if self.rng.random() < self.drop:
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            self.in_flight.append((now + self.rng.uniform(0.0, 0.3), msg))

    def arrived(self, now: float) -> list[object]:
        here = [m for t, m in self.in_flight if t <= now]
        self.in_flight = [(t, m) for t, m in self.in_flight if t > now]
        self.rng.shuffle(here)  # reordered within a step
        return here


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drop=st.floats(0.0, 0.5),
    dup=st.floats(0.0, 0.3),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=300),
    window=st.integers(1, 20000),
)
def test_exactly_once_in_order_with_bounded_flight(
    seed: int, drop: float, dup: float, sizes: list[int], window: int
) -> None:
    rng = random.Random(seed)
    clock = Clock()
    out: Outbox[int] = Outbox(resend_after=1.0, clock=clock)
    credit = Credit(window)
    inbox = Inbox()
    data, acks = LossyChannel(rng, drop, dup), LossyChannel(rng, drop, dup)
    got: list[int] = []
    consumed = 0  # what the receiver's consumer drained (it grants credit from this)
    next_msg = 0
    largest = max(sizes)
    for _step in range(20000):
        # The sender takes what its credit allows (at least one message when it has room).
        while next_msg < len(sizes) and credit.room > 0:
            out.push(next_msg, sizes[next_msg])
            credit.spend(sizes[next_msg])
            next_msg += 1
        # Never more in flight or waiting than the window plus one message.
        assert out.cost <= window + largest
        for seq, payload in out.due():
            data.send(clock.now, (seq, payload))
        for msg in data.arrived(clock.now):
            seq, payload = msg  # type: ignore[misc]
            if inbox.accept(seq):
                got.append(payload)
                consumed += sizes[payload]
        acks.send(clock.now, (inbox.acked, consumed + window))
        for msg in acks.arrived(clock.now):
            acked, limit = msg  # type: ignore[misc]
            out.ack(acked)
            credit.grant(limit)
        if len(got) == len(sizes) and out.unacked == 0:
            break
        clock.now += 0.05
    assert got == list(range(len(sizes))), "not every message arrived once and in order"
    assert out.unacked == 0


def test_a_gap_is_filled_by_resending_from_it() -> None:
    clock = Clock()
    out: Outbox[str] = Outbox(resend_after=1.0, clock=clock)
    inbox = Inbox()
    for p in "abc":
        out.push(p)
    sent = out.due()
    assert [s for s, _ in sent] == [1, 2, 3]
    assert inbox.accept(1) and not inbox.accept(3), "3 after a lost 2 must wait"
    out.ack(inbox.acked)
    assert out.due() == [], "nothing is resent before acks stall"
    clock.now += 1.0
    assert out.due() == [(2, "b"), (3, "c")]
    assert inbox.accept(2) and inbox.accept(3) and not inbox.accept(2)


def test_rewind_after_a_reconnect_resends_at_once() -> None:
    out: Outbox[str] = Outbox()
    out.push("x")
    out.due()
    out.rewind()
    assert out.due() == [(1, "x")]


def test_window_shares_a_total_among_ranks() -> None:
    assert window_for(1) == 1 << 20
    assert window_for(64) == 1 << 20
    assert window_for(256) == (64 << 20) // 256
    assert window_for(100_000) == 64 << 10
