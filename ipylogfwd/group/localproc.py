"""One proc of this machine, as its proc set keeps it: its record (state, control channel,
stacks pipe), what it is handed at spawn, waiting for its hello, and killing its whole
process tree."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from pathlib import Path

from ..errors import ProcStartError
from ..pipeline.items import STDERR
from ..pipeline.logfiles import log_path
from ..proc import tree
from ..wire import proc_messages
from .status import describe_exit


@dataclass
class LocalProc:
    """The kernel's record of one local proc. Fields are written by the control thread and by
    callers (``execute``, ``ask_flush``), always under the set's lock."""

    rank: int
    process: multiprocessing.process.BaseProcess
    conn: mp_connection.Connection
    token: bytes
    stacks_fd: int  # read end of the proc's stacks pipe (read only by ``stacks``)
    pid: int | None = None
    state: str = "starting"
    last_heard: float = 0.0
    exitcode: int | None = None
    conn_open: bool = True
    flush_unserved: int = 0  # the last flush version sent that the proc did not serve in time
    flush_read: int = 0  # the last flush version the proc says it has read and marked
    killing: bool = False  # kill() is taking it down: its exit is recorded there, not reported
    # Callers and the control thread send on the connection: one send at a time.
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, msg: proc_messages.ToProc) -> bool:
        with self.send_lock:
            if not self.conn_open:
                return False
            try:
                self.conn.send(msg)
                return True
            except (OSError, EOFError, ValueError):
                return False

    @property
    def alive(self) -> bool:
        return self.exitcode is None

    @property
    def dumpable(self) -> bool:
        """Whether it can be asked for a stack dump: alive, said hello, its stacks pipe open."""
        return self.alive and self.pid is not None and self.stacks_fd >= 0

    def killed(self) -> None:
        """Record that this proc was killed (under the set's lock); its control channel is
        closed later by the control thread, which may be waiting on it now."""
        if self.exitcode is None:
            self.exitcode = self.process.exitcode if self.process.exitcode is not None else -signal.SIGKILL
        self.state = "exited"
        with self.send_lock:
            self.conn_open = False

    def close_stacks(self) -> None:
        if self.stacks_fd >= 0:
            os.close(self.stacks_fd)
            self.stacks_fd = -1

    def heard(self, msg: proc_messages.FromProc) -> None:
        """Update from a message of the proc's (under the set's lock)."""
        self.last_heard = time.monotonic()
        if msg["type"] == "hello":
            self.pid = msg["pid"]
            self.state = "idle"
        elif msg["type"] == "started":
            self.state = "running"
        elif msg["type"] == "flushed":
            self.flush_read = max(self.flush_read, msg["version"])
        elif msg["type"] == "heartbeat":
            if self.state != "starting":
                self.state = "running" if msg["busy_cell"] is not None else "idle"
        elif msg["type"] == "result":
            self.state = "idle"

    def close_channels(self) -> None:
        with self.send_lock:
            self.conn_open = False
            if not self.conn.closed:
                self.conn.close()
        self.close_stacks()


def await_hello(snapshot: Callable[[], list[tuple[int, str, int | None]]], logdir: Path, timeout: float) -> None:
    """Return once every proc in ``snapshot()`` (rank, state, exit code) said hello;
    ``ProcStartError`` if one exited first or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        procs = snapshot()
        starting = [rank for rank, state, _ in procs if state == "starting"]
        dead = [(rank, code) for rank, _, code in procs if code is not None]
        if dead:
            rank, code = dead[0]
            raise ProcStartError(
                f"proc {rank} exited during start-up ({describe_exit(code)}); "
                f"its output is above and in {log_path(logdir, rank, STDERR)}; "
                "%procs --restart tries again"
            )
        if not starting:
            return
        if time.monotonic() > deadline:
            raise ProcStartError(
                f"proc(s) {starting} did not say hello within {timeout:g} s; %procs --restart tries again"
            )
        time.sleep(0.02)


def kill_tree(p: LocalProc) -> None:
    """Kill ``p``'s proc and everything below it, descendants first: while the proc lives they
    are still below it (it is their subreaper), so none is missed for having left its group."""
    if p.pid and p.process.is_alive():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p.pid, signal.SIGSTOP)  # it starts nothing more while its tree is walked
        tree.kill_descendants(p.pid)
    p.process.kill()
    kill_group(p.pid)


def kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
            os.killpg(pid, signal.SIGKILL)
