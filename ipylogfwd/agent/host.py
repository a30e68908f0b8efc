"""One host's agent: its procs, run as the kernel commands.

The agent runs the same proc set as a kernel without hosts does (``group.localprocs``): the
procs are spawned here, their pipes are read, framed and logged here, their markers (and the
secret tokens in them) never leave the host. Only the framed items go to the kernel, through
the host's mailboxes and the link's pump (``link``).

Each generation of the group's procs is an *epoch* here: ``spawn`` starts one, ``shutdown``
stops its procs (their pipes drain to the end), ``close`` releases it. Commands arrive on the
link thread and run in order on the agent's main thread (``run``), which is also the thread
that spawns the procs, so each proc's parent-death signal lasts as long as the agent. A
``push`` or ``pull`` waits for the procs' answers on a thread of its own, so that a proc that
does not answer delays no other command; the answers go back as one ``data`` event.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ProcStartError
from ..group.localprocs import LocalProcs
from ..pipeline.queues import Mailboxes
from ..version import __version__
from ..wire.admission import AgentSecrets
from ..wire.proc_messages import Result
from . import netinfo
from .link import KernelLink

MAILBOX_BUDGET = 1 << 20  # per rank, on the host: past it the reader stops reading that proc
LOG_NAME = re.compile(r"rank\d+\.(stdout|stderr)\.log")
LOG_CHUNK = 1 << 20  # what one read_log request gets back


class _EpochEvents:
    """A proc set's events, forwarded to the kernel with their epoch."""

    def __init__(self, link: KernelLink, epoch: int) -> None:
        self._link = link
        self._epoch = epoch

    def on_result(self, rank: int, result: Result) -> None:
        self._link.send_ctl({"type": "result", "epoch": self._epoch, "rank": rank, "result": result})

    def on_exit(self, rank: int, exitcode: int) -> None:
        self._link.send_ctl({"type": "exited", "epoch": self._epoch, "rank": rank, "code": exitcode})

    def on_lost(self, rank: int, why: str) -> None:
        pass  # a local proc set never loses a proc: it exits (on_exit)


class HostAgent:
    """The agent of one host (see the module docstring)."""

    def __init__(self, secrets: AgentSecrets, *, host: str, lease: float) -> None:
        self.name = host
        self._endpoint = secrets.endpoint
        self._addr, self._ifname = netinfo.route_to(secrets.endpoint)
        self.link = KernelLink(secrets, self, lease=lease)
        self._jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        # Epochs are added and removed on the main thread and read by the link thread's
        # status: guarded by a lock.
        self._lock = threading.Lock()
        self._epochs: dict[int, LocalProcs] = {}
        self.exit_code = 0

    # --- the main thread ------------------------------------------------------------------
    def run(self) -> int:
        """Serve the kernel until it says bye, the link gives up, or the lease runs out."""
        self.link.start()
        try:
            while True:
                msg = self._jobs.get()
                if msg is None:
                    break
                try:
                    self._do(msg)
                except Exception as exc:  # noqa: BLE001 - reported to the kernel; the agent serves on
                    error = f"{msg['type']}: {exc!r}"
                    self.link.send_ctl({"type": "error", "epoch": msg.get("epoch"), "error": error})
        finally:
            # Whatever ended the loop, the procs end with the agent: an agent must never
            # outlive its work, nor wait at exit for procs nobody stopped.
            self._stop_all(2.0)
            self.link.stop(timeout=3.0)
        return self.exit_code

    def _do(self, msg: dict[str, Any]) -> None:
        kind, epoch = msg["type"], msg.get("epoch", -1)
        procs = self._epochs.get(epoch)
        if kind == "spawn":
            self._spawn(msg)
        elif kind == "bye":
            self._jobs.put(None)
        elif procs is None:
            return  # an epoch that failed to start, or is already closed
        elif kind == "exec":
            procs.execute(msg["cell"], msg["code"], msg["ranks"])
        elif kind == "flush":
            asked = procs.ask_flush(msg["version"], msg["ranks"])
            if asked.dead or asked.unasked:  # what the kernel would do for them, done here at once
                procs.weak_barrier(("flush", msg["version"]), sorted(asked.dead + asked.unasked), 5.0)
        elif kind == "flush_weak":  # asked on the link thread; the weak barrier waits for the reader
            procs.weak_barrier(("flush", msg["version"]), msg["ranks"], 5.0)
        elif kind == "flush_ended":
            procs.flush_ended(msg["version"], msg["ranks"])
        elif kind == "weak":
            kind_of_barrier, value = msg["key"]
            procs.weak_barrier((str(kind_of_barrier), int(value)), msg["ranks"], 5.0)
        elif kind in ("push", "pull"):
            threading.Thread(target=self._data, args=(procs, msg), name="ipylogfwd-agent-data", daemon=True).start()
        elif kind == "interrupt":
            procs.interrupt(msg["ranks"])
        elif kind == "shutdown":
            procs.stop(float(msg.get("timeout", 5.0)))
        elif kind == "read_log":
            self._answer(msg, lambda: self._read_log(procs.logdir, msg))
        elif kind == "stacks":  # a thread: a dump waits up to its timeout
            ask = lambda: procs.stacks(msg["ranks"], float(msg["timeout"]))  # noqa: E731
            threading.Thread(target=self._answer, args=(msg, ask), name="ipylogfwd-agent-stacks", daemon=True).start()
        elif kind == "kill":
            self._answer(msg, lambda: procs.kill(msg["ranks"], float(msg["timeout"])))
        elif kind == "respawn":
            self._answer(msg, lambda: self._respawn(procs, msg["ranks"], float(msg["timeout"])))
        elif kind == "close":
            with self._lock:
                self._epochs.pop(epoch, None)
            procs.close()
            self.link.end_epoch(epoch)

    def _answer(self, msg: dict[str, Any], ask: Callable[[], Any]) -> None:
        """Send the kernel the answer to request ``msg``: what ``ask()`` returns, or why not."""
        answer: dict[str, Any] = {"type": "answer", "epoch": msg["epoch"], "req": msg["req"]}
        try:
            answer["value"] = ask()
        except Exception as exc:  # noqa: BLE001 - whatever failed here is the answer
            answer["error"] = f"{type(exc).__name__}: {exc}"
        self.link.send_ctl(answer)

    @staticmethod
    def _respawn(procs: LocalProcs, ranks: list[int], timeout: float) -> dict[int, int | None]:
        procs.respawn(ranks, timeout)
        return {p.rank: p.pid for p in procs.procs() if p.rank in ranks}

    @staticmethod
    def _read_log(logdir: Path, msg: dict[str, Any]) -> bytes:
        name = str(msg["name"])
        if not LOG_NAME.fullmatch(name):  # only the procs' log files, nothing else on the host
            raise ValueError("not a log file name")
        with open(logdir / name, "rb") as f:
            f.seek(int(msg["offset"]))
            return f.read(LOG_CHUNK)

    def _spawn(self, msg: dict[str, Any]) -> None:
        epoch = msg["epoch"]
        envs = {int(rank): dict(env) for rank, env in msg["envs"].items()}
        logdir = Path(msg.get("logdir") or tempfile.mkdtemp(prefix=f"ipylogfwd-{self.name}-{os.getpid()}-{epoch}-"))
        mailboxes = Mailboxes(MAILBOX_BUDGET, notify=self.link.wake)
        self.link.add_epoch(epoch, mailboxes)
        procs = LocalProcs(
            envs, mailboxes, _EpochEvents(self.link, epoch), logdir=logdir, flush_interval=msg["flush_interval"]
        )
        with self._lock:
            self._epochs[epoch] = procs
        try:
            procs.start(float(msg.get("timeout", 60.0)))
        except ProcStartError as exc:
            with self._lock:
                self._epochs.pop(epoch, None)
            procs.stop(2.0)
            procs.close()
            self.link.end_epoch(epoch)
            self.link.send_ctl({"type": "spawn_failed", "epoch": epoch, "error": str(exc)})
            return
        pids = {p.rank: p.pid for p in procs.procs()}
        self.link.send_ctl({"type": "spawned", "epoch": epoch, "logdir": str(logdir), "pids": pids})
        self.link.status_soon()

    def _data(self, procs: LocalProcs, msg: dict[str, Any]) -> None:
        """Serve a push or pull (its own thread) and send the answers that came in time."""
        timeout = float(msg["timeout"])
        if msg["type"] == "push":
            replies = procs.push({int(r): v for r, v in msg["values"].items()}, timeout)
        else:
            replies = procs.pull(list(msg["names"]), [int(r) for r in msg["ranks"]], timeout)
        self.link.send_ctl({"type": "data", "epoch": msg["epoch"], "req": msg["req"], "replies": replies})

    def _stop_all(self, timeout: float) -> None:
        with self._lock:
            epochs, self._epochs = list(self._epochs.items()), {}
        for epoch, procs in epochs:
            procs.stop(timeout)
            procs.close()
            self.link.end_epoch(epoch)

    # --- for the link (its thread) --------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "pid": os.getpid(),
            "addr": self._addr,
            "ifname": self._ifname,
            "python": platform.python_version_tuple()[0] + "." + platform.python_version_tuple()[1],
            "version": __version__,
            "master_port": netinfo.free_port(self._addr),
        }

    def command(self, msg: dict[str, Any]) -> None:
        # A flush request goes to the procs at once, from this thread: asking is only a send
        # on each proc's control channel, and a barrier's latency is a thread hop shorter for
        # it. It never overtakes an earlier command of its epoch (those run on the main thread),
        # because a flush only follows a spawn the main thread has finished (its "spawned").
        if msg["type"] == "flush":
            with self._lock:
                procs = self._epochs.get(msg["epoch"])
            if procs is not None and procs.started:
                asked = procs.ask_flush(msg["version"], msg["ranks"])
                if not asked.dead and not asked.unasked:
                    return
                msg = {**msg, "type": "flush_weak", "ranks": sorted(asked.dead + asked.unasked)}
        self._jobs.put(msg)

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            epochs = list(self._epochs.items())
        procs: dict[str, list[list[Any]]] = {}
        errors: dict[str, str] = {}
        for epoch, ps in epochs:
            procs[str(epoch)] = [
                [p.rank, p.pid, p.state, p.exitcode, now - p.last_heard if p.last_heard else -1.0] for p in ps.procs()
            ]
            errors.update({f"{epoch}:{r}:{s}": e for (r, s), e in ps.log_errors().items()})
        return {"procs": procs, "log_errors": errors, "stalled": self.link.stalled}

    def give_up(self, why: str, code: int) -> None:
        """Stop serving (from any thread, or a signal handler): the main thread stops the procs."""
        self.exit_code = code
        self._jobs.put(None)
        # The launch command may be gone with the kernel (its end of stderr closed): saying
        # why is best effort, stopping is not.
        with contextlib.suppress(OSError):
            print(f"ipylogfwd-agent on {self.name}: {why}", file=sys.stderr, flush=True)
