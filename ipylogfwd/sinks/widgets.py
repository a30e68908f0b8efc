"""The proc widgets: one ``ProcWidget`` per proc per cell, laid out in a ``ProcsPanel``
(which also shows them merged: lines several ranks printed, once).

Synced traits carry only small state (the header: rank, pid, state, counts, last heard, log
paths). Lines never travel as a trait: the widget sink sends them as coalesced custom
messages (``wire.view_messages``) and the view appends them; the frontend model keeps a
bounded tail so views created late catch up, and the kernel keeps a bounded backlog (see
``widget_sink``) for views of a reloaded page.
"""

from __future__ import annotations

from typing import Any

import ipywidgets
import traitlets

from ..wire import view_messages


class _ViewWidget(ipywidgets.DOMWidget):  # type: ignore[misc]
    """A widget of the labextension's, speaking its view protocol (``wire.view_messages``)."""

    _model_module = traitlets.Unicode(view_messages.MODULE_NAME).tag(sync=True)
    _model_module_version = traitlets.Unicode(view_messages.MODULE_VERSION).tag(sync=True)
    _view_module = traitlets.Unicode(view_messages.MODULE_NAME).tag(sync=True)
    _view_module_version = traitlets.Unicode(view_messages.MODULE_VERSION).tag(sync=True)

    protocol = traitlets.Int(view_messages.VIEW_PROTOCOL_VERSION).tag(sync=True)


class ProcWidget(_ViewWidget):
    """One proc's output in one cell: a header and its lines."""

    _model_name = traitlets.Unicode("ProcModel").tag(sync=True)
    _view_name = traitlets.Unicode("ProcView").tag(sync=True)

    rank = traitlets.Int(0).tag(sync=True)
    #: the host the proc runs on, for a group on several hosts ("" on one machine)
    host = traitlets.Unicode("").tag(sync=True)
    pid = traitlets.Int(0).tag(sync=True)
    #: starting / running / idle / unresponsive / exited / killed
    state = traitlets.Unicode("starting").tag(sync=True)
    #: "" while alive, else e.g. "exited with code 3" or "killed by SIGKILL"
    exit_text = traitlets.Unicode("").tag(sync=True)
    stdout_lines = traitlets.Int(0).tag(sync=True)
    stderr_lines = traitlets.Int(0).tag(sync=True)
    #: when the proc was last heard from, in seconds since the epoch (0: never)
    last_heard = traitlets.Float(0.0).tag(sync=True)
    log_paths = traitlets.List(traitlets.Unicode(), default_value=[]).tag(sync=True)
    #: how many lines the view keeps in its DOM (a bounded tail)
    max_lines = traitlets.Int(2000).tag(sync=True)
    collapsed = traitlets.Bool(False).tag(sync=True)
    #: how the view sends hello/ack: "comm" (a comm of target view_messages.ACK_TARGET),
    #: "control" (a view_messages.CONTROL_MSG_TYPE message on the control channel)
    ack_route = traitlets.Unicode("comm").tag(sync=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = f"ProcWidget(rank {self.rank})"
        return bundle


MERGED_AT = 8
"""A panel of at least this many procs shows the merged view first."""

VIEW_MODES = ("merged", "procs")
TIME_MODES = ("off", "absolute", "relative")


class ProcsPanel(_ViewWidget):
    """The procs of one cell, laid out together: their widgets, and a merged view of their
    lines (lines several ranks printed shown once, with their ranks), a toolbar (search,
    filters, timestamps), and a header for the whole group. The merged view, the header and
    the filters are computed in the page from the children's models: the panel sends no
    messages of its own."""

    _model_name = traitlets.Unicode("PanelModel").tag(sync=True)
    _view_name = traitlets.Unicode("PanelView").tag(sync=True)

    children = traitlets.List(traitlets.Instance(ProcWidget)).tag(sync=True, **ipywidgets.widget_serialization)
    #: when the cell started (seconds since the epoch): relative timestamps count from it
    started = traitlets.Float(0.0).tag(sync=True)
    #: what the panel shows: "merged" (the merged view) or "procs" (one widget per proc);
    #: the view's toggle sets it
    mode = traitlets.Enum(VIEW_MODES, "procs").tag(sync=True)
    #: timestamps on each line: "off", "absolute" (the time of day) or "relative" (since the
    #: cell started); the view's toggle sets it
    timestamps = traitlets.Enum(TIME_MODES, "off").tag(sync=True)

    def __init__(
        self,
        procs: list[ProcWidget],
        *,
        started: float = 0.0,
        timestamps: str = "off",
        mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``mode``: what to show first ("merged" or "procs"; None: merged from MERGED_AT procs on)."""
        mode = mode or ("merged" if len(procs) >= MERGED_AT else "procs")
        super().__init__(children=procs, started=started, mode=mode, timestamps=timestamps, **kwargs)
        self.add_class("ipylogfwd-panel")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = (
                f"ProcsPanel({len(self.children)} procs; without the ipylogfwd frontend, output is shown as text)"
            )
        return bundle


class FrontendProbe(ProcWidget):
    """An invisible widget shown once per kernel: if its view says hello, the frontend has
    the ipylogfwd extension and cells get widgets; if not, output stays text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(rank=-1, state="probe", **kwargs)
        self.add_class("ipylogfwd-probe")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = "ipylogfwd loaded"
        return bundle
