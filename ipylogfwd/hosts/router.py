"""The kernel's end of the links to every host's agent.

The "ipylogfwd-hosts" thread owns one ZeroMQ ROUTER socket, bound on one port with a fresh
CurveZMQ keypair, and the ZAP handler that decides which client keys may connect. Agents
dial in. The thread:

* admits agents (``wire.admission``: a MAC over the agent's key made with the one-time join
  key, or a key known in advance), refuses the rest with a reason, and binds each admitted
  host to its key: a message whose sender key differs from its host's is dropped;
* takes each rank's ``data`` frames in lane order (``wire.lanes``) into the mailboxes of the
  epoch (generation) they belong to, and grants credit as the dispatcher drains them, so the
  kernel holds at most a window per rank;
* carries control messages both ways on one lane per host, hands the agents' events to the
  epoch's handler, keeps each host's status and liveness, and pings every second.

Other threads reach it only through ``send_ctl`` and ``register``/``unregister`` (queues
and a lock-guarded table) and wake it through a pipe.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from ..pipeline.queues import Mailboxes
from ..wire import frames
from ..wire.admission import mac_ok
from ..wire.lanes import Inbox
from . import zap
from .link import HostInfo, HostLink, LinkSnapshot

CREDIT_EVERY = 0.02
PING_EVERY = 1.0
MAX_REFUSALS = 20

EventHandler = Callable[[str, dict[str, Any]], None]
"""Called on the router thread with (host, event) for an agent's control message."""


@dataclass
class _Route:
    host: str
    mailboxes: Mailboxes
    on_event: EventHandler


@dataclass(frozen=True)
class Admission:
    """Who may join: holders of ``join_key``, or the ``keys`` known in advance; agents must run
    ``python`` (major.minor) and ipylogfwd ``version``; at most ``hosts`` of them."""

    join_key: str
    keys: frozenset[str]
    hosts: int
    python: str
    version: str


class Router:
    """The kernel's socket for all hosts, with its thread. Thread-safe methods."""

    def __init__(self, listen: str, admission: Admission, *, lease: float, window: int) -> None:
        self.admission = admission
        self._lease = lease
        self._window = window
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._policy = zap.ZapPolicy()
        self._zap = zap.open_zap(self._ctx)
        public, secret = zmq.curve_keypair()
        self.server_key, self.server_secret = public.decode(), secret.decode()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.curve_server = True
        self._sock.curve_secretkey = secret
        self._sock.curve_publickey = public
        for opt, value in ((zmq.LINGER, 0), (zmq.ROUTER_MANDATORY, 1), (zmq.SNDHWM, 10000)):
            self._sock.setsockopt(opt, value)
        port = self._sock.bind_to_random_port(f"tcp://{listen}")
        self.endpoint = f"tcp://{listen}:{port}"
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._commands: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        # Links and routes are written by the router thread and by register/unregister, read
        # by callers: one lock. Each link's own fields have the link's lock.
        self._lock = threading.Lock()
        self._links: dict[str, HostLink] = {}
        self._by_rid: dict[bytes, HostLink] = {}
        self._routes: dict[tuple[int, int], _Route] = {}
        self._allowed: set[str] = set(admission.keys)
        self.refusals: list[str] = []  # why agents that looked like ours were refused
        self.ignored = 0  # messages dropped: garbage, unknown senders, forged keys
        self.host_events: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._joined = threading.Condition(self._lock)
        self._stopping = False
        self._last_credit = 0.0
        self._last_ping = 0.0
        # The router thread: owns the socket and the ZAP handler (see the module docstring).
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-hosts", daemon=True)
        self._thread.start()

    # --- for other threads ----------------------------------------------------------------
    def send_ctl(self, host: str, msg: dict[str, Any]) -> None:
        """Send ``msg`` to ``host``'s agent, reliably and in order."""
        self._commands.put((host, msg))
        self._wake()

    def register(self, epoch: int, host: str, ranks: list[int], mailboxes: Mailboxes, on_event: EventHandler) -> None:
        """Output of ``ranks`` in ``epoch`` goes to ``mailboxes``; the agent's events about the
        epoch go to ``on_event``."""
        with self._lock:
            for rank in ranks:
                self._routes[(epoch, rank)] = _Route(host, mailboxes, on_event)

    def unregister(self, epoch: int) -> None:
        with self._lock:
            for key in [k for k in self._routes if k[0] == epoch]:
                del self._routes[key]

    def links(self) -> list[LinkSnapshot]:
        with self._lock:
            links = list(self._links.values())
        return [link.snapshot() for link in links]

    def link(self, host: str) -> HostLink | None:
        with self._lock:
            return self._links.get(host)

    def allow(self, key: str) -> None:
        """Admit an agent by its public key, known in advance (a launcher made it)."""
        with self._lock:
            self._allowed.add(key)

    def joined(self) -> list[HostInfo]:
        with self._lock:
            return [link.info for link in self._links.values()]

    def wait_joined(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` hosts are admitted (then joining closes); False on timeout."""
        with self._joined:
            ok = self._joined.wait_for(lambda: len(self._links) >= count, max(0.0, timeout))
        if ok:
            self._policy.close_joining()
        return ok

    def close(self) -> None:
        """Stop the thread and close the socket (what was not sent is dropped)."""
        self._stopping = True
        self._wake()
        self._thread.join(5.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # already awake, or closed
            os.write(self._wake_w, b"x")

    # --- the router thread ----------------------------------------------------------------
    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._zap, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        try:
            while not self._stopping:
                ready = dict(poller.poll(20))
                if self._zap in ready:
                    zap.answer(self._zap, self._policy)
                if self._sock in ready:
                    self._receive()
                if self._wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                self._tick()
            self._tick()  # a last bye, if one was queued
        finally:
            self._sock.close(0)
            self._zap.close(0)
            self._ctx.term()

    def _receive(self) -> None:
        for _ in range(1000):  # then let the tick run: credits and control must keep moving
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            rid = parts[0].bytes
            sender = str(parts[1].get("User-Id")) if len(parts) > 1 else ""
            try:
                header, body = frames.decode([p.bytes for p in parts[1:]], frames.AGENT_TYPES)
            except frames.FrameError:
                self.ignored += 1
                continue
            if header["t"] == "hello":
                self._hello(rid, sender, header)
                continue
            with self._lock:
                link = self._by_rid.get(rid)
            if link is None or link.info.key != sender:
                self.ignored += 1  # nothing before an admitted hello; nobody speaks for another
                continue
            link.heard()
            try:
                self._on_message(link, header, body)
            except (frames.FrameError, KeyError, ValueError, TypeError):
                self.ignored += 1

    def _hello(self, rid: bytes, sender: str, hello: dict[str, Any]) -> None:
        try:
            info = HostInfo.from_hello(hello)
        except (KeyError, ValueError, TypeError):
            self.ignored += 1
            return
        adm = self.admission
        with self._lock:
            existing = self._links.get(info.host)
        why = ""
        if info.key != sender:
            why = "the hello's key is not the connection's key"
        elif existing is not None and existing.info.key == info.key and existing.reported_lost:
            # Lost means lost on both sides: its ranks' cells have failed, and its own lease
            # has run out or nearly; it must not come back as if nothing happened.
            self._send(rid, frames.encode({"t": "refused", "reason": "this host was declared lost (past its lease)"}))
            return
        elif existing is not None and existing.info.key == info.key:
            with self._lock:  # the same agent on a new connection: resume
                self._by_rid.pop(existing.routing_id, None)
                existing.routing_id = rid
                self._by_rid[rid] = existing
            existing.heard()
            existing.ctl_out.rewind()
            existing.granted.clear()
            self._send(rid, frames.encode({"t": "welcome", "window": self._window, "resume": True}))
            return
        elif not self._admissible(info, hello.get("mac")):
            self.ignored += 1
            self._send(rid, frames.encode({"t": "refused", "reason": "not admitted"}))
            return
        elif existing is not None:
            why = f"duplicate host {info.host!r}: another agent already joined under that name"
        elif len(self._links) >= adm.hosts:
            why = "joining is closed: every host of the group has joined"
        elif info.python != adm.python or info.version != adm.version:
            why = (
                f"the agent on {info.host} runs Python {info.python} with ipylogfwd {info.version}; "
                f"the kernel runs Python {adm.python} with ipylogfwd {adm.version}"
            )
        if why:
            self.refusals = [*self.refusals[-MAX_REFUSALS + 1 :], why]
            self._send(rid, frames.encode({"t": "refused", "reason": why}))
            return
        link = HostLink(info, rid, self._lease)
        self._policy.admit(info.key)
        with self._joined:
            self._links[info.host] = link
            self._by_rid[rid] = link
            self._joined.notify_all()
        self._send(rid, frames.encode({"t": "welcome", "window": self._window, "resume": False}))

    def _admissible(self, info: HostInfo, mac: object) -> bool:
        adm = self.admission
        with self._lock:
            known = info.key in self._allowed
        return known or bool(adm.join_key and mac_ok(adm.join_key, info.key, info.host, mac))

    def _on_message(self, link: HostLink, header: dict[str, Any], body: bytes) -> None:
        kind = header["t"]
        if kind == "data":
            key = (int(header["e"]), int(header["r"]))
            inbox = link.data_in.setdefault(key, Inbox())
            if inbox.accept(int(header["s"])):
                with self._lock:
                    route = self._routes.get(key)
                if route is not None:  # else an epoch already closed: taken and dropped
                    route.mailboxes.put(key[1], frames.decode_items(body))
        elif kind == "ctl":
            if link.ctl_in.accept(int(header["s"])):
                self._event(link.info.host, frames.ctl_message(body))
        elif kind == "ack":
            link.ctl_out.ack(int(header.get("c", 0)))
            if header.get("pong") == link.ping_id and link.ping_sent:
                with link.lock:
                    link.rtt = time.monotonic() - link.ping_sent
        elif kind == "status":
            with link.lock:
                link.status = {k: v for k, v in header.items() if k not in ("v", "t")}
                link.status_at = time.monotonic()

    def _event(self, host: str, msg: dict[str, Any]) -> None:
        epoch = msg.get("epoch")
        route = None
        if isinstance(epoch, int):
            with self._lock:
                route = next((r for (e, _), r in self._routes.items() if e == epoch and r.host == host), None)
        if route is not None:
            route.on_event(host, msg)
        else:
            self.host_events.put((host, msg))

    def _tick(self) -> None:
        while not self._commands.empty():
            host, msg = self._commands.get_nowait()
            with self._lock:
                link = self._links.get(host)
            if link is not None:
                link.ctl_out.push(frames.ctl_body(msg))
        now = time.monotonic()
        credit_due, ping_due = now - self._last_credit >= CREDIT_EVERY, now - self._last_ping >= PING_EVERY
        with self._lock:
            links = list(self._links.values())
            routes = dict(self._routes)
        for link in links:
            if not link.reported_lost and link.state(now) == "lost":
                link.reported_lost = True
                self._lost(link, routes)
            for seq, body in link.ctl_out.due():
                if not self._send(link.routing_id, frames.encode({"t": "ctl", "s": seq}, body)):
                    link.ctl_out.unsend(seq)
                    break
            if credit_due:
                self._credit(link, routes, resend=ping_due)
            if ping_due:
                link.ping_id += 1
                link.ping_sent = now
                self._send(link.routing_id, frames.encode({"t": "ping", "id": link.ping_id}))
        if credit_due:
            self._last_credit = now
        if ping_due:
            self._last_ping = now

    def _lost(self, link: HostLink, routes: dict[tuple[int, int], _Route]) -> None:
        """Tell every epoch with ranks on ``link``'s host that the host is lost."""
        why = link.why_silent() or f"host {link.info.host} lost"
        handlers = {id(r.on_event): r.on_event for r in routes.values() if r.host == link.info.host}
        for on_event in handlers.values():
            on_event(link.info.host, {"type": "lost", "why": why})
        self.host_events.put((link.info.host, {"type": "lost", "why": why}))

    def _credit(self, link: HostLink, routes: dict[tuple[int, int], _Route], resend: bool) -> None:
        grants: dict[str, list[int]] = {}
        for key, inbox in link.data_in.items():
            route = routes.get(key)
            # A closed epoch's lanes get all the credit they want: what they send is dropped.
            drained = route.mailboxes.drained(key[1]) if route is not None else 1 << 62
            grant = (inbox.acked, min(drained + self._window, 1 << 62))
            if resend or link.granted.get(key) != grant:
                grants[f"{key[0]}:{key[1]}"] = list(grant)
                link.granted[key] = grant
        if grants or resend:
            self._send(link.routing_id, frames.encode({"t": "credit", "c": link.ctl_in.acked, "d": grants}))

    def _send(self, rid: bytes, msg: list[bytes]) -> bool:
        try:
            self._sock.send_multipart([rid, *msg], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:  # the agent is not connected now (or its queue is full): later
            return False

