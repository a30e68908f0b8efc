"""The procs of this machine: a ``ProcSet`` whose procs are ``multiprocessing`` children.

``LocalProcs`` spawns each proc (``proc.worker.main`` under the spawn method) with its fds 1
and 2 on pipes whose read ends go to its own ``Reader`` (which frames them into the group's
mailboxes), a third pipe for its display bundles (read by the same reader), and a duplex
control ``Connection``. Its "ipylogfwd-control" thread receives
every proc's control messages (hello, heartbeats, results) and notices procs that exit; it
reports results and exits to the owner (``ProcEvents``). Each proc runs in a process group of
its own, guarded by the ``Watchdog`` so that its children die with the kernel too; every
kill takes the proc's whole process tree (``proc.tree``), so children that called ``setsid``
go too.

A rank's proc can be killed and replaced (``kill`` then ``respawn``) while the others run on:
the new one gets new pipes, a new token and a new control channel, and the same environment.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

from ..pipeline.items import STDERR, STDOUT, BarrierKey
from ..pipeline.logfiles import copy_logs, log_path
from ..pipeline.queues import Mailboxes
from ..pipeline.reader import Reader, make_pipe
from ..proc import worker
from ..proc.handoff import InheritedFd
from ..proc.watchdog import Watchdog
from ..wire import markers, proc_messages
from .data import Replies
from .localproc import LocalProc, await_hello, kill_group, kill_tree
from .procset import FlushAsk, ProcEvents, ProcInfo
from .stacks import RawStacks, collect

STOP_GRACE = 1.0
PRELOAD = ["ipylogfwd.proc.worker"]  # with IPython, for rich output: imported once, in the server


def _context() -> Any:
    """How procs are started: forked from multiprocessing's fork server, which has imported the
    proc's code once (a proc starts in milliseconds instead of a fresh interpreter's 0.1-0.3 s
    of imports), so that every proc is a clean fork of a single-threaded process, never of the
    kernel. The preload applies if this is the first use of the fork server in this process."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


@contextlib.contextmanager
def _nothing_to_rerun() -> Iterator[None]:
    """While a proc starts, multiprocessing sees a main module with nothing to run again.

    It prepares each child by running the parent's main module once more: a script's top
    level as ``__mp_main__`` (a script without ``if __name__ == "__main__":`` would start
    procs from its procs, and whatever else its top level does, once per proc), a script
    read from stdin not at all (the child fails). A proc runs its cells in a ``__main__`` of
    its own and needs none of it. The bare module stands in for the few milliseconds of a
    start, on the thread that starts the procs."""
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


class LocalProcs:
    """Some ranks of a group, as procs on this machine."""

    host = "localhost"

    def __init__(
        self,
        envs: dict[int, dict[str, str]],
        mailboxes: Mailboxes,
        events: ProcEvents,
        *,
        logdir: Path,
        flush_interval: float,
    ) -> None:
        """Procs for the ranks in ``envs``, each with its environment (RANK, WORLD_SIZE, ...)."""
        self.ranks = sorted(envs)  # read-only after this
        self.logdir = logdir
        self.started = False
        self._envs = envs
        self._events = events
        self._flush_interval = flush_interval
        self._lock = threading.Lock()  # guards _procs and every field of its records
        self._procs: dict[int, LocalProc] = {}
        self._retired: list[LocalProc] = []  # killed procs whose channels the control thread closes
        self._reader = Reader(mailboxes)
        self._watchdog = Watchdog()
        self._wake_r, self._wake_w = os.pipe()
        self._stacks_lock = threading.Lock()  # one stack dump at a time reads the stacks pipes
        self._stopping = False
        self._bad_message: str | None = None  # set by the control thread, shown in problems()
        self._replies = Replies()  # answers to push/pull, delivered by the control thread
        self._requests = itertools.count(1)
        # The control thread: receives every proc's messages and notices procs that exit.
        self._control = threading.Thread(target=self._control_loop, name="ipylogfwd-control", daemon=True)
        self._control.start()

    # --- start ----------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        self._spawn_all(self.ranks, timeout)
        self.started = True  # set once, read by other threads (an agent's link thread)

    def _spawn_all(self, ranks: list[int], timeout: float) -> None:
        ctx = _context()
        # A proc that dies the moment the kernel does would orphan its descendants (they go to
        # init before anyone can walk its tree): while the watchdog runs, it takes them down,
        # and the parent-death signal is only the fallback for when it could not start. That
        # signal fires when the spawning *thread* exits, so it needs the kernel's main thread.
        die_with_parent = not self._watchdog.running and threading.current_thread() is threading.main_thread()
        for rank in ranks:
            self._spawn(ctx, rank, die_with_parent)
        self._await_hello(ranks, timeout)

    respawn = _spawn_all  # a killed rank's fresh proc starts as the first one did

    def _spawn(self, ctx: Any, rank: int, die_with_parent: bool) -> None:
        out_r, out_w = make_pipe()
        err_r, err_w = make_pipe()
        disp_r, disp_w = make_pipe()
        stacks_r, stacks_w = os.pipe()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        token = markers.new_token()  # given to the proc and its reader only, never in the env
        fds = (InheritedFd(out_w), InheritedFd(err_w), InheritedFd(disp_w), InheritedFd(stacks_w))
        options = (self._flush_interval, die_with_parent)
        process = ctx.Process(
            target=worker.main,
            name=f"ipylogfwd-rank{rank}",
            # The whole environment, and the directory, as they are now: the procs are forked
            # from a server started earlier, with the environment and directory of then.
            args=({**os.environ, **self._envs[rank]}, os.getcwd(), *fds, child_conn, token, *options),
        )
        try:
            with _nothing_to_rerun():
                process.start()
        finally:
            os.close(out_w)
            os.close(err_w)
            os.close(disp_w)
            os.close(stacks_w)
            child_conn.close()
        os.set_blocking(stacks_r, False)
        self._reader.add(rank, out_r, err_r, token, self.logdir, disp_r)
        if process.pid is not None:
            # The proc makes its own process group, with the same id as its pid.
            self._watchdog.guard(process.pid)
        with self._lock:
            self._procs[rank] = LocalProc(rank, process, parent_conn, token, stacks_r, pid=process.pid)
        os.write(self._wake_w, b"x")

    def _await_hello(self, ranks: list[int], timeout: float) -> None:
        def snapshot() -> list[tuple[int, str, int | None]]:
            with self._lock:
                return [(r, self._procs[r].state, self._procs[r].exitcode) for r in ranks]

        await_hello(snapshot, self.logdir, timeout)

    # --- asked by the group ---------------------------------------------------------------
    def procs(self) -> list[ProcInfo]:
        with self._lock:
            return [
                ProcInfo(p.rank, self.host, p.pid, p.state, p.exitcode, p.last_heard)
                for p in self._procs.values()
            ]

    def execute(self, cell: int, code: str, ranks: list[int]) -> list[int]:
        msg = proc_messages.exec_(cell, code, f"<procs cell {cell}>")
        with self._lock:
            targets = [self._procs[r] for r in ranks]
            for p in targets:
                p.state = "running"
        return [p.rank for p in targets if not p.send(msg)]

    def ask_flush(self, version: int, ranks: list[int]) -> FlushAsk:
        with self._lock:
            procs = [self._procs[r] for r in ranks]
            dead = [p.rank for p in procs if not p.alive]
            # A proc that has still not read a request it failed to serve in time is stuck
            # (a loop holding the GIL): piling more onto its control channel would fill it
            # and block this send. It gets the weaker barrier at once instead.
            unasked = [p.rank for p in procs if p.alive and p.flush_unserved > p.flush_read]
            asked = [p for p in procs if p.alive and p.rank not in unasked]
        msg = proc_messages.flush(version)
        unasked += [p.rank for p in asked if not p.send(msg)]
        return FlushAsk(dead, sorted(unasked))

    def flush_ended(self, version: int, unserved: list[int]) -> None:
        with self._lock:
            for rank in unserved:
                self._procs[rank].flush_unserved = version

    def weak_barrier(self, key: BarrierKey, ranks: list[int], timeout: float) -> bool:
        return self._reader.weak_barrier(key, ranks, timeout)

    def push(self, values: dict[int, dict[str, bytes]], timeout: float) -> dict[int, proc_messages.Data]:
        req = next(self._requests)
        return self._ask(req, {rank: proc_messages.push(req, v) for rank, v in values.items()}, timeout)

    def pull(self, names: list[str], ranks: list[int], timeout: float) -> dict[int, proc_messages.Data]:
        req = next(self._requests)
        return self._ask(req, dict.fromkeys(ranks, proc_messages.pull(req, names)), timeout)

    def _ask(
        self, req: int, messages: dict[int, proc_messages.ToProc], timeout: float
    ) -> dict[int, proc_messages.Data]:
        with self._lock:
            procs = {rank: self._procs[rank] for rank in messages}
            # Like a flush (ask_flush): a proc that left a request unread is not sent another.
            stuck = {p.rank for p in procs.values() if p.flush_unserved > p.flush_read}
        self._replies.expect(req, [r for r in messages if r not in stuck])
        for rank, msg in messages.items():
            if rank not in stuck:
                procs[rank].send(msg)  # not sent (channel closed): it does not answer
        return self._replies.wait(req, timeout)

    def interrupt(self, ranks: list[int]) -> None:
        with self._lock:
            pids = [p.pid for r in ranks if (p := self._procs.get(r)) is not None and p.alive and p.pid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(pid, signal.SIGINT)

    def stacks(self, ranks: list[int], timeout: float) -> dict[int, RawStacks]:
        with self._lock:
            targets = {r: (p.pid, p.stacks_fd) for r in ranks if (p := self._procs.get(r)) and p.pid and p.dumpable}
        with self._stacks_lock:
            return collect(targets, worker.STACKS_SIGNAL, timeout)

    # --- replacing ranks ------------------------------------------------------------------
    def kill(self, ranks: list[int], timeout: float) -> None:
        with self._lock:
            procs = [self._procs[r] for r in ranks]
            for p in procs:
                p.killing = True  # its exit is not an event: the owner asked for it
        for p in procs:
            kill_tree(p)
        for p in procs:
            p.process.join(max(0.1, timeout / 2))
            with self._lock:
                # Recorded here, not by the control thread: the owner hears nothing of a proc
                # it had killed (it already ended that rank's cells its own way).
                p.killed()
            with self._stacks_lock:
                p.close_stacks()
            if p.pid:
                self._watchdog.release(p.pid)
        with self._lock:
            self._retired += procs
        os.write(self._wake_w, b"x")
        if not self._reader.retire(ranks, max(0.5, timeout / 2)):
            self._bad_message = f"the reader did not close the pipes of killed rank(s) {ranks} in time"

    def log_paths(self, rank: int) -> list[str]:
        return [str(log_path(self.logdir, rank, s)) for s in (STDOUT, STDERR)]

    def log_errors(self) -> dict[tuple[int, int], str]:
        return self._reader.log_errors()

    def fetch_logs(self, dest: Path, timeout: float) -> list[Path]:
        return copy_logs(self.logdir, self.ranks, dest)

    def why_silent(self, rank: int) -> str:
        return ""  # a local proc is never cut off: it answers, is stuck, or is dead

    def problems(self) -> list[str]:
        out = [] if self._reader.error is None else [f"reader thread failed: {self._reader.error!r}"]
        if self._bad_message is not None:
            out.append(self._bad_message)
        return out

    # --- stop -----------------------------------------------------------------------------
    def stop(self, timeout: float) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            p.send(proc_messages.shutdown())
        grace = time.monotonic() + min(STOP_GRACE, timeout / 2)  # one grace period for all
        for p in procs:
            p.process.join(max(0.0, grace - time.monotonic()))
        for p in procs:
            if p.process.is_alive():
                kill_tree(p)
            kill_group(p.pid)  # children of the proc that outlived it
        for p in procs:
            p.process.join(1.0)
        exited = []
        with self._lock:
            for p in procs:
                if p.exitcode is None and p.process.exitcode is not None:
                    p.exitcode, p.state = p.process.exitcode, "exited"
                    exited.append((p.rank, p.exitcode))
        for rank, code in exited:
            self._events.on_exit(rank, code)

    def close(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._control.join(2.0)
        self._reader.stop()
        with self._lock:
            procs = list(self._procs.values())
            retired, self._retired = self._retired, []
        for p in retired + procs:
            p.close_channels()
            if p in procs:
                kill_group(p.pid)
                if p.pid:
                    self._watchdog.release(p.pid)
        self._watchdog.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # --- the control thread ---------------------------------------------------------------
    def _control_loop(self) -> None:
        while not self._stopping:
            with self._lock:
                retired, self._retired = self._retired, []
                conns = {p.conn: p for p in self._procs.values() if p.conn_open}
                sentinels = {p.process.sentinel: p for p in self._procs.values() if p.alive}
            for p in retired:
                p.conn.close()
            ready = mp_connection.wait([self._wake_r, *conns, *sentinels], timeout=0.5)
            for obj in ready:
                if isinstance(obj, mp_connection.Connection):
                    self._receive(conns[obj])
            for obj in ready:
                if isinstance(obj, int) and obj in sentinels:
                    self._on_exit(sentinels[obj])
                elif obj == self._wake_r:
                    os.read(self._wake_r, 4096)

    def _receive(self, p: LocalProc) -> None:
        try:
            while p.conn.poll():
                msg = p.conn.recv()
                proc_messages.check(msg, "from_proc")
                self._on_message(p, msg)
        except (EOFError, OSError):
            with self._lock:
                p.conn_open = False
        except proc_messages.ProcProtocolError as exc:
            self._bad_message = f"proc {p.rank} sent a message this kernel does not understand: {exc}"

    def _on_message(self, p: LocalProc, msg: proc_messages.FromProc) -> None:
        with self._lock:
            p.heard(msg)
        if msg["type"] == "result":
            self._events.on_result(p.rank, msg)
        elif msg["type"] == "data":
            self._replies.deliver(p.rank, msg)

    def _on_exit(self, p: LocalProc) -> None:
        p.process.join(0.5)
        with self._lock:
            if p.exitcode is not None or p.killing:
                return  # stop() saw it first, or kill() is recording it (its owner knows)
            p.exitcode = p.process.exitcode if p.process.exitcode is not None else -signal.SIGKILL
            p.state = "exited"
            code = p.exitcode
        self._events.on_exit(p.rank, code)
