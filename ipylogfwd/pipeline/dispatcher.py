"""The dispatcher: drains every proc's queue in order and hands the items to sinks.

The "ipylogfwd-dispatch" thread is the only consumer of the mailboxes. For each proc it
keeps which cell each stream currently belongs to (switched by the proc's in-band
``CellStart``), writes ``Log`` text and ``Display`` bundles to that cell's sink in the order
they came (a sink that cannot show bundles gets their text), and reports ``Barrier`` and ``Eof``
items to the barrier tracker, but only after the text before them has been published and
has left the process. That ordering is what makes a completed barrier mean "published".

Text that arrives together is published together (one message per cell and stream), and
when the output is light the thread lingers up to ``tick`` seconds to gather more, never
past a barrier, so flushes stay fast while message rates stay low.

Sinks live as long as output may still reach them: a cell's sink is kept while some proc's
stream is routed to the cell, and among the ``keep_cells`` newest cells (so a reloaded page
can replay their widgets); older ones are closed, which releases their backlogs. Cell 0 (the
procs' start-up output) stays until the dispatcher stops, which closes every sink.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict

from .barrier import BarrierTracker
from .items import STDERR, STDOUT, Barrier, CellStart, Display, Eof, Log
from .queues import Mailboxes
from .sink import CountingSink, DisplayingSink, ReplayingSink, Sink, TimedSink, ViewedSink

KEEP_CELLS = 20
PUBLISH_EARLY = 1 << 20
"""A sink holding more than this many characters is published at once, mid-drain (unless it
says otherwise, in a ``publish_early`` attribute): memory stays bounded, and a view gets a
flood in pieces it renders without long pauses."""


class Dispatcher:
    def __init__(
        self,
        mailboxes: Mailboxes,
        tracker: BarrierTracker,
        *,
        tick: float = 0.02,
        publish_timeout: float = 10.0,
        keep_cells: int = KEEP_CELLS,
    ) -> None:
        self._mailboxes = mailboxes
        self._tracker = tracker
        self._tick = tick
        self._publish_timeout = publish_timeout
        self._keep_cells = keep_cells
        # Callers register cells and ranks; the dispatch thread reads them, and alone evicts
        # cells and closes their sinks (sinks are only ever used from that thread). Both
        # tables, and the line counts that status reads, are guarded by _lock.
        self._lock = threading.Lock()
        self._sinks: OrderedDict[int, Sink] = OrderedDict()
        self._routes: dict[int, dict[int, int]] = {}
        self._line_counts: dict[int, list[int]] = {}
        self._deferred: dict[int, Sink] = {}  # dispatch thread only
        self._requests: queue.SimpleQueue[Sink] = queue.SimpleQueue()  # any thread -> dispatch
        self.error: BaseException | None = None
        self._stopping = False
        # The dispatch thread: sole consumer of the mailboxes, sole user of the sinks.
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-dispatch", daemon=True)
        self._thread.start()

    # --- requests from other threads ------------------------------------------------------
    def register_cell(self, cell: int, sink: Sink) -> None:
        """Output marked as belonging to ``cell`` goes to ``sink`` from now on."""
        if isinstance(sink, ReplayingSink):
            sink.attach(lambda: self.request_publish(sink))
        if isinstance(sink, CountingSink):
            sink.count_lines(self._add_lines)
        with self._lock:
            self._sinks[cell] = sink
        self._mailboxes.wake()  # the dispatch thread evicts older cells

    def start_rank(self, rank: int, cell: int) -> None:
        """A new proc at ``rank``: its output goes to ``cell`` until it marks another, and its
        line counts start from zero."""
        with self._lock:
            self._routes[rank] = {STDOUT: cell, STDERR: cell}
            self._line_counts[rank] = [0, 0, 0]

    def _add_lines(self, rank: int, stream: int, lines: int) -> None:
        """A counting sink's report (dispatch thread)."""
        with self._lock:
            self._line_counts.setdefault(rank, [0, 0, 0])[stream] += lines

    def line_counts(self, rank: int) -> tuple[int, int]:
        """Lines of ``rank``'s (stdout, stderr) dispatched so far."""
        with self._lock:
            counts = self._line_counts.get(rank, [0, 0, 0])
            return counts[STDOUT], counts[STDERR]

    def live_sinks(self) -> list[Sink]:
        """The sinks of the cells output may still reach, oldest first."""
        with self._lock:
            return list(self._sinks.values())

    def request_publish(self, sink: Sink) -> None:
        """Publish ``sink`` soon even if no output arrives (thread-safe)."""
        self._requests.put(sink)
        self._mailboxes.wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued, stop, and close every sink."""
        self._stopping = True
        self._mailboxes.wake()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            with self._lock:
                sinks, self._sinks = list(self._sinks.values()), OrderedDict()
            for sink in sinks:
                sink.close()

    # --- the dispatch thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                stopping = self._stopping
                got = self._mailboxes.wait(self._tick if self._deferred else 0.25)
                while not self._requests.empty():
                    sink = self._requests.get_nowait()
                    self._deferred[id(sink)] = sink
                if got:
                    self._dispatch_once()
                elif self._deferred:
                    self._publish(dict(self._deferred))
                elif stopping:
                    return
                self._evict()
        except BaseException as exc:  # surfaced through .error in the group's status
            self.error = exc
            raise

    def _dispatch_once(self) -> None:
        started = time.monotonic()
        touched: dict[int, Sink] = {}
        reached: list[tuple[int, Barrier, Sink, Sink]] = []  # rank, barrier, its sink, its stream's
        ended: list[tuple[int, int]] = []
        for rank, items in self._mailboxes.drain():
            with self._lock:
                route = self._routes.setdefault(rank, {STDOUT: 0, STDERR: 0})
            added = [0, 0, 0]  # lines written to sinks that do not count them
            # cell -> (its sink, the same if it takes timestamps, its publish_early, whether
            # it counts lines), looked up once per drain
            sinks: dict[int, tuple[Sink, TimedSink | None, int, bool]] = {}
            for item in items:
                if isinstance(item, Log):
                    cell = route[item.stream]
                    entry = sinks.get(cell) or sinks.setdefault(cell, self._entry(cell, rank))
                    sink, with_time, early, counting = entry
                    if with_time is not None:
                        with_time.write_at(rank, item.stream, item.text, item.at)
                    else:
                        sink.write(rank, item.stream, item.text)
                    touched[id(sink)] = sink
                    if not counting:
                        added[item.stream] += item.text.count("\n")
                    if sink.pending > early:
                        sink.publish()
                elif isinstance(item, Display):
                    cell = route[item.stream]
                    sink, _, _, _ = sinks.get(cell) or sinks.setdefault(cell, self._entry(cell, rank))
                    if isinstance(sink, DisplayingSink):
                        sink.display(rank, item)
                    elif not item.update:
                        sink.write(rank, item.stream, item.text + "\n")
                    touched[id(sink)] = sink
                elif isinstance(item, CellStart):
                    with self._lock:
                        route[item.stream] = item.cell
                elif isinstance(item, Barrier):
                    reached.append((rank, item, self._sink(route[STDOUT], rank), self._sink(route[item.stream], rank)))
                elif isinstance(item, Eof):
                    ended.append((rank, item.stream))
            with self._lock:
                counts = self._line_counts.setdefault(rank, [0, 0, 0])
                counts[STDOUT] += added[STDOUT]
                counts[STDERR] += added[STDERR]
        self._publish(touched)
        for rank, b, sink, own in reached:
            # What a sink left out before the barrier is noted before the barrier counts.
            if own.settle(rank, b.stream):
                own.sync(self._publish_timeout)
            completed = self._tracker.reach(rank, b.stream, b.key, b.weak, sink)
            if completed and b.key[0] == "flush" and isinstance(sink, ViewedSink):
                # Both streams are published up to the barrier: the view gets it behind them.
                sink.barrier(rank, b.key[1])
                sink.sync(self._publish_timeout)
        for rank, stream in ended:
            self._tracker.eof(rank, stream)
        if not reached and not ended and not self._stopping:
            self._mailboxes.linger(self._tick - (time.monotonic() - started))

    def _publish(self, sinks: dict[int, Sink]) -> None:
        for sink in sinks.values():
            sink.publish()
        for key, sink in sinks.items():
            sink.sync(self._publish_timeout)
            if sink.has_deferred():
                self._deferred[key] = sink
            else:
                self._deferred.pop(key, None)

    def _entry(self, cell: int, rank: int) -> tuple[Sink, TimedSink | None, int, bool]:
        """``cell``'s sink, the same again if it takes timestamps (else None), how many
        characters it may hold before it is published mid-drain, and whether it counts the
        lines written to it (``register_cell`` gave every counting sink its report)."""
        sink = self._sink(cell, rank)
        early = getattr(sink, "publish_early", PUBLISH_EARLY)
        return sink, sink if isinstance(sink, TimedSink) else None, early, isinstance(sink, CountingSink)

    def _sink(self, cell: int, rank: int) -> Sink:
        with self._lock:
            sink = self._sinks.get(cell)
            if sink is None or not sink.accepts(rank):
                # An evicted cell, or a sink without this rank: the group's first sink shows it.
                sink = self._sinks[0]
            return sink

    def _evict(self) -> None:
        """Close the sinks of cells that no stream is routed to, past the newest few."""
        with self._lock:
            if len(self._sinks) <= self._keep_cells + 1:
                return
            routed = {cell for route in self._routes.values() for cell in route.values()}
            newest = set(list(self._sinks)[-self._keep_cells :])
            gone = [c for c in self._sinks if c != 0 and c not in routed and c not in newest]
            closed = [self._sinks.pop(c) for c in gone]
        for sink in closed:
            self._deferred.pop(id(sink), None)
            sink.close()
