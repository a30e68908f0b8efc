from __future__ import annotations

import multiprocessing.util
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernel_driver import KernelDriver

_session_tmp: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Everything the suite's processes leave in the temporary directory (groups' log dirs,
    multiprocessing's socket dirs, which a killed kernel cannot remove, Chromium's and Ray's
    files) goes into one directory of the session's, removed at its end. Its path is short:
    Chromium and Ray put sockets under it, and a socket path has at most 107 characters."""
    global _session_tmp
    # This process's own multiprocessing directory stays where it was: multiprocessing
    # removes it at exit, after this session's directory is gone.
    multiprocessing.util.get_temp_dir()
    _session_tmp = tempfile.mkdtemp(prefix="ilf-")
    os.environ["TMPDIR"] = _session_tmp  # inherited by every kernel, proc, agent and browser
    tempfile.tempdir = None  # this process reads TMPDIR again


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_tmp is not None:
        shutil.rmtree(_session_tmp, ignore_errors=True)


def _loaded_kernel(launcher: str | None = None) -> Iterator[KernelDriver]:
    """A kernel with ipylogfwd loaded; with ``launcher`` (e.g. "local"), every group it starts
    without ``--launcher`` runs on that launcher's agents (IPYLOGFWD_LAUNCHER)."""
    k = KernelDriver(extra_env={"IPYLOGFWD_LAUNCHER": launcher} if launcher else None)
    try:
        cell = k.execute("%load_ext ipylogfwd")
        assert cell.status == "ok", cell.stderr
        yield k
    finally:
        k.shutdown()


def loaded_frontend(**kwargs: Any) -> Iterator[Any]:
    """A fake widget frontend (``fake_frontend.FakeFrontend``) on a kernel with ipylogfwd loaded."""
    from fake_frontend import FakeFrontend

    fe = FakeFrontend(**kwargs)
    try:
        assert fe.execute("%load_ext ipylogfwd").status == "ok"
        yield fe
    finally:
        fe.shutdown()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> None:
    """Return once ``check()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def proc_group(size: int, sink_factory: Callable[..., Any]) -> Iterator[Any]:
    """A ``ProcGroup`` of ``size`` procs whose cells' default sinks come from ``sink_factory``
    (ranks, pids, log paths), shut down afterwards: the body of a group fixture."""
    from ipylogfwd import ProcGroup

    g = ProcGroup(size, sink_factory=sink_factory)
    try:
        yield g
    finally:
        g.shutdown()


def wait_gone(pids: list[int], timeout: float, what: str) -> float:
    """Seconds until none of ``pids`` runs; fails naming ``what`` and the survivors after ``timeout``."""
    start = time.monotonic()
    while any(alive(p) for p in pids):
        left = [p for p in pids if alive(p)]
        assert time.monotonic() - start < timeout, f"{what}: still running after {timeout:g} s: {left}"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def kernel() -> Iterator[KernelDriver]:
    """A fresh ipykernel with ipylogfwd loaded."""
    yield from _loaded_kernel()


@pytest.fixture(scope="module")
def shared_kernel() -> Iterator[KernelDriver]:
    """One ipykernel with ipylogfwd loaded, shared by a module's tests that leave it clean."""
    yield from _loaded_kernel()


LINE = re.compile(r"^\[(\d+)\] (.*)$")


def by_rank(text: str) -> dict[int, list[str]]:
    """Split rank-prefixed text into each rank's lines, in order."""
    out: dict[int, list[str]] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        assert m, f"line without a rank prefix: {line!r}"
        out.setdefault(int(m.group(1)), []).append(m.group(2))
    return out


# --- figures the fault tests measure (peak RSS, flush times, time until orphans are gone) ----
_FIGURES: list[tuple[str, str]] = []


@pytest.fixture(scope="session")
def record_figure() -> Callable[[str, str], None]:
    """Record one measured figure; all are printed after the run and kept in
    ``tests/artifacts/figures.txt`` (they are observations, not pass/fail thresholds)."""

    def record(name: str, value: str) -> None:
        _FIGURES.append((name, value))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("figures measured by the tests")
    width = max(len(n) for n, _ in _FIGURES)
    lines = [f"{n:<{width}}  {v}" for n, v in _FIGURES]
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(__file__).parent / "artifacts"
    out.mkdir(exist_ok=True)
    (out / "figures.txt").write_text("\n".join(lines) + "\n")


# --- no agent outlives the session ------------------------------------------------------------
def _orphan_agents() -> list[str]:
    """Agents of this checkout's Python whose parent is gone."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline.startswith(sys.executable + " -m ipylogfwd.agent") and ppid == 1:  # this checkout's
            found.append(f"{stat.parent.name}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_orphan_agents() -> Iterator[None]:
    """Fails the session if a test left an agent running without its kernel (the agents of
    other sessions on this machine that were orphans before this one started are ignored)."""
    before = set(_orphan_agents())
    yield
    deadline = time.monotonic() + 20  # agents wind down within their stop grace
    left = [a for a in _orphan_agents() if a not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [a for a in _orphan_agents() if a not in before]
    assert not left, f"agents left running without their kernel: {left}"


# A daemon the way servers make one: fork, the parent exits, the child calls setsid. It leaves
# its parent's process group and session, and is re-parented: to init, unless the proc it
# descends from is a child subreaper. It prints its pid, then sleeps.
DAEMON = (
    "import os, subprocess, sys\n"
    "_daemon_code = 'import os, sys, time\\nif os.fork():\\n    os._exit(0)\\nos.setsid()\\n"
    "print(os.getpid(), flush=True)\\ntime.sleep(300)\\n'\n"
    "_p = subprocess.Popen([sys.executable, '-c', _daemon_code], stdout=subprocess.PIPE, text=True)\n"
    "daemon_pid = int(_p.stdout.readline())\n"
    "_p.wait()\n"
)
"""Proc cell code that leaves ``daemon_pid`` in the proc's namespace."""
