"""The proc set: the procs of one host, as the rest of the group sees them.

A ``ProcSet`` owns, for a contiguous range of ranks on one host, everything that touches the
procs themselves: spawning them, their pipes and the reader that frames what they write
(text and display bundles) into the group's mailboxes, their control channels (cells,
flushes, values pushed and pulled), interrupting and stopping them. The
group above it (``generation``) owns what spans hosts: the mailboxes, the dispatcher and
sinks, the barrier tracker, the cells. ``localprocs.LocalProcs`` is the proc set of this
machine; procs on another host stand behind the same interface, with a per-host agent doing
the proc set's work there.

A proc set tells its owner what happens through ``ProcEvents``, called on the proc set's
own thread; everything else is asked of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..pipeline.items import BarrierKey
from ..wire.proc_messages import Data, Result
from .stacks import RawStacks


@dataclass(frozen=True)
class ProcInfo:
    """A snapshot of one proc."""

    rank: int
    host: str
    pid: int | None
    state: str  # starting / idle / running / exited
    exitcode: int | None  # None while alive; negative: killed by that signal
    last_heard: float  # time.monotonic() of its last message; 0.0 if never

    @property
    def alive(self) -> bool:
        return self.exitcode is None


@dataclass(frozen=True)
class FlushAsk:
    """What asking procs to serve a flush found: those already gone, and those that were
    not asked (an earlier request is still unread, or the channel is closed). Both get the
    weaker barrier at once."""

    dead: list[int]
    unasked: list[int]


class ProcEvents(Protocol):
    """What a proc set reports to its owner, on the proc set's control thread: implementations
    only record and notify, never block."""

    def on_result(self, rank: int, result: Result) -> None:
        """``rank`` finished a cell (``result["cell"]``), successfully or not."""
        ...

    def on_exit(self, rank: int, exitcode: int) -> None:
        """``rank``'s proc is gone (negative: killed by that signal)."""
        ...

    def on_lost(self, rank: int, why: str) -> None:
        """``rank``'s proc is out of reach for good (its host is lost): ``why`` says so."""
        ...


class ProcSet(Protocol):
    """The procs of one host (see the module docstring). Thread-safe."""

    host: str

    @property
    def ranks(self) -> list[int]:
        """The ranks of this set, in order."""
        ...

    def start(self, timeout: float) -> None:
        """Start every proc and return once all said hello; ``ProcStartError`` if one died or
        did not answer within ``timeout`` seconds (the owner then stops and closes the set)."""
        ...

    def procs(self) -> list[ProcInfo]:
        """A snapshot of every proc of the set."""
        ...

    def execute(self, cell: int, code: str, ranks: list[int]) -> list[int]:
        """Ask ``ranks`` to run ``code`` as ``cell``; the ranks that could not be asked."""
        ...

    def ask_flush(self, version: int, ranks: list[int]) -> FlushAsk:
        """Ask the live ``ranks`` to mark flush barrier ``version`` in their streams."""
        ...

    def flush_ended(self, version: int, unserved: list[int]) -> None:
        """Flush ``version`` is over; ``unserved`` ranks were asked and did not serve it."""
        ...

    def weak_barrier(self, key: BarrierKey, ranks: list[int], timeout: float) -> bool:
        """Queue barrier ``key`` behind everything readable now from ``ranks``' pipes; False if
        that was not done within ``timeout``."""
        ...

    def push(self, values: dict[int, dict[str, bytes]], timeout: float) -> dict[int, Data]:
        """Set names in these ranks' namespaces (``{rank: {name: pickled value}}``); the
        answers that came within ``timeout`` (a rank that did not answer is left out)."""
        ...

    def pull(self, names: list[str], ranks: list[int], timeout: float) -> dict[int, Data]:
        """The pickled values of ``names`` in each of ``ranks``; the answers that came within
        ``timeout`` (a rank that did not answer is left out)."""
        ...

    def interrupt(self, ranks: list[int]) -> None:
        """Send SIGINT to the live ``ranks`` (KeyboardInterrupt in the code they run)."""
        ...

    def stacks(self, ranks: list[int], timeout: float) -> dict[int, RawStacks]:
        """Every thread's stack of each live proc of ``ranks``, dumped without the GIL (so a
        proc stuck in C code answers too), within ``timeout`` seconds."""
        ...

    def kill(self, ranks: list[int], timeout: float) -> None:
        """Kill ``ranks``' procs and every process below them (also those that left their
        process group). What they wrote is still read: each of their streams' ends reaches
        the mailboxes, behind it, before this returns. No ``on_exit`` is reported for them."""
        ...

    def respawn(self, ranks: list[int], timeout: float) -> None:
        """Start a fresh proc (new namespace, pipes, token) at each of the killed ``ranks``,
        with the same environment; return once each said hello (``ProcStartError`` if not
        within ``timeout``)."""
        ...

    def stop(self, timeout: float) -> None:
        """Stop every proc and its children (told to, then killed). The pipes are still read:
        what the procs wrote reaches the mailboxes, then each stream's end."""
        ...

    def close(self) -> None:
        """After ``stop``: release the reader, the control channels and their threads.
        Idempotent."""
        ...

    def log_paths(self, rank: int) -> list[str]:
        """Where ``rank``'s stdout and stderr log files are."""
        ...

    def log_errors(self) -> dict[tuple[int, int], str]:
        """(rank, stream) -> why that log file stopped, for each one that failed."""
        ...

    def problems(self) -> list[str]:
        """What went wrong inside the set that the user should see (a failed thread)."""
        ...

    def fetch_logs(self, dest: Path, timeout: float) -> list[Path]:
        """Copy this set's log files into ``dest`` (created if need be); the files written."""
        ...

    def why_silent(self, rank: int) -> str:
        """Why ``rank`` cannot answer now ("host h3 unreachable 4.1 s"), or "" if it can."""
        ...

    @property
    def logdir(self) -> Path:
        """Where this set's log files are."""
        ...
