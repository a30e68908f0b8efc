"""The kernel's ZAP handler: which CurveZMQ client keys may finish a handshake.

libzmq asks the ZAP handler (a REP socket at ``inproc://zeromq.zap.01`` in the socket's own
context) about every CURVE handshake. While the group is still waiting for its agents, any
client key may connect (it must still prove itself in its ``hello``: see
``wire.admission``); once every host has joined, only the admitted keys may. The reply's
User-Id is the client key, so every message the kernel receives says which key sent it.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq
from zmq.utils import z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


class ZapPolicy:
    """Which client keys may connect; read by the router thread, changed by the cluster."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the cluster closes joining while the router answers ZAP
        self._open = True
        self._keys: set[bytes] = set()

    def admit(self, key_z85: str) -> None:
        with self._lock:
            self._keys.add(key_z85.encode())

    def close_joining(self) -> None:
        with self._lock:
            self._open = False

    def allows(self, key_z85: bytes) -> bool:
        with self._lock:
            return self._open or key_z85 in self._keys


def open_zap(ctx: zmq.Context[Any]) -> zmq.Socket[Any]:
    """The ZAP socket for ``ctx`` (bind before any CURVE server socket of ``ctx`` binds)."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.REP)
    sock.linger = 0
    sock.bind(ZAP_ENDPOINT)
    return sock


def answer(sock: zmq.Socket[Any], policy: ZapPolicy) -> None:
    """Answer the ZAP requests waiting on ``sock`` (call when it is readable)."""
    while True:
        try:
            msg = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        if len(msg) < 6:  # not a ZAP request (libzmq never sends one); REP must still answer
            sock.send_multipart([b"1.0", msg[1] if len(msg) > 1 else b"", b"400", b"bad request", b"", b""])
            continue
        version, request_id, _domain, _address, _identity, mechanism = msg[:6]
        ok = mechanism == b"CURVE" and len(msg) == 7 and len(msg[6]) == 32
        key = z85.encode(msg[6]) if ok else b""
        if ok and policy.allows(key):
            sock.send_multipart([version, request_id, b"200", b"OK", key, b""])
        else:
            sock.send_multipart([version, request_id, b"400", b"not admitted", b"", b""])
