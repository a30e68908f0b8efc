"""The magics' surface through a real kernel: arguments, targets, handles, status, errors."""

from __future__ import annotations

import re
import time

import pytest
from conftest import by_rank
from kernel_driver import KernelDriver


@pytest.mark.parametrize(
    "line, message",
    [
        ("%%procs -2\n1", "the number of procs must be a positive integer, not -2"),
        ("%%procs 100000\n1", "100000 procs is more than 256; pass force=True (--force)"),
        ("%%procs 2 --bogus\n1", "unrecognized arguments: --bogus"),
        ("%%procs 2 --targets 5\n1", "outside 0..1"),
        ("%%procs 2 --targets x\n1", "bad --targets"),
        ("%%procs 2 --timeout -1\n1", "--timeout must be a positive number of seconds"),
        ("%%procs two\n1", "invalid int value"),
        ("%%procs\n1", "no procs are running"),
        ("%logflush", "no procs are running"),
        ("%procs --logdir", "no procs are running"),
    ],
)
def test_bad_arguments_give_a_clear_error_and_start_nothing(
    shared_kernel: KernelDriver, line: str, message: str
) -> None:
    shared_kernel.execute("%procs --shutdown")
    cell = shared_kernel.execute(line)
    assert cell.status == "error"
    assert cell.error is not None and cell.error["ename"] == "UsageError", cell.error
    assert message in cell.error["evalue"], cell.error["evalue"]
    status = shared_kernel.execute("%procs")
    assert status.error is not None and "no procs are running" in status.error["evalue"]


def test_help_is_in_ipythons_usual_form(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute("%procs?")
    page = "".join(m.get("data", {}).get("text/plain", "") for m in cell.reply["content"].get("payload", []))
    assert "::\n\n  %procs [-t TARGETS] [--bg] [--timeout TIMEOUT]" in page, page
    assert "--targets" in page and "--restart" in page
    cell = shared_kernel.execute("%logflush?")
    page = "".join(m.get("data", {}).get("text/plain", "") for m in cell.reply["content"].get("payload", []))
    assert "%logflush [--timeout TIMEOUT]" in page


def test_results_env_targets_and_reuse(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    cell = k.execute(
        "%%procs 4\nimport os\n"
        "(int(os.environ['RANK']), os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], os.getpid())"
    )
    assert cell.status == "ok", cell.error
    got = eval(cell.result_text() or "")
    assert [got[r][:3] for r in range(4)] == [(r, "4", str(r)) for r in range(4)]
    pids = {got[r][3] for r in range(4)}
    # The same N reuses the procs and their namespaces.
    again = k.execute("%%procs 4\nimport os\nos.getpid()")
    assert set(eval(again.result_text() or "").values()) == pids
    # A body without a final expression returns nothing.
    assert k.execute("%%procs 4\ny = 1").result_text() is None
    assert k.execute("%%procs 4\nprint('nothing to show')").result_text() is None
    # Targets: a subset of ranks.
    sub = k.execute("%%procs 4 --targets 1:3\nprint('here')\nint(os.environ['RANK'])")
    assert sub.result_text() == "{1: 1, 2: 2}"
    assert sorted(by_rank(sub.stdout)) == [1, 2]
    sub = k.execute("%%procs 4 -t 0,3\nint(os.environ['RANK'])")
    assert sub.result_text() == "{0: 0, 3: 3}"
    # The token never reaches the proc's environment.
    env = k.execute(
        "%%procs 4 -t 0\nimport os\nsorted(k for k in os.environ if 'LFWD' in k.upper() or 'TOKEN' in k.upper())"
    )
    assert env.result_text() == "{0: []}"
    # Another N replaces the procs.
    other = k.execute("%%procs 2\nimport os\nos.getpid()")
    assert not set(eval(other.result_text() or "").values()) & pids
    k.execute("%procs --shutdown")


def test_background_handle_and_busy_error(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    cell = k.execute("%%procs 2 --bg\nimport time\ntime.sleep(1.5)\nprint('bg done')\n'value'")
    assert cell.status == "ok" and (cell.result_text() or "").startswith("<Execution cell")
    k.execute("h = _")
    assert k.execute("h.done").result_text() == "False"
    busy = k.execute("%%procs 2\n1")
    assert busy.error is not None and busy.error["ename"] == "ProcsBusyError", busy.error
    assert "still running cell" in busy.error["evalue"]
    waited = k.execute("h.wait(30)")
    assert waited.result_text() == "{0: 'value', 1: 'value'}"
    assert k.execute("h.done, h.results").result_text() == "(True, {0: 'value', 1: 'value'})"
    assert "[0] bg done" in k.executed_stdout(cell.msg_id)
    k.execute("%procs --shutdown")


def test_timeout_interrupts_and_raises(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    t0 = time.monotonic()
    cell = k.execute("%%procs 2 --timeout 1\nimport time, os\nif os.environ['RANK'] == '1':\n    time.sleep(60)")
    assert time.monotonic() - t0 < 15
    assert cell.error is not None and cell.error["ename"] == "ProcTimeoutError"
    assert "rank(s) 1" in cell.error["evalue"]
    assert k.execute("%%procs 2\n'ok'").result_text() == "{0: 'ok', 1: 'ok'}"
    k.execute("%procs --shutdown")


def test_exception_shows_each_traceback_with_rank_then_one_summary(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    cell = k.execute(
        "%%procs 3\nimport os\nr = int(os.environ['RANK'])\nif r:\n    raise ValueError(f'bad rank {r}')\n'fine'"
    )
    assert cell.status == "error"
    assert cell.error is not None and cell.error["ename"] == "ProcsError"
    assert cell.error["evalue"] == "cell failed on ranks 1, 2: ValueError"
    err = by_rank(cell.stderr)
    for r in (1, 2):
        assert err[r][0] == "Traceback (most recent call last):"
        assert err[r][-1] == f"ValueError: bad rank {r}"
        assert any("<procs cell" in line and "line 4" in line for line in err[r])
    assert 0 not in err
    tb = "\n".join(cell.error["traceback"])
    assert "rank 1: ValueError: bad rank 1" in tb and "rank 2: ValueError: bad rank 2" in tb
    k.execute("%procs --shutdown")


def test_status_shows_every_proc(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("%%procs 2\nfor i in range(7): print(i)\nimport sys; print('e', file=sys.stderr)")
    text = k.execute("%procs").result_text() or ""
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)s ago$", text, re.M)
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [("0", "idle", "7", "1"), ("1", "idle", "7", "1")], text
    assert "logs: " in text
    k.execute("%procs --shutdown")


def test_unload_stops_procs_and_removes_magics(kernel: KernelDriver) -> None:
    kernel.execute("%%procs 2\n1")
    kernel.execute("import ipylogfwd")
    pids = kernel.execute("[s.pid for s in ipylogfwd.current_group().status().procs]").result_text()
    cell = kernel.execute("%unload_ext ipylogfwd")
    assert cell.status == "ok", cell.error
    gone = kernel.execute("%procs")
    assert gone.error is not None and "not found" in gone.error["evalue"]
    import psutil

    deadline = time.monotonic() + 5
    for pid in eval(pids or "[]"):
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"proc {pid} still alive after unload"
            time.sleep(0.05)
    assert kernel.execute("%load_ext ipylogfwd").status == "ok"
    assert kernel.execute("%%procs 1\n'back'").result_text() == "{0: 'back'}"


def test_logflush_warns_and_reports_when_a_proc_cannot_serve_it(kernel: KernelDriver) -> None:
    kernel.execute("%%procs 2 --bg\nimport os\nif os.environ['RANK'] == '1':\n    sum(range(10**11))")
    time.sleep(0.5)
    t0 = time.monotonic()
    cell = kernel.execute("%logflush --timeout 2")
    assert time.monotonic() - t0 < 5
    assert cell.status == "ok"
    report = cell.result_text() or ""
    assert "INCOMPLETE" in report and re.search(r"rank +1  weak", report) and re.search(r"rank +0  published", report)
    assert "%logflush:0: FlushWarning: not every proc reached the full barrier: 1 (weak)" in cell.stderr
    assert "%procs --stacks -t 1 shows where they are, %procs --kill 1 replaces them" in cell.stderr
    kernel.execute("%procs --shutdown")


def test_status_names_the_signal_that_killed_a_proc(kernel: KernelDriver) -> None:
    cell = kernel.execute("%%procs 2\nimport os\nos.getpid()")
    pid = eval(cell.result_text() or "")[1]
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "killed by SIGKILL" not in (kernel.execute("%procs").result_text() or ""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Running on a dead proc is a clear error; the others still work; a restart recovers.
    dead = kernel.execute("%%procs 2\n1")
    assert dead.error is not None and dead.error["ename"] == "ProcDiedError"
    assert kernel.execute("%%procs 2 -t 0\n'alive'").result_text() == "{0: 'alive'}"
    assert kernel.execute("%%procs 2 --restart\n'fresh'").result_text() == "{0: 'fresh', 1: 'fresh'}"
