"""A process's descendants, found and taken down, including those that left its process
group or session (``setsid``).

A proc makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a descendant whose
parent exits is re-parented to the proc rather than to init: while the proc lives, every
process it started, directly or not, is below it in the process tree. Killing the proc's
process group misses those that called ``setsid``; walking the tree does not. The tree is
read from ``/proc`` (each process's parent), which needs no privileges.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_PR_SET_CHILD_SUBREAPER = 36
TREE_PASSES = 5


def become_subreaper(libc: object) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False elsewhere."""
    if libc is None or not sys.platform.startswith("linux"):
        return False
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0  # type: ignore[attr-defined]


def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process now (those that vanish while read are left out)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            out[int(name)] = int(fields[1])
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree now, parents before children."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def kill_descendants(pid: int) -> int:
    """Stop every descendant of ``pid`` (so none can start another), then kill them all; a few
    passes catch what was started meanwhile. How many were killed."""
    if not os.path.isdir("/proc"):
        return 0
    stopped: list[int] = []
    for _ in range(TREE_PASSES):
        found = [p for p in descendants(pid) if p not in stopped]
        if not found:
            break
        for p in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # gone meanwhile
                os.kill(p, signal.SIGSTOP)
        stopped += found
    for p in stopped:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return len(stopped)
