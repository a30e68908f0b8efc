"""Cells: code submitted to procs, and the handles (``Execution``) that wait for it.

``Cells`` is one generation's table of running cells: which rank is busy with which cell,
and the execution each proc's result belongs to. It hears results and exits from the proc
sets (``procset.ProcEvents``) and, when the procs are stopped under a running cell, ends the
cell's execution with an error at once.

An ``Execution`` waits for its ranks' results and then for the output they produced to be
published (``CellRunner.finish_cell``), within bounds. Stopping a cell escalates: at
``wait(t)``'s timeout (``%%procs --timeout``) or on ``cancel()``, the ranks still running it
get SIGINT; those still running after a grace period are killed and replaced
(``CellRunner.kill``). ``wait(t)`` so returns within about a second of ``t`` when SIGINT
works, and within ``t`` + the grace + a proc's start when a proc had to be replaced.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from typing import Any, Protocol

from ..errors import ProcDiedError, ProcsBusyError, ProcsError, ProcTimeoutError, UsageError
from ..pipeline.barrier import FlushReport
from ..wire.proc_messages import Result
from .status import describe_exit

INTERRUPT_GRACE = 3.0  # after a KeyboardInterrupt: time for the procs' own tracebacks
TIMEOUT_GRACE = 0.5  # after a timeout: time for the interrupted procs to report
KILL_GRACE = 2.0  # after a timeout: procs still running the cell this much later are killed
CANCEL_GRACE = 5.0
PUBLISH_GRACE = 0.5  # after the results (or a timeout): time for their output to be published
CELL_PUBLISH_TIMEOUT = 10.0


class CellRunner(Protocol):
    """What an execution needs of the procs that run it."""

    def interrupt(self, ranks: list[int]) -> None: ...

    def kill(self, ranks: list[int]) -> None:
        """Kill ``ranks``' procs and replace them (their cells fail for them)."""
        ...

    def finish_cell(self, execution: Execution, publish_timeout: float) -> FlushReport:
        """Wait (bounded) until the output the cell produced is published; forget the cell."""
        ...


class ReprValue:
    """A proc's result that could not be brought into the kernel: its repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class Execution:
    """A cell submitted to some procs. ``wait`` blocks for it; ``done``/``results`` peek."""

    def __init__(self, runner: CellRunner, cell: int, ranks: list[int]) -> None:
        self._runner = runner
        self.cell = cell
        self.ranks = ranks
        self._lock = threading.Lock()  # results arrive on a proc set's control thread
        self._results: dict[int, Any] = {}
        self._errors: dict[int, str] = {}
        self._error_types: dict[int, str] = {}
        self._killed: set[int] = set()  # ranks whose procs were killed and replaced under the cell
        self._ended: ProcDiedError | None = None  # the procs were stopped under the cell
        self._all_in = threading.Event()
        self._finished = False

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

    def wait(self, timeout: float | None = None, *, kill_after: float | None = KILL_GRACE) -> dict[int, Any]:
        """Block until the cell is done on every target and its output is published.

        Returns the per-rank results. Raises ``ProcsError`` if any rank failed,
        ``ProcDiedError`` if the procs were restarted or shut down under the cell, or if the
        only failures are ranks killed and replaced (``%procs --kill``, ``cancel``),
        ``ProcTimeoutError`` after ``timeout`` seconds (the pending procs are interrupted, and
        those still running ``kill_after`` seconds later are killed and replaced; None: never
        killed), and ``KeyboardInterrupt`` if interrupted (the procs are interrupted too).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self._all_in.wait(0.05):
                if deadline is not None and time.monotonic() >= deadline:
                    self._time_out(timeout or 0.0, kill_after)
        except KeyboardInterrupt:
            self._runner.interrupt(self._pending())
            with contextlib.suppress(KeyboardInterrupt):  # a second one: stop waiting for reports
                self._all_in.wait(INTERRUPT_GRACE)
                self._finish(INTERRUPT_GRACE)
            raise
        if self._ended is not None:
            self._finish(0.0)
            raise self._ended
        left = CELL_PUBLISH_TIMEOUT if deadline is None else max(0.0, deadline - time.monotonic())
        self._finish(min(CELL_PUBLISH_TIMEOUT, left + PUBLISH_GRACE))
        with self._lock:
            results = {r: self._results.get(r) for r in self.ranks}
            if self._errors and set(self._errors) <= self._killed:
                killed = sorted(self._killed)
                raise ProcDiedError(
                    f"cell {self.cell}: rank(s) {killed} were killed and replaced while running it; "
                    "their new procs start with empty namespaces: run the cells they need again"
                )
            if self._errors:
                raise ProcsError(dict(self._errors), dict(self._error_types), results)
            return results

    def cancel(self, grace: float = CANCEL_GRACE) -> list[int]:
        """Stop the cell: interrupt the ranks still running it, and kill and replace those
        still running it ``grace`` seconds later. Returns the ranks that were replaced;
        ``wait()`` then reports how each rank ended."""
        pending = self._pending()
        if not pending:
            return []
        self._runner.interrupt(pending)
        self._all_in.wait(grace)
        stuck = self._pending()
        if stuck:
            self._runner.kill(stuck)
        return stuck

    def _time_out(self, timeout: float, kill_after: float | None) -> None:
        pending = self._pending()
        self._runner.interrupt(pending)
        self._all_in.wait(TIMEOUT_GRACE if kill_after is None else kill_after)
        stuck = self._pending() if kill_after is not None else []
        not_killed = ""
        if stuck:
            try:
                self._runner.kill(stuck)
            except UsageError as exc:  # their proc set cannot replace single ranks
                not_killed = str(exc)
        self._finish(PUBLISH_GRACE)
        listed = ", ".join(map(str, pending))
        if not_killed:
            how = f"SIGINT did not stop rank(s) {', '.join(map(str, stuck))}, and {not_killed}"
        elif stuck:
            how = (
                f"SIGINT did not stop rank(s) {', '.join(map(str, stuck))} within {kill_after:g} s: they were "
                "killed and replaced, and their new procs start with empty namespaces (run the cells they need again)"
            )
        else:
            how = "they were interrupted and stay as they were"
        raise ProcTimeoutError(f"cell did not finish within {timeout:g} s on rank(s) {listed}; {how}", pending)

    def _finish(self, publish_timeout: float) -> None:
        """Wait (bounded) until the output the cell produced is published, once."""
        if not self._finished:
            self._finished = True
            self._runner.finish_cell(self, publish_timeout)

    def _pending(self) -> list[int]:
        with self._lock:
            return [r for r in self.ranks if r not in self._results]

    # --- from the cells table -------------------------------------------------------------
    def _deliver(self, rank: int, msg: Result) -> None:
        with self._lock:
            if msg["ok"]:
                self._results[rank] = _unpack(msg)
            else:
                self._results[rank] = None
                self._errors[rank] = msg["error"] or ""
                self._error_types[rank] = msg["error_type"] or "Error"
            self._check_all_in()

    def _fail(self, rank: int, text: str, *, killed: bool = False) -> None:
        with self._lock:
            if rank in self._results:
                return
            if killed:
                self._killed.add(rank)
            self._results[rank] = None
            self._errors[rank] = text
            self._error_types[rank] = ProcDiedError.__name__
            self._check_all_in()

    def _end(self, error: ProcDiedError) -> None:
        with self._lock:
            if self._all_in.is_set():
                return  # it had finished: its results stand
            self._ended = error
            self._all_in.set()

    def _check_all_in(self) -> None:
        if all(r in self._results for r in self.ranks):
            self._all_in.set()

    def __repr__(self) -> str:
        state = "done" if self.done else f"running on {self._pending()}"
        return f"<Execution cell {self.cell} on ranks {self.ranks}: {state}>"


class Cells:
    """One generation's running cells (implements ``procset.ProcEvents``). Thread-safe."""

    def __init__(self) -> None:
        # Callers begin and forget cells; proc sets' control threads deliver: one lock.
        self._lock = threading.Lock()
        self._running: dict[int, Execution] = {}

    def begin(self, runner: CellRunner, cell: int, ranks: list[int]) -> Execution:
        """A new execution of ``cell`` on ``ranks``; ``ProcsBusyError`` if one is still busy."""
        with self._lock:
            busy = {r: c for c, e in self._running.items() for r in e._pending() if r in ranks}
            if busy:
                first = min(busy)
                listed = ",".join(map(str, sorted(busy)))
                raise ProcsBusyError(
                    f"rank(s) {sorted(busy)} are still running cell {busy[first]}; wait for it "
                    f"(handle.wait()), stop it (handle.cancel()), or kill and replace them: %procs --kill {listed}"
                )
            execution = self._running[cell] = Execution(runner, cell, ranks)
            return execution

    def forget(self, cell: int) -> None:
        with self._lock:
            self._running.pop(cell, None)

    def end_all(self, why: str) -> None:
        """The procs are being stopped: every unfinished execution ends with ``ProcDiedError``."""
        with self._lock:
            running = list(self._running.values())
        for execution in running:
            execution._end(ProcDiedError(f"cell {execution.cell} was stopped: {why}"))

    def killed(self, ranks: list[int], why: str) -> None:
        """``ranks``' procs are being killed and replaced: the cells they run fail for them."""
        with self._lock:
            running = [e for e in self._running.values() if set(ranks) & set(e.ranks)]
        for execution in running:
            for rank in ranks:
                if rank in execution.ranks:
                    execution._fail(rank, f"proc {rank} was {why}\n", killed=True)

    def on_result(self, rank: int, result: Result) -> None:
        with self._lock:
            execution = self._running.get(result["cell"])
        if execution is not None:
            execution._deliver(rank, result)

    def on_exit(self, rank: int, exitcode: int) -> None:
        self._fail_rank(rank, f"proc {rank} {describe_exit(exitcode)} while running the cell\n")

    def on_lost(self, rank: int, why: str) -> None:
        self._fail_rank(rank, f"proc {rank} is out of reach ({why}) while running the cell\n")

    def _fail_rank(self, rank: int, text: str) -> None:
        with self._lock:
            running = [e for e in self._running.values() if rank in e.ranks]
        for execution in running:
            execution._fail(rank, text)


def _unpack(msg: Result) -> Any:
    if msg["value"] is None and msg["value_repr"] is None:
        return None
    if msg["value"] is not None:
        try:
            return pickle.loads(msg["value"])
        except Exception:  # noqa: BLE001 - whatever failed (a class defined only in the proc), the repr stands in
            return ReprValue(msg["value_repr"] or "")
    return ReprValue(msg["value_repr"] or "")
