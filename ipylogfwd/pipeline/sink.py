"""The sink protocol: what the dispatcher needs of the place a cell's output is shown.

A sink belongs to one cell. Every sink can take text and publish it (``Sink``). Some can do
more, and say so by implementing one of the ability protocols below; callers test for an
ability with ``isinstance`` (the protocols are runtime-checkable), never by probing for
attributes:

* ``ViewedSink``: the output has views that acknowledge barriers (the widgets), so a flush
  can wait until they show everything before it;
* ``StatusSink``: it shows each proc's state (the widget headers);
* ``ReplayingSink``: it may need to publish when no output arrives (a view asked for a
  replay), so it is given a way to ask the dispatcher for that;
* ``DisplayingSink``: it shows procs' mime bundles (``display()``, rich results) in order
  with their text; a sink without it gets each bundle's ``text/plain`` as a line;
* ``TimedSink``: it takes each text with the time the kernel read it (``Log.at``), to show
  timestamps; a sink without it gets the text alone (``write``);
* ``CountingSink``: it counts the lines written to it and reports them, so the dispatcher
  does not count them again (the status shows each proc's lines).

Implementations: ``sinks.text`` (rank-prefixed text) and ``sinks.widget_sink`` (widgets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .items import Display


@runtime_checkable
class Sink(Protocol):
    """A cell's output. The dispatcher thread is the only caller of every method but ``close``
    (which the dispatcher also calls, or its owner once the dispatcher has stopped)."""

    @property
    def pending(self) -> int:
        """Characters written and not yet published."""
        ...

    def accepts(self, rank: int) -> bool:
        """Whether this sink shows ``rank`` (a widget sink shows only its cell's targets)."""
        ...

    def write(self, rank: int, stream: int, text: str) -> None:
        """Take ``rank``'s text on ``stream``, in order; it is shown at the next publish."""
        ...

    def publish(self) -> None:
        """Send what was written since the last publish (or as much as a budget allows)."""
        ...

    def has_deferred(self) -> bool:
        """True if written text is held back: the dispatcher publishes again soon."""
        ...

    def settle(self, rank: int, stream: int) -> bool:
        """Before any barrier of ``rank`` on ``stream`` counts as published: publish what the
        sink held back or left out of it (a note). True if anything was published."""
        ...

    def sync(self, timeout: float) -> bool:
        """Wait until what was published has left this process; False if not in time."""
        ...

    def close(self) -> None:
        """Nothing more will be written: release what the sink holds for later (backlogs,
        listeners). Output already shown stays shown. Idempotent."""
        ...


@runtime_checkable
class ViewedSink(Protocol):
    """A sink whose views acknowledge barriers once they show what came before them."""

    def barrier(self, rank: int, version: int) -> None:
        """Everything of ``rank`` published so far precedes flush barrier ``version``: pass it
        on to the rank's view, behind that output."""
        ...

    def render_wait(self, rank: int, version: int, timeout: float) -> tuple[str, float | None]:
        """("rendered", when the ack arrived on ``time.monotonic()``) once ``rank``'s view
        shows everything before barrier ``version``, else (why not, None) within ``timeout``."""
        ...


@runtime_checkable
class StatusSink(Protocol):
    """A sink that shows each proc's state beside its output."""

    def update_status(
        self, rank: int, *, state: str, exit_text: str, pid: int | None, last_heard: float, host: str = ""
    ) -> None:
        """Show ``rank``'s state; ``last_heard`` is seconds since the epoch (0: never); ``host``
        is where it runs, for a group on several hosts ("" on one machine)."""
        ...


@runtime_checkable
class ReplayingSink(Protocol):
    """A sink that may need a publish when no output arrives (to answer a view's hello)."""

    def attach(self, request_publish: Callable[[], None]) -> None:
        """``request_publish()`` (thread-safe) makes the dispatcher publish this sink soon."""
        ...


@runtime_checkable
class DisplayingSink(Protocol):
    """A sink that shows procs' mime bundles where they were displayed."""

    def display(self, rank: int, bundle: Display) -> None:
        """Take ``rank``'s bundle, in order with its text on ``bundle.stream``; it is shown at
        the next publish (an ``update`` replaces the earlier bundle of its ``display_id``)."""
        ...


@runtime_checkable
class TimedSink(Protocol):
    """A sink that shows when the kernel read each line."""

    def write_at(self, rank: int, stream: int, text: str, at: float) -> None:
        """``write``, with ``at``: when the kernel read ``text`` (``time.time()``)."""
        ...


LineReport = Callable[[int, int, int], None]
"""``report(rank, stream, lines)``: ``lines`` more newlines of ``rank``'s ``stream`` written."""


def ignore_lines(rank: int, stream: int, lines: int) -> None:
    """The ``LineReport`` a counting sink has until a dispatcher gives it one."""


@runtime_checkable
class CountingSink(Protocol):
    """A sink that finds the lines written to it anyway (to prefix or trim them) and reports
    how many there were, so that no other stage has to count them."""

    def count_lines(self, report: LineReport) -> None:
        """From now on, call ``report`` (on the dispatcher thread) for every text written, at
        the latest when it is published or left out."""
        ...


NOT_VIEWED = "text output, no widget frontend (terminal, nbconvert/nbval, or no ipylogfwd extension)"
"""Why a flush stops at "published" for a sink that has no views."""
