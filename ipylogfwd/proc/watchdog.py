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

For a group on other hosts it is also the kernel's stand-in: told the kernel's port and
CurveZMQ keys (``standin ENDPOINT PUBLIC SECRET``, on the same private pipe), it binds that
port once the kernel is gone and tells each agent that dials back in to terminate, so agents
on every host stop their procs within seconds instead of at the end of their lease.

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

STANDIN_FOR = 15.0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guarded: set[int] = set()
    standins: dict[str, tuple[str, str]] = {}
    for line in sys.stdin:
        words = line.split()
        if len(words) == 1 and words[0][:1] in "+-" and words[0][1:].isdigit():
            (guarded.add if words[0][0] == "+" else guarded.discard)(int(words[0][1:]))
        elif len(words) == 4 and words[0] == "standin":
            standins[words[1]] = (words[2], words[3])
        elif len(words) == 2 and words[0] == "nostandin":
            standins.pop(words[1], None)
    for pgid in guarded:
        # A proc's pgid is its pid: stop it (it starts nothing more), take its tree, then it.
        with contextlib.suppress(OSError):
            os.kill(pgid, signal.SIGSTOP)
        kill_descendants(pgid)
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    if standins:
        from ..hosts.standin import stand_in

        stand_in(standins, STANDIN_FOR)


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

    def stand_in(self, endpoint: str, public_key: str, secret_key: str) -> None:
        """If the kernel dies, answer agents at ``endpoint`` (with these keys) with terminate."""
        self._say(f"standin {endpoint} {public_key} {secret_key}")

    def no_stand_in(self, endpoint: str) -> None:
        self._say(f"nostandin {endpoint}")

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
