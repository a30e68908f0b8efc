"""Rich output in a proc: IPython's display machinery, pointed at the kernel.

A proc runs an IPython shell (an ``InteractiveShell``, made once at start-up, without a history
file and without taking over ``sys.modules['__main__']``), so whatever shows rich output in a
kernel shows it here too:

* ``display(obj)``, ``IPython.display`` objects (``HTML``, ``Image``, ``Markdown`` ...), objects
  with ``_repr_html_``, ``_repr_png_``, ``_repr_mimebundle_`` ..., ``display(..., display_id=True)``
  and its handle's ``update``;
* a cell's last expression: its bundle from IPython's formatters is shown as the rank's
  ``Out`` when it holds more than text (the value still goes back as the cell's result);
* matplotlib: ``MPLBACKEND`` is the inline backend (a kernel sets it and the procs inherit it;
  it is set here when unset), so ``plt.show()``, figures a cell leaves open and a figure as the
  last expression are PNGs drawn by Agg, as in a kernel (``pre_execute``/``post_execute``
  events fire around every cell, which the inline backend listens to).

Each bundle goes to ``emit`` as a payload (the worker writes it as a frame on the display pipe
and marks its place on stdout, see ``wire.displays``); a bundle of text only is printed
instead, and one over the size limit becomes a printed note. ``clear_output`` does nothing:
in a cell shared by many procs it has no meaning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from ..wire import displays

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class _ProcShell(InteractiveShell):
    """The proc's IPython shell: a private user module, ``__main__`` left to the proc."""

    def init_sys_modules(self) -> None:
        pass


class _Publisher(DisplayPublisher):
    """Sends every ``display()`` to the kernel (through ``RichOutput``)."""

    rich: RichOutput | None = None

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        if self.rich is not None:
            display_id = (transient or {}).get("display_id")
            self.rich.send("display", data, metadata, display_id=display_id, update=update)

    def clear_output(self, wait: bool = False) -> None:
        pass


class RichOutput:
    """A proc's IPython shell, with its display output going to ``emit``."""

    def __init__(self, emit: Callable[[bytes], None], cap: int = displays.BUNDLE_CAP) -> None:
        self._emit = emit
        self._cap = cap
        os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
        if InteractiveShell.initialized():
            self.shell = InteractiveShell.instance()
        else:
            config = Config()
            config.HistoryManager.enabled = False  # no history file: many procs, one home
            self.shell = _ProcShell.instance(config=config)
        publisher = _Publisher(parent=self.shell, shell=self.shell)  # type: ignore[no-untyped-call]
        publisher.rich = self
        self.shell.display_pub = publisher

    def send(
        self,
        kind: displays.Kind,
        data: dict[str, Any],
        metadata: dict[str, Any] | None,
        *,
        display_id: str | None = None,
        update: bool = False,
    ) -> None:
        """Show one bundle: as a frame, or printed when it is only text (or too large)."""
        out = displays.encode(kind, data, metadata, display_id=display_id, update=update, cap=self._cap)
        if isinstance(out, bytes):
            self._emit(out)
        else:
            sys.stdout.write(out + "\n")

    def result(self, value: Any) -> None:
        """Show a cell's last expression the way a kernel shows ``Out``, when it has more than
        text to show (its text form is in the cell's ``{rank: value}`` already)."""
        if value is None:
            return
        formatter = self.shell.display_formatter
        if formatter is None:
            return
        data, metadata = formatter.format(value)  # type: ignore[no-untyped-call]
        if set(data) - displays.LEFT_OUT_TYPES - {"text/plain"}:
            self.send("result", data, metadata)

    def pre_execute(self) -> None:
        self.shell.events.trigger("pre_execute")

    def post_execute(self) -> None:
        """After a cell: what listens shows what the cell left (the figures it drew)."""
        self.shell.events.trigger("post_execute")
