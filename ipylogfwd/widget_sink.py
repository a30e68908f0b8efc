"""The widget sink: a cell's proc output as one ``ProcWidget`` per proc.

The dispatcher thread writes text per rank and calls ``publish`` each tick; the sink sends
each widget at most one ``lines`` message per publish, holding back text when the kernel's
budget (``MessageBudget``, shared by every widget: messages per second for the server's IOPub
rate limit, lines per second for the page's rendering) is spent, so neither the server nor
the page is overrun however many procs print. What is held back is bounded: past
``max_lines`` lines per proc, the oldest are dropped from the view (they are in the log file)
and counted in the next message's ``dropped``.

Each widget also keeps a bounded backlog (the last ``max_lines`` lines) so that a view of a
reloaded page, or any view whose model asks, can be replayed to the current state in order.

``barrier(rank, version)`` sends the rank's held text and then a ``barrier`` message on the
same comm; the view acks it once the text before it is in the DOM. ``await_render`` waits
for that ack on the ``AckHub``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import protocol
from .acks import AckHub
from .queues import STDERR, STDOUT
from .sinks import iopub_sync
from .widgets import ProcsPanel, ProcWidget

DEFAULT_MAX_LINES = 2000
VIEW_GRACE = 2.0


class MessageBudget:
    """Token buckets for what widgets send, shared by every widget of the kernel: messages
    (the server's IOPub rate limit counts them), lines and characters (what the page must
    render: many short lines, or a few huge ones)."""

    def __init__(
        self,
        rate: float = 250.0,
        burst: float = 100.0,
        line_rate: float = 16_000.0,
        line_burst: float = 16_000.0,
        char_rate: float = 4 * 1024 * 1024,
        char_burst: float = 4 * 1024 * 1024,
    ) -> None:
        self.rate, self.burst = rate, burst
        self.line_rate, self.line_burst = line_rate, line_burst
        self.char_rate, self.char_burst = char_rate, char_burst
        self._tokens, self._lines, self._chars = burst, line_burst, char_burst
        self._stamp = time.monotonic()
        self._lock = threading.Lock()  # the dispatcher threads of several groups share it

    def take(self, lines: int, chars: int = 0) -> bool:
        """Spend one message, ``lines`` lines and ``chars`` characters if all are available now."""
        with self._lock:
            now = time.monotonic()
            elapsed, self._stamp = now - self._stamp, now
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._lines = min(self.line_burst, self._lines + elapsed * self.line_rate)
            self._chars = min(self.char_burst, self._chars + elapsed * self.char_rate)
            # A batch larger than a whole bucket may go once that bucket is full.
            cost, char_cost = min(lines, self.line_burst), min(chars, self.char_burst)
            if self._tokens >= 1.0 and self._lines >= cost and self._chars >= char_cost:
                self._tokens -= 1.0
                self._lines -= cost
                self._chars -= char_cost
                return True
            return False


BUDGET = MessageBudget()


DEFAULT_MAX_CHARS = 1 << 20


@dataclass
class _Tail:
    """Chunks of text holding at most about ``limit`` lines and ``max_chars`` characters,
    and how many lines were dropped."""

    limit: int
    max_chars: int = DEFAULT_MAX_CHARS
    chunks: deque[list[Any]] = field(default_factory=deque)  # [stream, text]
    lines: int = 0
    chars: int = 0
    dropped: int = 0

    def add(self, stream: int, text: str, newlines: int) -> None:
        if self.chunks and self.chunks[-1][0] == stream and not self.chunks[-1][1].endswith("\n"):
            self.chunks[-1][1] += text  # continue a partial line in place
        else:
            self.chunks.append([stream, text])
        self.lines += newlines
        self.chars += len(text)
        if self.lines > 2 * self.limit or self.chars > 2 * self.max_chars:
            self.trim()

    def trim(self) -> None:
        """Drop the oldest whole lines until at most ``limit`` lines and about ``max_chars``
        characters remain (one line longer than that keeps only its end)."""
        self._trim_lines()
        self._trim_chars()

    def _trim_chars(self) -> None:
        while self.chars > self.max_chars and self.chunks:
            stream, text = self.chunks[0]
            over = self.chars - self.max_chars
            # Whole lines from the front, through the first newline at or past the excess.
            cut = text.find("\n", over - 1)
            if 0 <= cut < len(text) - 1 or (cut == len(text) - 1 and len(self.chunks) > 1):
                n = text.count("\n", 0, cut + 1)
                if cut == len(text) - 1:
                    self.chunks.popleft()
                else:
                    self.chunks[0][1] = text[cut + 1 :]
                self.lines -= n
                self.dropped += n
                self.chars -= cut + 1
                continue
            if len(self.chunks) > 1:
                # The chunk is one line's end (or a partial line): it goes whole.
                n = text.count("\n")
                self.chunks.popleft()
                self.lines -= n
                self.dropped += n
                self.chars -= len(text)
                continue
            # One line longer than the budget (a huge line, a long run of \r redraws): keep its
            # end, from a \r where there is one, so a redrawn line still shows its last state.
            keep = text[-self.max_chars :]
            cr = keep.find("\r")
            if cr > 0:
                keep = keep[cr:]
            n = text.count("\n") - keep.count("\n")  # whole lines cut off before the kept end
            self.chunks[0][1] = keep
            self.chars = len(keep)
            self.lines -= n
            self.dropped += n

    def _trim_lines(self) -> None:
        excess = self.lines - self.limit
        while excess > 0 and self.chunks:
            stream, text = self.chunks[0]
            n = text.count("\n")
            if n <= excess:
                self.chunks.popleft()
                excess -= n
                self.lines -= n
                self.dropped += n
                self.chars -= len(text)
                if n == 0:
                    continue
            else:
                cut = -1
                for _ in range(excess):
                    cut = text.index("\n", cut + 1)
                self.chunks[0][1] = text[cut + 1 :]
                self.lines -= excess
                self.dropped += excess
                self.chars -= cut + 1
                excess = 0

    def take(self) -> tuple[int, list[list[Any]]]:
        chunks, dropped = list(self.chunks), self.dropped
        self.chunks.clear()
        self.lines = self.chars = self.dropped = 0
        return dropped, chunks


class WidgetSink:
    """One cell's proc widgets. ``write``/``publish``/``barrier`` run on the dispatcher thread;
    ``request_replay`` may come from any thread (it is queued for the dispatcher)."""

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
        self._pending = {r: _Tail(max_lines) for r in ranks}
        self._backlog = {r: _Tail(max_lines) for r in ranks}
        self._seq = dict.fromkeys(ranks, 0)
        self.counts = {r: [0, 0, 0] for r in ranks}  # dispatcher writes; status reads ints
        self._replays: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._request_publish: Callable[[], None] | None = None
        self._pending_chars = 0
        self.panel = ProcsPanel([self.widgets[r] for r in ranks])
        hub.on_hello(self._on_hello)
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
        return not self._replays.empty() or any(t.chunks or t.dropped for t in self._pending.values())

    def attach(self, request_publish: Callable[[], None]) -> None:
        """The dispatcher's way to be asked for a publish (a replay) when no output comes."""
        self._request_publish = request_publish

    def write(self, rank: int, stream: int, text: str) -> None:
        newlines = text.count("\n")
        self._pending[rank].add(stream, text, newlines)
        self.counts[rank][stream] += newlines
        self._pending_chars += len(text)

    def publish(self) -> None:
        while True:
            try:
                rank = self._replays.get_nowait()
            except queue.Empty:
                break
            self._send_replay(rank)
        for rank, tail in self._pending.items():
            if (tail.chunks or tail.dropped) and self._budget.take(tail.lines, tail.chars):
                self._send_lines(rank)
        self._pending_chars = sum(len(c[1]) for t in self._pending.values() for c in t.chunks)

    def settle(self, rank: int, stream: int) -> bool:
        return False  # held text goes out with the barrier itself, on the same comm

    def barrier(self, rank: int, version: int) -> None:
        """Send the rank's held text, then barrier ``version`` behind it."""
        if rank not in self.widgets:
            return
        tail = self._pending[rank]
        if tail.chunks or tail.dropped:
            self._send_lines(rank)
        self._seq[rank] += 1
        self.widgets[rank].send(protocol.barrier(self._seq[rank], version))

    def sync(self, timeout: float) -> bool:
        return iopub_sync(self.hub.kernel.iopub_socket, timeout)

    def model_id(self, rank: int) -> str | None:
        w = self.widgets.get(rank)
        return None if w is None else str(w.model_id)

    def update_status(self, rank: int, *, state: str, exit_text: str, pid: int | None, last_heard: float) -> None:
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
        self.hub.remove_hello_listener(self._on_hello)

    # --- internals (dispatcher thread) -----------------------------------------------------
    def _send_lines(self, rank: int) -> None:
        tail = self._pending[rank]
        dropped, chunks = tail.take()
        backlog = self._backlog[rank]
        backlog.dropped += dropped
        for stream, text in chunks:
            backlog.add(stream, text, text.count("\n"))
        backlog.trim()
        self._seq[rank] += 1
        self.widgets[rank].send(protocol.lines(self._seq[rank], dropped, [(s, t) for s, t in chunks]))

    def _send_replay(self, rank: int) -> None:
        backlog = self._backlog[rank]
        self._seq[rank] += 1
        chunks = [(s, t) for s, t in backlog.chunks]
        self.widgets[rank].send(protocol.replay(self._seq[rank], backlog.dropped, chunks))

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
