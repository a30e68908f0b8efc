"""A fast fake widget frontend on jupyter_client, for kernel-level tests of the proc widgets.

It is a ``KernelDriver`` whose IOPub is read by a background thread (like a browser, it keeps
listening while a cell runs). For every ``ProcModel`` widget the kernel opens it keeps a
model: its synced state and the lines and display bundles its custom messages carry, applied
by the protocol (lines, barrier, replay) the way the real store does (a bundle is an entry of
its own among the lines, ending stdout's partial line; an update replaces its bundle in
place). Views say ``hello`` and ``ack`` the way the real view does, over the route in the
model's ``ack_route`` trait, from a second client connection:

* ``comm``: a comm of target ``ipylogfwd.acks`` opened on a subshell of its own, so the
  kernel handles it while the main shell runs a cell (ipykernel 7);
* ``control``: ``ipylogfwd_ack`` messages on the control channel (ipykernel 6.29).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.session import Session
from kernel_driver import KernelDriver

from ipylogfwd.wire.view_messages import DISPLAY, VIEW_PROTOCOL_VERSION

PROTOCOL = VIEW_PROTOCOL_VERSION


@dataclass
class FakeModel:
    model_id: str
    state: dict[str, Any]
    lines: list[tuple[int, Any]] = field(default_factory=list)  # (stream, text without "\n") or (DISPLAY, bundle)
    times: list[float] = field(default_factory=list)  # when the kernel read each line (its chunk's ``at``)
    open_line: dict[int, int] = field(default_factory=dict)  # stream -> index of its partial line
    dropped: int = 0
    seq: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    pending_barriers: list[int] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    def stream_lines(self, stream: int) -> list[str]:
        return [t for s, t in self.lines if s == stream]

    def displays(self) -> list[dict[str, Any]]:
        """The bundles shown, in order."""
        return [b for s, b in self.lines if s == DISPLAY]

    def stdout_and_displays(self) -> list[str]:
        """stdout lines and bundles in the order shown; a bundle as ``<kind: mime types>``."""
        return [t if s == 1 else f"<{t['kind']}: {', '.join(sorted(t['data']))}>" for s, t in self.lines if s != 2]

    def apply(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        if msg["type"] == "replay":
            self.lines, self.times, self.open_line, self.dropped = [], [], {}, msg["dropped"]
        elif msg["seq"] <= self.seq:
            return
        else:
            self.dropped += msg.get("dropped", 0)
        self.seq = msg["seq"]
        if msg["type"] in ("lines", "replay"):
            for stream, text, at in msg["chunks"]:
                if stream == DISPLAY:
                    self._add_display(text, at)
                else:
                    self._add(stream, text, at)
            self._cap()

    def _add_display(self, bundle: dict[str, Any], at: float) -> None:
        if bundle["update"]:
            for i, (s, old) in enumerate(self.lines):
                if s == DISPLAY and old["display_id"] == bundle["display_id"]:
                    self.lines[i] = (DISPLAY, {**bundle, "update": False})
            return
        self.open_line.pop(1, None)  # a bundle ends stdout's partial line
        self.lines.append((DISPLAY, bundle))
        self.times.append(at)

    def _cap(self) -> None:
        """Keep the last max_lines lines, counting the rest as dropped (as the real view does)."""
        limit = int(self.state.get("max_lines", 2000))
        excess = len(self.lines) - limit
        if excess > 0:
            del self.lines[:excess]
            del self.times[:excess]
            self.dropped += excess
            self.open_line = {s: i - excess for s, i in self.open_line.items() if i >= excess}

    def _add(self, stream: int, text: str, at: float) -> None:
        parts = text.split("\n")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last and part == "":
                break
            if stream in self.open_line:
                idx = self.open_line.pop(stream)
                self.lines[idx] = (stream, self.lines[idx][1] + part)
            else:
                self.lines.append((stream, part))
                self.times.append(at)
                idx = len(self.lines) - 1
            if last:
                self.open_line[stream] = idx


class FakeFrontend(KernelDriver):
    def __init__(self, *, extension: bool = True, views: bool = True, acks: bool = True, **kwargs: Any) -> None:
        self.extension = extension  # False: a frontend without the ipylogfwd extension
        self.views_enabled = views  # False: proc widgets get views only when open_view is called
        self.acks_enabled = acks
        self.models: dict[str, FakeModel] = {}
        self.panels: dict[str, dict[str, Any]] = {}  # comm id -> a ProcsPanel's synced state
        self.route_errors: list[str] = []
        self._lock = threading.RLock()  # models: written by the IOPub thread, read by tests
        self._iopub: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._out: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        super().__init__(**kwargs)
        # Its own Session: one shared by two clients would reject each other's IOPub
        # messages as replays (duplicate signatures). It needs no IOPub of its own.
        session = Session(key=self.km.session.key, signature_scheme=self.km.session.signature_scheme)
        self.ack_client = self.km.client(session=session)
        self.ack_client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=True)
        self._subshell: str | None = None
        self._comm_id: str | None = None
        # Reads IOPub like a browser (also while a cell runs) and plays the views.
        self._reader = threading.Thread(target=self._read_iopub, name="fake-frontend-iopub", daemon=True)
        self._reader.start()
        # Sends hello/ack on the second connection, in order.
        self._sender = threading.Thread(target=self._send_loop, name="fake-frontend-acks", daemon=True)
        self._sender.start()

    # --- plumbing ---------------------------------------------------------------------------
    def _pump(self, timeout: float) -> dict[str, Any] | None:
        try:
            msg = self._iopub.get(timeout=timeout)
        except queue.Empty:
            return None
        self.by_parent[msg["parent_header"].get("msg_id", "")].append(msg)
        return msg

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:  # noqa: BLE001 - the channel closed, whatever the error: the reader stops
                return
            self._handle(msg)
            self._iopub.put(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
            state = content["data"].get("state", {})
            if state.get("_model_name") == "PanelModel" and state.get("_model_module") == "ipylogfwd":
                with self._lock:
                    self.panels[content["comm_id"]] = dict(state)
            if state.get("_model_name") == "ProcModel" and state.get("_model_module") == "ipylogfwd":
                with self._lock:
                    self.models[content["comm_id"]] = FakeModel(content["comm_id"], dict(state))
                if self.extension and (self.views_enabled or state.get("rank", 0) < 0):
                    self.open_view(content["comm_id"])  # the probe (rank -1) is always viewed
        elif kind == "comm_msg":
            with self._lock:
                model = self.models.get(content["comm_id"])
            if model is None:
                return
            data = content["data"]
            if data.get("method") == "update":
                with self._lock:
                    model.state.update(data.get("state", {}))
            elif data.get("method") == "custom":
                self._custom(model, data["content"])

    def _custom(self, model: FakeModel, msg: dict[str, Any]) -> None:
        with self._lock:
            model.apply(msg)
            if msg["type"] != "barrier":
                return
            if model.views:
                to_ack = [msg["version"]]
            else:
                model.pending_barriers.append(msg["version"])
                to_ack = []
        for version in to_ack:
            self._ack(model, version)

    def _ack(self, model: FakeModel, version: int) -> None:
        if not self.acks_enabled:
            return
        with self._lock:
            model.acked.append(version)
            view = model.views[0]
        self._say(model, {"type": "ack", "model_id": model.model_id, "view_id": view, "version": version})

    def _say(self, model: FakeModel, body: dict[str, Any]) -> None:
        self._out.put((model.state.get("ack_route", "comm"), {"protocol": PROTOCOL, **body}))

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                route, content = self._out.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if route == "control":
                    msg = self.ack_client.session.msg("ipylogfwd_ack", content)
                    self.ack_client.control_channel.send(msg)
                else:
                    self._send_on_ack_comm(content)
            except Exception as exc:  # noqa: BLE001 - recorded: a test that needs the ack fails on it
                self.route_errors.append(repr(exc))

    def _send_on_ack_comm(self, content: dict[str, Any]) -> None:
        session = self.ack_client.session
        if self._subshell is None:
            req = session.msg("create_subshell_request", {})
            self.ack_client.control_channel.send(req)
            deadline = time.monotonic() + 10
            while True:
                reply = self.ack_client.control_channel.get_msg(timeout=max(0.1, deadline - time.monotonic()))
                if reply["parent_header"].get("msg_id") == req["header"]["msg_id"]:
                    break
            self._subshell = reply["content"]["subshell_id"]
        if self._comm_id is None:
            self._comm_id = uuid.uuid4().hex
            msg = session.msg("comm_open", {"comm_id": self._comm_id, "target_name": "ipylogfwd.acks", "data": content})
        else:
            msg = session.msg("comm_msg", {"comm_id": self._comm_id, "data": content})
        msg["header"]["subshell_id"] = self._subshell
        self.ack_client.shell_channel.send(msg)

    # --- for tests ----------------------------------------------------------------------------
    def open_view(self, model_id: str) -> str:
        """A view of ``model_id`` appears: it says hello and acks barriers it was waiting on."""
        view_id = uuid.uuid4().hex
        with self._lock:
            model = self.models[model_id]
            model.views.append(view_id)
            pending, model.pending_barriers = model.pending_barriers, []
            seq = model.seq
        self._say(model, {"type": "hello", "model_id": model_id, "view_id": view_id, "seq": seq})
        for version in pending:
            self._ack(model, version)
        return view_id

    def forget(self, model_id: str) -> None:
        """The page reloads: the model starts empty (seq 0) and a new view says hello."""
        with self._lock:
            old = self.models[model_id]
            self.models[model_id] = FakeModel(model_id, dict(old.state))
        self.open_view(model_id)

    def proc_models(self) -> dict[int, FakeModel]:
        """The newest widget of each rank (the probe, rank -1, excluded)."""
        with self._lock:
            out: dict[int, FakeModel] = {}
            for m in self.models.values():
                if m.state.get("rank", -1) >= 0:
                    out[m.state["rank"]] = m
            return out

    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if predicate():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake frontend: {what} did not happen within {timeout} s")
            time.sleep(0.02)

    def shutdown(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self._sender.join(2)
        self.ack_client.stop_channels()
        super().shutdown()
