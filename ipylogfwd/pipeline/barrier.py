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

import html
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from ..ranks import compact_ranks
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


DETAILS_UP_TO = 8
"""A report of at most this many procs lists every one; a larger one lists only those that
fell short (``details()`` lists all)."""
_ORDER: tuple[Outcome, ...] = ("rendered", "published", "exited", "weak", "timed out")


class Details(str):
    """Text shown as it is (a table): its repr in a notebook is the text, not a quoted string."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


@dataclass(frozen=True)
class FlushReport:
    """The result of a flush: one entry per target proc. Shown compactly ("16 ranks rendered,
    slowest 97 ms (rank 15)", and the procs that fell short); ``details()`` is the table of
    every proc, which a notebook also shows when the report is expanded."""

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

    @property
    def slowest(self) -> FlushEntry | None:
        """The entry that took longest (of those that completed), if any did."""
        timed = [e for e in self.entries if e.seconds is not None]
        return max(timed, key=lambda e: (e.seconds, -e.rank)) if timed else None

    def __getitem__(self, rank: int) -> FlushEntry:
        for e in self.entries:
            if e.rank == rank:
                return e
        raise KeyError(rank)

    def summary(self) -> str:
        """One line: how many procs reached what, and the slowest ("16 ranks rendered, slowest
        97 ms (rank 15)"; "14 ranks rendered, 2 timed out (ranks 3,7), slowest ...")."""
        by: dict[str, list[int]] = {}
        for e in self.entries:
            by.setdefault(e.outcome, []).append(e.rank)
        parts: list[str] = []
        for outcome in _ORDER:
            ranks = by.get(outcome)
            if not ranks:
                continue
            noun = ("rank " if len(ranks) == 1 else "ranks ") if not parts else ""
            what = f"{len(ranks)} {noun}{outcome}"
            if outcome not in FULL_OUTCOMES and outcome != "exited":
                what += f" ({'rank' if len(ranks) == 1 else 'ranks'} {compact_ranks(ranks)})"
            parts.append(what)
        slowest = self.slowest
        if slowest is not None and slowest.seconds is not None:
            parts.append(f"slowest {_ms(slowest.seconds)} (rank {slowest.rank})")
        return ", ".join(parts) if parts else "no procs"

    def _head(self) -> str:
        return f"FlushReport(barrier {self.version}: {'ok' if self.ok else 'INCOMPLETE'}" + (
            f"; {self.note})" if self.note else ")"
        )

    @staticmethod
    def _row(e: FlushEntry) -> str:
        took = f"{e.seconds * 1000:8.1f} ms" if e.seconds is not None else "       --   "
        return f"  rank {e.rank:>3}  {e.outcome:<10} {took}  {e.detail or _EXPLAIN[e.outcome]}"

    def details(self) -> Details:
        """The table of every proc: outcome, time, and what it means or why not further."""
        return Details("\n".join([self._head(), *(self._row(e) for e in self.entries)]))

    def __repr__(self) -> str:
        lines = [f"{self._head()} {self.summary()}"]
        shown = self.entries if len(self.entries) <= DETAILS_UP_TO else self.shortfalls
        lines += [self._row(e) for e in shown]
        if len(shown) < len(self.entries):
            lines.append("  report.details() lists every rank")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _repr_html_(self) -> str:
        """In a notebook: the head and summary, expandable to every proc's row (open when a
        proc fell short)."""
        summary = html.escape(f"{self._head()} {self.summary()}")
        return (
            f'<details class="ipylogfwd-report"{"" if self.ok else " open"}><summary>{summary}</summary>'
            f"<pre>{html.escape(str(self.details()))}</pre></details>"
        )
