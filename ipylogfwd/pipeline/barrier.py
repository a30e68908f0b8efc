"""Barriers: which proc streams have passed a barrier, and the report of a flush.

A barrier ``key`` is begun for a set of ranks before anything can reach it (before the
flush request or the cell is sent). The dispatcher reports each stream reaching it: by the
proc's own marker (full), by the reader's weak barrier (everything read so far), or by EOF
(the proc is gone; everything it wrote has been delivered). A rank completes when both its
streams have; waiters are woken then.

The tracker also keeps, per rank, the sink its barrier was delivered to, so a flush asks one
place for both how far each rank got and which view to wait for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from .items import STDERR, STDOUT, BarrierKey
from .sink import Sink

Outcome = Literal["rendered", "published", "weak", "exited", "timed out"]
FULL_OUTCOMES: frozenset[str] = frozenset({"rendered", "published"})

_EXPLAIN: dict[str, str] = {
    "rendered": "everything before the barrier is rendered in the view",
    "published": "everything before the barrier is published to the cell",
    "weak": "did not serve the flush in time: everything read so far is published",
    "exited": "the proc has exited: everything it wrote is published",
    "timed out": "the barrier did not complete in time",
}


@dataclass
class _Pending:
    started: float
    needs: dict[int, set[int]]
    weak: set[int] = field(default_factory=set)
    eof: set[int] = field(default_factory=set)
    done_at: dict[int, float] = field(default_factory=dict)
    sinks: dict[int, Sink] = field(default_factory=dict)


class BarrierTracker:
    """Thread-safe record of barrier progress; the dispatcher reports, callers wait."""

    def __init__(self) -> None:
        # Reported by the dispatcher thread, read by whoever waits: one lock for all of it.
        self._cond = threading.Condition()
        self._pending: dict[BarrierKey, _Pending] = {}
        self._ended: dict[int, set[int]] = {}

    def begin(self, key: BarrierKey, ranks: list[int]) -> None:
        with self._cond:
            now = time.monotonic()
            p = _Pending(now, {r: {STDOUT, STDERR} - self._ended.get(r, set()) for r in ranks})
            for r, needs in p.needs.items():
                if not needs:
                    p.eof.add(r)
                    p.done_at[r] = now
            self._pending[key] = p

    def reach(self, rank: int, stream: int, key: BarrierKey, weak: bool, sink: Sink) -> bool:
        """Record one stream of ``rank`` at ``key``, published to ``sink`` (the sink the rank's
        barrier goes to, kept for ``finish``); True if that completed the rank."""
        with self._cond:
            p = self._pending.get(key)
            if p is None or rank in p.done_at or rank not in p.needs:
                return False  # a late marker for a barrier already settled
            if weak:
                p.weak.add(rank)
            p.sinks[rank] = sink
            self._settle(p, rank, stream)
            return rank in p.done_at

    def eof(self, rank: int, stream: int) -> None:
        with self._cond:
            self._ended.setdefault(rank, set()).add(stream)
            for p in self._pending.values():
                if rank in p.needs and rank not in p.done_at:
                    p.eof.add(rank)
                    self._settle(p, rank, stream)

    def exited(self, key: BarrierKey, ranks: list[int]) -> None:
        """These ranks' procs had exited when ``key`` began: whatever completes them there
        (the end of their pipes, or a drain of what they left in them) is reported as
        "exited"."""
        with self._cond:
            p = self._pending.get(key)
            if p is not None:
                p.eof.update(r for r in ranks if r in p.needs)

    def forget_rank(self, rank: int) -> None:
        """A rank's proc was replaced: its streams are new."""
        with self._cond:
            self._ended.pop(rank, None)

    def _settle(self, p: _Pending, rank: int, stream: int) -> None:
        p.needs[rank].discard(stream)
        if not p.needs[rank]:
            p.done_at[rank] = time.monotonic()
            self._cond.notify_all()

    def wait(self, key: BarrierKey, timeout: float) -> list[int]:
        """Wait until every rank completed ``key`` or ``timeout``; the ranks still waiting."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            p = self._pending[key]
            while True:
                left = [r for r in p.needs if r not in p.done_at]
                remaining = deadline - time.monotonic()
                if not left or remaining <= 0:
                    return sorted(left)
                self._cond.wait(min(remaining, 0.1))

    def finish(self, key: BarrierKey) -> tuple[FlushReport, dict[int, Sink]]:
        """Stop tracking ``key``: its report as of now (at the published level), and the sink
        each completed rank's barrier was published to."""
        with self._cond:
            p = self._pending.pop(key)
        entries = []
        for r in sorted(p.needs):
            if r not in p.done_at:
                entries.append(FlushEntry(r, "timed out", None))
                continue
            outcome: Outcome = "exited" if r in p.eof else "weak" if r in p.weak else "published"
            entries.append(FlushEntry(r, outcome, p.done_at[r] - p.started))
        return FlushReport(key[1], entries), p.sinks


@dataclass(frozen=True)
class FlushEntry:
    """How far one proc's barrier got, and how long it took (None if it never completed)."""

    rank: int
    outcome: Outcome
    seconds: float | None
    detail: str = ""  # why a proc got no further than it did, when there is more to say


@dataclass(frozen=True)
class FlushReport:
    """The result of a flush: one entry per target proc."""

    version: int
    entries: list[FlushEntry]
    note: str = ""

    @property
    def ok(self) -> bool:
        """True when every proc reached the full barrier (or had exited, losing nothing)."""
        return not self.shortfalls

    @property
    def shortfalls(self) -> list[FlushEntry]:
        """The entries of procs that did not reach the full barrier (what ``ok`` is about)."""
        return [e for e in self.entries if not (e.outcome in FULL_OUTCOMES or e.outcome == "exited")]

    @property
    def outcomes(self) -> dict[int, Outcome]:
        return {e.rank: e.outcome for e in self.entries}

    def __getitem__(self, rank: int) -> FlushEntry:
        for e in self.entries:
            if e.rank == rank:
                return e
        raise KeyError(rank)

    def __repr__(self) -> str:
        head = f"FlushReport(barrier {self.version}: {'ok' if self.ok else 'INCOMPLETE'}"
        lines = [head + (f"; {self.note}" if self.note else "") + ")"]
        for e in self.entries:
            took = f"{e.seconds * 1000:8.1f} ms" if e.seconds is not None else "       --   "
            lines.append(f"  rank {e.rank:>3}  {e.outcome:<10} {took}  {e.detail or _EXPLAIN[e.outcome]}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        p.text(repr(self))
