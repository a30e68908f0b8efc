"""The acknowledgement hub: what the kernel hears from the proc widgets' views.

Views say ``hello`` when they exist and ``ack(v)`` when barrier ``v`` is in their DOM (see
``protocol``). For ``%logflush`` to wait for the browser, these messages must reach the kernel
*while a cell is running* on the main shell, so they never travel on the widgets' own comms
(those are handled by the main shell, after the cell). They come by one of two routes:

* ``comm``: a comm of target ``view_messages.ACK_TARGET`` that the frontend opens itself. With
  ipykernel 7 and JupyterLab >= 4.4, the frontend sends comm messages on a subshell, whose
  thread handles them while the main shell runs a cell. (The kernel never sends on that comm:
  ipykernel 7.4 would then route the frontend's messages back to the sender's shell.)
* ``control``: a ``view_messages.CONTROL_MSG_TYPE`` message on the control channel, handled by
  the control thread (ipykernel 6.29 has no subshells; an undocumented but long-standing
  handler table).

Each message records whether it arrived off the main thread: a view whose messages do is
*live*, and only live views are waited for. Handlers run on the kernel's subshell or control
thread, so they only record and notify; every wait is on a condition with a timeout.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..wire import view_messages

UNCLAIMED_MODELS = 256
"""Widgets whose views were heard from before any sink watched them, remembered (the newest)."""


@dataclass
class _View:
    live: bool
    acked: int = 0
    acked_at: float = 0.0  # monotonic time the latest ack arrived
    seen: float = field(default_factory=time.monotonic)


def kernel_supports_subshells(kernel: Any) -> bool:
    """True if this kernel can run comm handlers on a subshell thread during a cell."""
    try:
        from importlib.metadata import version

        major = int(version("ipykernel").split(".")[0])
    except (ImportError, ValueError, LookupError):
        return False
    return major >= 7 and hasattr(kernel, "shell_channel_thread")


class AckHub:
    """Per kernel: every view's hello/ack, and waits on them. Thread-safe."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.route = "comm" if kernel_supports_subshells(kernel) else "control"
        # Handlers (subshell/control/main threads) write; flush/cells wait: one condition.
        self._cond = threading.Condition()
        self._views: dict[str, dict[str, _View]] = {}
        # model id -> who to tell of its views' hellos. Held weakly: a sink that is dropped
        # without close() must not live on through its listener (a kernel runs many cells).
        self._watchers: dict[str, Callable[[], Callable[[str, int], None] | None]] = {}
        # Views of widgets no sink watches (yet): a view can say hello as soon as its widget's
        # comm opens, before the sink making the widgets has called watch() (seen with
        # ipykernel 6.29, whose control thread runs beside the cell). watch() claims them.
        self._unclaimed: OrderedDict[str, dict[str, _View]] = OrderedDict()
        self.bad_messages = 0  # view messages this kernel could not understand
        self.last_bad_message = ""
        self.frontend_seen = False
        self.live_seen = False
        self._comms: list[Any] = []
        kernel.comm_manager.register_target(view_messages.ACK_TARGET, self._on_comm_open)
        self._previous_control = kernel.control_handlers.get(view_messages.CONTROL_MSG_TYPE)
        kernel.control_handlers[view_messages.CONTROL_MSG_TYPE] = self._on_control

    def close(self) -> None:
        """Stop listening: the comm target and the control handler are removed (the control
        handler that was there before is put back)."""
        with contextlib.suppress(KeyError):  # already unregistered
            self.kernel.comm_manager.unregister_target(view_messages.ACK_TARGET, self._on_comm_open)
        handlers = self.kernel.control_handlers
        if handlers.get(view_messages.CONTROL_MSG_TYPE) == self._on_control:
            if self._previous_control is not None:
                handlers[view_messages.CONTROL_MSG_TYPE] = self._previous_control
            else:
                handlers.pop(view_messages.CONTROL_MSG_TYPE, None)

    # --- the routes (kernel threads) -----------------------------------------------------
    def _on_comm_open(self, comm: Any, msg: dict[str, Any]) -> None:
        self._comms.append(comm)  # keep it referenced; never send on it (see module doc)
        comm.on_msg(lambda m: self._receive(m["content"]["data"]))
        data = msg["content"].get("data")
        if data:
            self._receive(data)

    def _on_control(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        self._receive(parent.get("content"))

    def _receive(self, data: Any) -> None:
        live = threading.current_thread() is not threading.main_thread()
        try:
            msg = view_messages.parse_from_view(data)
        except view_messages.ViewProtocolError as exc:
            with self._cond:
                self.bad_messages += 1
                self.last_bad_message = str(exc)
            return
        listener: Callable[[str, int], None] | None = None
        with self._cond:
            self.frontend_seen = True
            self.live_seen = self.live_seen or live
            views = self._views.get(msg["model_id"])
            if views is None:
                # Not watched: not yet (its sink is being made), or no more (the probe, a closed
                # cell's widget). Kept for watch(), the newest UNCLAIMED_MODELS of them.
                views = self._unclaimed.setdefault(msg["model_id"], {})
                self._unclaimed.move_to_end(msg["model_id"])
                while len(self._unclaimed) > UNCLAIMED_MODELS:
                    self._unclaimed.popitem(last=False)
            if msg["type"] == "bye":
                views.pop(msg["view_id"], None)
            else:
                view = views.setdefault(msg["view_id"], _View(live))
                view.live = view.live or live
                view.seen = time.monotonic()
                if msg["type"] == "ack" and msg["version"] > view.acked:
                    view.acked, view.acked_at = msg["version"], time.monotonic()
                elif msg["type"] == "hello" and (ref := self._watchers.get(msg["model_id"])) is not None:
                    listener = ref()
            self._cond.notify_all()
        if listener is not None and msg["type"] == "hello":
            listener(msg["model_id"], msg["seq"])

    # --- for the kernel side -------------------------------------------------------------
    def watch(self, model_ids: list[str], on_hello: Callable[[str, int], None]) -> None:
        """Track the views of these widgets, and call ``on_hello(model_id, seq)`` (on a kernel
        thread) whenever a view says hello, until ``unwatch``. A bound method is held weakly
        (its object may go without ``unwatch``), any other callable strongly."""
        ref = weakref.WeakMethod(on_hello) if inspect.ismethod(on_hello) else (lambda: on_hello)
        with self._cond:
            for m in model_ids:
                self._views.setdefault(m, {}).update(self._unclaimed.pop(m, {}))
                self._watchers[m] = ref
            self._cond.notify_all()

    def unwatch(self, model_ids: list[str]) -> None:
        """Forget these widgets' views and their hello listener."""
        with self._cond:
            for m in model_ids:
                self._views.pop(m, None)
                self._watchers.pop(m, None)

    def listener_count(self) -> int:
        """How many distinct hello listeners are registered and alive."""
        with self._cond:
            dead = [m for m, ref in self._watchers.items() if ref() is None]
            for m in dead:  # their sink is gone without close(): forget its widgets too
                self._watchers.pop(m, None)
                self._views.pop(m, None)
            return len({id(ref) for ref in self._watchers.values()})  # one ref per watch() call

    def model_count(self) -> int:
        """How many widgets' views are tracked."""
        with self._cond:
            return len(self._views)

    def wait_live_view(self, model_id: str, timeout: float) -> bool:
        """Wait until ``model_id`` has a live view (its hello may still be on its way)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(v.live for v in self._views.get(model_id, {}).values()), max(0.0, timeout)
            )

    def wait_frontend(self, timeout: float) -> bool:
        """Wait until some view has said hello from a route that works during a cell."""
        with self._cond:
            return self._cond.wait_for(lambda: self.live_seen, timeout)

    def wait_acks(self, model_ids: list[str], version: int, timeout: float) -> dict[str, float]:
        """Wait until a view of each model acked ``version``; model id -> when the ack arrived
        (``time.monotonic()``). Models missing from the result did not ack within ``timeout``.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        done: dict[str, float] = {}
        with self._cond:
            while True:
                for m in model_ids:
                    acks = [v.acked_at for v in self._views.get(m, {}).values() if v.acked >= version]
                    if m not in done and acks:
                        done[m] = min(acks)
                left = deadline - time.monotonic()
                if len(done) == len(model_ids) or left <= 0:
                    return done
                self._cond.wait(min(left, 0.1))


_hub: AckHub | None = None
_hub_lock = threading.Lock()


def hub_for(kernel: Any) -> AckHub:
    """The kernel's hub, created on first use."""
    global _hub
    with _hub_lock:
        if _hub is None or _hub.kernel is not kernel:
            _hub = AckHub(kernel)
        return _hub


def frontend_problems() -> list[str]:
    """What went wrong between the views and this kernel, if anything (for ``%procs``)."""
    hub = _hub
    if hub is None or not hub.bad_messages:
        return []
    return [f"{hub.bad_messages} message(s) from the frontend could not be understood; last: {hub.last_bad_message}"]


def close_hub() -> None:
    global _hub
    with _hub_lock:
        if _hub is not None:
            _hub.close()
            _hub = None
