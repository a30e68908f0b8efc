"""The kernel and the notebook around the procs, through real ipykernels: interrupts, kernel
restart and SIGKILL, two kernels at once, a cell run again while its --bg run goes on, and
log files that cannot be written.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psutil
import pytest
from conftest import DAEMON, by_rank
from fake_frontend import FakeFrontend
from kernel_driver import KernelDriver


def _pids_and_children(k: KernelDriver, n: int) -> tuple[list[int], list[int]]:
    """Start ``n`` procs that each start a child (``sleep``) and a daemon (it left their
    process group and session with ``setsid``); their pids, and the children's and daemons'."""
    cell = k.execute(
        f"%%procs {n}\n"
        f"{DAEMON}"
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "(os.getpid(), child.pid, daemon_pid)\n"
    )
    assert cell.status == "ok", cell.error
    triples = list(eval(cell.result_text() or "").values())
    procs, children = [p for p, _, _ in triples], [c for _, c, _ in triples] + [d for _, _, d in triples]
    assert all(os.getsid(d) == d for _, _, d in triples), "the daemons did not start sessions of their own"
    assert all(psutil.pid_exists(p) for p in procs + children)
    return procs, children


def _seconds_until_gone(pids: list[int], limit: float) -> float:
    """Seconds until none of ``pids`` runs (zombies count as gone); fails after ``limit``."""
    t0 = time.monotonic()
    while True:
        alive = []
        for p in pids:
            try:
                if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        took = time.monotonic() - t0
        if not alive:
            return took
        assert took < limit, f"still running {limit} s later: {alive}"
        time.sleep(0.05)


def test_interrupt_during_logflush_returns_promptly_and_procs_keep_their_state(record_figure) -> None:
    # Views that say hello but never acknowledge: %logflush would wait its whole timeout.
    fe = FakeFrontend(acks=False)
    try:
        assert fe.execute("%load_ext ipylogfwd").status == "ok"
        assert fe.execute("%%procs 2\nx = 41\nprint('shown')").status == "ok"
        msg_id = fe.start("%logflush --timeout 120")
        time.sleep(1.0)
        t0 = time.monotonic()
        fe.interrupt()
        cell = fe.wait_idle(msg_id, timeout=30)
        took = time.monotonic() - t0
        assert cell.error is not None and cell.error["ename"] == "KeyboardInterrupt", cell.error
        assert took < 3, f"%logflush took {took:.1f} s to return after the interrupt"
        record_figure("%logflush interrupted (views never ack)", f"returned {took * 1000:.0f} ms after the interrupt")
        # The procs were not touched: same namespaces, and a new flush works.
        assert fe.execute("%%procs 2\nx + 1").result_text() == "{0: 42, 1: 42}"
        report = fe.execute("%logflush --timeout 2").result_text() or ""
        assert "not rendered: its view did not acknowledge before the flush's timeout" in report, report
    finally:
        fe.shutdown()


def test_kernel_restart_takes_procs_and_children_and_procs_work_after(kernel: KernelDriver, record_figure) -> None:
    procs, children = _pids_and_children(kernel, 3)
    t0 = time.monotonic()
    kernel.km.restart_kernel(now=False)  # returns once the old kernel is gone, the new one started
    restarted = time.monotonic() - t0
    took = restarted + _seconds_until_gone(procs + children, max(0.0, 5 - restarted))
    assert took < 5
    record_figure("kernel restart: procs and their children gone", f"within {took:.2f} s of the request")
    kernel.kc.wait_for_ready(timeout=60)
    assert kernel.execute("%load_ext ipylogfwd").status == "ok"
    after = kernel.execute("%%procs 2\nimport os\nos.getpid()")
    assert after.status == "ok", after.error
    assert not set(eval(after.result_text() or "").values()) & set(procs)


def test_kernel_sigkill_takes_procs_and_children(record_figure) -> None:
    k = KernelDriver()
    try:
        assert k.execute("%load_ext ipylogfwd").status == "ok"
        procs, children = _pids_and_children(k, 3)
        psutil.Process(k.pid).kill()
        took = _seconds_until_gone(procs + children, 5)
        record_figure("kernel SIGKILL: procs and their children gone", f"{took:.2f} s")
    finally:
        k.kc.stop_channels()
        k.km.cleanup_resources()


def test_two_kernels_do_not_see_each_others_procs_or_logs() -> None:
    a, b = KernelDriver(), KernelDriver()
    try:
        for k in (a, b):
            assert k.execute("%load_ext ipylogfwd").status == "ok"
        # Both run at once, each printing its own name.
        ids = {
            name: k.start(f"%%procs 2\nimport os\nfor i in range(2000):\n    print('{name}', i)\nos.getpid()")
            for name, k in (("A", a), ("B", b))
        }
        cells = {"A": a.wait_idle(ids["A"]), "B": b.wait_idle(ids["B"])}
        pids = {}
        for name, cell in cells.items():
            assert cell.status == "ok", cell.error
            other = "B" if name == "A" else "A"
            for rank, lines in by_rank(cell.stdout).items():
                assert lines == [f"{name} {i}" for i in range(2000)], (name, rank, lines[:3])
            assert other not in cell.stdout
            pids[name] = set(eval(cell.result_text() or "").values())
        assert not pids["A"] & pids["B"]
        dirs = {name: Path(k.execute("%procs --logdir").stdout.strip()) for name, k in (("A", a), ("B", b))}
        assert dirs["A"] != dirs["B"]
        for name, d in dirs.items():
            assert (d / "rank0.stdout.log").read_text().startswith(f"{name} 0\n")
        # Each kernel's status lists its own procs only; stopping one leaves the other's.
        assert set(map(int, re.findall(r"^\s+\d+\s+(\d+)", a.execute("%procs").result_text() or "", re.M))) == pids["A"]
        a.execute("%procs --shutdown")
        assert _seconds_until_gone(sorted(pids["A"]), 5) >= 0
        assert all(psutil.pid_exists(p) for p in pids["B"])
        assert b.execute("%%procs 2\n'B still here'").result_text() == "{0: 'B still here', 1: 'B still here'}"
    finally:
        a.shutdown()
        b.shutdown()


def test_running_a_cell_again_while_its_bg_run_goes_on(kernel: KernelDriver) -> None:
    body = "import time\nfor i in range(30):\n    print('step', i, flush=True)\n    time.sleep(0.05)\n"
    first = kernel.execute(f"%%procs 2 --bg\n{body}")
    assert first.status == "ok"
    kernel.execute("h = _")
    again = kernel.execute(f"%%procs 2 --bg\n{body}")
    assert again.error is not None and again.error["ename"] == "ProcsBusyError", again.error
    assert "still running cell" in again.error["evalue"] and "h.wait()" not in again.error["evalue"]
    assert kernel.execute(f"%%procs 2\n{body}").error["ename"] == "ProcsBusyError"  # type: ignore[index]
    kernel.execute("h.wait(30)")
    kernel.execute("%logflush")
    # The first run's output is whole, in order, in its own cell; the refused cells got none.
    out = by_rank(kernel.executed_stdout(first.msg_id))
    assert out == {r: [f"step {i}" for i in range(30)] for r in (0, 1)}
    assert again.stdout == ""
    # Once it is done, the same cell runs.
    assert kernel.execute(f"%%procs 2\n{body}").status == "ok"


@pytest.mark.parametrize("problem", ["unwritable directory", "disk full"])
def test_log_files_that_cannot_be_written_warn_and_forwarding_goes_on(
    kernel: KernelDriver, tmp_path: Path, problem: str
) -> None:
    if problem == "unwritable directory":
        (tmp_path / "a-file").write_text("")
        logdir = tmp_path / "a-file" / "logs"  # cannot be created, even by root
        expected = "Not a directory"
    else:
        logdir = tmp_path / "logs"
        logdir.mkdir()
        for r in (0, 1):
            for s in ("stdout", "stderr"):
                # Every write to /dev/full fails with ENOSPC, as on a full disk.
                os.symlink("/dev/full", logdir / f"rank{r}.{s}.log")
        expected = "No space left on device"
    cell = kernel.execute(f"%%procs 2 --logdir {logdir}\nfor i in range(20000):\n    print('line', i)\n")
    assert cell.status == "ok", cell.error
    assert re.search(
        rf"LogFileWarning: .*rank0\.stdout\.log.*{expected}.*the output still reaches the notebook", cell.stderr
    ), cell.stderr
    out = by_rank(cell.stdout)
    assert out == {r: [f"line {i}" for i in range(20000)] for r in (0, 1)}
    # The status says so too, and the next cells go on (warned once per file, not again).
    status = kernel.execute("%procs").result_text() or ""
    assert "problem: log file:" in status and expected in status, status
    nxt = kernel.execute("%%procs 2\nprint('next')")
    assert nxt.status == "ok" and "LogFileWarning" not in nxt.stderr
    assert sorted(nxt.stdout.splitlines()) == ["[0] next", "[1] next"]
