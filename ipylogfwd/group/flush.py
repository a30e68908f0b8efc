"""The flush: one barrier across the procs of every proc set, from request to rendered.

1. The barrier is begun in the tracker for every target rank before anything can reach it.
2. Each proc set asks its live procs to mark it in their streams (``ProcSet.ask_flush``);
   procs already gone, or unable to take a request now, get the weaker barrier at once (the
   reader queues it behind everything readable now).
3. Procs that do not serve the request within ``serve_timeout`` get the weaker barrier too.
4. Once the tracker reports a rank published, the rank's view is waited for (its ack of the
   barrier), within the flush's timeout: "rendered".
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..pipeline.barrier import BarrierTracker, FlushEntry, FlushReport
from ..pipeline.sink import NOT_VIEWED, Sink, ViewedSink
from .procset import ProcSet

WEAK_RENDER_DETAIL = "did not serve the flush in time: what was read is rendered"


def flush(
    tracker: BarrierTracker,
    sets: Sequence[tuple[ProcSet, list[int]]],
    version: int,
    timeout: float,
    serve_timeout: float,
) -> FlushReport:
    """Barrier ``version`` on each set's ranks; never waits longer than ``timeout``."""
    started = time.monotonic()
    key = ("flush", version)
    tracker.begin(key, sorted(r for _, ranks in sets for r in ranks))
    asked: list[tuple[ProcSet, list[int]]] = []
    try:
        for procs, ranks in sets:
            got = procs.ask_flush(version, ranks)
            asked.append((procs, [r for r in ranks if r not in got.dead and r not in got.unasked]))
            if got.dead:
                # Everything a dead proc wrote is in its pipe now; a child of it may hold the
                # pipe open for long, so do not wait for the pipe's end.
                tracker.exited(key, got.dead)
            if got.dead or got.unasked:
                procs.weak_barrier(key, sorted(got.dead + got.unasked), max(0.1, timeout / 2))
        left = tracker.wait(key, serve_timeout)
        if left:
            remaining = timeout - (time.monotonic() - started)
            for procs, ranks in sets:
                mine = [r for r in left if r in ranks]
                if mine:
                    procs.weak_barrier(key, mine, max(0.1, remaining / 2))
            tracker.wait(key, timeout - (time.monotonic() - started))
    finally:
        report, sinks = tracker.finish(key)  # also when interrupted: stop tracking it
    report = _say_why_silent(report, sets)
    for procs, ranks in asked:
        unserved = [r for r in ranks if report[r].outcome in ("weak", "timed out")]
        if unserved:
            procs.flush_ended(version, unserved)
    return render_level(report, sinks, started, started + timeout)


def _say_why_silent(report: FlushReport, sets: Sequence[tuple[ProcSet, list[int]]]) -> FlushReport:
    """Timed-out entries say why, where their proc set knows (a host out of reach)."""
    owner = {r: procs for procs, ranks in sets for r in ranks}
    entries = []
    for e in report.entries:
        why = owner[e.rank].why_silent(e.rank) if e.outcome == "timed out" else ""
        entries.append(FlushEntry(e.rank, e.outcome, e.seconds, why) if why else e)
    return FlushReport(report.version, entries, report.note)


def render_level(report: FlushReport, sinks: dict[int, Sink], started: float, deadline: float) -> FlushReport:
    """Raise each published proc to "rendered" once its view acknowledges the barrier.

    Ranks are waited for one after another, but each one's time is from the flush's start
    to its own ack, so the report's times do not depend on the order of the waits.
    """
    entries, reasons = [], set()
    for e in report.entries:
        sink = sinks.get(e.rank)
        if e.outcome not in ("published", "weak") or sink is None:
            entries.append(e)
            continue
        if isinstance(sink, ViewedSink):
            outcome, acked_at = sink.render_wait(e.rank, report.version, deadline - time.monotonic())
        else:
            outcome, acked_at = NOT_VIEWED, None
        if outcome == "rendered" and acked_at is not None:
            took = acked_at - started
            if e.outcome == "weak":
                entries.append(FlushEntry(e.rank, "weak", took, WEAK_RENDER_DETAIL))
            else:
                entries.append(FlushEntry(e.rank, "rendered", took))
        else:
            reasons.add(outcome)
            entries.append(FlushEntry(e.rank, e.outcome, e.seconds, outcome))
    if len(reasons) == 1:
        # One reason for every proc: say it once, in the report's header.
        entries = [FlushEntry(e.rank, e.outcome, e.seconds) if e.detail in reasons else e for e in entries]
        return FlushReport(report.version, entries, f"not rendered: {reasons.pop()}")
    return FlushReport(report.version, entries, "not rendered everywhere" if reasons else "")
