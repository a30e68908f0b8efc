"""Admission: how the kernel knows an agent that connects is one this group launched.

The link is CurveZMQ: the kernel has a fresh keypair per group, and an agent can only finish
the handshake if it was given the kernel's public key; the traffic is encrypted and the agent
is authenticated by its own (fresh) public key. Which agent keys are admitted:

* a key the kernel was told about through the launcher's own trusted channel (Ray returns
  each agent actor's public key), or
* a key whose ``hello`` carries ``HMAC-SHA256(join key, "ipylogfwd-join" || key || host)``,
  where the one-time join key went to the agent over the launcher's channel (its standard
  input, or a 0600 file), never on a command line. The MAC binds the join key to the agent's
  own CURVE key, so a ``hello`` replayed over another connection is refused.

``AgentSecrets`` is what an agent is handed (JSON on its standard input, or in a file).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

JOIN_LABEL = b"ipylogfwd-join"


def new_join_key() -> str:
    """A fresh one-time join key (hex)."""
    return secrets.token_hex(32)


def join_mac(join_key: str, agent_key: str, host: str) -> str:
    """The MAC an agent holding ``join_key`` puts in its hello (hex)."""
    msg = JOIN_LABEL + b"\0" + agent_key.encode("ascii") + b"\0" + host.encode("utf-8")
    return hmac.new(bytes.fromhex(join_key), msg, hashlib.sha256).hexdigest()


def mac_ok(join_key: str, agent_key: str, host: str, mac: object) -> bool:
    return isinstance(mac, str) and hmac.compare_digest(join_mac(join_key, agent_key, host), mac)


@dataclass(frozen=True)
class AgentSecrets:
    """What an agent needs to join, handed over privately: where to connect, the kernel's
    public key, and either the join key or its own CURVE keypair (Ray)."""

    endpoint: str
    server_key: str  # z85
    join_key: str = ""
    public_key: str = ""  # z85; with secret_key, instead of generating a keypair
    secret_key: str = ""

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> AgentSecrets:
        try:
            data = json.loads(text)
            return cls(**{k: str(data[k]) for k in data if k in cls.__dataclass_fields__})
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the agent's secrets are not valid: {exc}") from None
