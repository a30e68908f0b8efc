"""ProcGroup: the Python API. Start N procs, run code in them, flush, watch, stop.

Everything the magics do is done here; the magics only parse arguments. A group owns:

* N procs (``proc.main`` under ``multiprocessing`` spawn), each with a control connection;
* one reader thread (``reader``), one dispatcher thread (``dispatcher``), and one control
  thread, "ipylogfwd-control", that receives every proc's control messages (hello,
  heartbeats, results) and notices procs that exit;
* a barrier tracker (``barrier``) through which cells and flushes learn that output before
  a point in each proc's streams has been published.

Output goes to a sink made by ``sink_factory`` when a cell is submitted (in a kernel: that
cell's output; elsewhere: this process's stdout/stderr).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import collections
import itertools
import multiprocessing
import os
import pickle
import signal
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from multiprocessing import reduction
from pathlib import Path
from typing import Any

from . import markers, messages, proc
from .barrier import BarrierTracker, FlushEntry, FlushReport
from .dispatcher import Dispatcher
from .errors import LogFileWarning, ProcDiedError, ProcsBusyError, ProcsError, ProcStartError, ProcTimeoutError, UsageError
from .logfiles import default_logdir, log_path
from .queues import STDERR, STDOUT, BarrierKey, Mailboxes
from .reader import Reader, make_pipe
from .sinks import Sink, default_sink, text_sink
from .watchdog import Watchdog

MAX_PROCS = 256
UNRESPONSIVE_AFTER = 3.0
INTERRUPT_GRACE = 3.0
CELL_PUBLISH_TIMEOUT = 10.0

_live_groups: weakref.WeakSet[ProcGroup] = weakref.WeakSet()

SinkFactory = Callable[[list[int], dict[int, "int | None"], dict[int, list[str]]], Sink]
"""Makes a cell's sink from (target ranks, their pids, their log file paths)."""
STATUS_REFRESH = 1.0
RECENT_SINKS = 20


class _InheritedFd:
    """An fd handed to a spawned proc at the same number (pickled while it is being spawned)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detach, (reduction.DupFd(self.fd),))


def _detach(dup: Any) -> int:
    return int(dup.detach())


@dataclass
class _Proc:
    """Kernel-side record of one proc. Fields are written by the control thread (under the
    group's lock) and read by status/run/flush."""

    rank: int
    process: multiprocessing.process.BaseProcess
    conn: mp_connection.Connection
    token: bytes
    pid: int | None = None
    state: str = "starting"
    busy_cell: int | None = None
    last_heard: float = 0.0
    exitcode: int | None = None
    conn_open: bool = True
    flush_unserved: int = 0  # the last flush version sent that the proc did not serve in time
    flush_read: int = 0  # the last flush version the proc says it has read and marked
    # Main thread and others send exec/flush requests: one send at a time per connection.
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, msg: messages.ToProc) -> bool:
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


@dataclass(frozen=True)
class ProcStatus:
    """One proc as the user sees it."""

    rank: int
    pid: int | None
    state: str
    exitcode: int | None
    stdout_lines: int
    stderr_lines: int
    last_heard: float | None  # seconds ago

    @property
    def exit(self) -> str:
        """How the proc ended ("exited with code 3", "killed by SIGKILL"); "" while alive."""
        return "" if self.exitcode is None else _describe_exit(self.exitcode)


@dataclass(frozen=True)
class GroupStatus:
    procs: list[ProcStatus]
    logdir: Path
    problems: list[str]

    def __repr__(self) -> str:
        rows = [f"{'rank':>4}  {'pid':>7}  {'state':<13} {'exit':<22} {'stdout':>9} {'stderr':>9}  last heard"]
        for p in self.procs:
            heard = f"{p.last_heard:.1f}s ago" if p.last_heard is not None else "never"
            rows.append(
                f"{p.rank:>4}  {p.pid or '-':>7}  {p.state:<13} {p.exit:<22} "
                f"{p.stdout_lines:>9} {p.stderr_lines:>9}  {heard}"
            )
        rows.append(f"logs: {self.logdir}")
        rows += [f"problem: {m}" for m in self.problems]
        return "\n".join(rows)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def __getitem__(self, rank: int) -> ProcStatus:
        return next(p for p in self.procs if p.rank == rank)


class ReprValue:
    """A proc's result that could not be brought into the kernel: its repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Execution:
    """A cell submitted to some procs. ``wait`` blocks for it; ``done``/``results`` peek."""

    def __init__(self, group: ProcGroup, cell: int, ranks: list[int], has_value: bool) -> None:
        self._group = group
        self.cell = cell
        self.ranks = ranks
        self.has_value = has_value
        self._lock = threading.Lock()  # results arrive on the control thread
        self._results: dict[int, Any] = {}
        self._errors: dict[int, str] = {}
        self._error_types: dict[int, str] = {}
        self._all_in = threading.Event()
        self._finished = False
        self.publish_report: FlushReport | None = None

    @property
    def done(self) -> bool:
        """True once every target proc has finished the cell (successfully or not)."""
        return self._all_in.is_set()

    @property
    def results(self) -> dict[int, Any]:
        """Per-rank values of the cell's last expression so far (None where there is none)."""
        with self._lock:
            return {r: self._results[r] for r in self.ranks if r in self._results}

    @property
    def errors(self) -> dict[int, str]:
        """Per-rank traceback text of the ranks that failed so far."""
        with self._lock:
            return dict(self._errors)

    def _deliver(self, rank: int, msg: messages.Result) -> None:
        with self._lock:
            if msg["ok"]:
                self._results[rank] = _unpack(msg)
            else:
                self._results[rank] = None
                self._errors[rank] = msg["error"] or ""
                self._error_types[rank] = msg["error_type"] or "Error"
            self._check_all_in()

    def _fail(self, rank: int, text: str) -> None:
        with self._lock:
            if rank in self._results:
                return
            self._results[rank] = None
            self._errors[rank] = text
            self._error_types[rank] = ProcDiedError.__name__
            self._check_all_in()

    def _check_all_in(self) -> None:
        if all(r in self._results for r in self.ranks):
            self._all_in.set()

    def _pending(self) -> list[int]:
        with self._lock:
            return [r for r in self.ranks if r not in self._results]

    def wait(self, timeout: float | None = None) -> dict[int, Any]:
        """Block until the cell is done on every target and its output is published.

        Returns the per-rank results. Raises ``ProcsError`` if any rank failed,
        ``ProcTimeoutError`` after ``timeout`` seconds (the pending procs are interrupted),
        and ``KeyboardInterrupt`` if interrupted (the procs are interrupted too).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._all_in.wait(0.05):
                if deadline is not None and time.monotonic() >= deadline:
                    pending = self._pending()
                    self._group.interrupt(pending)
                    self._all_in.wait(INTERRUPT_GRACE)
                    self._finish()
                    raise ProcTimeoutError(
                        f"cell did not finish within {timeout:g} s on rank(s) "
                        f"{', '.join(map(str, pending))}; they were interrupted",
                        pending,
                    )
        except KeyboardInterrupt:
            self._group.interrupt(self._pending())
            try:
                self._all_in.wait(INTERRUPT_GRACE)
                self._finish(publish_timeout=INTERRUPT_GRACE)
            except KeyboardInterrupt:
                pass  # a second interrupt: stop waiting for the procs' reports
            raise
        self._finish()
        with self._lock:
            results = {r: self._results.get(r) for r in self.ranks}
            if self._errors:
                raise ProcsError(dict(self._errors), dict(self._error_types), results)
            return results

    def _finish(self, publish_timeout: float = CELL_PUBLISH_TIMEOUT) -> None:
        """Wait (bounded) until the output the cell produced is published, once."""
        if self._finished:
            return
        self._finished = True
        self.publish_report = self._group._finish_cell(self, publish_timeout)

    def __repr__(self) -> str:
        state = "done" if self.done else f"running on {self._pending()}"
        return f"<Execution cell {self.cell} on ranks {self.ranks}: {state}>"


class ProcGroup:
    """N worker processes whose output is forwarded, in order, to the cell that produced it.

    >>> g = ProcGroup(4)
    >>> g.run("import os; int(os.environ['RANK']) ** 2")
    {0: 0, 1: 1, 2: 4, 3: 9}
    >>> g.flush().ok
    True
    >>> g.shutdown()
    """

    def __init__(
        self,
        n: int,
        *,
        logdir: str | os.PathLike[str] | None = None,
        sink_factory: SinkFactory = default_sink,
        flush_interval: float = 0.05,
        start_timeout: float = 60.0,
        force: bool = False,
    ) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UsageError(f"the number of procs must be a positive integer, not {n!r}")
        if n > MAX_PROCS and not force:
            raise UsageError(f"{n} procs is more than {MAX_PROCS}; pass force=True (--force) if you mean it")
        self.size = n
        self.sink_factory = sink_factory
        self.flush_interval = flush_interval
        self.start_timeout = start_timeout
        self.logdir = Path(logdir) if logdir else default_logdir()
        self._cells = itertools.count(1)
        self._versions = itertools.count(1)
        self._closed = False
        self._start()
        _live_groups.add(self)

    # --- lifecycle ------------------------------------------------------------------------
    def _start(self) -> None:
        self._lock = threading.Lock()  # guards _procs fields and _executions
        self._procs: dict[int, _Proc] = {}
        self._executions: dict[int, Execution] = {}
        self._mailboxes = Mailboxes()
        self._tracker = BarrierTracker()
        self._reader = Reader(self._mailboxes)
        self._dispatcher = Dispatcher(self._mailboxes, self._tracker)
        # Output before a proc's first cell (start-up) goes to the cell that started the procs,
        # as text: it is rare, and the procs' widgets belong to the cells that run code.
        startup = text_sink() if self.sink_factory is default_sink else self.sink_factory(self.ranks, {}, {})
        self._dispatcher.register_cell(0, startup)
        self._recent_sinks: collections.deque[Sink] = collections.deque(maxlen=RECENT_SINKS)
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._refresh_error: Exception | None = None  # shown by status(); set by the control thread
        self._refresh_lock = threading.Lock()
        self._watchdog = Watchdog()
        self._log_errors_shown: set[str] = set()  # warned about once each (caller's thread)
        # The control thread: receives every proc's messages and watches for proc exits.
        self._control = threading.Thread(target=self._control_loop, name="ipylogfwd-control", daemon=True)
        self._control.start()
        ctx = multiprocessing.get_context("spawn")
        # The parent-death signal fires when the spawning *thread* exits, so only ask for it
        # when that thread lives as long as the kernel; the control channel's EOF covers the rest.
        die_with_parent = threading.current_thread() is threading.main_thread()
        try:
            for rank in range(self.size):
                self._spawn(ctx, rank, die_with_parent)
            self._await_hello()
        except BaseException:
            self._stop(timeout=2.0)
            raise
        self._warn_log_errors()

    def _spawn(self, ctx: Any, rank: int, die_with_parent: bool) -> None:
        out_r, out_w = make_pipe()
        err_r, err_w = make_pipe()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        token = markers.new_token()
        process = ctx.Process(
            target=proc.main,
            name=f"ipylogfwd-rank{rank}",
            args=(
                rank,
                self.size,
                _InheritedFd(out_w),
                _InheritedFd(err_w),
                child_conn,
                token,
                self.flush_interval,
                die_with_parent,
            ),
        )
        self._dispatcher.start_rank(rank, 0)
        self._tracker.forget_rank(rank)
        try:
            process.start()
        finally:
            os.close(out_w)
            os.close(err_w)
            child_conn.close()
        self._reader.add(rank, out_r, err_r, token, self.logdir)
        if process.pid is not None:
            # The proc makes its own process group, with the same id as its pid.
            self._watchdog.guard(process.pid)
        with self._lock:
            self._procs[rank] = _Proc(rank, process, parent_conn, token, pid=process.pid)
        os.write(self._wake_w, b"x")

    def _await_hello(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            with self._lock:
                starting = [p for p in self._procs.values() if p.state == "starting"]
                dead = [p for p in self._procs.values() if p.exitcode is not None]
            if dead:
                p = dead[0]
                raise ProcStartError(
                    f"proc {p.rank} exited during start-up ({_describe_exit(p.exitcode)}); "
                    f"its output is above and in {log_path(self.logdir, p.rank, STDERR)}"
                )
            if not starting:
                return
            if time.monotonic() > deadline:
                raise ProcStartError(
                    f"proc(s) {[p.rank for p in starting]} did not start within {self.start_timeout:g} s"
                )
            time.sleep(0.02)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every proc (and their children) and the group's threads. Output the procs
        wrote before they stopped is still published. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop(timeout)
        _live_groups.discard(self)

    def restart(self, n: int | None = None) -> None:
        """Replace every proc with a fresh one (a new namespace), ``n`` of them if given."""
        if n is not None:
            if n < 1 or (n > MAX_PROCS):
                raise UsageError(f"the number of procs must be between 1 and {MAX_PROCS}, not {n}")
            self.size = n
        if not self._closed:
            self._stop(5.0)
        self._closed = False
        self._start()
        _live_groups.add(self)

    def _stop(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            p.send(messages.shutdown())
        grace = time.monotonic() + min(1.0, timeout / 2)  # one grace period for all procs
        for p in procs:
            p.process.join(max(0.0, grace - time.monotonic()))
        for p in procs:
            if p.process.is_alive():
                p.process.kill()
            _kill_group(p.pid)  # children of the proc that outlived it
        for p in procs:
            p.process.join(1.0)
        with self._lock:
            for p in procs:
                if p.exitcode is None and p.process.exitcode is not None:
                    p.exitcode, p.state, p.busy_cell = p.process.exitcode, "exited", None
        # Everything written before the end is still delivered: wait for EOF on the pipes.
        key = ("stop", 0)
        self._tracker.begin(key, [p.rank for p in procs])
        left = self._tracker.wait(key, max(0.5, deadline - time.monotonic()))
        if left:
            self._reader.weak_barrier(key, left, 1.0)
            self._tracker.wait(key, 1.0)
        self._tracker.finish(key)
        try:
            self._refresh_widgets()  # the last word in each header: how each proc ended
        except Exception as exc:
            self._refresh_error = exc
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._control.join(2.0)
        self._dispatcher.stop()
        self._reader.stop()
        for p in procs:
            with p.send_lock:
                p.conn_open = False
                p.conn.close()
            _kill_group(p.pid)
            if p.pid:
                self._watchdog.release(p.pid)
        self._watchdog.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- running code ---------------------------------------------------------------------
    @property
    def ranks(self) -> list[int]:
        return list(range(self.size))

    def submit(self, code: str, targets: Iterable[int] | None = None, *, sink: Sink | None = None) -> Execution:
        """Start running ``code`` on ``targets`` (default: all) and return at once.

        Output goes to ``sink`` (default: a new one from ``sink_factory``, i.e. the cell
        executing now). Raises ``SyntaxError`` before starting anything if ``code`` does
        not parse, and ``ProcsBusyError`` if a target is still running an earlier cell.
        """
        self._check_open()
        ranks = self._check_targets(targets)
        tree = ast.parse(code, "<procs cell>", "exec")
        has_value = bool(tree.body) and isinstance(tree.body[-1], ast.Expr)
        with self._lock:
            busy = [r for r in ranks if self._procs[r].busy_cell is not None]
            dead = [r for r in ranks if not self._procs[r].alive]
            if busy:
                raise ProcsBusyError(
                    f"rank(s) {busy} are still running cell {self._procs[busy[0]].busy_cell}; "
                    "wait for it (handle.wait()) or interrupt the kernel"
                )
            if dead:
                raise ProcDiedError(
                    f"rank(s) {dead} have exited ({_describe_exit(self._procs[dead[0]].exitcode)}); "
                    "%procs --restart starts fresh procs"
                )
            cell = next(self._cells)
            execution = Execution(self, cell, ranks, has_value)
            self._executions[cell] = execution
            for r in ranks:
                self._procs[r].busy_cell = cell
                self._procs[r].state = "running"
        if sink is None:
            with self._lock:
                pids = {r: self._procs[r].pid for r in ranks}
            logs = {r: [str(log_path(self.logdir, r, s)) for s in (STDOUT, STDERR)] for r in ranks}
            sink = self.sink_factory(ranks, pids, logs)
        self._recent_sinks.append(sink)
        self._dispatcher.register_cell(cell, sink)
        self._tracker.begin(("cell", cell), ranks)
        msg = messages.exec_(cell, code, f"<procs cell {cell}>")
        for r in ranks:
            if not self._procs[r].send(msg):
                execution._fail(r, f"proc {r} could not be reached: its control channel is closed\n")
        return execution

    def run(self, code: str, targets: Iterable[int] | None = None, *, timeout: float | None = None) -> dict[int, Any]:
        """Run ``code`` on ``targets`` and wait; per-rank results (see ``Execution.wait``)."""
        return self.submit(code, targets).wait(timeout)

    def _finish_cell(self, execution: Execution, publish_timeout: float) -> FlushReport:
        key = ("cell", execution.cell)
        # Procs that died, or are still running the cell (it timed out or was interrupted and
        # they did not stop), will not write the end-of-cell marker now: what they wrote so
        # far is in the pipe.
        with self._lock:
            dead = [r for r in execution.ranks if not self._procs[r].alive]
        unfinished = sorted(set(dead) | set(execution._pending()))
        if unfinished:
            self._reader.weak_barrier(key, unfinished, 2.0)
        left = self._tracker.wait(key, publish_timeout)
        if left:
            self._reader.weak_barrier(key, left, 2.0)
            self._tracker.wait(key, 2.0)
        report = self._tracker.finish(key)
        with self._lock:
            self._executions.pop(execution.cell, None)
        self._refresh_widgets()  # the headers show the cell's end now, not at the next tick
        self._warn_log_errors()
        if not report.ok:
            warnings.warn(
                f"output of rank(s) {[e.rank for e in report.entries if e.outcome == 'timed out']} "
                "may still be arriving after this cell ended",
                stacklevel=3,
            )
        return report

    def interrupt(self, targets: Iterable[int] | None = None) -> None:
        """Send SIGINT to the procs (KeyboardInterrupt in the code they run)."""
        ranks = self.ranks if targets is None else list(targets)
        with self._lock:
            pids = [self._procs[r].pid for r in ranks if self._procs[r].alive]
        for pid in pids:
            if pid:
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    # --- the barrier ----------------------------------------------------------------------
    def flush(
        self,
        timeout: float = 10.0,
        targets: Iterable[int] | None = None,
        *,
        serve_timeout: float | None = None,
    ) -> FlushReport:
        """Barrier: return once every target proc's output written before this call is published.

        Each proc flushes its Python and C buffers and marks its streams; the call returns
        when the output before every mark is published. A proc that does not serve the
        request within ``serve_timeout`` (default: half of ``timeout``, at most 2 s) gets
        the weaker barrier: everything read from it so far. A dead proc's barrier completes
        at the end of its pipes. Never waits longer than ``timeout``; the report says per
        proc what was reached.
        """
        self._check_open()
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, not {timeout}")
        ranks = self._check_targets(targets)
        serve = min(2.0, timeout / 2) if serve_timeout is None else min(serve_timeout, timeout)
        started = time.monotonic()
        version = next(self._versions)
        key = ("flush", version)
        self._tracker.begin(key, ranks)
        asked: list[_Proc] = []
        try:
            with self._lock:
                procs = [self._procs[r] for r in ranks]
                dead = [p.rank for p in procs if not p.alive]
                # A proc that has still not read a request it failed to serve in time is stuck
                # (a loop holding the GIL): piling more onto its control channel would fill
                # it and block this send. It gets the weaker barrier at once instead.
                stuck = [p.rank for p in procs if p.alive and p.flush_unserved > p.flush_read]
            asked = [p for p in procs if p.alive and p.rank not in stuck]
            for p in asked:
                if not p.send(messages.flush(version)):
                    stuck.append(p.rank)
            if dead:
                # Everything a dead proc wrote is in its pipe now; a child of it may hold the
                # pipe open for long, so do not wait for the pipe's end.
                self._tracker.exited(key, dead)
            if dead or stuck:
                self._reader.weak_barrier(key, sorted(dead + stuck), max(0.1, timeout / 2))
            left = self._tracker.wait(key, serve)
            if left:
                remaining = timeout - (time.monotonic() - started)
                self._reader.weak_barrier(key, left, max(0.1, remaining / 2))
                self._tracker.wait(key, timeout - (time.monotonic() - started))
        finally:
            report = self._tracker.finish(key)  # also when interrupted: stop tracking it
        with self._lock:
            for p in asked:
                if report[p.rank].outcome in ("weak", "timed out"):
                    p.flush_unserved = version
        self._warn_log_errors()
        return self._render_level(report, key, started, started + timeout)

    def _render_level(self, report: FlushReport, key: BarrierKey, started: float, deadline: float) -> FlushReport:
        """Raise each published proc to "rendered" once its view acknowledges the barrier.

        Ranks are waited for one after another, but each one's time is from the flush's start
        to its own ack, so the report's times do not depend on the order of the waits.
        """
        entries, reasons = [], set()
        for e in report.entries:
            sink = self._dispatcher.sink_of(key, e.rank)
            if e.outcome not in ("published", "weak") or sink is None:
                entries.append(e)
                continue
            outcome, acked_at = sink.render_wait(e.rank, report.version, deadline - time.monotonic())
            if outcome == "rendered" and acked_at is not None:
                took = acked_at - started
                if e.outcome == "weak":
                    entries.append(FlushEntry(e.rank, "weak", took, "did not serve the flush in time: what was read is rendered"))
                else:
                    entries.append(FlushEntry(e.rank, "rendered", took))
            else:
                reasons.add(outcome)
                entries.append(FlushEntry(e.rank, e.outcome, e.seconds, outcome))
        if len(reasons) == 1:
            # One reason for every proc: say it once, in the report's header.
            entries = [FlushEntry(e.rank, e.outcome, e.seconds) if e.detail in reasons else e for e in entries]
            return FlushReport(report.version, entries, f"not rendered: {reasons.pop()}")
        return FlushReport(report.version, entries, "not rendered everywhere" if reasons else "")

    async def aflush(
        self,
        timeout: float = 10.0,
        targets: Iterable[int] | None = None,
        *,
        serve_timeout: float | None = None,
    ) -> FlushReport:
        """``flush`` for async code: awaits the barrier without blocking the event loop (so a
        kernel can handle the views' acknowledgements on its main shell meanwhile)."""
        return await asyncio.to_thread(self.flush, timeout, targets, serve_timeout=serve_timeout)

    # --- status ---------------------------------------------------------------------------
    def status(self) -> GroupStatus:
        now = time.monotonic()
        rows = []
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            state = p.state
            if p.alive and state in ("idle", "running") and now - p.last_heard > UNRESPONSIVE_AFTER:
                state = "unresponsive"
            if not p.alive:
                state = "exited" if (p.exitcode or 0) >= 0 else "killed"
            lines = self._dispatcher.lines.get(p.rank, [0, 0, 0])
            rows.append(
                ProcStatus(
                    p.rank,
                    p.pid,
                    state,
                    p.exitcode,
                    lines[STDOUT],
                    lines[STDERR],
                    now - p.last_heard if p.last_heard else None,
                )
            )
        problems = [f"log file: {e}" for e in self._reader.log_errors().values()]
        threads = (
            ("reader", self._reader.error),
            ("dispatcher", self._dispatcher.error),
            ("widget status", self._refresh_error),
        )
        for name, err in threads:
            if err is not None:
                problems.append(f"{name} thread failed: {err!r}")
        return GroupStatus(rows, self.logdir, problems)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.size} procs"
        return f"<ProcGroup {state}, logs in {self.logdir}>"

    # --- the control thread ---------------------------------------------------------------
    def _refresh_widgets(self) -> None:
        """Push each proc's state into the headers of the recent cells' widgets."""
        with self._refresh_lock:  # the control thread, and cell ends / shutdown on the caller's
            self._refresh_widgets_locked()

    def _refresh_widgets_locked(self) -> None:
        statuses = {p.rank: p for p in self.status().procs}
        now_wall, now = time.time(), time.monotonic()
        for sink in list(self._recent_sinks):
            update = getattr(sink, "update_status", None)
            if update is None:
                continue
            for rank, st in statuses.items():
                heard = now_wall - (st.last_heard or 0.0) if st.last_heard is not None else 0.0
                update(rank, state=st.state, exit_text=st.exit, pid=st.pid, last_heard=heard)
        self._last_refresh = now

    def _control_loop(self) -> None:
        self._last_refresh = 0.0
        while not self._stopping:
            if time.monotonic() - self._last_refresh >= STATUS_REFRESH:
                try:
                    self._refresh_widgets()
                except Exception as exc:  # a header that cannot update must not stop control
                    self._refresh_error = exc
            with self._lock:
                conns = {p.conn: p for p in self._procs.values() if p.conn_open}
                sentinels = {p.process.sentinel: p for p in self._procs.values() if p.alive}
            ready = mp_connection.wait([self._wake_r, *conns, *sentinels], timeout=0.5)
            for obj in ready:
                if isinstance(obj, mp_connection.Connection):
                    self._receive(conns[obj])
            for obj in ready:
                if isinstance(obj, int) and obj in sentinels:
                    self._on_exit(sentinels[obj])
                elif obj == self._wake_r:
                    os.read(self._wake_r, 4096)

    def _receive(self, p: _Proc) -> None:
        try:
            while p.conn.poll():
                msg = p.conn.recv()
                messages.check(msg, "from_proc")
                self._on_message(p, msg)
        except (EOFError, OSError):
            with self._lock:
                p.conn_open = False

    def _on_message(self, p: _Proc, msg: messages.FromProc) -> None:
        execution = None
        with self._lock:
            p.last_heard = time.monotonic()
            if msg["type"] == "hello":
                p.pid = msg["pid"]
                p.state = "idle"
            elif msg["type"] == "started":
                p.state = "running"
            elif msg["type"] == "flushed":
                p.flush_read = max(p.flush_read, msg["version"])
            elif msg["type"] == "heartbeat":
                if p.state != "starting":
                    p.state = "running" if msg["busy_cell"] is not None else "idle"
            elif msg["type"] == "result":
                if p.busy_cell == msg["cell"]:
                    p.busy_cell = None
                p.state = "idle"
                execution = self._executions.get(msg["cell"])
        if execution is not None and msg["type"] == "result":
            execution._deliver(p.rank, msg)

    def _on_exit(self, p: _Proc) -> None:
        p.process.join(0.5)
        with self._lock:
            p.exitcode = p.process.exitcode if p.process.exitcode is not None else -signal.SIGKILL
            p.state = "exited"
            cell, p.busy_cell = p.busy_cell, None
            execution = self._executions.get(cell) if cell is not None else None
        if execution is not None:
            execution._fail(p.rank, f"proc {p.rank} {_describe_exit(p.exitcode)} while running the cell\n")

    # --- helpers --------------------------------------------------------------------------
    def _warn_log_errors(self) -> None:
        """Warn, once per file, about log files that could not be written."""
        for error in self._reader.log_errors().values():
            if error not in self._log_errors_shown:
                self._log_errors_shown.add(error)
                warnings.warn_explicit(
                    f"{error}; that log file stops here, the output still reaches the notebook",
                    LogFileWarning,
                    "ipylogfwd",
                    0,
                )

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("this ProcGroup has been shut down; start a new one or call restart()")

    def _check_targets(self, targets: Iterable[int] | None) -> list[int]:
        if targets is None:
            return self.ranks
        ranks = sorted(set(targets))
        bad = [r for r in ranks if not (isinstance(r, int) and 0 <= r < self.size)]
        if bad or not ranks:
            raise UsageError(f"targets must be ranks in 0..{self.size - 1}, got {list(targets)!r}")
        return ranks


def _unpack(msg: messages.Result) -> Any:
    if msg["value"] is None and msg["value_repr"] is None:
        return None
    if msg["value"] is not None:
        try:
            return pickle.loads(msg["value"])
        except Exception:
            pass  # e.g. a class defined only in the proc: show its repr instead
    return ReprValue(msg["value_repr"] or "")


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _kill_group(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def parse_targets(spec: str, size: int) -> list[int]:
    """Ranks named by ``spec``: ``all``, ``2``, ``0,2``, ``1:3`` (1 and 2), ``:2,5``."""
    ranks: set[int] = set()
    spec = spec.strip()
    if spec == "all":
        return list(range(size))
    for part in spec.split(","):
        part = part.strip()
        try:
            if ":" in part:
                lo_s, _, hi_s = part.partition(":")
                lo = int(lo_s) if lo_s.strip() else 0
                hi = int(hi_s) if hi_s.strip() else size
                if lo >= hi:
                    raise UsageError(f"empty rank range {part!r}")
                ranks.update(range(lo, hi))
            else:
                ranks.add(int(part))
        except ValueError:
            raise UsageError(f"bad --targets {spec!r}: use ranks like 0,2 or ranges like 1:3") from None
    bad = sorted(r for r in ranks if not 0 <= r < size)
    if bad:
        raise UsageError(f"--targets {spec!r} names rank(s) {bad} outside 0..{size - 1}")
    return sorted(ranks)


@atexit.register
def _shutdown_all() -> None:
    # Registered after multiprocessing's own exit hook, so this runs first: procs are told
    # to stop (and killed if need be) before multiprocessing would wait for them.
    for group in list(_live_groups):
        try:
            group.shutdown(timeout=2.0)
        except Exception:
            pass
