"""ProcGroup: the Python API. Start N procs, run code in them, move values, flush, watch, stop.

Everything the magics do is done here; the magics only parse arguments. A group is a facade:
the running procs and everything that serves them are one ``Generation`` (see
``generation``), which ``restart()`` replaces whole. A group adds what outlives a generation:
what the user asked for (size, log directory, sink factory), cell ids and flush versions, and
with a ``launcher``, the agents on every host (``hosts.cluster``), which each generation's
procs run under.

Output goes to a sink made by ``sink_factory`` when a cell is submitted (in a kernel: that
cell's output; elsewhere: this process's stdout/stderr).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import itertools
import os
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..hosts.cluster import Cluster
from ..launchers.base import Launcher
from ..pipeline.barrier import FlushReport
from ..pipeline.logfiles import default_logdir
from ..pipeline.sink import Sink
from ..sinks.factory import default_sink
from . import data
from .args import (
    check_code,
    check_name,
    check_sequence,
    check_size,
    check_targets,
    check_timeout,
    check_timestamps,
    check_view,
)
from .cells import Execution
from .generation import Generation, GroupConfig, SinkFactory
from .stacks import StacksReport
from .status import GroupStatus

_live_groups: weakref.WeakSet[ProcGroup] = weakref.WeakSet()


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
        launcher: Launcher | None = None,
        timestamps: str | None = None,
        view: str | None = None,
    ) -> None:
        """``n`` procs on this machine, or with ``launcher`` on the hosts it starts agents on
        (``ipylogfwd.launchers``: local, any command such as ssh or srun, Ray). With
        ``timestamps`` ("absolute" or "relative"), lines show when the kernel read them (text
        output's prefixes; the widgets start with their timestamps toggle set so). ``view``
        ("merged" or "procs") is what the widgets show first (default: the merged view from 8
        procs on, one widget per proc below)."""
        self._config = GroupConfig(
            size=check_size(n, force),
            logdir=Path(logdir) if logdir else default_logdir(),
            sink_factory=sink_factory,
            flush_interval=flush_interval,
            start_timeout=start_timeout,
            timestamps=check_timestamps(timestamps),
            view=check_view(view),
        )
        self._cells = itertools.count(1)
        self._versions = itertools.count(1)
        self._epochs = itertools.count(1)
        self.launcher = launcher
        self._cluster = None if launcher is None else Cluster(launcher, n, start_timeout=start_timeout)
        # restart() and shutdown() replace or end the generation while other threads may use
        # it: they swap the reference under this lock; everyone else reads it once per call.
        self._lock = threading.Lock()
        try:
            self._generation: Generation | None = self._start()
        except BaseException:
            if self._cluster is not None:
                self._cluster.close()
            raise
        _live_groups.add(self)

    @property
    def size(self) -> int:
        return self._config.size

    @property
    def ranks(self) -> list[int]:
        return list(range(self._config.size))

    @property
    def logdir(self) -> Path:
        return self._config.logdir

    @property
    def timestamps(self) -> str | None:
        """How the lines of cells started from now on show when they were read: "absolute"
        (time of day), "relative" (since the cell started) or None (off). Settable."""
        return self._config.timestamps

    @timestamps.setter
    def timestamps(self, mode: str | None) -> None:
        self._reconfigure(timestamps=check_timestamps(mode))

    @property
    def view(self) -> str | None:
        """What the widgets of cells started from now on show first: "merged", "procs", or
        None (the merged view from 8 procs on). Settable; the page's toggle switches it."""
        return self._config.view

    @view.setter
    def view(self, view: str | None) -> None:
        self._reconfigure(view=check_view(view))

    def _reconfigure(self, **changes: Any) -> None:
        self._config = dataclasses.replace(self._config, **changes)
        generation = self._generation
        if generation is not None:
            generation.config = self._config

    # --- lifecycle ------------------------------------------------------------------------
    def _start(self) -> Generation:
        generation = Generation(self._config, self._cluster, next(self._epochs))
        generation.start()
        return generation

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every proc (and their children) and the group's threads. Output the procs
        wrote before they stopped is still published. A cell still running ends with
        ``ProcDiedError``. Idempotent."""
        with self._lock:
            generation, self._generation = self._generation, None
        if generation is not None:
            generation.stop(timeout, "the procs were shut down")
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()
        _live_groups.discard(self)

    def restart(self, n: int | None = None, *, force: bool = False) -> None:
        """Replace every proc with a fresh one (a new namespace), ``n`` of them if given. A cell
        still running ends at once with ``ProcDiedError``."""
        size = self._config.size if n is None else check_size(n, force)
        if self._cluster is not None and size != self._config.size:
            raise UsageError("a group on hosts keeps its size; start a new group for another number of procs")
        with self._lock:
            old, self._generation = self._generation, None
        if old is not None:
            old.stop(5.0, "the procs were restarted")
        self._config = dataclasses.replace(self._config, size=size)
        if self.launcher is not None and self._cluster is None:  # restarted after a shutdown
            self._cluster = Cluster(self.launcher, size, start_timeout=self._config.start_timeout)
        generation = self._start()
        with self._lock:
            self._generation = generation
        _live_groups.add(self)

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- running code ---------------------------------------------------------------------
    def submit(self, code: str, targets: Iterable[int] | None = None, *, sink: Sink | None = None) -> Execution:
        """Start running ``code`` on ``targets`` (default: all) and return at once.

        Output goes to ``sink`` (default: a new one from ``sink_factory``, i.e. the cell
        executing now). Raises ``SyntaxError`` before starting anything if ``code`` does
        not parse (saying so plainly for IPython syntax: magics, ``!`` commands), ``ProcsBusyError``
        if a target is still running an earlier cell, and ``ProcDiedError`` if a target has exited.
        """
        generation = self._open()
        ranks = check_targets(targets, self.size)
        check_code(code)  # a SyntaxError starts nothing
        return generation.submit(next(self._cells), code, ranks, sink)

    def run(self, code: str, targets: Iterable[int] | None = None, *, timeout: float | None = None) -> dict[int, Any]:
        """Run ``code`` on ``targets`` and wait; per-rank results (see ``Execution.wait``)."""
        return self.submit(code, targets).wait(timeout)

    def interrupt(self, targets: Iterable[int] | None = None) -> None:
        """Send SIGINT to the procs (KeyboardInterrupt in the code they run)."""
        self._open().interrupt(check_targets(targets, self.size))

    # --- moving values --------------------------------------------------------------------
    def push(self, values: Mapping[str, Any], targets: Iterable[int] | None = None, *, timeout: float = 60.0) -> None:
        """Set each name in ``values`` to its value in the namespace of every target proc.

        Each value is pickled in the kernel and unpickled in the procs; served at once by each
        proc, also while a cell runs. ``TransferError`` names what could not be moved and where
        (nothing is sent if a value cannot be pickled), ``ProcTimeoutError`` the ranks that did
        not answer within ``timeout``, ``ProcDiedError`` ranks that have exited.
        """
        generation = self._open()
        ranks = check_targets(targets, self.size)
        timeout = check_timeout(timeout)
        what = f"push({', '.join(repr(check_name(n)) for n in values)})"
        blobs = {name: data.dumps(what, name, value) for name, value in values.items()}
        data.check_pushed(what, ranks, generation.push(dict.fromkeys(ranks, blobs), timeout), timeout)

    def pull(self, name: str, targets: Iterable[int] | None = None, *, timeout: float = 60.0) -> dict[int, Any]:
        """``{rank: value}`` of the variable ``name`` in each target proc (errors as ``push``)."""
        generation = self._open()
        ranks = check_targets(targets, self.size)
        timeout = check_timeout(timeout)
        what = f"pull({check_name(name)!r})"
        return data.loads_pulled(what, name, ranks, generation.pull([name], ranks, timeout), timeout)

    def scatter(
        self, name: str, seq: Sequence[Any], targets: Iterable[int] | None = None, *, timeout: float = 60.0
    ) -> None:
        """Cut ``seq`` into one contiguous part per target proc, in rank order (the first parts
        one longer when it does not divide evenly), and set ``name`` to its part in each."""
        generation = self._open()
        ranks = check_targets(targets, self.size)
        timeout = check_timeout(timeout)
        what = f"scatter({check_name(name)!r})"
        check_sequence(seq)
        parts = data.split(seq, len(ranks))
        values = {r: {name: data.dumps(what, name, part, r)} for r, part in zip(ranks, parts, strict=True)}
        data.check_pushed(what, ranks, generation.push(values, timeout), timeout)

    def gather(self, name: str, targets: Iterable[int] | None = None, *, timeout: float = 60.0) -> Any:
        """The values of ``name`` in the target procs put together in rank order: lists,
        tuples, strings, bytes and numpy arrays concatenated, anything else as a list."""
        return data.join([value for _, value in sorted(self.pull(name, targets, timeout=timeout).items())])

    def kill(self, targets: Iterable[int]) -> None:
        """Kill these ranks' procs (with everything they started) and start fresh ones in their
        place: same ranks and environment, empty namespaces. A cell they were running fails
        for them (``ProcDiedError``); what they wrote before is still shown. The other ranks
        are not touched (a collective they were in with the killed ranks may fail)."""
        self._open().kill(check_targets(targets, self.size))

    def stacks(self, targets: Iterable[int] | None = None, timeout: float = 5.0) -> StacksReport:
        """Where each proc is now: every thread's stack (the cell's frames with their source
        lines), ranks doing the same shown together. Works on procs stuck in C code or a
        collective too; never waits longer than ``timeout``."""
        generation = self._open()
        ranks = check_targets(targets, self.size)
        return generation.stacks(ranks, check_timeout(timeout))

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
        when the output before every mark is published (and rendered, where views
        acknowledge it). A proc that does not serve the request within ``serve_timeout``
        (default: half of ``timeout``, at most 2 s) gets the weaker barrier: everything read
        from it so far. A dead proc's barrier completes at the end of its pipes. Never waits
        longer than ``timeout``; the report says per proc what was reached.
        """
        generation = self._open()
        timeout = check_timeout(timeout)
        ranks = check_targets(targets, self.size)
        if serve_timeout is None:
            serve = min(2.0, timeout / 2)
        else:
            serve = min(check_timeout(serve_timeout, "serve_timeout"), timeout)
        return generation.flush(next(self._versions), ranks, timeout, serve)

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
        """Every proc's state, pid, line counts and last heartbeat; log directory; problems."""
        return self._open().status()

    def fetch_logs(self, dest: str | os.PathLike[str], timeout: float = 60.0) -> list[Path]:
        """Copy every proc's log files (complete, every byte it wrote) into ``dest``; from other
        hosts, into ``dest/HOST/``. Returns the files written."""
        return self._open().fetch_logs(Path(dest), check_timeout(timeout))

    def __repr__(self) -> str:
        state = "closed" if self._generation is None else f"{self.size} procs"
        return f"<ProcGroup {state}, logs in {self.logdir}>"

    def _open(self) -> Generation:
        generation = self._generation
        if generation is None:
            raise UsageError("this ProcGroup has been shut down; start a new one or call restart()")
        return generation


@atexit.register
def _shutdown_all() -> None:
    # Registered after multiprocessing's own exit hook, so this runs first: procs are told
    # to stop (and killed if need be) before multiprocessing would wait for them.
    for group in list(_live_groups):
        with contextlib.suppress(Exception):  # one group failing to stop must not keep the others
            group.shutdown(timeout=2.0)
