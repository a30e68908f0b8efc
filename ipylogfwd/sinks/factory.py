"""Which sink a cell gets: the proc widgets where a widget frontend has answered, else text."""

from __future__ import annotations

from ..pipeline.sink import Sink
from .kernel import current_kernel
from .text import IOPubTextSink, StdioTextSink, TextSink


def text_sink(log_paths: dict[int, list[str]] | None = None, timestamps: str | None = None) -> TextSink:
    """A text sink for the cell now executing, or for this process's stdio outside a kernel;
    with ``timestamps`` ("absolute", "relative"), each line's prefix says when it was read."""
    kernel = current_kernel()
    if kernel is not None:
        return IOPubTextSink(kernel, kernel.get_parent(), log_paths, timestamps=timestamps)
    return StdioTextSink(timestamps=timestamps)


def default_sink(
    ranks: list[int],
    pids: dict[int, int | None],
    log_paths: dict[int, list[str]],
    timestamps: str | None = None,
    view: str | None = None,
) -> Sink:
    """The cell's proc widgets where a widget frontend has answered, else text. ``timestamps``
    ("absolute", "relative"; None: off) is how the lines show when they were read (the
    widgets start with it and have a toggle); ``view`` ("merged", "procs"; None: merged
    from 8 procs on) what the widgets show first."""
    kernel = current_kernel()
    if kernel is not None:
        # Imported here: ipywidgets is only needed in a kernel, and every proc imports this
        # package (plain Python and the procs start faster without it).
        from .acks import hub_for
        from .widget_sink import WidgetSink

        hub = hub_for(kernel)
        if hub.frontend_seen:
            return WidgetSink(
                ranks,
                hub,
                pids=pids,
                log_paths=log_paths,
                timestamps=timestamps or "off",
                view=view,
            )
    return text_sink(log_paths, timestamps)
