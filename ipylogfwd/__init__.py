"""ipylogfwd: watch many processes from a notebook.

``%load_ext ipylogfwd`` registers ``%%procs`` (run a cell in N worker processes, their
output forwarded into the cell in per-proc, per-stream order), ``%procs`` (status and
management) and ``%logflush`` (an in-band barrier). ``ProcGroup`` does the same from plain
Python.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    FlushWarning,
    IpylogfwdError,
    LogFileWarning,
    ProcDiedError,
    ProcsBusyError,
    ProcsError,
    ProcStartError,
    ProcTimeoutError,
    TransferError,
    UsageError,
)
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .group import Execution, GroupStatus, ProcGroup, ProcStatus, parse_targets
    from .pipeline.barrier import FlushEntry, FlushReport
    from .sinks.elision import set_text_limit

# The API is imported when first used: a proc imports this package for its own small part
# (``ipylogfwd.proc.worker``), and should not pay for the kernel's (groups, hosts, sinks).
_LAZY = {
    "Execution": ".group",
    "GroupStatus": ".group",
    "ProcGroup": ".group",
    "ProcStatus": ".group",
    "parse_targets": ".group",
    "FlushEntry": ".pipeline.barrier",
    "FlushReport": ".pipeline.barrier",
    "set_text_limit": ".sinks.elision",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ipylogfwd' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

__all__ = [
    "Execution",
    "FlushEntry",
    "FlushReport",
    "FlushWarning",
    "GroupStatus",
    "IpylogfwdError",
    "LogFileWarning",
    "ProcDiedError",
    "ProcGroup",
    "ProcStartError",
    "ProcStatus",
    "ProcTimeoutError",
    "ProcsBusyError",
    "ProcsError",
    "TransferError",
    "UsageError",
    "alogflush",
    "current_group",
    "load_ipython_extension",
    "logflush",
    "parse_targets",
    "set_text_limit",
    "unload_ipython_extension",
]

_magics: Any = None


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext ipylogfwd``)."""
    global _magics
    from .magics import ProcsMagics

    if _magics is not None and _magics.shell is ipython:
        return
    _magics = ProcsMagics(ipython)
    _magics.take_back()  # the procs of an unload earlier in this cell (%reload_ext)
    ipython.register_magics(_magics)
    _probe_frontend()


PROBE_TIMEOUT = 2.0


def _probe_frontend() -> None:
    """In a kernel, show the invisible probe widget and wait (briefly) for its view's hello:
    a frontend with the ipylogfwd extension gets widgets, any other keeps text output."""
    from .sinks.kernel import current_kernel

    kernel = current_kernel()
    if kernel is None:
        return
    from IPython.display import display

    from .sinks.acks import hub_for
    from .sinks.widgets import FrontendProbe

    hub = hub_for(kernel)
    display(FrontendProbe(ack_route=hub.route))  # type: ignore[no-untyped-call]
    hub.wait_frontend(PROBE_TIMEOUT)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics (``%unload_ext ipylogfwd``); the procs stop at the end of the cell
    unless the extension is loaded again in it (``%reload_ext ipylogfwd`` keeps them)."""
    global _magics
    if _magics is None:
        return
    _magics.park()
    from .sinks.acks import close_hub

    close_hub()
    registry = ipython.magics_manager.magics
    for kind, names in (("line", ("procs", "logflush")), ("cell", ("procs",))):
        for name in names:
            registry[kind].pop(name, None)
    ipython.magics_manager.registry.pop(type(_magics).__name__, None)
    _magics = None


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the prebuilt JupyterLab extension is (``jupyter labextension develop`` links it)."""
    return [{"src": "labextension", "dest": "ipylogfwd"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Jupyter server extension (``serverext``): kernel websockets send small messages
    at once."""
    return [{"module": "ipylogfwd.serverext"}]


def current_group() -> ProcGroup | None:
    """The group the magics are using, if any."""
    return None if _magics is None else _magics.group


def _require_group() -> ProcGroup:
    group = current_group()
    if group is None:
        raise UsageError("no procs are running: start some with %%procs N")
    return group


def logflush(timeout: float = 10.0) -> FlushReport:
    """``%logflush`` from Python: flush the magics' current group."""
    return _require_group().flush(timeout)


async def alogflush(timeout: float = 10.0) -> FlushReport:
    """``await ipylogfwd.alogflush()``: the barrier for async code and async cells."""
    return await _require_group().aflush(timeout)
