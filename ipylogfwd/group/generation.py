"""A generation: one lifetime of a group's procs, with the pipeline and the cells that go
with them.

A generation is built whole and stopped whole; ``ProcGroup.restart()`` stops one and starts
another, so nothing is ever swapped under a running cell. It owns, started in this order and
stopped in the reverse one:

* the mailboxes, the barrier tracker and the dispatcher thread that carry output to sinks;
* the cells table (``cells.Cells``), which hears the procs' results and exits;
* the proc sets (``LocalProcs`` on this machine, or one per host of a cluster), each with its
  reader and control thread, their procs started with the environment ``environment``
  computes (on this machine, one rendezvous port per generation, so ``torch.distributed``
  needs no set-up and the port stays until a restart);
* the status thread that keeps widget headers current.

When a generation stops under a running cell, that cell's execution ends at once with
``ProcDiedError``; output the procs wrote before they stopped is still published. Single
ranks can be killed and replaced (``kill``) without stopping the generation: their running
cell fails for them, everything they wrote is published, then their pipeline state starts
afresh (barrier tracker, routes, line counts) before their new procs start.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LogFileWarning, ProcDiedError, UsageError
from ..pipeline.barrier import BarrierTracker, FlushReport
from ..pipeline.dispatcher import Dispatcher
from ..pipeline.queues import Mailboxes, budget_for
from ..pipeline.sink import Sink
from ..sinks.acks import frontend_problems
from ..sinks.factory import default_sink, text_sink
from ..wire.proc_messages import Data
from . import flush as flushing
from .cells import Cells, Execution
from .environment import free_port, local_envs
from .localprocs import LocalProcs
from .procset import ProcInfo, ProcSet
from .stacks import StacksReport, describe
from .status import GroupStatus, HostStatus, ProcStatus, StatusRefresher, describe_exit, proc_state

if TYPE_CHECKING:
    from ..hosts.cluster import Cluster

KEEP_SOURCES = 1000  # cells whose source a stack dump can show (functions outlive their cell)

SinkFactory = Callable[[list[int], dict[int, "int | None"], dict[int, list[str]]], Sink]
"""Makes a cell's sink from (target ranks, their pids, their log file paths)."""


@dataclass(frozen=True)
class GroupConfig:
    """What a group was asked for; every generation of it starts from the same."""

    size: int
    logdir: Path
    sink_factory: SinkFactory
    flush_interval: float
    start_timeout: float
    timestamps: str | None = None  # "absolute" / "relative": what lines' times show as, from the start
    view: str | None = None  # "merged" / "procs": what the widgets show first (None: merged from 8 procs on)


class Generation:
    """The procs of one start of a group, and everything that serves them."""

    def __init__(self, config: GroupConfig, cluster: Cluster | None = None, epoch: int = 1) -> None:
        """The procs of ``config`` on this machine, or on ``cluster``'s hosts (as ``epoch``)."""
        self.config = config
        self.cluster = cluster
        self.closed = False
        self._mailboxes = Mailboxes(budget_for(config.size))
        self._tracker = BarrierTracker()
        self._dispatcher = Dispatcher(self._mailboxes, self._tracker)
        # Output before a proc's first cell (start-up) goes to the cell that started the
        # procs, as text: it is rare, and the procs' widgets belong to the cells that run code.
        ranks = list(range(config.size))
        factory = config.sink_factory
        startup = text_sink(timestamps=config.timestamps) if factory is default_sink else factory(ranks, {}, {})
        self._dispatcher.register_cell(0, startup)
        self.cells = Cells()
        self._sets: list[ProcSet]
        if cluster is None:
            # One rendezvous port per generation: the same from cell to cell, and for a rank
            # killed and replaced, until a restart.
            envs = local_envs(config.size, free_port())
            interval = config.flush_interval
            self._sets = [LocalProcs(envs, self._mailboxes, self.cells, logdir=config.logdir, flush_interval=interval)]
        else:
            self._sets = list(
                cluster.proc_sets(
                    epoch, self._mailboxes, self.cells, flush_interval=config.flush_interval, logdir=config.logdir
                )
            )
        self._refresher = StatusRefresher(self.statuses, self._dispatcher.live_sinks)
        self._log_errors_shown: set[str] = set()  # warned about once each
        self._warn_lock = threading.Lock()  # cells end and flushes happen on several threads
        self._sources: OrderedDict[str, str] = OrderedDict()  # "<procs cell N>" -> its code
        self._kill_lock = threading.Lock()  # one kill at a time: each resets the ranks' pipeline
        self._kills = itertools.count(1)

    def start(self) -> None:
        """Start every proc set; on failure, stop what started and raise."""
        try:
            if len(self._sets) == 1:
                self._sets[0].start(self.config.start_timeout)
            else:
                # Hosts start their procs at the same time; the first failure is raised.
                with ThreadPoolExecutor(len(self._sets), thread_name_prefix="ipylogfwd-start") as pool:
                    for future in [pool.submit(p.start, self.config.start_timeout) for p in self._sets]:
                        future.result()
        except BaseException:
            self.stop(2.0, "the procs did not start")
            raise
        self.warn_log_errors()

    # --- cells ----------------------------------------------------------------------------
    def submit(self, cell: int, code: str, ranks: list[int], sink: Sink | None) -> Execution:
        """Start ``code`` as ``cell`` on ``ranks``; output goes to ``sink`` (or a new one)."""
        infos = self._alive(ranks)
        execution = self.cells.begin(self, cell, ranks)
        self._sources[f"<procs cell {cell}>"] = code
        while len(self._sources) > KEEP_SOURCES:
            self._sources.popitem(last=False)
        if sink is None:
            pids = {r: infos[r].pid for r in ranks}
            logs = {r: self._set_of(r).log_paths(r) for r in ranks}
            factory = self.config.sink_factory
            if factory is default_sink:
                sink = default_sink(ranks, pids, logs, timestamps=self.config.timestamps, view=self.config.view)
            else:
                sink = factory(ranks, pids, logs)
        self._dispatcher.register_cell(cell, sink)
        if self.cluster is not None:
            self._refresher.refresh()  # the widget headers name their hosts from the start
        self._tracker.begin(("cell", cell), ranks)
        for procs, mine in self._split(ranks):
            for rank in procs.execute(cell, code, mine):
                execution._fail(rank, f"proc {rank} could not be reached: its control channel is closed\n")
        return execution

    def finish_cell(self, execution: Execution, publish_timeout: float) -> FlushReport:
        """Wait, at most ``publish_timeout``, until the cell's output is published; forget it."""
        key = ("cell", execution.cell)
        if not self.closed:
            # Procs that died, or are still running the cell (it timed out or was interrupted
            # and they did not stop), will not write the end-of-cell marker now: what they
            # wrote so far is in the pipe.
            infos = {p.rank: p for p in self.procs()}
            unfinished = sorted({r for r in execution.ranks if not infos[r].alive} | set(execution._pending()))
            deadline = time.monotonic() + publish_timeout
            self._weak_barrier(key, unfinished, publish_timeout / 2)
            left = self._tracker.wait(key, deadline - time.monotonic())
            if left:
                self._weak_barrier(key, left, (deadline - time.monotonic()) / 2)
                self._tracker.wait(key, deadline - time.monotonic())
        report, _ = self._tracker.finish(key)
        self.cells.forget(execution.cell)
        self._refresher.refresh()  # the headers show the cell's end now, not at the next tick
        self.warn_log_errors()
        late = [e.rank for e in report.entries if e.outcome == "timed out"]
        if late and not self.closed:
            # A rank cut off (its host lost) will send nothing more: say that, not "still arriving".
            cut_off = {r: why for r in late if (why := self._set_of(r).why_silent(r))}
            arriving = [r for r in late if r not in cut_off]
            if arriving:
                warnings.warn(f"output of rank(s) {arriving} may still be arriving after this cell ended", stacklevel=4)
            for why in sorted(set(cut_off.values())):
                ranks = [r for r, w in cut_off.items() if w == why]
                warnings.warn(
                    f"rank(s) {ranks} are cut off ({why}): what they wrote since is not shown "
                    "(their log files on the host have it)",
                    stacklevel=4,
                )
        return report

    # --- values ---------------------------------------------------------------------------
    def push(self, values: dict[int, dict[str, bytes]], timeout: float) -> dict[int, Data]:
        """Set pickled values by name in each rank's namespace; the answers within ``timeout``."""
        self._alive(list(values))
        replies: dict[int, Data] = {}
        for procs, mine in self._split(sorted(values)):
            replies.update(procs.push({r: values[r] for r in mine}, timeout))
        return replies

    def pull(self, names: list[str], ranks: list[int], timeout: float) -> dict[int, Data]:
        """The pickled values of ``names`` from each of ``ranks``; the answers within ``timeout``."""
        self._alive(ranks)
        replies: dict[int, Data] = {}
        for procs, mine in self._split(ranks):
            replies.update(procs.pull(names, mine, timeout))
        return replies

    # --- flush, interrupt -----------------------------------------------------------------
    def flush(self, version: int, ranks: list[int], timeout: float, serve_timeout: float) -> FlushReport:
        report = flushing.flush(self._tracker, self._split(ranks), version, timeout, serve_timeout)
        self.warn_log_errors()
        return report

    def interrupt(self, ranks: list[int]) -> None:
        for procs, mine in self._split(ranks):
            procs.interrupt(mine)

    # --- kill and replace, stacks ---------------------------------------------------------
    def kill(self, ranks: list[int], timeout: float = 10.0) -> None:
        """Kill ``ranks``' procs (and their descendants) and start fresh ones in their place.
        Their running cell fails for them with ``ProcDiedError``; what they wrote is published
        first. ``ProcStartError`` if a new proc does not start."""
        with self._kill_lock:
            listed = ",".join(map(str, ranks))
            self.cells.killed(ranks, f"killed and replaced by a fresh proc (%procs --kill {listed})")
            key = ("kill", next(self._kills))
            self._tracker.begin(key, ranks)
            for procs, mine in self._split(ranks):
                procs.kill(mine, timeout / 2)
            # Their streams' ends are queued behind their last bytes: once the dispatcher has
            # passed them, nothing of the old procs is left, and their state can start afresh.
            late = self._tracker.wait(key, timeout / 2)
            self._tracker.finish(key)
            if late:
                warnings.warn(f"output of killed rank(s) {late} may still be arriving", stacklevel=3)
            for rank in ranks:
                self._tracker.forget_rank(rank)
                self._dispatcher.start_rank(rank, 0)
            for procs, mine in self._split(ranks):
                procs.respawn(mine, self.config.start_timeout)
        self._refresher.refresh()

    def stacks(self, ranks: list[int], timeout: float) -> StacksReport:
        """Where each of ``ranks`` is: every thread's stack, ranks doing the same together."""
        started = time.monotonic()
        infos = {p.rank: p for p in self.procs()}
        by_rank = {r: describe_exit(infos[r].exitcode) for r in ranks if not infos[r].alive}
        sources = dict(self._sources)
        for procs, mine in self._split([r for r in ranks if r not in by_rank]):
            for rank, raw in procs.stacks(mine, timeout).items():
                by_rank[rank] = describe(raw, sources, timeout)
        return StacksReport(dict(sorted(by_rank.items())), time.monotonic() - started)

    # --- status ---------------------------------------------------------------------------
    def procs(self) -> list[ProcInfo]:
        return sorted((p for procs in self._sets for p in procs.procs()), key=lambda p: p.rank)

    def statuses(self) -> list[ProcStatus]:
        now = time.monotonic()
        rows = []
        for p in self.procs():
            silent = now - p.last_heard if p.last_heard else None
            out, err = self._dispatcher.line_counts(p.rank)
            state = proc_state(p.state, p.exitcode, silent)
            rows.append(ProcStatus(p.rank, p.pid, state, p.exitcode, out, err, silent, p.host))
        return rows

    def status(self) -> GroupStatus:
        problems = [f"log file: {e}" for procs in self._sets for e in procs.log_errors().values()]
        problems += [m for procs in self._sets for m in procs.problems()]
        for name, err in (("dispatcher", self._dispatcher.error), ("widget status", self._refresher.error)):
            if err is not None:
                problems.append(f"{name} thread failed: {err!r}")
        problems += frontend_problems()
        hosts = []
        if self.cluster is not None:
            logdirs = {procs.host: str(procs.logdir) for procs in self._sets}
            for h in self.cluster.rows():
                link = h.link
                hosts.append(HostStatus(h.host, h.ranks, link.pid, link.state, link.rtt, link.stalled, logdirs[h.host]))
        return GroupStatus(self.statuses(), self.config.logdir, problems, hosts)

    def fetch_logs(self, dest: Path, timeout: float) -> list[Path]:
        """Every proc's log files, copied under ``dest`` (one directory per host when there
        are hosts)."""
        out = []
        for procs in self._sets:
            out += procs.fetch_logs(dest / procs.host if self.cluster is not None else dest, timeout)
        return out

    def warn_log_errors(self) -> None:
        """Warn, once per file, about log files that could not be written."""
        for procs in self._sets:
            for error in procs.log_errors().values():
                with self._warn_lock:
                    if error in self._log_errors_shown:
                        continue
                    self._log_errors_shown.add(error)
                warnings.warn_explicit(
                    f"{error}; that log file stops here, the output still reaches the notebook",
                    LogFileWarning,
                    "ipylogfwd",
                    0,
                )

    # --- stop -----------------------------------------------------------------------------
    def stop(self, timeout: float, why: str) -> None:
        """Stop every proc and child, publish what they wrote, and release every thread.
        Running cells end with ``ProcDiedError`` saying ``why``. Idempotent."""
        if self.closed:
            return
        self.closed = True
        deadline = time.monotonic() + timeout
        self.cells.end_all(why)
        for procs in self._sets:
            procs.stop(max(0.5, deadline - time.monotonic()))
        # Everything written before the end is still delivered: wait for EOF on the pipes.
        key = ("stop", 0)
        ranks = [p.rank for p in self.procs()]
        self._tracker.begin(key, ranks)
        left = self._tracker.wait(key, max(0.5, deadline - time.monotonic()))
        if left:
            self._weak_barrier(key, left, 1.0)
            self._tracker.wait(key, 1.0)
        self._tracker.finish(key)
        self._refresher.stop()  # the last word in each header: how each proc ended
        for procs in self._sets:
            procs.close()
        self._dispatcher.stop()

    # --- helpers --------------------------------------------------------------------------
    def _split(self, ranks: list[int]) -> list[tuple[ProcSet, list[int]]]:
        """``ranks`` grouped by the proc set that holds them."""
        out = []
        for procs in self._sets:
            mine = [r for r in ranks if r in procs.ranks]
            if mine:
                out.append((procs, mine))
        return out

    def _alive(self, ranks: list[int]) -> dict[int, ProcInfo]:
        """Every proc's info; ``ProcDiedError`` if one of ``ranks`` has exited."""
        infos = {p.rank: p for p in self.procs()}
        dead = [r for r in ranks if not infos[r].alive]
        if dead:
            listed = ",".join(map(str, dead))
            raise ProcDiedError(
                f"rank(s) {dead} have exited ({describe_exit(infos[dead[0]].exitcode)}); "
                f"%procs --kill {listed} replaces them with fresh procs (%procs --restart replaces all)"
            )
        return infos

    def _set_of(self, rank: int) -> ProcSet:
        for procs in self._sets:
            if rank in procs.ranks:
                return procs
        raise UsageError(f"no proc has rank {rank}")

    def _weak_barrier(self, key: tuple[str, int], ranks: list[int], timeout: float) -> None:
        for procs, mine in self._split(ranks):
            procs.weak_barrier(key, mine, max(0.05, timeout))
