"""The code every system's procs run in benchmarks/compare.py, importable by all of them.

The kernel of each system is started with this folder on PYTHONPATH, so ipylogfwd's procs,
ipyparallel's engines, multiprocessing's pool workers and Monarch's procs all import the same
function and write byte-identical lines.

A line is ``Q<rank:2><o|e><seq:7> <payload>``: the rank, the stream it was written to and its
sequence number are in the text, so the frontend can check every line whatever prefix or
chunking a system adds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

LINE_FORMAT = "Q{rank:02d}{stream}{seq:07d} {pad}"


def line(rank: int, stream: str, seq: int, payload: int) -> str:
    """The exact text (without newline) of line ``seq`` that ``rank`` writes to ``stream`` ('o'/'e')."""
    return LINE_FORMAT.format(rank=rank, stream=stream, seq=seq, pad="x" * payload)


def _loop(rank: int, lines: int, payload: int, out: Any, err: Any) -> None:
    """Write ``lines`` stdout lines to ``out`` and as many stderr lines to ``err``, alternating."""
    pad = "x" * payload
    for i in range(lines):
        print(f"Q{rank:02d}o{i:07d} {pad}", file=out)
        print(f"Q{rank:02d}e{i:07d} {pad}", file=err)


def write_lines(rank: int, lines: int, payload: int, start_at: float = 0.0) -> tuple[float, float, float, float]:
    """Write the workload and time it; returns (first print, last print, seconds, /dev/null seconds).

    The same loop first writes into /dev/null (the floor of the procs' slowdown), then, from
    ``start_at`` (a time.time() shared by all procs, so start-up skew is not counted), to the
    real stdout and stderr. The first two values are time.time() (the procs share the kernel's
    clock); the last two are perf_counter() spans, each including the final flush.
    """
    with open(os.devnull, "w") as null_out, open(os.devnull, "w") as null_err:
        t0 = time.perf_counter()
        _loop(rank, lines, payload, null_out, null_err)
        null_out.flush()
        null_err.flush()
        t_null = time.perf_counter() - t0
    while time.time() < start_at:
        time.sleep(0.0005)
    t_first = time.time()
    t0 = time.perf_counter()
    _loop(rank, lines, payload, sys.stdout, sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    t_print = time.perf_counter() - t0
    return (t_first, time.time(), t_print, t_null)


def pool_task(args: tuple[int, int, int, float]) -> tuple[int, tuple[float, float, float, float]]:
    """multiprocessing.Pool entry point: (rank, result of write_lines)."""
    rank = args[0]
    return rank, write_lines(*args)


# Monarch's actor lives here so its procs import it by name, like the other systems.
with contextlib.suppress(Exception):  # Monarch absent or unusable: compare.py reports why itself
    from monarch.actor import Actor, current_rank, endpoint

    class Writer(Actor):  # type: ignore[misc]
        """One Monarch actor per proc that runs write_lines."""

        @endpoint  # type: ignore[misc]
        def write(self, lines: int, payload: int, start_at: float) -> tuple[int, tuple[float, float, float, float]]:
            rank = int(current_rank().rank)
            return rank, write_lines(rank, lines, payload, start_at)

        @endpoint  # type: ignore[misc]
        def ping(self) -> int:
            return os.getpid()
