"""Procs that fail, through a real ipykernel: crashes, kills, stuck procs, orphaned writers.

For each, what the user checks: every byte written before the end is in the cell and in the
log file, the proc's state says how it ended, and ``%logflush`` completes promptly for it and
for the others. ``docs/reliability.md`` lists these cases.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import by_rank
from fake_frontend import FakeFrontend
from kernel_driver import Cell, KernelDriver

N_LINES = 5000


def _report_line(report: str, rank: int) -> str:
    m = re.search(rf"^ +rank +{rank}  .*$", report, re.M)
    assert m, f"no line for rank {rank} in the report:\n{report}"
    return m.group(0)


def _outcome(report: str, rank: int) -> str:
    return _report_line(report, rank).split()[2]


def _millis(report: str, rank: int) -> float:
    m = re.search(r"(\d+\.\d) ms", _report_line(report, rank))
    assert m, report
    return float(m.group(1))


def _timed_flush(kernel: KernelDriver, args: str = "") -> tuple[str, float, Cell]:
    """Run ``%logflush args``: (its report, seconds the call took, the cell)."""
    t0 = time.monotonic()
    cell = kernel.execute(f"%logflush {args}")
    took = time.monotonic() - t0
    assert cell.status == "ok", cell.error
    return cell.result_text() or "", took, cell


def _wait_file(path: Path, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{what} ({path}) did not appear within {timeout} s"
        time.sleep(0.02)
    return path.read_text()


def _status(kernel: KernelDriver) -> str:
    cell = kernel.execute("%procs")
    assert cell.status == "ok", cell.error
    return cell.result_text() or ""


def _status_row(kernel: KernelDriver, rank: int) -> str:
    m = re.search(rf"^\s+{rank}\s+\d+\s+.*$", _status(kernel), re.M)
    assert m, _status(kernel)
    return m.group(0)


def _wait_state(kernel: KernelDriver, rank: int, state: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        row = _status_row(kernel, rank)
        if row.split()[2] == state:
            return row
        assert time.monotonic() < deadline, f"rank {rank} not {state!r} within {timeout} s: {row}"
        time.sleep(0.1)


# How rank 1 ends, and what its state then says. Rank 0 runs the same cell to the end.
DEATHS = {
    "segfault": ("import ctypes\n    ctypes.string_at(0)\n", "killed by SIGSEGV"),
    "os._exit(3) mid-line": ("os._exit(3)\n", "exited with code 3"),
    "SIGKILL from outside": ("time.sleep(300)\n", "killed by SIGKILL"),
}


@pytest.mark.parametrize("death", list(DEATHS))
def test_a_dying_proc_loses_nothing_and_the_barrier_completes(
    kernel: KernelDriver, tmp_path: Path, death: str, record_figure
) -> None:
    how, exit_text = DEATHS[death]
    pidfile = tmp_path / "pid"
    start = kernel.start(
        "%%procs 2 --bg\n"
        "import os, sys, time\n"
        f"for i in range({N_LINES}):\n"
        "    print(f'out {i}')\n"
        "    print(f'err {i}', file=sys.stderr)\n"
        "sys.stdout.flush()\n"
        "if os.environ['RANK'] == '1':\n"
        "    os.write(1, b'half a li')\n"
        "    os.write(2, b'half an err')\n"
        f"    open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        f"    {how}"
        "'survived'\n"
    )
    kernel.wait_idle(start)
    pid = int(_wait_file(pidfile, 60, "rank 1's pid file"))
    if death == "SIGKILL from outside":
        os.kill(pid, signal.SIGKILL)
    waited = kernel.execute("_.wait(60)")
    assert waited.error is not None and waited.error["ename"] == "ProcsError", waited.error
    assert "rank 1" in waited.error["evalue"] and "rank 0" not in waited.error["evalue"]

    # Everything written before the end is in the cell, in order, and in the log files.
    out, err = by_rank(kernel.executed_stdout(start)), by_rank(kernel.executed_stdout(start, "stderr"))
    expected_out = [f"out {i}" for i in range(N_LINES)]
    expected_err = [f"err {i}" for i in range(N_LINES)]
    assert out[0] == expected_out and err[0] == expected_err
    assert out[1] == [*expected_out, "half a li"]
    assert err[1][:N_LINES] == expected_err and err[1][N_LINES].startswith("half an err"), err[1][N_LINES:]
    logdir = Path(kernel.execute("%procs --logdir").stdout.strip())
    assert (logdir / "rank1.stdout.log").read_bytes() == "".join(f"{s}\n" for s in expected_out).encode() + b"half a li"
    assert (logdir / "rank1.stderr.log").read_bytes().startswith(
        "".join(f"{s}\n" for s in expected_err).encode() + b"half an err"
    )
    if death == "segfault":
        assert "Fatal Python error: Segmentation fault" in "\n".join(err[1])  # faulthandler's report

    # The state says how it ended; the barrier completes at once for it and for the other.
    assert exit_text in _status_row(kernel, 1), _status(kernel)
    assert _status_row(kernel, 0).split()[2] == "idle"
    report, took, _ = _timed_flush(kernel, "--timeout 10")
    assert _outcome(report, 0) == "published" and _outcome(report, 1) == "exited", report
    assert took < 2.0, f"%logflush took {took:.2f} s after a proc died ({death})"
    record_figure(
        f"%logflush after {death}",
        f"{took * 1000:.0f} ms (rank 0 {_millis(report, 0)} ms, rank 1 {_millis(report, 1)} ms)",
    )


def test_a_proc_that_exits_while_its_child_keeps_writing(kernel: KernelDriver, record_figure) -> None:
    # The child inherits the proc's stdout: the pipe stays open after the proc is gone.
    start = kernel.start(
        "%%procs 2 --bg\n"
        "import os, sys, subprocess, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    child = 'import time\\nfor i in range(40):\\n"
        "    print(f\"child {i}\", flush=True)\\n    time.sleep(0.05)\\n'\n"
        "    subprocess.Popen([sys.executable, '-c', child])\n"
        "    print('parent last words', flush=True)\n"
        "    time.sleep(0.3)\n"
        "    os._exit(0)\n"
        "'done'\n"
    )
    kernel.wait_idle(start)
    waited = kernel.execute("_.wait(60)")
    assert waited.error is not None and "rank 1" in waited.error["evalue"], waited.error
    assert "exited with code 0" in _status_row(kernel, 1)
    # The proc is gone, its pipe is not (the child holds it): the barrier must not wait for EOF.
    report, took, _ = _timed_flush(kernel, "--timeout 10")
    assert _outcome(report, 1) == "exited" and _outcome(report, 0) == "published", report
    assert took < 1.0, f"%logflush took {took:.2f} s for a proc whose child still writes"
    record_figure("%logflush, proc exited but its child writes on", f"{took * 1000:.0f} ms")
    assert "[1] parent last words" in kernel.executed_stdout(start)
    # The child's output keeps arriving in the cell, then the pipe ends.
    kernel.wait_for_output(start, "[1] child 39", timeout=30)
    lines = by_rank(kernel.executed_stdout(start))[1]
    assert lines == ["parent last words"] + [f"child {i}" for i in range(40)], lines
    logdir = Path(kernel.execute("%procs --logdir").stdout.strip())
    deadline = time.monotonic() + 10
    while b"child 39" not in (logdir / "rank1.stdout.log").read_bytes():
        assert time.monotonic() < deadline, "the child's last line never reached the log file"
        time.sleep(0.05)


def test_an_exception_in_a_background_thread_is_shown_and_the_proc_goes_on(kernel: KernelDriver) -> None:
    cell = kernel.execute(
        "%%procs 2\n"
        "import threading\n"
        "def boom():\n"
        "    raise RuntimeError('boom in a thread')\n"
        "t = threading.Thread(target=boom, name='worker')\n"
        "t.start(); t.join()\n"
        "print('main thread goes on')\n"
        "'ok'\n"
    )
    assert cell.status == "ok", cell.error
    assert cell.result_text() == "{0: 'ok', 1: 'ok'}"
    err = by_rank(cell.stderr)
    for r in (0, 1):
        assert err[r][0] == "Exception in thread worker:", err[r]
        assert err[r][-1] == "RuntimeError: boom in a thread", err[r]
    assert sorted(cell.stdout.splitlines()) == ["[0] main thread goes on", "[1] main thread goes on"]
    assert _status_row(kernel, 1).split()[2] == "idle"


def test_stuck_procs_get_the_weaker_barrier_and_interrupt_and_restart_recover(
    kernel: KernelDriver, record_figure
) -> None:
    # Rank 1 holds the GIL in a C loop (its control thread cannot run); rank 2 sleeps.
    start = kernel.start(
        "%%procs 3 --bg\n"
        "import os, time\n"
        "print('before', flush=True)\n"
        "if os.environ['RANK'] == '1':\n"
        "    sum(range(10**13))\n"
        "elif os.environ['RANK'] == '2':\n"
        "    time.sleep(1e9)\n"
    )
    for r in range(3):
        kernel.wait_for_output(start, f"[{r}] before")
    kernel.execute("handle = _")
    report, took, cell = _timed_flush(kernel, "--timeout 3")
    assert took < 4.0, f"%logflush --timeout 3 took {took:.2f} s"
    assert [_outcome(report, r) for r in range(3)] == ["published", "weak", "published"], report
    assert "FlushWarning: not every proc reached the full barrier: 1 (weak)" in cell.stderr
    record_figure(
        "%logflush --timeout 3, one proc holding the GIL",
        f"{took * 1000:.0f} ms (rank 1 weak after {_millis(report, 1)} ms, a sleeping proc {_millis(report, 2)} ms)",
    )
    # Heartbeats: the GIL holder shows as unresponsive; the sleeper keeps answering.
    _wait_state(kernel, 1, "unresponsive", 10)
    assert _status_row(kernel, 2).split()[2] == "running"

    # The stuck proc never reads its control channel: many more flushes must neither block
    # the kernel nor each wait for it again.
    t0 = time.monotonic()
    many = kernel.execute(
        "import ipylogfwd\n"
        "rs = [ipylogfwd.logflush(timeout=5) for _ in range(2000)]\n"
        "print(sorted({tuple(sorted(r.outcomes.items())) for r in rs}))\n",
        timeout=120,
    )
    took_many = time.monotonic() - t0
    assert many.status == "ok", many.error
    assert many.stdout.strip() == "[((0, 'published'), (1, 'weak'), (2, 'published'))]", many.stdout
    record_figure("2000 x logflush with one proc stuck", f"{took_many:.1f} s in all")
    assert took_many < 60

    # Interrupting the wait ends it; the sleeper is interrupted, the GIL holder cannot be.
    wait_id = kernel.start("handle.wait()")
    time.sleep(0.5)
    t0 = time.monotonic()
    kernel.interrupt()
    interrupted = kernel.wait_idle(wait_id, timeout=30)
    took_interrupt = time.monotonic() - t0
    assert took_interrupt < 8, f"handle.wait() took {took_interrupt:.1f} s to end after the interrupt"
    record_figure("handle.wait() interrupted, one proc holding the GIL", f"returned after {took_interrupt:.1f} s")
    assert interrupted.error is not None and interrupted.error["ename"] == "KeyboardInterrupt"
    _wait_state(kernel, 2, "idle", 10)
    assert _status_row(kernel, 1).split()[2] == "unresponsive"
    # --restart replaces every proc, the stuck one included.
    t0 = time.monotonic()
    restart = kernel.execute("%procs --restart", timeout=60)
    assert restart.status == "ok", restart.error
    record_figure("%procs --restart with a proc holding the GIL", f"{time.monotonic() - t0:.1f} s")
    fresh = kernel.execute("%%procs 3\n'fresh'")
    assert fresh.result_text() == "{0: 'fresh', 1: 'fresh', 2: 'fresh'}", fresh.error


def test_the_widget_header_shows_a_stuck_proc_as_unresponsive() -> None:
    fe = FakeFrontend()
    try:
        assert fe.execute("%load_ext ipylogfwd").status == "ok"
        start = fe.execute("%%procs 2 --bg\nimport os\nif os.environ['RANK'] == '1':\n    sum(range(10**13))\n")
        assert start.status == "ok", start.error
        # Heartbeats stop while the GIL is held: within a few seconds the header says so.
        fe.wait_until(
            lambda: fe.proc_models()[1].state.get("state") == "unresponsive",
            15,
            "rank 1's header to show 'unresponsive'",
        )
        fe.wait_until(lambda: fe.proc_models()[0].state.get("state") == "idle", 5, "rank 0's header to show 'idle'")
        assert fe.execute("%procs --shutdown").status == "ok"
        fe.wait_until(
            lambda: fe.proc_models()[1].state.get("state") in ("killed", "exited"),
            10,
            "rank 1's header to show how it ended",
        )
    finally:
        fe.shutdown()
