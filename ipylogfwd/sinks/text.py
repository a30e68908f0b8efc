"""Text sinks: a cell's proc output as rank-prefixed text (``pipeline.sink.Sink``).

The dispatcher writes each proc's text into the sink in per-proc, per-stream order and then
publishes it: all the text gathered since the last publish goes out as one message per
stream, which keeps the message rate low however fast procs print.

The text sinks prefix each line with the proc's rank. A partial line (released at a barrier
or when its stream went quiet) is shown as it is; if the same rank continues it, the rest
follows on the same line, and if another rank writes first, the partial line is ended so
that ranks never share a line. A line redrawn with ``\\r`` (a progress bar) is shown apart,
labelled, and redrawn in place where the frontend can (``progress``).

With ``timestamps`` ("absolute" or "relative"), each line's prefix also says when the kernel
read it: ``[3 14:02:07.123]`` (time of day) or ``[3 +1.250s]`` (since the sink was made,
i.e. the cell started).

A proc's display bundles (``display()``, rich results) are shown in order with its stdout
text: a line with the rank (``[2] display:``, or ``[2] Out:`` for a cell's last expression),
then, on IOPub, the bundle as a ``display_data`` message (an update as
``update_display_data``), elsewhere its ``text/plain``. Bundles are not held to the text limit
(a server counts only stream messages' bytes against its data rate) and never left out.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..pipeline.items import STDERR, STDOUT, STREAM_NAMES, Display
from ..pipeline.sink import LineReport, ignore_lines
from .elision import TEXT_BUDGET, Elided, TextBudget
from .kernel import iopub_sync
from .prefixes import Lines
from .progress import Bar, Bars

NOTE_INTERVAL = 1.0
BAR_INTERVAL = 1.0  # a bar printed as lines: its latest state at most this often
REDRAW_INTERVAL = 0.2  # a bar redrawn in place: at most this often (its last state always)

Entry = str | Display
Part = str | tuple[int, Display]  # text to emit, or (rank, bundle) to display


def _chars(out: dict[int, list[Part]]) -> int:
    """Characters of text in ``out`` (bundles are not held to the text limit)."""
    return sum(len(part) for parts in out.values() for part in parts if isinstance(part, str))


class TextSink:
    """Rank-prefixed text per stream; subclasses say where published text goes.

    With a ``TextBudget``, text past it is left out and counted (see ``elision``): each
    proc's note says how many lines, where its full log is, and shows the last few.
    """

    def __init__(
        self,
        budget: TextBudget | None = None,
        log_paths: dict[int, list[str]] | None = None,
        timestamps: str | None = None,
    ) -> None:
        # per stream: (rank, text or bundle, when read, whether the text's lines are reported
        # when it is published or left out)
        self._batch: dict[int, list[tuple[int, Entry, float, bool]]] = {STDOUT: [], STDERR: []}
        self._report_lines: LineReport = ignore_lines
        self._lines = Lines(timestamps)
        self._pending = 0
        self._budget = budget
        self._log_paths = log_paths or {}
        self._clock = budget.clock if budget is not None else time.monotonic
        self._eliding = False
        self._last_note = 0.0
        self._elided: dict[tuple[int, int], Elided] = {}
        self._bars = Bars()
        self._bar: dict[tuple[int, int], Bar] = {}  # the bar each (rank, stream) redraws now
        self._showing: list[Bar] = []  # bars whose state may still have to be shown
        self._bar_count = 0

    publish_early = 4 << 20
    """Publish mid-drain past this many characters (the dispatcher's default is 1 MiB). Under a
    flood each stream message cost the kernel about 0.7 ms besides its text, so fewer, larger
    messages leave more of the cpus to the procs; a widget view, which renders each message
    as it comes, keeps the smaller pieces."""

    @property
    def pending(self) -> int:
        """Characters written but not yet published (without the prefixes they will get)."""
        return self._pending

    def count_lines(self, report: LineReport) -> None:
        self._report_lines = report

    def accepts(self, rank: int) -> bool:
        return True

    def has_deferred(self) -> bool:
        # While leaving text out, publish again soon: notes are due even if procs go quiet.
        return self._eliding

    def close(self) -> None:
        self._elided.clear()

    def write(self, rank: int, stream: int, text: str) -> None:
        self.write_at(rank, stream, text, time.time())

    def write_at(self, rank: int, stream: int, text: str, at: float) -> None:
        key = (rank, stream)
        if "\r" not in text and not self._bars.live(key):
            self._add(rank, stream, text, at, report=True)
            return
        # A bar's states are shown apart from its text: the lines are those of the text written.
        self._report_lines(rank, stream, text.count("\n"))
        for kind, piece in self._bars.split(key, text):
            if kind == "text":
                self._add(rank, stream, piece, at)
                continue
            bar = self._bar.get(key)
            if bar is None:
                if self._lines.open[stream] == rank:
                    self._add(rank, stream, "\n", at)  # the bar starts on a line of its own
                self.publish()  # what came before the bar shows before it
                self._bar_count += 1
                bar = self._bar[key] = Bar(rank, stream, self._bar_count)
                self._showing.append(bar)
            bar.state = piece
            if kind == "end":
                bar.ended = True
                del self._bar[key]
            if bar.shown is None or bar.ended:
                self._show_due(force=True, only=bar)  # a bar's first and last states, at once

    def _add(self, rank: int, stream: int, text: str, at: float, report: bool = False) -> None:
        self._batch[stream].append((rank, text, at, report))
        self._pending += len(text)

    def display(self, rank: int, bundle: Display) -> None:
        self._batch[bundle.stream].append((rank, bundle, bundle.at, False))

    def publish(self) -> None:
        if self._eliding and self._budget is not None and self._budget.recovered():
            self._resume()
        out: dict[int, list[Part]] | None = None
        if not self._eliding:
            opened = dict(self._lines.open)
            out, lines = self._format_batch()
            if self._budget is not None and not self._budget.take(_chars(out)):
                self._lines.open = opened  # none of it is shown: the lines stay as they were
                out = None
            else:
                for (rank, stream), n in lines.items():
                    self._report_lines(rank, stream, n)
        if out is None:
            bundles = self._leave_out()
            out = {STDOUT: [], STDERR: []}
            for stream, notes in self._notes_if_due().items():
                out[stream].extend(notes)
            for stream, rank, bundle in bundles:
                out[stream].extend(self._format_bundle(rank, stream, bundle, None))
        self._clear()
        self._emit_all(out)
        self._show_due()

    def settle(self, rank: int, stream: int) -> bool:
        """Before a barrier of ``rank`` on ``stream``: show what was left out of it so far,
        so that the barrier follows its note. True if anything was published."""
        published = any(self._batch.values())
        if published:
            self.publish()
        published = self._show_due(force=True, rank=rank) or published
        record = self._elided.pop((rank, stream), None)
        if not record:
            return published
        parts = self._note(rank, stream, record)
        partial = record.take_partial()
        if partial:
            parts.append(self._lines.format(rank, stream, partial))
        self._budget_spend(parts)
        self._emit_all({stream: parts})
        return True

    def sync(self, timeout: float) -> bool:
        """Wait until published text has left this process; False if not within ``timeout``."""
        return True

    def _emit(self, name: str, text: str) -> None:
        raise NotImplementedError

    def _emit_display(self, rank: int, bundle: Display) -> None:
        """Show a bundle (after its label): here its text, rank-prefixed."""
        if not bundle.update:
            lines = bundle.text.splitlines() or [""]
            self._emit(STREAM_NAMES[bundle.stream], "".join(f"[{rank}] {line}\n" for line in lines))

    # --- progress bars -----------------------------------------------------------------------
    redraw_interval = BAR_INTERVAL

    def _show_due(self, *, force: bool = False, rank: int | None = None, only: Bar | None = None) -> bool:
        """Show the bars whose state changed and is due (all of them, or ``rank``'s, if
        ``force``); True if any was shown."""
        now = self._clock()
        shown = False
        for bar in [only] if only is not None else list(self._showing):
            if rank is not None and bar.rank != rank:
                continue
            due = force or bar.ended or now - bar.shown_at >= self.redraw_interval
            if bar.due and due:
                self._show_bar(bar, bar.shown is None)
                self._budget_spend([bar.state])
                bar.shown, bar.shown_at, shown = bar.state, now, True
            if bar.ended and not bar.due and bar in self._showing:
                self._showing.remove(bar)
        return shown

    def _show_bar(self, bar: Bar, new: bool) -> None:
        """Show ``bar``'s state, labelled with its rank: here, as a line of its stream."""
        self._emit(STREAM_NAMES[bar.stream], self._lines.format(bar.rank, bar.stream, bar.state + "\n"))

    # --- formatting --------------------------------------------------------------------------
    def _format_batch(self) -> tuple[dict[int, list[Part]], dict[tuple[int, int], int]]:
        """The batch as parts to emit per stream, and the lines of its texts to report."""
        out: dict[int, list[Part]] = {}
        lines: dict[tuple[int, int], int] = {}
        for stream, batch in self._batch.items():
            parts = out[stream] = []
            for rank, entry, at, report in batch:
                if not isinstance(entry, str):
                    parts.extend(self._format_bundle(rank, stream, entry, at))
                    continue
                head, body, n = self._lines.text(rank, stream, entry, at)
                parts += (head, body)  # joined once, with the rest of the publish
                if report:
                    lines[rank, stream] = lines.get((rank, stream), 0) + n
        return out, lines

    def _format_bundle(self, rank: int, stream: int, bundle: Display, at: float | None) -> list[Part]:
        if bundle.update:
            return [(rank, bundle)]  # it replaces a bundle shown earlier, in place
        label = f"{self._lines.prefix(rank, at)}{'Out' if bundle.kind == 'result' else 'display'}:\n"
        return [self._lines.end(stream) + label, (rank, bundle)]

    def _clear(self) -> None:
        for batch in self._batch.values():
            batch.clear()
        self._pending = 0

    def _emit_all(self, out: dict[int, list[Part]] | dict[int, list[str]]) -> None:
        for stream, parts in out.items():
            text: list[str] = []
            for part in parts:
                if isinstance(part, str):
                    text.append(part)
                    continue
                if text:
                    self._emit(STREAM_NAMES[stream], "".join(text))
                    text.clear()
                self._emit_display(*part)
            if text:
                self._emit(STREAM_NAMES[stream], "".join(text))

    # --- leaving text out --------------------------------------------------------------------
    def _leave_out(self) -> list[tuple[int, int, Display]]:
        """Leave the batch's text out (counted); its bundles, which are never left out."""
        if not self._eliding:
            self._eliding = True
            self._last_note = self._clock()
        bundles = []
        for stream, batch in self._batch.items():
            for rank, entry, _, report in batch:
                if not isinstance(entry, str):
                    bundles.append((stream, rank, entry))
                    continue
                record = self._elided.get((rank, stream))
                if record is None:
                    record = self._elided[(rank, stream)] = Elided()
                lines = record.add(entry)
                if report:
                    self._report_lines(rank, stream, lines)
        return bundles

    def _notes_if_due(self) -> dict[int, list[str]]:
        """Each proc's note, about once a second while text is left out."""
        now = self._clock()
        if now - self._last_note < NOTE_INTERVAL:
            return {}
        self._last_note = now
        out: dict[int, list[str]] = {STDOUT: [], STDERR: []}
        for (rank, stream), record in sorted(self._elided.items()):
            if record.lines:
                out[stream].extend(self._note(rank, stream, record))
        self._budget_spend(out[STDOUT] + out[STDERR])
        return out

    def _resume(self) -> None:
        """The budget allows text again: the last notes, then each line in progress, so the
        text that follows continues it."""
        self._eliding = False
        out: dict[int, list[str]] = {STDOUT: [], STDERR: []}
        for (rank, stream), record in sorted(self._elided.items()):
            out[stream].extend(self._note(rank, stream, record))
            partial = record.take_partial()
            if partial:
                out[stream].append(self._lines.format(rank, stream, partial))
        self._elided.clear()
        self._budget_spend(out[STDOUT] + out[STDERR])
        self._emit_all(out)

    def _note(self, rank: int, stream: int, record: Elided) -> list[str]:
        """Lines saying what was left out of ``rank``'s ``stream``, then its last lines."""
        hidden, tail = record.take_lines()
        if not hidden and not tail:
            return []
        parts = [self._lines.end(stream)]
        prefix = f"[{rank}] "
        if hidden:
            limit = self._budget.describe() if self._budget is not None else "a limit"
            paths = [p for p in self._log_paths.get(rank, []) if p.endswith(f".{STREAM_NAMES[stream]}.log")]
            where = f"; full log: {paths[0]}" if paths else ""
            s = "" if hidden == 1 else "s"
            parts.append(f"{prefix}… {hidden:,} line{s} not shown (text output is limited to {limit}{where})\n")
        parts.extend(f"{prefix}{line}\n" for line in tail)
        return parts

    def _budget_spend(self, parts: list[str]) -> None:
        if self._budget is not None:
            self._budget.spend(sum(map(len, parts)))


class StdioTextSink(TextSink):
    """Publishes to this process's stdout/stderr (plain Python, terminal IPython)."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, timestamps: str | None = None) -> None:
        super().__init__(timestamps=timestamps)
        self._streams = {"stdout": out or sys.stdout, "stderr": err or sys.stderr}

    def _emit(self, name: str, text: str) -> None:
        stream = self._streams[name]
        stream.write(text)
        stream.flush()


class IOPubTextSink(TextSink):
    """Publishes ``stream`` messages on the kernel's IOPub channel, as output of one cell."""

    def __init__(
        self,
        kernel: Any,
        parent: dict[str, Any],
        log_paths: dict[int, list[str]] | None = None,
        budget: TextBudget | None = TEXT_BUDGET,
        timestamps: str | None = None,
    ) -> None:
        # The budget keeps a server between the kernel and the browser from dropping output.
        super().__init__(budget, log_paths, timestamps)
        self._session = kernel.session
        self._socket = kernel.iopub_socket
        self.parent = parent
        self._ids = f"ipylogfwd-bar-{id(self):x}"

    def _emit(self, name: str, text: str) -> None:
        self._session.send(
            self._socket,
            "stream",
            {"name": name, "text": text},
            parent=self.parent,
            ident=b"stream." + name.encode(),
        )

    def _emit_display(self, rank: int, bundle: Display) -> None:
        metadata = {**bundle.metadata, "ipylogfwd": {"rank": rank, "kind": bundle.kind}}
        transient = {"display_id": bundle.display_id} if bundle.display_id else {}
        msg_type = "update_display_data" if bundle.update else "display_data"
        content = {"data": bundle.data, "metadata": metadata, "transient": transient}
        self._session.send(self._socket, msg_type, content, parent=self.parent, ident=msg_type.encode())

    def sync(self, timeout: float) -> bool:
        return iopub_sync(self._socket, timeout)

    # A display with an id can be redrawn in place (update_display_data): every Jupyter
    # frontend does, nbconvert/nbclient too.
    redraw_interval = REDRAW_INTERVAL

    def _show_bar(self, bar: Bar, new: bool) -> None:
        content = {
            "data": {"text/plain": f"[{bar.rank}] {bar.state}"},
            "metadata": {},
            "transient": {"display_id": f"{self._ids}-{bar.number}"},
        }
        self._session.send(
            self._socket,
            "display_data" if new else "update_display_data",
            content,
            parent=self.parent,
            ident=b"display_data",
        )
