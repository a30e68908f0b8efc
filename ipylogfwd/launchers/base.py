"""What every launcher provides, and the agents started as local processes.

A launcher starts one agent per host for a group and stops them; it never carries the procs'
output (the agents dial the kernel themselves). It decides how many hosts N procs need, in
which order the hosts take their contiguous rank ranges, and where the kernel listens.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from ..errors import UsageError
from ..hosts.link import HostInfo
from ..wire.admission import AgentSecrets

OUTPUT_KEPT = 64 * 1024


class AgentHandle(Protocol):
    """One started agent, as its launcher sees it."""

    @property
    def label(self) -> str:
        """The host it was started for ("" when the launcher does not know yet)."""
        ...

    def exited(self) -> int | None:
        """Its launch command's exit code once it ended, else None."""
        ...

    def output(self) -> str:
        """The end of what its launch command wrote on stderr so far."""
        ...

    def stop(self, timeout: float) -> None:
        """Make sure it is gone (asked, then killed)."""
        ...


class Launcher(Protocol):
    """Starts the agents of a group (see the module docstring)."""

    lease: float
    same_machine: bool  # the agents run on this machine (their log files can go in the group's)

    def describe(self) -> str:
        """A short name for messages and for telling launchers apart ("local x2")."""
        ...

    def hosts_for(self, n: int) -> int:
        """How many hosts (agents) ``n`` procs take; ``UsageError`` if they cannot."""
        ...

    def listen_address(self) -> str:
        """The address the kernel's port binds to, reachable from every host."""
        ...

    def launch(self, secrets: AgentSecrets, count: int, admit: Callable[[str], None]) -> list[AgentHandle]:
        """Start ``count`` agents with ``secrets``, given privately (never on a command line).
        A launcher whose agents make their own keys calls ``admit(public_key)`` for each,
        before starting it, instead of handing them the join key."""
        ...

    def order(self, joined: list[HostInfo]) -> list[HostInfo]:
        """The joined hosts in rank order (host 0 holds ranks 0..per_host-1, and MASTER_ADDR)."""
        ...

    def close(self) -> None:
        """Release what the launcher holds (its agents are already told to leave)."""
        ...


def agent_argv(host: str, lease: float, *, die_with_parent: bool = False) -> list[str]:
    """The agent's command line with this Python (the same environment must exist there).

    ``die_with_parent``: the agent exits with the process that started it, when that is this
    kernel (a local agent, ``ip netns exec``). The signal fires when the starting *thread*
    exits, so it is asked for only from the main thread, which lives as long as the kernel.
    """
    argv = [sys.executable, "-m", "ipylogfwd.agent", "--lease", f"{lease:g}"]
    if host:
        argv += ["--host", host]
    if die_with_parent and threading.current_thread() is threading.main_thread():
        argv.append("--die-with-parent")
    return argv


def check_per_host(n: int, per_host: int, hosts: int | None) -> int:
    """How many hosts ``n`` procs at ``per_host`` each need (at most ``hosts``)."""
    if isinstance(per_host, bool) or not isinstance(per_host, int) or per_host < 1:
        raise UsageError(f"per_host must be a positive integer, not {per_host!r}")
    if n % per_host:
        raise UsageError(f"{n} procs cannot be spread {per_host} per host: per_host must divide the number of procs")
    need = n // per_host
    if hosts is not None and need > hosts:
        raise UsageError(f"{n} procs at {per_host} per host need {need} hosts; the launcher has {hosts}")
    return need


def check_hosts(hosts: Sequence[str]) -> list[str]:
    names = [str(h) for h in hosts]
    if not names:
        raise UsageError("a launcher needs at least one host")
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise UsageError(f"duplicate hosts: {', '.join(dup)}")
    return names


class ProcessAgent:
    """An agent (or the command that starts it remotely) run as a local child process."""

    def __init__(self, label: str, argv: list[str] | str, secrets: AgentSecrets, *, shell: bool = False) -> None:
        self._label = label
        self._tail: collections.deque[str] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()  # the output thread appends, callers read
        self.command = argv if isinstance(argv, str) else " ".join(argv)
        self.process = subprocess.Popen(
            argv,
            shell=shell,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a kernel interrupt must not reach it
            text=True,
        )
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):  # it died at once: exited() and output() say why
            self.process.stdin.write(secrets.dumps() + "\n")
            self.process.stdin.flush()
            self.process.stdin.close()
        # The output thread: keeps the end of what the launch command writes on stderr.
        threading.Thread(target=self._read, name=f"ipylogfwd-launch-{label or 'agent'}", daemon=True).start()

    @property
    def label(self) -> str:
        return self._label

    def exited(self) -> int | None:
        return self.process.poll()

    def output(self) -> str:
        with self._lock:
            return "".join(self._tail)

    def stop(self, timeout: float) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(5.0)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(self.process.pid, sig)  # the command and whatever it started here

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self._tail.append(line)
                self._size += len(line)
                while self._size > OUTPUT_KEPT and len(self._tail) > 1:
                    self._size -= len(self._tail.popleft())
