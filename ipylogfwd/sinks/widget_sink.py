"""The widget sink: a cell's proc output as one ``ProcWidget`` per proc.

The dispatcher thread writes text per rank and calls ``publish`` each tick; the sink sends
each widget at most one ``lines`` message per publish, holding back text when the kernel's
budget (``MessageBudget``, shared by every widget: messages per second for the server's IOPub
rate limit, lines per second for the page's rendering) is spent, so neither the server nor
the page is overrun however many procs print. What is held back is bounded: past
``max_lines`` lines per proc, the oldest are dropped from the view (they are in the log file)
and counted in the next message's ``dropped``.

A proc's display bundles go into the same messages, in order with its text (a chunk of their
own, see ``wire.view_messages``); the view renders them with JupyterLab's rendermime. They
count as lines, and their bytes against the budget's characters; held back and kept, they are
bounded too (``tails.Tail``).

Each widget also keeps a bounded backlog (the last ``max_lines`` lines) so that a view of a
reloaded page, or any view whose model asks, can be replayed to the current state in order.

``barrier(rank, version)`` sends the rank's held text and then a ``barrier`` message on the
same comm; the view acks it once the text before it is in the DOM. ``render_wait`` waits
for that ack on the ``AckHub``.

A closed sink (its cell can get no more output, see the dispatcher) drops its backlogs and
stops listening for hellos; its widgets stay displayed with what they show.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any, Literal

from ..pipeline.items import STDERR, STDOUT, Display
from ..pipeline.sink import LineReport, ignore_lines
from ..wire import view_messages
from .acks import AckHub
from .kernel import iopub_sync
from .tails import BUDGET, DEFAULT_MAX_LINES, MessageBudget, Tail
from .widgets import ProcsPanel, ProcWidget

VIEW_GRACE = 2.0


def _wire(chunk: list[Any]) -> view_messages.Chunk:
    """A tail's chunk as a message carries it: (stream or DISPLAY, text or bundle, when the
    kernel read it, to the millisecond)."""
    return (chunk[0], chunk[1], round(chunk[2], 3))


class WidgetSink:
    """One cell's proc widgets. Every method runs on the dispatcher thread, except
    ``update_status`` (the status thread: it only sets widget traits), ``render_wait`` (the
    flushing thread: it only waits on the hub) and the hello listener (a kernel thread: it
    only queues a replay for the dispatcher)."""

    def __init__(
        self,
        ranks: list[int],
        hub: AckHub,
        *,
        pids: dict[int, int | None],
        log_paths: dict[int, list[str]],
        max_lines: int = DEFAULT_MAX_LINES,
        display: Callable[[Any], None] | None = None,
        budget: MessageBudget = BUDGET,
        started: float = 0.0,
        timestamps: str = "off",
        view: str | None = None,
    ) -> None:
        self.hub = hub
        self.max_lines = max_lines
        self._budget = budget
        self.widgets: dict[int, ProcWidget] = {
            r: ProcWidget(
                rank=r,
                pid=pids.get(r) or 0,
                state="running",
                log_paths=log_paths.get(r, []),
                max_lines=max_lines,
                ack_route=hub.route,
            )
            for r in ranks
        }
        self._by_model = {w.model_id: r for r, w in self.widgets.items()}
        self._pending = {r: Tail(max_lines) for r in ranks}
        self._backlog = {r: Tail(max_lines) for r in ranks}
        self._seq = dict.fromkeys(ranks, 0)
        self.counts = {r: [0, 0, 0] for r in ranks}  # dispatcher writes; status reads ints
        self._replays: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._request_publish: Callable[[], None] | None = None
        self._report_lines: LineReport = ignore_lines
        self._pending_chars = 0
        self.panel = ProcsPanel(
            [self.widgets[r] for r in ranks], started=started or time.time(), timestamps=timestamps, mode=view
        )
        self._closed = False
        hub.watch([str(w.model_id) for w in self.widgets.values()], self._on_hello)
        if display is None:
            from IPython.display import display as ipy_display

            display = ipy_display
        display(self.panel)

    @property
    def pending(self) -> int:
        return self._pending_chars

    def accepts(self, rank: int) -> bool:
        return rank in self.widgets

    def has_deferred(self) -> bool:
        """True if text is held back for lack of message budget (publish again soon)."""
        if self._closed:
            return False
        return not self._replays.empty() or any(t.chunks or t.dropped for t in self._pending.values())

    def attach(self, request_publish: Callable[[], None]) -> None:
        """The dispatcher's way to be asked for a publish (a replay) when no output comes."""
        self._request_publish = request_publish

    def write(self, rank: int, stream: int, text: str) -> None:
        self.write_at(rank, stream, text, time.time())

    def write_at(self, rank: int, stream: int, text: str, at: float) -> None:
        newlines = text.count("\n")
        self._pending[rank].add(stream, text, newlines, at)
        self.counts[rank][stream] += newlines
        self._pending_chars += len(text)
        self._report_lines(rank, stream, newlines)

    def count_lines(self, report: LineReport) -> None:
        self._report_lines = report

    def display(self, rank: int, bundle: Display) -> None:
        kind: Literal["display", "result"] = "result" if bundle.kind == "result" else "display"
        piece = view_messages.display_data(kind, bundle.data, bundle.metadata, bundle.display_id, bundle.update)
        self._pending[rank].add_display(dict(piece), bundle.size, bundle.at)
        self._pending_chars += bundle.size

    def publish(self) -> None:
        if self._closed:
            return
        while True:
            try:
                rank = self._replays.get_nowait()
            except queue.Empty:
                break
            self._send_replay(rank)
        for rank, tail in self._pending.items():
            if (tail.chunks or tail.dropped) and self._budget.take(tail.lines, tail.chars + tail.display_bytes):
                self._send_lines(rank)
        self._pending_chars = sum(t.chars + t.display_bytes for t in self._pending.values())

    def settle(self, rank: int, stream: int) -> bool:
        return False  # held text goes out with the barrier itself, on the same comm

    def barrier(self, rank: int, version: int) -> None:
        """Send the rank's held text, then barrier ``version`` behind it."""
        if rank not in self.widgets or self._closed:
            return
        tail = self._pending[rank]
        if tail.chunks or tail.dropped:
            self._send_lines(rank)
        self._seq[rank] += 1
        self.widgets[rank].send(view_messages.barrier(self._seq[rank], version))

    def sync(self, timeout: float) -> bool:
        return iopub_sync(self.hub.kernel.iopub_socket, timeout)

    def model_id(self, rank: int) -> str | None:
        w = self.widgets.get(rank)
        return None if w is None else str(w.model_id)

    def update_status(
        self, rank: int, *, state: str, exit_text: str, pid: int | None, last_heard: float, host: str = ""
    ) -> None:
        """Refresh a widget's header (from the group's control thread)."""
        w = self.widgets.get(rank)
        if w is None:
            return
        counts = self.counts[rank]
        changes: dict[str, Any] = {}
        for name, value in (
            ("state", state),
            ("exit_text", exit_text),
            ("pid", pid or 0),
            ("host", host),
            ("stdout_lines", counts[STDOUT]),
            ("stderr_lines", counts[STDERR]),
        ):
            if getattr(w, name) != value:
                changes[name] = value
        if last_heard and abs(w.last_heard - last_heard) >= 1.0:
            changes["last_heard"] = last_heard
        if changes:
            with w.hold_sync():
                for name, value in changes.items():
                    setattr(w, name, value)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.hub.unwatch([str(w.model_id) for w in self.widgets.values()])
        for tails in (self._pending, self._backlog):
            for rank in tails:
                tails[rank] = Tail(self.max_lines)
        self._pending_chars = 0

    # --- internals (dispatcher thread) -----------------------------------------------------
    def _send_lines(self, rank: int) -> None:
        tail = self._pending[rank]
        dropped, chunks = tail.take()
        backlog = self._backlog[rank]
        backlog.dropped += dropped
        for chunk in chunks:
            if chunk[0] == view_messages.DISPLAY:
                backlog.add_display(chunk[1], chunk[3], chunk[2], keep_orphan_update=False)
            else:
                backlog.add(chunk[0], chunk[1], chunk[1].count("\n"), chunk[2])
        backlog.trim()
        self._seq[rank] += 1
        self.widgets[rank].send(view_messages.lines(self._seq[rank], dropped, [_wire(c) for c in chunks]))

    def _send_replay(self, rank: int) -> None:
        backlog = self._backlog[rank]
        self._seq[rank] += 1
        chunks = [_wire(c) for c in backlog.chunks]
        self.widgets[rank].send(view_messages.replay(self._seq[rank], backlog.dropped, chunks))

    def _on_hello(self, model_id: str, seq: int) -> None:
        # On a kernel thread: only queue the request; the dispatcher sends the replay in
        # order with everything else on that comm.
        rank = self._by_model.get(model_id)
        if rank is not None and seq < self._seq[rank]:
            self._replays.put(rank)
            if self._request_publish is not None:
                self._request_publish()

    def render_wait(self, rank: int, version: int, timeout: float) -> tuple[str, float | None]:
        """Wait for rank's view to ack ``version``: ("rendered", when the ack arrived, on
        ``time.monotonic()``) or (reason, None)."""
        model = self.model_id(rank)
        if model is None:
            return "no widget for this proc in its cell", None
        start = time.monotonic()
        # A frontend that answers live will show this widget: give its view a moment to say
        # hello. Without one (page closed, views not live), do not wait the whole timeout.
        grace = min(VIEW_GRACE, timeout) if self.hub.live_seen else 0.0
        if not self.hub.wait_live_view(model, grace):
            return "no view of this proc's widget can answer while a cell runs", None
        done = self.hub.wait_acks([model], version, timeout - (time.monotonic() - start))
        if model in done:
            return "rendered", done[model]
        # One text for every rank (the waits share the flush's deadline), so the report can
        # say it once.
        return "its view did not acknowledge before the flush's timeout", None
