"""Who gets in: the kernel's router admits only agents holding the group's join key (bound to
their own CURVE key) or known keys, refuses the rest with a reason, and lets nothing a foreign
peer sends reach the procs' output. Real ZeroMQ sockets on loopback, played by the test."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from ipylogfwd.hosts.router import Admission, Router
from ipylogfwd.pipeline.items import Log
from ipylogfwd.pipeline.queues import Mailboxes
from ipylogfwd.version import __version__
from ipylogfwd.wire import frames
from ipylogfwd.wire.admission import join_mac, new_join_key

PYTHON = ".".join(platform.python_version_tuple()[:2])


@pytest.fixture
def router() -> Iterator[Router]:
    r = Router("127.0.0.1", Admission(new_join_key(), frozenset(), 2, PYTHON, __version__), lease=30, window=1 << 20)
    try:
        yield r
    finally:
        r.close()


class Peer:
    """A DEALER that dials the router: an agent, or someone pretending to be one."""

    def __init__(self, router: Router, *, curve: bool = True, server_key: str | None = None) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        public, secret = zmq.curve_keypair()
        self.key = public.decode()
        if curve:
            self.sock.curve_publickey, self.sock.curve_secretkey = public, secret
            self.sock.curve_serverkey = (server_key or router.server_key).encode()
        self.sock.connect(router.endpoint)

    def hello(
        self, host: str, *, key: str = "", mac: str = "", python: str = PYTHON, version: str = __version__
    ) -> None:
        fields = {"host": host, "pid": 1, "addr": "127.0.0.1", "python": python, "version": version}
        self.send({"t": "hello", **fields, "key": key or self.key, "mac": mac, "resume": False})

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        self.sock.send_multipart(frames.encode(header, body))

    def reply(self, timeout: float = 2.0) -> dict[str, Any] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return json.loads(self.sock.recv_multipart()[0])

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def test_an_agent_with_the_join_key_is_welcomed_and_its_data_lands_in_order(router: Router) -> None:
    boxes = Mailboxes()
    router.register(1, "h1", [0], boxes, lambda host, msg: None)
    agent = Peer(router)
    try:
        agent.hello("h1", mac=join_mac(router.admission.join_key, agent.key, "h1"))
        assert (agent.reply() or {}).get("t") == "welcome"
        for seq, text in ((1, "a\n"), (3, "c\n"), (2, "b\n"), (3, "c\n")):  # a gap, then the fill
            agent.send({"t": "data", "e": 1, "r": 0, "s": seq}, frames.encode_items([Log(1, text)]))
        deadline = time.monotonic() + 5
        got: list[str] = []
        while len(got) < 3 and time.monotonic() < deadline:
            got += [i.text for _, items in boxes.drain() for i in items if isinstance(i, Log)]
            time.sleep(0.02)
        time.sleep(0.2)
        got += [i.text for _, items in boxes.drain() for i in items if isinstance(i, Log)]
        assert got == ["a\n", "b\n", "c\n"], "3 before 2 is dropped; 3 sent again is taken once, after 2"
    finally:
        agent.close()


@pytest.mark.parametrize(
    "attack",
    ["plaintext", "wrong server key", "forged mac", "replayed hello", "data before hello", "garbage"],
)
def test_a_foreign_peer_gets_nothing_in(router: Router, attack: str) -> None:
    boxes = Mailboxes()
    router.register(1, "h1", [0], boxes, lambda host, msg: None)
    legit = Peer(router)
    mac = join_mac(router.admission.join_key, legit.key, "h1")
    wrong = zmq.curve_keypair()[0].decode() if attack == "wrong server key" else None
    peer = Peer(router, curve=attack != "plaintext", server_key=wrong)
    try:
        if attack in ("plaintext", "wrong server key", "forged mac"):
            peer.hello("h1", mac="00" * 32)
        elif attack == "replayed hello":
            peer.hello("h1", key=legit.key, mac=mac)  # a real agent's hello, over another key
        elif attack == "data before hello":
            peer.send({"t": "data", "e": 1, "r": 0, "s": 1}, frames.encode_items([Log(1, "injected\n")]))
        else:
            peer.sock.send_multipart([b"\xff" * 40, b"\x00"])
            peer.sock.send_multipart([b"not json at all"])
        reply = peer.reply(1.5)
        assert reply is None or reply["t"] == "refused", reply
        assert router.joined() == [] and boxes.drain() == []
        # The real agent still gets in afterwards, under the name the attacker tried.
        legit.hello("h1", mac=mac)
        assert (legit.reply() or {}).get("t") == "welcome"
        assert [h.key for h in router.joined()] == [legit.key]
    finally:
        peer.close()
        legit.close()


@pytest.mark.parametrize(
    "case, why",
    [
        ("python", "runs Python 2.7"),
        ("version", "with ipylogfwd 0.0.1"),
        ("duplicate", "duplicate host 'h1'"),
    ],
)
def test_agents_that_cannot_serve_are_refused_with_a_reason(router: Router, case: str, why: str) -> None:
    peers = [Peer(router), Peer(router)]
    try:
        key = router.admission.join_key
        if case == "duplicate":
            peers[0].hello("h1", mac=join_mac(key, peers[0].key, "h1"))
            assert (peers[0].reply() or {}).get("t") == "welcome"
            peers[1].hello("h1", mac=join_mac(key, peers[1].key, "h1"))
        else:
            fields = {"python": "2.7"} if case == "python" else {"version": "0.0.1"}
            peers[1].hello("h1", mac=join_mac(key, peers[1].key, "h1"), **fields)
        reply = peers[1].reply() or {}
        assert reply.get("t") == "refused" and why in reply.get("reason", ""), reply
        assert why in router.refusals[-1]
    finally:
        for p in peers:
            p.close()


def test_once_every_host_joined_unknown_keys_cannot_even_connect(router: Router) -> None:
    agents = [Peer(router), Peer(router)]
    try:
        for i, agent in enumerate(agents):
            agent.hello(f"h{i}", mac=join_mac(router.admission.join_key, agent.key, f"h{i}"))
            assert (agent.reply() or {}).get("t") == "welcome"
        assert router.wait_joined(2, 1.0)
        stranger = Peer(router)
        agents.append(stranger)
        stranger.hello("h9", mac=join_mac(router.admission.join_key, stranger.key, "h9"))
        assert stranger.reply(1.5) is None, "the handshake of an unknown key must fail once joining closed"
        assert len(router.joined()) == 2
    finally:
        for p in agents:
            p.close()
