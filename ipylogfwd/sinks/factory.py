"""Which sink a cell gets: the proc widgets where a widget frontend has answered, else text."""

from __future__ import annotations

from ..pipeline.sink import Sink
from .kernel import current_kernel
from .text import IOPubTextSink, StdioTextSink, TextSink


def text_sink(log_paths: dict[int, list[str]] | None = None) -> TextSink:
    """A text sink for the cell now executing, or for this process's stdio outside a kernel."""
    kernel = current_kernel()
    if kernel is not None:
        return IOPubTextSink(kernel, kernel.get_parent(), log_paths)
    return StdioTextSink()


def default_sink(ranks: list[int], pids: dict[int, int | None], log_paths: dict[int, list[str]]) -> Sink:
    """The cell's proc widgets where a widget frontend has answered, else text."""
    kernel = current_kernel()
    if kernel is not None:
        # Imported here: ipywidgets is only needed in a kernel, and every proc imports this
        # package (plain Python and the procs start faster without it).
        from .acks import hub_for
        from .widget_sink import WidgetSink

        hub = hub_for(kernel)
        if hub.frontend_seen:
            return WidgetSink(ranks, hub, pids=pids, log_paths=log_paths)
    return text_sink(log_paths)
