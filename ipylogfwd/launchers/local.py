"""``LocalLauncher``: K agents on this machine, each a "host" of its own, on loopback.

For trying multi-host ipylogfwd on one machine and for tests: everything goes through the
same agents, links and lanes as across a network.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError
from ..hosts.link import HostInfo
from ..wire.admission import AgentSecrets
from .base import AgentHandle, ProcessAgent, agent_argv, check_per_host


class LocalLauncher:
    """``hosts`` agents on this machine, named local0, local1, ...; ``per_host`` procs each
    (default: the procs spread evenly)."""

    def __init__(self, hosts: int = 2, per_host: int | None = None, *, lease: float = 30.0) -> None:
        if isinstance(hosts, bool) or not isinstance(hosts, int) or hosts < 1:
            raise UsageError(f"hosts must be a positive integer, not {hosts!r}")
        self.hosts = hosts
        self.per_host = per_host
        self.lease = lease
        self.same_machine = True
        self._agents: list[ProcessAgent] = []

    def describe(self) -> str:
        return f"local x{self.hosts}"

    def hosts_for(self, n: int) -> int:
        if self.per_host is None:
            # As many of the hosts as divide the procs evenly.
            return max(h for h in range(1, self.hosts + 1) if n % h == 0)
        return check_per_host(n, self.per_host, self.hosts)

    def listen_address(self) -> str:
        return "127.0.0.1"

    def launch(self, secrets: AgentSecrets, count: int, admit: Callable[[str], None]) -> list[AgentHandle]:
        self._agents = [
            ProcessAgent(f"local{i}", agent_argv(f"local{i}", self.lease, die_with_parent=True), secrets)
            for i in range(count)
        ]
        return list(self._agents)

    def order(self, joined: list[HostInfo]) -> list[HostInfo]:
        return sorted(joined, key=lambda h: int(h.host.removeprefix("local") or 0))

    def close(self) -> None:
        for agent in self._agents:
            agent.stop(2.0)

    def __repr__(self) -> str:
        return f"LocalLauncher(hosts={self.hosts}, per_host={self.per_host})"
