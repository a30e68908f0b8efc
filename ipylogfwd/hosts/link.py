"""The kernel's record of one admitted agent (one host): who it is, its lanes, its liveness.

A ``HostLink`` is created when an agent is admitted and lives as long as the group. Its lanes
and counters belong to the router thread; what other threads read of it (``snapshot``) is
copied under its lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..wire.lanes import Inbox, Outbox

UNREACHABLE_AFTER = 3.0


@dataclass(frozen=True)
class HostInfo:
    """What an agent said about itself in its hello."""

    host: str
    pid: int
    addr: str  # its address on the route to the kernel
    ifname: str  # the interface that has it
    python: str
    version: str
    master_port: int  # a port free on that host when it said hello
    key: str  # its CurveZMQ public key (z85)

    @classmethod
    def from_hello(cls, hello: dict[str, Any]) -> HostInfo:
        return cls(
            host=str(hello["host"]),
            pid=int(hello["pid"]),
            addr=str(hello["addr"]),
            ifname=str(hello.get("ifname", "")),
            python=str(hello["python"]),
            version=str(hello["version"]),
            master_port=int(hello.get("master_port", 0)),
            key=str(hello["key"]),
        )


@dataclass(frozen=True)
class LinkSnapshot:
    """One host's link as the user sees it (``%procs``)."""

    host: str
    pid: int
    addr: str
    state: str  # connected / unreachable / lost
    silent_for: float  # seconds since the agent was last heard
    rtt: float | None  # seconds, the last ping's round trip
    stalled: float  # seconds the host's ranks waited for the kernel's credit, in all
    status: dict[str, Any]  # the agent's last status


@dataclass
class HostLink:
    info: HostInfo
    routing_id: bytes
    lease: float
    ctl_out: Outbox[bytes] = field(default_factory=Outbox)
    ctl_in: Inbox = field(default_factory=Inbox)
    data_in: dict[tuple[int, int], Inbox] = field(default_factory=dict)
    granted: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # last sent
    last_heard: float = field(default_factory=time.monotonic)
    ping_id: int = 0
    ping_sent: float = 0.0
    rtt: float | None = None
    status: dict[str, Any] = field(default_factory=dict)
    status_at: float = 0.0  # time.monotonic() when the status arrived
    reported_lost: bool = False  # the router told the epochs' handlers
    gone: bool = False  # said bye, or its process is known to have exited
    # The router thread writes; snapshot() readers on other threads copy under this lock.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def heard(self) -> None:
        with self.lock:
            self.last_heard = time.monotonic()

    def state(self, now: float | None = None) -> str:
        silent = (now or time.monotonic()) - self.last_heard
        if self.gone or silent > self.lease:
            return "lost"
        return "unreachable" if silent > UNREACHABLE_AFTER else "connected"

    def snapshot(self) -> LinkSnapshot:
        now = time.monotonic()
        with self.lock:
            return LinkSnapshot(
                host=self.info.host,
                pid=self.info.pid,
                addr=self.info.addr,
                state=self.state(now),
                silent_for=now - self.last_heard,
                rtt=self.rtt,
                stalled=float(self.status.get("stalled", 0.0)),
                status=dict(self.status),
            )

    def why_silent(self) -> str:
        """Why this host's ranks cannot answer now ("host h3 unreachable 4.1 s"), or ""."""
        snap = self.snapshot()
        if snap.state == "connected":
            return ""
        return f"host {snap.host} {snap.state} {snap.silent_for:.1f} s"
