"""The watchdog: takes every proc and its children down when the kernel dies.

A proc also dies with the kernel on its own (its control channel closes; a parent-death
signal), but children a proc started would then be orphaned. The watchdog is a tiny
separate process in its own session, so signals sent to the kernel's process group do not
reach it. The kernel tells it on its stdin which process groups to guard (``+pgid`` /
``-pgid``, one per line). When its stdin ends, because the kernel exited or was killed, it
kills every guarded proc's process tree (its descendants first, found in ``/proc``, so those
that called ``setsid`` go too; then its process group) and exits. While it runs, the procs
have no parent-death signal: a proc killed at once with the kernel would hand its
descendants to init before anyone could find them.

Run as ``python -m ipylogfwd.proc.watchdog``; ``Watchdog`` is the kernel's handle on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading

from .tree import kill_descendants


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guarded: set[int] = set()
    for line in sys.stdin:
        line = line.strip()
        if line[:1] in "+-" and line[1:].isdigit():
            (guarded.add if line[0] == "+" else guarded.discard)(int(line[1:]))
    for pgid in guarded:
        # A proc's pgid is its pid: stop it (it starts nothing more), take its tree, then it.
        with contextlib.suppress(OSError):
            os.kill(pgid, signal.SIGSTOP)
        kill_descendants(pgid)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)


class Watchdog:
    """The kernel's side: start the watchdog, tell it which process groups to guard."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guard/release may come from different threads
        self._process: subprocess.Popen[str] | None = None
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ipylogfwd.proc.watchdog"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
        except OSError:
            self._process = None  # procs still die with the kernel; only their children may not

    def _say(self, line: str) -> None:
        with self._lock:
            if self._process is None or self._process.stdin is None:
                return
            try:
                self._process.stdin.write(line + "\n")
                self._process.stdin.flush()
            except (OSError, ValueError):
                self._process = None

    @property
    def running(self) -> bool:
        """Whether the watchdog process started (and has not been closed)."""
        return self._process is not None

    def guard(self, pgid: int) -> None:
        self._say(f"+{pgid}")

    def release(self, pgid: int) -> None:
        self._say(f"-{pgid}")

    def close(self) -> None:
        """Stop the watchdog without killing anything it no longer guards."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None and process.stdin is not None:
            try:
                process.stdin.close()
                process.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()


if __name__ == "__main__":
    main()
