"""The proc set of one host, for one generation, run by that host's agent.

``RemoteProcs`` implements ``group.procset.ProcSet`` by sending the agent commands on the
host's control lane (``router.send_ctl``) and by hearing its events on the router thread. The
procs' output does not pass here: the router puts each rank's items straight into the
generation's mailboxes (display bundles among them, joined on the host). Markers and tokens
stay on the host; a flush sends one request to the agent, which marks its procs' streams and
ships the barrier behind their data. ``push``/``pull`` send one request to the agent, which
answers with every rank's answer that came within the timeout.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProcStartError
from ..group.data import Replies
from ..group.procset import FlushAsk, ProcEvents, ProcInfo
from ..group.stacks import RawStacks
from ..pipeline.items import STDERR, STDOUT, STREAM_NAMES, BarrierKey
from ..pipeline.queues import Mailboxes
from ..wire.proc_messages import Data
from .link import HostInfo
from .router import Router

DATA_GRACE = 2.0  # beyond a push/pull's timeout: time for the agent's answer to cross the link


@dataclass
class _Remote:
    rank: int
    state: str = "starting"
    exitcode: int | None = None
    pid: int | None = None


class RemoteProcs:
    """Ranks of one host in one epoch (generation)."""

    def __init__(
        self,
        router: Router,
        host: HostInfo,
        epoch: int,
        envs: dict[int, dict[str, str]],
        mailboxes: Mailboxes,
        events: ProcEvents,
        *,
        flush_interval: float,
        logdir: str = "",
    ) -> None:
        """``logdir``: where the agent writes the procs' logs ("": a directory of its own)."""
        self.host = host.host
        self._logdir = logdir
        self._router = router
        self._epoch = epoch
        self._envs = envs
        self._events = events
        self._flush_interval = flush_interval
        # Events arrive on the router thread; callers read: one condition for all of it.
        self._cond = threading.Condition()
        self._procs = {r: _Remote(r) for r in sorted(envs)}
        self._spawned: str | None = None  # the agent's log directory, once spawned
        self._failed: str | None = None
        self._errors: list[str] = []
        self._closed = False
        self._replies = Replies()  # answers to push/pull, delivered on the router thread
        self._requests = itertools.count(1)
        self._asked = 0  # requests that get one answer (log chunks, stacks, kill, respawn)
        self._answers: dict[int, tuple[Any, str]] = {}  # request -> (value, why not)
        router.register(epoch, self.host, sorted(envs), mailboxes, self._on_event)

    @property
    def ranks(self) -> list[int]:
        return sorted(self._envs)

    @property
    def logdir(self) -> Path:
        return Path(self._spawned or "")

    # --- start ----------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        self._send("spawn", envs=self._envs, flush_interval=self._flush_interval, timeout=timeout, logdir=self._logdir)
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._spawned is None and self._failed is None:
                left = deadline - time.monotonic()
                why = self._why_silent()
                if left <= 0 or self._lost():
                    raise ProcStartError(
                        f"the procs of host {self.host} did not start within {timeout:g} s"
                        + (f" ({why})" if why else "")
                    )
                self._cond.wait(min(left, 0.2))
            if self._failed is not None:
                raise ProcStartError(f"on host {self.host}: {self._failed}")

    # --- the agent's events (router thread) -----------------------------------------------
    def _on_event(self, host: str, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        with self._cond:
            if kind == "spawned":
                self._spawned = str(msg.get("logdir", ""))
                for p in self._procs.values():
                    p.state = "idle"
                    p.pid = msg.get("pids", {}).get(p.rank)
            elif kind == "spawn_failed":
                self._failed = str(msg.get("error", "the procs did not start"))
            elif kind == "result" and msg["rank"] in self._procs:
                self._procs[msg["rank"]].state = "idle"
            elif kind == "exited" and msg["rank"] in self._procs:
                p = self._procs[msg["rank"]]
                p.exitcode, p.state = int(msg["code"]), "exited"
            elif kind == "lost":
                pass
            elif kind == "answer":
                self._answers[int(msg["req"])] = (msg.get("value"), str(msg.get("error") or ""))
            elif kind == "error":
                self._errors = [*self._errors[-9:], f"agent on {host}: {msg.get('error')}"]
            self._cond.notify_all()
        if kind == "data":
            for rank, reply in msg["replies"].items():
                self._replies.deliver(int(rank), reply)
        if kind == "result":
            self._events.on_result(int(msg["rank"]), msg["result"])
        elif kind == "exited":
            self._events.on_exit(int(msg["rank"]), int(msg["code"]))
        elif kind == "lost":
            for rank in self.ranks:
                self._events.on_lost(rank, str(msg.get("why", f"host {host} lost")))

    # --- asked by the group ---------------------------------------------------------------
    def procs(self) -> list[ProcInfo]:
        link = self._router.link(self.host)
        status = link.snapshot().status if link is not None else {}
        seen_at = link.status_at if link is not None else 0.0
        rows = {int(row[0]): row for row in status.get("procs", {}).get(str(self._epoch), [])}
        out = []
        with self._cond:
            for rank, p in self._procs.items():
                row = rows.get(rank)
                pid = int(row[1]) if row and row[1] else p.pid
                state = p.state if p.exitcode is not None or row is None else str(row[2])
                heard = seen_at - float(row[4]) if row and float(row[4]) >= 0 else seen_at
                out.append(ProcInfo(rank, self.host, pid, state, p.exitcode, heard))
        return out

    def execute(self, cell: int, code: str, ranks: list[int]) -> list[int]:
        if self._lost():
            return list(ranks)
        with self._cond:
            for r in ranks:
                self._procs[r].state = "running"
        self._send("exec", cell=cell, code=code, ranks=ranks)
        return []

    def ask_flush(self, version: int, ranks: list[int]) -> FlushAsk:
        with self._cond:
            dead = [r for r in ranks if self._procs[r].exitcode is not None]
        self._send("flush", version=version, ranks=[r for r in ranks if r not in dead])
        return FlushAsk(dead, [])

    def flush_ended(self, version: int, unserved: list[int]) -> None:
        self._send("flush_ended", version=version, ranks=unserved)

    def weak_barrier(self, key: BarrierKey, ranks: list[int], timeout: float) -> bool:
        self._send("weak", key=list(key), ranks=ranks)
        return True  # the agent places it; the tracker sees it arrive (or the flush times out)

    def push(self, values: dict[int, dict[str, bytes]], timeout: float) -> dict[int, Data]:
        if self._lost():
            return {}  # no rank answers: the caller names them
        req = next(self._requests)
        self._replies.expect(req, sorted(values))
        self._send("push", req=req, values=values, timeout=timeout)
        return self._replies.wait(req, timeout + DATA_GRACE)

    def pull(self, names: list[str], ranks: list[int], timeout: float) -> dict[int, Data]:
        if self._lost():
            return {}
        req = next(self._requests)
        self._replies.expect(req, ranks)
        self._send("pull", req=req, names=names, ranks=ranks, timeout=timeout)
        return self._replies.wait(req, timeout + DATA_GRACE)

    def interrupt(self, ranks: list[int]) -> None:
        self._send("interrupt", ranks=ranks)

    def stop(self, timeout: float) -> None:
        self._send("shutdown", timeout=timeout)

    # Stack dumps and replacing single ranks are not carried over the agent link yet (the
    # agent's own LocalProcs does each, as it would here).
    def stacks(self, ranks: list[int], timeout: float) -> dict[int, RawStacks]:
        stacks: dict[int, RawStacks] = self._ask("stacks", "stack dumps", timeout, ranks=ranks)
        return stacks

    def kill(self, ranks: list[int], timeout: float) -> None:
        self._ask("kill", f"killing rank(s) {ranks}", timeout, ranks=ranks)

    def respawn(self, ranks: list[int], timeout: float) -> None:
        pids: dict[int, int | None] = self._ask("respawn", f"starting rank(s) {ranks} again", timeout, ranks=ranks)
        with self._cond:
            for rank in ranks:  # fresh procs: what was known of the old ones no longer holds
                self._procs[rank] = _Remote(rank, "idle", None, pids.get(rank))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._send("close")
            self._router.unregister(self._epoch)

    def log_paths(self, rank: int) -> list[str]:
        base = Path(self._spawned or "?")
        return [f"{self.host}:{base / f'rank{rank}.{STREAM_NAMES[s]}.log'}" for s in (STDOUT, STDERR)]

    def log_errors(self) -> dict[tuple[int, int], str]:
        link = self._router.link(self.host)
        errors = link.snapshot().status.get("log_errors", {}) if link is not None else {}
        out = {}
        for key, error in errors.items():
            epoch, rank, stream = (int(x) for x in key.split(":"))
            if epoch == self._epoch:
                out[(rank, stream)] = f"{self.host}: {error}"
        return out

    def problems(self) -> list[str]:
        why = self._why_silent()
        with self._cond:
            return [*self._errors, *([why] if why else [])]

    def fetch_logs(self, dest: Path, timeout: float) -> list[Path]:
        """Each rank's log files, read from the agent a chunk at a time."""
        dest.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        out = []
        for rank in self.ranks:
            for stream in (STDOUT, STDERR):
                name = f"rank{rank}.{STREAM_NAMES[stream]}.log"
                path = dest / name
                with open(path, "wb") as f:
                    offset = 0
                    while True:
                        left = deadline - time.monotonic()
                        data: bytes = self._ask("read_log", f"reading {name}", left, name=name, offset=offset)
                        f.write(data)
                        offset += len(data)
                        if not data:  # the end of the file (as it is now)
                            break
                out.append(path)
        return out

    def _ask(self, kind: str, what: str, timeout: float, **fields: Any) -> Any:
        """Send the agent a request that gets one answer (it has ``timeout`` for its own work),
        and return it: ``OSError`` saying what went wrong there, or ``TimeoutError`` if no
        answer came in time (``timeout`` plus the time to cross the link)."""
        deadline = time.monotonic() + timeout + DATA_GRACE
        with self._cond:
            self._asked += 1
            req = self._asked
        self._send(kind, req=req, timeout=max(0.1, timeout), **fields)
        with self._cond:
            while req not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0 or self._lost():
                    why = self._why_silent() or f"no answer within {timeout + DATA_GRACE:g} s"
                    raise TimeoutError(f"{what} on host {self.host}: {why}")
                self._cond.wait(min(left, 0.2))
            value, error = self._answers.pop(req)
        if error:
            raise OSError(f"{what} on host {self.host}: {error}")
        return value

    def why_silent(self, rank: int) -> str:
        return self._why_silent()

    def _why_silent(self) -> str:
        link = self._router.link(self.host)
        return f"host {self.host} lost" if link is None else link.why_silent()

    def _lost(self) -> bool:
        link = self._router.link(self.host)
        return link is None or link.state() == "lost"

    def _send(self, kind: str, **fields: Any) -> None:
        self._router.send_ctl(self.host, {"type": kind, "epoch": self._epoch, **fields})
