"""The dispatcher: drains every proc's queue in order and hands the items to sinks.

The "ipylogfwd-dispatch" thread is the only consumer of the mailboxes. For each proc it
keeps which cell each stream currently belongs to (switched by the proc's in-band
``CellStart``), writes ``Log`` text to that cell's sink, and reports ``Barrier`` and ``Eof``
items to the barrier tracker, but only after the text before them has been published and
has left the process. That ordering is what makes a completed barrier mean "published".

Text that arrives together is published together (one message per cell and stream), and
when the output is light the thread lingers up to ``tick`` seconds to gather more, never
past a barrier, so flushes stay fast while message rates stay low.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict

from .barrier import BarrierTracker
from .queues import STDERR, STDOUT, Barrier, BarrierKey, CellStart, Eof, Log, Mailboxes
from .sinks import Sink

MAX_CELLS = 1000
PUBLISH_EARLY = 1 << 20


class Dispatcher:
    def __init__(
        self,
        mailboxes: Mailboxes,
        tracker: BarrierTracker,
        *,
        tick: float = 0.02,
        publish_timeout: float = 10.0,
    ) -> None:
        self._mailboxes = mailboxes
        self._tracker = tracker
        self._tick = tick
        self._publish_timeout = publish_timeout
        # Cells are registered by callers and read by the dispatch thread: guarded by _lock.
        self._lock = threading.Lock()
        self._sinks: OrderedDict[int, Sink] = OrderedDict()
        self._routes: dict[int, dict[int, int]] = {}
        # Which sink each completed flush barrier went to, for the flush to wait on its view.
        self._barrier_sinks: dict[tuple[BarrierKey, int], Sink] = {}
        self._deferred: dict[int, Sink] = {}  # dispatch thread only
        self._requests: queue.SimpleQueue[Sink] = queue.SimpleQueue()  # any thread -> dispatch
        # Written only by the dispatch thread; other threads read single ints (status).
        self.lines: dict[int, list[int]] = {}
        self.error: BaseException | None = None
        self._stopping = False
        # The dispatch thread: sole consumer of the mailboxes, sole writer to sinks.
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-dispatch", daemon=True)
        self._thread.start()

    def register_cell(self, cell: int, sink: Sink) -> None:
        """Output marked as belonging to ``cell`` goes to ``sink`` from now on."""
        attach = getattr(sink, "attach", None)
        if attach is not None:
            attach(lambda: self.request_publish(sink))
        with self._lock:
            self._sinks[cell] = sink
            if len(self._sinks) > MAX_CELLS:
                # Cell 0 (where the procs started) stays: it is the fallback for evicted cells.
                oldest = next(c for c in self._sinks if c != 0)
                del self._sinks[oldest]

    def start_rank(self, rank: int, cell: int) -> None:
        """A new proc at ``rank``: its output goes to ``cell`` until it marks another."""
        with self._lock:
            self._routes[rank] = {STDOUT: cell, STDERR: cell}
        self.lines[rank] = [0, 0, 0]

    def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued, then stop."""
        self._stopping = True
        self._mailboxes.wake()
        self._thread.join(timeout)

    def request_publish(self, sink: Sink) -> None:
        """Publish ``sink`` soon even if no output arrives (thread-safe)."""
        self._requests.put(sink)
        self._mailboxes.wake()

    def sink_of(self, key: BarrierKey, rank: int) -> Sink | None:
        """The sink that barrier ``key`` of ``rank`` was delivered to (and forget it)."""
        with self._lock:
            return self._barrier_sinks.pop((key, rank), None)

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
        except BaseException as exc:  # surfaced through .error in the group's status
            self.error = exc
            raise

    def _dispatch_once(self) -> None:
        started = time.monotonic()
        touched: dict[int, Sink] = {}
        reached: list[Barrier] = []
        ended: list[tuple[int, int]] = []
        barrier_ranks: list[int] = []
        barrier_sinks: list[Sink] = []
        stream_sinks: list[Sink] = []  # the sink of each barrier's own stream
        for rank, items in self._mailboxes.drain():
            with self._lock:
                route = self._routes.setdefault(rank, {STDOUT: 0, STDERR: 0})
            counts = self.lines.setdefault(rank, [0, 0, 0])
            sinks: dict[int, Sink] = {}  # cell -> sink, looked up once per drain, not per item
            for item in items:
                if isinstance(item, Log):
                    cell = route[item.stream]
                    sink = sinks.get(cell) or sinks.setdefault(cell, self._sink(cell, rank))
                    sink.write(rank, item.stream, item.text)
                    touched[id(sink)] = sink
                    counts[item.stream] += item.newlines
                    if sink.pending > PUBLISH_EARLY:
                        sink.publish()
                elif isinstance(item, CellStart):
                    route[item.stream] = item.cell
                elif isinstance(item, Barrier):
                    reached.append(item)
                    barrier_ranks.append(rank)
                    barrier_sinks.append(self._sink(route[STDOUT], rank))
                    stream_sinks.append(self._sink(route[item.stream], rank))
                elif isinstance(item, Eof):
                    ended.append((rank, item.stream))
        self._publish(touched)
        for rank, b, sink, own in zip(barrier_ranks, reached, barrier_sinks, stream_sinks):
            # What a sink left out before the barrier is noted before the barrier counts.
            if own.settle(rank, b.stream):
                own.sync(self._publish_timeout)
            if self._tracker.reach(rank, b.stream, b.key, b.weak) and b.key[0] == "flush":
                # Both streams are published up to the barrier: the view gets it behind them.
                with self._lock:
                    self._barrier_sinks[(b.key, rank)] = sink
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

    def _sink(self, cell: int, rank: int) -> Sink:
        with self._lock:
            sink = self._sinks.get(cell)
            if sink is None or not sink.accepts(rank):
                # An evicted cell, or a sink without this rank: the group's first sink shows it.
                sink = self._sinks[0]
            return sink
