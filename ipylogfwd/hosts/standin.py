"""The kernel's stand-in: when the kernel is gone, tell its agents to terminate.

Run by the watchdog (``proc.watchdog``) after the kernel died. It binds the kernel's port
again with the kernel's own CurveZMQ keys, so the agents, which redial on their own, finish
their handshake with it (and with nobody else: only this key's holder can), and answers
whatever each sends with ``terminate``. Agents stop their procs and exit at once; those that
cannot reach it stop at the end of their lease.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import zmq

from ..wire import frames


def stand_in(endpoints: dict[str, tuple[str, str]], duration: float) -> None:
    """For ``duration`` seconds, at each endpoint (with its (public, secret) keys), answer
    every message with terminate."""
    ctx: zmq.Context[Any] = zmq.Context()
    socks = []
    deadline = time.monotonic() + duration
    for endpoint, (public, secret) in endpoints.items():
        sock = ctx.socket(zmq.ROUTER)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = public.encode(), secret.encode()
        sock.linger = 0
        while time.monotonic() < deadline:
            try:
                sock.bind(endpoint)  # the kernel's port: free once the kernel is gone
                socks.append(sock)
                break
            except zmq.ZMQError:
                time.sleep(0.1)
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    terminate = frames.encode({"t": "terminate"})
    while socks and time.monotonic() < deadline:
        for sock, _ in poller.poll(200):
            with contextlib.suppress(zmq.ZMQError):  # an agent gone meanwhile
                rid = sock.recv_multipart(zmq.NOBLOCK)[0]
                sock.send_multipart([rid, *terminate], zmq.NOBLOCK)
    for sock in socks:
        sock.close(0)
    ctx.term()
