"""The hosts of a group: the agents a launcher started, admitted, in rank order.

A ``Cluster`` lives as long as its ``ProcGroup``: ``restart()`` makes a new generation of
procs on the same agents. Starting it binds the kernel's port (``router``), has the launcher
start one agent per host with the secrets to join, and waits until every host is in. A
launch command that fails, an agent refused at its hello (another Python or ipylogfwd
version, a duplicate host) or a host that never connects is a ``ProcStartError`` naming the
host and saying why (with the command's own output), and nothing is left running.

Ranks are contiguous per host, in the launcher's host order; host 0 gives ``MASTER_ADDR`` (its
address on the route to the kernel) and ``MASTER_PORT`` (a port free there).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProcStartError
from ..group.environment import proc_env
from ..group.procset import ProcEvents
from ..launchers.base import AgentHandle, Launcher
from ..pipeline.queues import Mailboxes
from ..proc.watchdog import Watchdog
from ..version import __version__
from ..wire.admission import AgentSecrets, new_join_key
from ..wire.lanes import window_for
from .link import HostInfo, LinkSnapshot
from .remoteprocs import RemoteProcs
from .router import Admission, Router

BYE_GRACE = 3.0


@dataclass(frozen=True)
class HostRow:
    """One host: its ranks and its link."""

    host: str
    ranks: list[int]
    link: LinkSnapshot


class Cluster:
    """The agents of one group (see the module docstring)."""

    def __init__(self, launcher: Launcher, size: int, *, start_timeout: float) -> None:
        self.launcher = launcher
        self.size = size
        count = launcher.hosts_for(size)
        self.per_host = size // count
        python = ".".join(platform.python_version_tuple()[:2])
        admission = Admission(new_join_key(), frozenset(), count, python, __version__)
        self.router = Router(launcher.listen_address(), admission, lease=launcher.lease, window=window_for(size))
        # If the kernel dies, its watchdog takes the port and tells the agents to terminate.
        self._watchdog = Watchdog()
        self._watchdog.stand_in(self.router.endpoint, self.router.server_key, self.router.server_secret)
        self._agents: list[AgentHandle] = []
        self.hosts: list[HostInfo] = []
        try:
            secrets = AgentSecrets(self.router.endpoint, self.router.server_key, admission.join_key)
            self._agents = launcher.launch(secrets, count, self.router.allow)
            self._await_hosts(count, start_timeout)
        except BaseException:
            self.close()
            raise
        self.hosts = launcher.order(self.router.joined())

    def _await_hosts(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.router.wait_joined(count, 0.1):
            if self.router.refusals:
                raise ProcStartError(f"an agent was refused: {self.router.refusals[-1]}")
            joined = {h.host for h in self.router.joined()}
            for agent in self._agents:
                code = agent.exited()
                # A named agent that ended before joining failed; srun's one command may end
                # only when all its agents do.
                if code is not None and (agent.label not in joined if agent.label else len(joined) < count):
                    raise ProcStartError(
                        f"the agent for host {agent.label or '?'} did not start: its launch command exited "
                        f"with code {code}" + _output(agent)
                    )
            if time.monotonic() > deadline:
                missing = [a.label for a in self._agents if a.label and a.label not in joined]
                names = ", ".join(missing) if missing else f"{count - len(joined)} of {count}"
                raise ProcStartError(
                    f"host(s) {names} did not connect within {timeout:g} s to {self.router.endpoint}"
                    + "".join(_output(a) for a in self._agents if a.label in missing or not a.label)
                )

    def ranks_of(self, index: int) -> list[int]:
        return list(range(index * self.per_host, (index + 1) * self.per_host))

    def proc_sets(
        self, epoch: int, mailboxes: Mailboxes, events: ProcEvents, *, flush_interval: float, logdir: Path
    ) -> list[RemoteProcs]:
        """One proc set per host for generation ``epoch``, each rank with its environment. Agents
        on this machine write their logs in ``logdir``; others in a directory of their own."""
        shared = str(logdir) if self.launcher.same_machine else ""
        head = self.hosts[0]
        sets = []
        for index, host in enumerate(self.hosts):
            envs = {
                rank: proc_env(
                    rank,
                    self.size,
                    local_rank=rank - index * self.per_host,
                    local_world_size=self.per_host,
                    node_rank=index,
                    nnodes=len(self.hosts),
                    master_addr=head.addr,
                    master_port=head.master_port,
                    extra={"GLOO_SOCKET_IFNAME": host.ifname} if host.ifname else None,
                )
                for rank in self.ranks_of(index)
            }
            sets.append(
                RemoteProcs(
                    self.router, host, epoch, envs, mailboxes, events, flush_interval=flush_interval, logdir=shared
                )
            )
        return sets

    def rows(self) -> list[HostRow]:
        links = {s.host: s for s in self.router.links()}
        return [HostRow(h.host, self.ranks_of(i), links[h.host]) for i, h in enumerate(self.hosts) if h.host in links]

    def close(self) -> None:
        """Tell every agent to leave, wait a little for them, then stop what is left."""
        for host in self.router.joined():
            self.router.send_ctl(host.host, {"type": "bye"})
        deadline = time.monotonic() + BYE_GRACE
        while any(a.exited() is None for a in self._agents) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.launcher.close()
        self.router.close()
        self._watchdog.no_stand_in(self.router.endpoint)
        self._watchdog.close()

    def describe(self) -> str:
        return self.launcher.describe()


def _output(agent: AgentHandle) -> str:
    text = agent.output().strip()
    return f"; it said:\n{text}" if text else ""
