"""``CommandLauncher``: agents started by any command — ssh, srun, ``ip netns exec``, ...

``command`` is a shell template: ``{agent}`` is the agent's command line (with this Python:
the same environment must exist on the hosts, as with a shared file system), ``{host}`` the
host's name. The agent reads its secrets on its standard input, which the command must pass
on (ssh and ``ip netns exec`` do; srun needs ``--input=all``); nothing secret is on a command
line. With a list of hosts the command runs once per host; with a number of hosts it runs
once and must start that many agents (srun), which name themselves by their hostnames.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable, Sequence

from ..agent.netinfo import route_to
from ..errors import UsageError
from ..hosts.link import HostInfo
from ..wire.admission import AgentSecrets
from .base import AgentHandle, ProcessAgent, agent_argv, check_hosts, check_per_host


class CommandLauncher:
    """Agents started by ``command`` on ``hosts`` (names, or how many), ``per_host`` procs each.

    ``listen`` is the kernel's address as the hosts reach it (default: this machine's address
    on the route to the first named host, else every interface). ``lease``: how long an agent
    keeps its procs without word from the kernel.
    """

    def __init__(
        self,
        hosts: Sequence[str] | int,
        command: str,
        per_host: int,
        listen: str | None = None,
        lease: float = 30.0,
    ) -> None:
        if isinstance(hosts, int) and not isinstance(hosts, bool):
            if hosts < 1:
                raise UsageError(f"hosts must be at least 1, not {hosts}")
            if "{host}" in command:
                raise UsageError("with a number of hosts the command runs once: it cannot use {host}")
            self.names: list[str] | None = None
            self.count = hosts
        elif isinstance(hosts, int):
            raise UsageError(f"hosts must be host names or a number of hosts, not {hosts!r}")
        else:
            self.names = check_hosts(hosts)
            self.count = len(self.names)
        if "{agent}" not in command:
            raise UsageError("the command must contain {agent}, where the agent's command line goes")
        check_per_host(per_host, per_host, None)
        self.command = command
        self.per_host = per_host
        self.listen = listen
        self.lease = lease
        self.same_machine = False
        self._agents: list[ProcessAgent] = []

    @classmethod
    def ssh(cls, hosts: Sequence[str], per_host: int, *, listen: str | None = None, lease: float = 30.0,
            ssh: str = "ssh -o BatchMode=yes") -> CommandLauncher:
        """Agents started over ssh (key-based login; the secrets go over ssh's stdin)."""
        return cls(hosts, f"{ssh} {{host}} {{agent}}", per_host, listen, lease)

    @classmethod
    def slurm(cls, nodes: int, per_host: int, *, listen: str | None = None, lease: float = 30.0,
              srun: str = "srun") -> CommandLauncher:
        """One agent per node of the current Slurm allocation, started by one srun."""
        return cls(nodes, f"{srun} --nodes={nodes} --ntasks-per-node=1 --input=all {{agent}}", per_host, listen, lease)

    def describe(self) -> str:
        return f"command {self.command!r} on {self.names or self.count}"

    def hosts_for(self, n: int) -> int:
        need = check_per_host(n, self.per_host, self.count)
        if self.names is None and need != self.count:
            raise UsageError(
                f"{n} procs at {self.per_host} per host need {need} hosts; this launcher starts {self.count}"
            )
        return need

    def listen_address(self) -> str:
        if self.listen:
            return self.listen
        # This machine's address on the route to the first host; with no name to route to
        # (srun), the address the hostname resolves to.
        target = self.names[0] if self.names else socket.gethostname()
        try:
            return route_to(f"tcp://{socket.gethostbyname(target)}:9")[0]
        except OSError as exc:
            raise UsageError(f"cannot tell the hosts where to reach this kernel ({exc}); pass listen=ADDRESS") from None

    def launch(self, secrets: AgentSecrets, count: int, admit: Callable[[str], None]) -> list[AgentHandle]:
        if self.names is None:
            argv = shlex.join(agent_argv("", self.lease))
            self._agents = [ProcessAgent("", self.command.format(agent=argv, host=""), secrets, shell=True)]
        else:
            self._agents = []
            for host in self.names[:count]:
                argv = shlex.join(agent_argv(host, self.lease, die_with_parent=True))
                self._agents.append(ProcessAgent(host, self.command.format(agent=argv, host=host), secrets, shell=True))
        return list(self._agents)

    def order(self, joined: list[HostInfo]) -> list[HostInfo]:
        if self.names is None:
            return sorted(joined, key=lambda h: (h.addr, h.host))
        rank = {name: i for i, name in enumerate(self.names)}
        return sorted(joined, key=lambda h: rank.get(h.host, len(rank)))

    def close(self) -> None:
        for agent in self._agents:
            agent.stop(2.0)

    def __repr__(self) -> str:
        return f"CommandLauncher({self.names or self.count!r}, {self.command!r}, per_host={self.per_host})"
