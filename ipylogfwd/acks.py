"""The acknowledgement hub: what the kernel hears from the proc widgets' views.

Views say ``hello`` when they exist and ``ack(v)`` when barrier ``v`` is in their DOM (see
``protocol``). For ``%logflush`` to wait for the browser, these messages must reach the kernel
*while a cell is running* on the main shell, so they never travel on the widgets' own comms
(those are handled by the main shell, after the cell). They come by one of two routes:

* ``comm``: a comm of target ``protocol.ACK_TARGET`` that the frontend opens itself. With
  ipykernel 7 and JupyterLab >= 4.4, the frontend sends comm messages on a subshell, whose
  thread handles them while the main shell runs a cell. (The kernel never sends on that comm:
  ipykernel 7.4 would then route the frontend's messages back to the sender's shell.)
* ``control``: a ``protocol.CONTROL_MSG_TYPE`` message on the control channel, handled by
  the control thread (ipykernel 6.29 has no subshells; an undocumented but long-standing
  handler table).

Each message records whether it arrived off the main thread: a view whose messages do is
*live*, and only live views are waited for. Handlers run on the kernel's subshell or control
thread, so they only record and notify; every wait is on a condition with a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import protocol


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
        self._hello_listeners: list[Callable[[str, int], None]] = []
        self.errors: list[str] = []
        self.frontend_seen = False
        self.live_seen = False
        self._comms: list[Any] = []
        kernel.comm_manager.register_target(protocol.ACK_TARGET, self._on_comm_open)
        self._previous_control = kernel.control_handlers.get(protocol.CONTROL_MSG_TYPE)
        kernel.control_handlers[protocol.CONTROL_MSG_TYPE] = self._on_control

    def close(self) -> None:
        try:
            self.kernel.comm_manager.unregister_target(protocol.ACK_TARGET, self._on_comm_open)
        except Exception:  # already gone with the kernel's comm manager
            pass
        if self.kernel.control_handlers.get(protocol.CONTROL_MSG_TYPE) == self._on_control:
            self.kernel.control_handlers.pop(protocol.CONTROL_MSG_TYPE, None)

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
            msg = protocol.parse_from_view(data)
        except protocol.ProtocolError as exc:
            with self._cond:
                self.errors.append(str(exc))
            return
        listeners: list[Callable[[str, int], None]] = []
        with self._cond:
            self.frontend_seen = True
            self.live_seen = self.live_seen or live
            views = self._views.setdefault(msg["model_id"], {})
            if msg["type"] == "bye":
                views.pop(msg["view_id"], None)
            else:
                view = views.setdefault(msg["view_id"], _View(live))
                view.live = view.live or live
                view.seen = time.monotonic()
                if msg["type"] == "ack" and msg["version"] > view.acked:
                    view.acked, view.acked_at = msg["version"], time.monotonic()
                else:
                    listeners = list(self._hello_listeners)
            self._cond.notify_all()
        if msg["type"] == "hello":
            for listener in listeners:
                listener(msg["model_id"], msg["seq"])

    # --- for the kernel side -------------------------------------------------------------
    def on_hello(self, listener: Callable[[str, int], None]) -> None:
        """Call ``listener(model_id, seq)`` (on a kernel thread) whenever a view says hello."""
        with self._cond:
            self._hello_listeners.append(listener)

    def remove_hello_listener(self, listener: Callable[[str, int], None]) -> None:
        with self._cond:
            if listener in self._hello_listeners:
                self._hello_listeners.remove(listener)

    def live_models(self, model_ids: list[str]) -> list[str]:
        """Those of ``model_ids`` that have a view able to answer while a cell runs."""
        with self._cond:
            return [m for m in model_ids if any(v.live for v in self._views.get(m, {}).values())]

    def wait_live_view(self, model_id: str, timeout: float) -> bool:
        """Wait until ``model_id`` has a live view (its hello may still be on its way)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(v.live for v in self._views.get(model_id, {}).values()), max(0.0, timeout)
            )

    def has_view(self, model_id: str) -> bool:
        with self._cond:
            return bool(self._views.get(model_id))

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


def close_hub() -> None:
    global _hub
    with _hub_lock:
        if _hub is not None:
            _hub.close()
            _hub = None
