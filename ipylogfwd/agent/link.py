"""The agent's end of its link to the kernel.

The "ipylogfwd-agent-link" thread owns the agent's one ZeroMQ socket (a DEALER that dials
the kernel's port, CurveZMQ with the kernel's public key). On every (re)connection it says
``hello`` and sends nothing else until the kernel's ``welcome``; then it resends whatever the
kernel has not acknowledged (``wire.lanes``). It carries:

* the procs' output: the pump takes each rank's items from the host's mailboxes as far as
  the kernel's credit allows, in frames of about ``MAX_DATA_FRAME``, one lane per rank;
* control messages both ways, on one lane each way;
* liveness: ``status`` every second; the kernel's pings are answered at once. When nothing
  was heard from the kernel for ``lease`` seconds, the host gives up (its procs are killed).

Other threads hand it work only through ``send_ctl`` (a queue) and the mailboxes, and wake it
through a pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..pipeline.items import item_size
from ..pipeline.queues import Mailboxes
from ..wire import frames
from ..wire.admission import AgentSecrets, join_mac
from ..wire.lanes import Credit, Inbox, Outbox

STATUS_EVERY = 1.0
JOIN_TIMEOUT = 60.0


class Host(Protocol):
    """What the link needs of the agent it serves (called on the link thread)."""

    def hello(self) -> dict[str, Any]:
        """This host's part of the hello: name, pid, address, versions, ..."""
        ...

    def command(self, msg: dict[str, Any]) -> None:
        """A control message from the kernel, in order, once."""
        ...

    def status(self) -> dict[str, Any]:
        """What the kernel should know every second (procs and their states)."""
        ...

    def give_up(self, why: str, code: int) -> None:
        """The link is over (refused, the lease ran out, never admitted): stop everything."""
        ...


@dataclass
class _DataLane:
    out: Outbox[bytes]
    credit: Credit


@dataclass
class _Epoch:
    mailboxes: Mailboxes
    lanes: dict[int, _DataLane] = field(default_factory=dict)
    done: bool = False  # its procs are stopped and drained: drop it once everything is acked


class KernelLink:
    """The link to the kernel, with its thread."""

    def __init__(self, secrets: AgentSecrets, host: Host, *, lease: float) -> None:
        self._secrets = secrets
        self._host = host
        self._lease = lease
        if secrets.public_key and secrets.secret_key:
            self._public, self._secret = secrets.public_key.encode(), secrets.secret_key.encode()
        else:
            self._public, self._secret = zmq.curve_keypair()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._ctl_queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        # Epochs are added and ended by the agent's other threads, pumped by this one.
        self._lock = threading.Lock()
        self._epochs: dict[int, _Epoch] = {}
        self._window = 1 << 20
        self._ctl_out: Outbox[bytes] = Outbox()
        self._ctl_in = Inbox()
        self._welcomed = False  # on the current connection
        self._admitted = False  # ever
        self._heard = time.monotonic()
        self._started = time.monotonic()
        self._ack_due = False
        self._pong: int | None = None
        self._last_status = 0.0
        self._last_pump = time.monotonic()
        self.stalled = 0.0  # seconds some rank had output waiting for the kernel's credit
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-agent-link", daemon=True)

    @property
    def public_key(self) -> str:
        return self._public.decode()

    def start(self) -> None:
        # The link thread: owns the socket; everything else reaches it through queues.
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then close the socket."""
        self._stopping = True
        self.wake()
        self._thread.join(timeout)

    def send_ctl(self, msg: dict[str, Any]) -> None:
        """Send ``msg`` to the kernel on the control lane (thread-safe, in order)."""
        self._ctl_queue.put(msg)
        self.wake()

    def status_soon(self) -> None:
        """Send the status at the next turn (after what is queued now), not in up to a second."""
        self._last_status = 0.0
        self.wake()

    def add_epoch(self, epoch: int, mailboxes: Mailboxes) -> None:
        with self._lock:
            self._epochs[epoch] = _Epoch(mailboxes)
        self.wake()

    def end_epoch(self, epoch: int) -> None:
        """The epoch's procs are gone and their output is all in its mailboxes."""
        with self._lock:
            if epoch in self._epochs:
                self._epochs[epoch].done = True
        self.wake()

    def flushed_out(self, epoch: int) -> bool:
        """True once everything of ``epoch`` was sent and acknowledged (or it is unknown)."""
        with self._lock:
            ep = self._epochs.get(epoch)
            if ep is None:
                return True
            return not ep.mailboxes.ranks() and all(lane.out.unacked == 0 for lane in ep.lanes.values())

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # already awake, or closing
            os.write(self._wake_w, b"x")

    # --- the link thread ------------------------------------------------------------------
    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.curve_secretkey = self._secret
        sock.curve_publickey = self._public
        sock.curve_serverkey = self._secrets.server_key.encode()
        for opt, value in (
            (zmq.LINGER, 0),
            (zmq.IMMEDIATE, 1),  # while disconnected, sends fail: the lanes keep what is unsent
            (zmq.RECONNECT_IVL, 200),
            (zmq.RECONNECT_IVL_MAX, 1000),
            (zmq.HEARTBEAT_IVL, 1000),
            (zmq.HEARTBEAT_TIMEOUT, 3000),
            (zmq.SNDHWM, 10000),
        ):
            sock.setsockopt(opt, value)
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        monitor = sock.get_monitor_socket(events)
        sock.connect(self._secrets.endpoint)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._stopping or self._pending_output():
                ready = dict(poller.poll(20))
                if monitor in ready:
                    self._on_monitor(sock, monitor)
                if sock in ready:
                    self._receive(sock)
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                self._tick(sock)
                if self._stopping and time.monotonic() - self._heard > 2.0:
                    break  # the kernel is gone: nothing more can be delivered
        finally:
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            ctx.term()

    def _pending_output(self) -> bool:
        if not self._welcomed:
            return False
        with self._lock:
            epochs = list(self._epochs.values())
        return self._ctl_out.unacked > 0 or not self._ctl_queue.empty() or any(
            ep.mailboxes.ranks() or any(lane.out.unacked for lane in ep.lanes.values()) for ep in epochs
        )

    def _on_monitor(self, sock: zmq.Socket[Any], monitor: zmq.Socket[Any]) -> None:
        while monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._welcomed = False
                hello = {
                    "t": "hello",
                    **self._host.hello(),
                    "key": self.public_key,
                    "resume": self._admitted,
                }
                join_key = self._secrets.join_key
                hello["mac"] = join_mac(join_key, self.public_key, hello["host"]) if join_key else ""
                self._send(sock, frames.encode(hello))
            elif event == zmq.EVENT_DISCONNECTED:
                self._welcomed = False

    def _receive(self, sock: zmq.Socket[Any]) -> None:
        while True:
            try:
                raw = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                header, body = frames.decode(raw, frames.KERNEL_TYPES)
                self._heard = time.monotonic()
                self._on_message(sock, header, body)
            except frames.FrameError:
                continue  # the kernel speaks this wire version; anything else is noise

    def _on_message(self, sock: zmq.Socket[Any], header: dict[str, Any], body: bytes) -> None:
        kind = header["t"]
        if kind == "terminate":
            self._host.give_up("the kernel is gone (its stand-in said so)", 4)
            self._stopping = True
        elif kind == "refused":
            self._host.give_up(f"the kernel refused this agent: {header.get('reason', '?')}", 2)
            self._stopping = True
        elif kind == "welcome":
            self._window = int(header.get("window", self._window))
            if self._admitted:
                self._rewind_all()  # a new connection: what was in flight may be lost
            self._admitted = self._welcomed = True
        elif kind == "ctl" and self._welcomed:
            if self._ctl_in.accept(int(header["s"])):
                self._host.command(frames.ctl_message(body))
            self._ack_due = True
        elif kind == "credit" and self._welcomed:
            self._ctl_out.ack(int(header.get("c", 0)))
            with self._lock:
                for key, (acked, limit) in header.get("d", {}).items():
                    epoch, _, rank = key.partition(":")
                    ep = self._epochs.get(int(epoch))
                    lane = ep.lanes.get(int(rank)) if ep is not None else None
                    if lane is not None:
                        lane.out.ack(int(acked))
                        lane.credit.grant(int(limit))
        elif kind == "ping":
            self._pong = int(header.get("id", 0))
            self._ack_due = True

    def _rewind_all(self) -> None:
        self._ctl_out.rewind()
        with self._lock:
            for ep in self._epochs.values():
                for lane in ep.lanes.values():
                    lane.out.rewind()

    def _tick(self, sock: zmq.Socket[Any]) -> None:
        now = time.monotonic()
        while not self._ctl_queue.empty():
            msg = self._ctl_queue.get_nowait()
            self._ctl_out.push(frames.ctl_body(msg))
        if not self._admitted and now - self._started > JOIN_TIMEOUT and not self._stopping:
            self._host.give_up(f"not admitted by the kernel at {self._secrets.endpoint} within {JOIN_TIMEOUT:g} s", 2)
            self._stopping = True
            return
        if self._admitted and now - self._heard > self._lease and not self._stopping:
            self._host.give_up(f"no word from the kernel for {now - self._heard:.1f} s (lease {self._lease:g} s)", 3)
            self._stopping = True
            return
        if not self._welcomed:
            return
        if self._ack_due:
            ack: dict[str, Any] = {"t": "ack", "c": self._ctl_in.acked}
            if self._pong is not None:
                ack["pong"], self._pong = self._pong, None
            self._ack_due = not self._send(sock, frames.encode(ack))
        for seq, body in self._ctl_out.due():
            if not self._send(sock, frames.encode({"t": "ctl", "s": seq}, body)):
                self._ctl_out.unsend(seq)
                break
        self._pump(sock)
        if now - self._last_status >= STATUS_EVERY:
            self._last_status = now
            self._send(sock, frames.encode({"t": "status", **self._host.status()}))

    def _pump(self, sock: zmq.Socket[Any]) -> None:
        with self._lock:
            epochs = list(self._epochs.items())
        now = time.monotonic()
        waiting = any(
            lane.credit.room <= 0 and ep.mailboxes.queued(rank) > 0
            for _, ep in epochs
            for rank, lane in ep.lanes.items()
        )
        if waiting:
            self.stalled += now - self._last_pump
        self._last_pump = now
        for epoch, ep in epochs:
            for rank in ep.mailboxes.ranks():
                lane = ep.lanes.get(rank)
                if lane is None:
                    lane = ep.lanes[rank] = _DataLane(Outbox(), Credit(self._window))
                while lane.credit.room > 0:
                    items = ep.mailboxes.take(rank, min(lane.credit.room, frames.MAX_DATA_FRAME))
                    if not items:
                        break
                    cost = sum(item_size(i) for i in items)
                    lane.credit.spend(cost)
                    lane.out.push(frames.encode_items(items), cost)
            for rank, lane in ep.lanes.items():
                for seq, body in lane.out.due():
                    if not self._send(sock, frames.encode({"t": "data", "e": epoch, "r": rank, "s": seq}, body)):
                        lane.out.unsend(seq)
                        break
            if ep.done and self.flushed_out(epoch):
                with self._lock:
                    self._epochs.pop(epoch, None)

    def _send(self, sock: zmq.Socket[Any], msg: list[bytes]) -> bool:
        try:
            sock.send_multipart(msg, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

