"""The IPython magics: a thin layer of argument parsing over ``ProcGroup``.

``%%procs N [options]`` runs the cell in N procs; ``%procs`` shows or manages them;
``%logflush`` is the barrier. One group per IPython session.

``%reload_ext ipylogfwd`` keeps the procs: unloading parks the group here (this module is
not reloaded with the package), loading again takes it back, and a group nobody took back by
the end of the cell (``%unload_ext``) is shut down then.
"""

from __future__ import annotations

import warnings
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import CellSyntaxError, FlushWarning, UsageError
from .group import Execution, GroupStatus, ProcGroup
from .group.args import MAX_PROCS, check_size, check_timeout, parse_targets
from .launchers.choose import Choice, choose
from .pipeline.barrier import FlushReport


@magics_class
class ProcsMagics(Magics):
    """Magics bound to one IPython shell; they own the shell's current ProcGroup."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.group: ProcGroup | None = None
        self.launcher: Choice | None = None  # how the group's launcher was chosen
        self.last: Execution | None = None

    @magic_arguments()
    @argument(
        "n", nargs="?", type=int, help="How many procs. The same N reuses the running procs; another N replaces them."
    )
    @argument("-t", "--targets", help="Run on these ranks only: 0,2 or 1:3 (ranks 1 and 2) or all.")
    @argument("--bg", action="store_true", help="Return at once with a handle (.wait(timeout), .done, .results).")
    @argument(
        "--timeout",
        type=float,
        help="Interrupt the procs and raise if the cell has not finished after this many seconds.",
    )
    @argument("--restart", action="store_true", help="Replace the procs with fresh ones (new namespaces) first.")
    @argument("--shutdown", action="store_true", help="Line form: stop every proc.")
    @argument(
        "--logdir",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="Line form without DIR: print where the per-proc log files are. With DIR: write new procs' logs there.",
    )
    @argument("--force", action="store_true", help=f"Allow more than {MAX_PROCS} procs.")
    @argument(
        "--launcher",
        metavar="NAME",
        help="Run the procs on hosts: local (agents on this machine), ray, or a launcher object's name.",
    )
    @argument("--per-host", type=int, metavar="P", help="With --launcher local or ray: procs per host.")
    @argument(
        "--timestamps",
        choices=["absolute", "relative", "off"],
        help="Show when each line was read: absolute (time of day) or relative (since the cell started), "
        "from this cell on (text output's prefixes; the widgets' toggle starts so).",
    )
    @argument(
        "--view",
        choices=["merged", "procs", "auto"],
        help="What the widgets show first, from this cell on: merged (lines several ranks printed, once), "
        "procs (one widget per proc), auto (merged from 8 procs on).",
    )
    @argument(
        "--stacks",
        action="store_true",
        help="Line form: show where each proc is (every thread's stack; ranks doing the same together).",
    )
    @argument(
        "--kill",
        metavar="RANKS",
        help="Line form: kill these ranks' procs (0,2 or 1:3 or all) and start fresh ones in their place.",
    )
    @line_cell_magic
    def procs(self, line: str, cell: str | None = None) -> Any:
        """Run the cell in N worker processes, or (line form) show and manage them.

        Cell form::

            %%procs 4
            import os
            print("hello from", os.environ["RANK"])

        runs the body in 4 procs, streams their output into the cell, and returns the
        per-rank value of the body's last expression. Procs persist across cells.

        Line form: ``%procs`` shows each proc (rank, pid, state, exit, lines, last heard);
        ``%procs N`` starts N procs; ``%procs --restart``, ``%procs --shutdown`` and
        ``%procs --logdir`` manage them; ``%procs --stacks`` shows where each one is and
        ``%procs --kill 1`` replaces a stuck one.
        """
        args = parse_argstring(self.procs, line)
        try:
            return self._procs(args, cell)
        except UsageError as exc:
            raise IPythonUsageError(str(exc)) from None
        except SyntaxError as exc:
            raise CellSyntaxError(exc) from None

    def _procs(self, args: Any, cell: str | None) -> Any:
        if args.n is not None:
            check_size(args.n, args.force)
        if cell is None:
            return self._line(args)
        if args.shutdown or args.stacks or args.kill:
            raise UsageError("--shutdown, --stacks and --kill are for the line form: %procs --stacks")
        if args.timeout is not None:
            check_timeout(args.timeout, "--timeout")
        size = args.n or (self.group.size if self.group is not None else None)
        if size is None:
            raise UsageError("no procs are running: say how many, e.g. %%procs 4")
        # Every argument is checked before anything is started.
        targets = parse_targets(args.targets, size) if args.targets else None
        group = self._ensure(args, logdir=args.logdir or None)
        if args.timestamps:
            group.timestamps = args.timestamps
        if args.view:
            group.view = args.view
        execution = group.submit(cell, targets)
        if args.bg:
            self.last = execution
            return execution
        results = execution.wait(args.timeout)
        # Like IPython, show nothing when there is nothing to show (e.g. a body ending in print()).
        return results if any(v is not None for v in results.values()) else None

    def _line(self, args: Any) -> Any:
        if args.bg or args.timeout is not None or (args.targets and not args.stacks):
            raise UsageError("--bg, --timeout and --targets go with the cell form (%%procs)")
        if (args.stacks or args.kill) and self.group is None:
            raise UsageError("no procs are running: start some with %%procs N")
        if args.stacks and self.group is not None:
            targets = parse_targets(args.targets, self.group.size) if args.targets else None
            return self.group.stacks(targets)
        if args.kill and self.group is not None:
            self.group.kill(parse_targets(args.kill, self.group.size))
            return self.group.status()
        if args.shutdown:
            if self.group is not None:
                self.group.shutdown()
                self.group = None
            return None
        if args.logdir == "":
            if self.group is None:
                raise UsageError("no procs are running: start some with %%procs N")
            print(self.group.logdir)
            return None
        if args.n is not None or args.restart or args.launcher:
            self._ensure(args, logdir=args.logdir)
        if self.group is None:
            raise UsageError("no procs are running: start some with %%procs N")
        if args.timestamps or args.view:
            if args.timestamps:
                self.group.timestamps = args.timestamps
            if args.view:
                self.group.view = args.view
            return None
        return self.group.status()

    def _ensure(self, args: Any, *, logdir: str | None) -> ProcGroup:
        """The group the arguments ask for: the running one when it fits (same N, launcher and
        log directory), else a new one (on the same launcher unless another is named)."""
        n, group = args.n, self.group
        namespace = self.shell.user_ns if self.shell is not None else {}
        asked = choose(args.launcher, args.per_host, namespace) if args.launcher or group is None else None
        if group is not None:
            same = (
                (n is None or n == group.size)
                and (asked is None or (self.launcher is not None and asked.key == self.launcher.key))
                and (not logdir or logdir == str(group.logdir))
            )
            if same and not args.restart:
                return group
            if same and group.launcher is not None:
                group.restart()  # the same agents, fresh procs
                return group
            n = n or group.size
            asked = asked or self.launcher
            group.shutdown()
            self.group = None
        if n is None:
            raise UsageError("no procs are running: say how many, e.g. %%procs 4")
        self.group = ProcGroup(n, logdir=logdir, force=args.force, launcher=asked.make(n) if asked else None)
        self.launcher = asked
        return self.group

    @magic_arguments()
    @argument("--timeout", type=float, default=10.0, help="Give up waiting after this many seconds (default 10).")
    @argument("-t", "--targets", help="Flush these ranks only: 0,2 or 1:3 or all.")
    @line_magic
    def logflush(self, line: str) -> FlushReport:
        """Barrier: return once every proc's output written before this line is shown.

        Returns a report with, per proc, how far the barrier got and how long it took;
        warns if any proc did not reach the full barrier.
        """
        args = parse_argstring(self.logflush, line)
        if self.group is None:
            raise IPythonUsageError("no procs are running: start some with %%procs N")
        try:
            check_timeout(args.timeout, "--timeout")
            targets = parse_targets(args.targets, self.group.size) if args.targets else None
            report = self.group.flush(args.timeout, targets)
        except UsageError as exc:
            raise IPythonUsageError(str(exc)) from None
        if not report.ok:
            bad = [f"{e.rank} ({e.outcome})" for e in report.shortfalls]
            ranks = ",".join(str(e.rank) for e in report.shortfalls)
            warnings.warn_explicit(
                f"not every proc reached the full barrier: {', '.join(bad)}; "
                f"%procs --stacks -t {ranks} shows where they are, %procs --kill {ranks} replaces them",
                FlushWarning,
                "%logflush",
                0,
            )
        return report

    def close(self) -> None:
        if self.group is not None:
            self.group.shutdown()
            self.group = None

    # --- %reload_ext ------------------------------------------------------------------------
    def park(self) -> None:
        """The extension is being unloaded: keep the group for a load that may follow in this
        cell (``%reload_ext``); shut it down at the cell's end if none does."""
        if self.group is None:
            return
        _parked[id(self.shell)] = (self.group, self.last, self.launcher)
        self.group, self.last, self.launcher = None, None, None
        shell: Any = self.shell

        def shut_down_unless_taken_back() -> None:
            shell.events.unregister("post_execute", shut_down_unless_taken_back)
            group, _, _ = _parked.pop(id(shell), (None, None, None))
            if group is not None:
                group.shutdown()

        shell.events.register("post_execute", shut_down_unless_taken_back)

    def take_back(self) -> None:
        """The extension is loaded again: take back the group a ``park`` kept, if any."""
        self.group, self.last, self.launcher = _parked.pop(id(self.shell), (None, None, None))


_parked: dict[int, tuple[ProcGroup | None, Execution | None, Choice | None]] = {}
"""Groups of shells whose extension was unloaded in the cell running now, by shell."""

__all__ = ["GroupStatus", "ProcsMagics"]
