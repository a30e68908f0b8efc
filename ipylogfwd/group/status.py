"""Status: what the user sees of each proc (``%procs``, ``group.status()``) and in the widget
headers.

``ProcStatus``/``GroupStatus`` are snapshots. The ``StatusRefresher`` thread pushes each
proc's state into the headers of the cells that can still get output, once a second and
whenever a cell ends or the procs stop.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline.barrier import Details
from ..pipeline.sink import Sink, StatusSink
from ..ranks import compact_ranks

UNRESPONSIVE_AFTER = 3.0
STATUS_REFRESH = 1.0


def describe_exit(code: int | None) -> str:
    """How a proc ended, from its exit code ("exited with code 3", "killed by SIGKILL")."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(frozen=True)
class ProcStatus:
    """One proc as the user sees it."""

    rank: int
    pid: int | None
    state: str  # starting / running / idle / unresponsive / exited / killed
    exitcode: int | None
    stdout_lines: int
    stderr_lines: int
    last_heard: float | None  # seconds ago
    host: str = "localhost"

    @property
    def exit(self) -> str:
        """How the proc ended ("exited with code 3", "killed by SIGKILL"); "" while alive."""
        return "" if self.exitcode is None else describe_exit(self.exitcode)


def proc_state(state: str, exitcode: int | None, silent_for: float | None) -> str:
    """The state to show: a live proc silent for too long is "unresponsive"; a dead one
    "exited" or "killed"."""
    if exitcode is not None:
        return "exited" if exitcode >= 0 else "killed"
    if state in ("idle", "running") and silent_for is not None and silent_for > UNRESPONSIVE_AFTER:
        return "unresponsive"
    return state


@dataclass(frozen=True)
class HostStatus:
    """One host of a group on several hosts: its agent and its link to the kernel."""

    host: str
    ranks: list[int]
    agent_pid: int
    link: str  # connected / unreachable / lost
    rtt: float | None  # seconds
    stalled: float  # seconds its ranks waited for the kernel to take their output
    logdir: str

    def row(self) -> str:
        rtt = f"{self.rtt * 1000:.1f} ms" if self.rtt is not None else "-"
        ranks = f"{self.ranks[0]}-{self.ranks[-1]}" if len(self.ranks) > 1 else str(self.ranks[0])
        return (
            f"{self.host:<12} {ranks:>7}  {self.agent_pid:>7}  {self.link:<11} {rtt:>9}  "
            f"{self.stalled:>7.1f}s  {self.host}:{self.logdir}"
        )


COMPACT_FROM = 32
"""A status of at least this many procs is shown compactly: counts by state, the ranks in
each state, and rows only for the procs that need a look (``details()`` has every row)."""
_CALM = ("idle", "running")


def state_label(p: ProcStatus) -> str:
    """A proc's state with how it ended: "idle", "exited 3", "killed SIGKILL"."""
    if p.exitcode is None:
        return p.state
    if p.exitcode < 0:
        return f"{p.state} {p.exit.removeprefix('killed by ')}"
    return f"{p.state} {p.exitcode}"


@dataclass(frozen=True)
class GroupStatus:
    """Every proc of a group, where their logs are, and problems worth knowing about. Shown
    with counts by state first ("14 idle · 1 running · 1 exited 3"); from ``COMPACT_FROM``
    procs on, compactly (``details()`` is the table of every proc)."""

    procs: list[ProcStatus]
    logdir: Path
    problems: list[str]
    hosts: list[HostStatus] = field(default_factory=list)

    def counts(self) -> str:
        """How many procs are in each state, the most common first."""
        by: dict[str, int] = {}
        for p in self.procs:
            by[state_label(p)] = by.get(state_label(p), 0) + 1
        return " · ".join(f"{n} {label}" for label, n in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])))

    def _rows(self, procs: list[ProcStatus]) -> list[str]:
        # On several hosts a host column comes last: the others stay where they always are.
        hosts = bool(self.hosts)
        head = f"{'rank':>4}  {'pid':>7}  {'state':<13} {'exit':<22} {'stdout':>9} {'stderr':>9}  last heard"
        rows = [head + ("    host" if hosts else "")]
        for p in procs:
            heard = f"{p.last_heard:.1f}s ago" if p.last_heard is not None else "never"
            row = (
                f"{p.rank:>4}  {p.pid or '-':>7}  {p.state:<13} {p.exit:<22} "
                f"{p.stdout_lines:>9} {p.stderr_lines:>9}  {heard:<10}" + (f"  {p.host}" if hosts else "")
            )
            rows.append(row.rstrip())  # "last heard" is padded for the host column only
        return rows

    def _tail(self) -> list[str]:
        rows = []
        if self.hosts:
            rows.append(f"{'host':<12} {'ranks':>7}  {'agent':>7}  {'link':<11} {'rtt':>9}  {'stalled':>8}  logs")
            rows += [h.row() for h in self.hosts]
        else:
            rows.append(f"logs: {self.logdir}")
        return rows + [f"problem: {m}" for m in self.problems]

    def _compact(self) -> list[str]:
        out = sum(p.stdout_lines for p in self.procs)
        err = sum(p.stderr_lines for p in self.procs)
        heard = [p for p in self.procs if p.last_heard is not None and p.exitcode is None]
        line = f"stdout {out:,} lines · stderr {err:,} lines"
        if heard:
            silent = max(heard, key=lambda p: (p.last_heard or 0.0, -p.rank))
            line += f" · heard from longest ago: rank {silent.rank} ({silent.last_heard or 0.0:.1f}s ago)"
        rows = [line]
        by: dict[str, list[int]] = {}
        for p in self.procs:
            by.setdefault(state_label(p), []).append(p.rank)
        width = max(len(label) for label in by)
        rows += [
            f"  {label:<{width}}  {'rank' if len(ranks) == 1 else 'ranks'} {compact_ranks(ranks)}"
            for label, ranks in sorted(by.items())
        ]
        odd = [p for p in self.procs if p.state not in _CALM]
        if odd:
            rows += self._rows(odd)
        return rows

    def details(self) -> Details:
        """The table of every proc (and hosts, logs, problems)."""
        return Details("\n".join(self._rows(self.procs) + self._tail()))

    def __repr__(self) -> str:
        head = f"{len(self.procs)} procs: {self.counts()}"
        if len(self.procs) < COMPACT_FROM:
            return "\n".join([head, *self._rows(self.procs), *self._tail()])
        return "\n".join([head, *self._compact(), *self._tail(), "status.details() lists every proc"])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def __getitem__(self, rank: int) -> ProcStatus:
        for p in self.procs:
            if p.rank == rank:
                return p
        raise KeyError(rank)


class StatusRefresher:
    """Keeps the widget headers of live sinks up to date with each proc's status."""

    def __init__(self, statuses: Callable[[], list[ProcStatus]], sinks: Callable[[], list[Sink]]) -> None:
        self._statuses = statuses
        self._sinks = sinks
        # refresh() runs on this thread and on callers' (a cell's end, shutdown): one at a time.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: Exception | None = None
        # The status thread: refreshes headers every STATUS_REFRESH seconds until stopped.
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-status", daemon=True)
        self._thread.start()

    def refresh(self) -> None:
        """Push every proc's current state into the headers now. Never raises: a header that
        cannot update must not stop a cell or a shutdown (the error shows in the status)."""
        try:
            self._refresh()
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is reported, not raised
            self.error = exc

    def _refresh(self) -> None:
        with self._lock:
            statuses = self._statuses()
            now_wall = time.time()
            for sink in self._sinks():
                if not isinstance(sink, StatusSink):
                    continue
                for st in statuses:
                    heard = now_wall - st.last_heard if st.last_heard is not None else 0.0
                    host = "" if st.host == "localhost" else st.host
                    sink.update_status(
                        st.rank, state=st.state, exit_text=st.exit, pid=st.pid, last_heard=heard, host=host
                    )

    def stop(self) -> None:
        """A last refresh (how each proc ended), then stop the thread."""
        self._stop.set()
        self._thread.join(2.0)
        self.refresh()

    def _run(self) -> None:
        while not self._stop.wait(STATUS_REFRESH):
            self.refresh()
