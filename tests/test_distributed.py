"""torch.distributed in the procs, through a real ipykernel: no set-up, cells as ``__main__``,
where a hung collective is (``%procs --stacks``), and getting going again without a restart
(``%procs --kill``, ``handle.cancel``, ``--timeout`` escalating to a kill).

All run in one kernel (the module's ``shared_kernel``) with real procs and real torch (gloo,
CPU); each test leaves the procs shut down.
"""

from __future__ import annotations

import re
import time

import psutil
import pytest
from conftest import DAEMON, wait_until
from kernel_driver import KernelDriver

INIT = (
    "%%procs 2\n"
    "import os, time, torch, torch.distributed as dist\n"
    "rank = int(os.environ['RANK'])\n"
    "dist.init_process_group('gloo')\n"
)


def _result(cell) -> dict:  # type: ignore[no-untyped-def]
    assert cell.status == "ok", (cell.error, cell.stderr)
    return eval(cell.result_text() or "None")


def _pids(k: KernelDriver) -> dict[int, int]:
    return _result(k.execute("{s.rank: s.pid for s in ipylogfwd.current_group().status().procs}"))


def test_torch_distributed_needs_no_set_up(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("import ipylogfwd, os")
    cell = k.execute(
        INIT + "t = torch.tensor([rank + 1.0])\ndist.all_reduce(t)\n"
        "(t.item(), dist.get_world_size(), os.environ['MASTER_ADDR'], os.environ['MASTER_PORT'], "
        "os.environ['LOCAL_RANK'], os.environ['LOCAL_WORLD_SIZE'], os.environ['OMP_NUM_THREADS'])"
    )
    got = _result(cell)
    port = got[0][3]
    assert got[0][:3] == (3.0, 2, "127.0.0.1") and got[1][:3] == (3.0, 2, "127.0.0.1"), got
    assert got[1][3] == port and [got[r][4:6] for r in (0, 1)] == [("0", "2"), ("1", "2")]
    # The port stays with the procs from cell to cell.
    assert _result(k.execute("%%procs 2\nos.environ['MASTER_PORT']")) == {0: port, 1: port}
    # What the user set in the kernel's environment before the procs started wins.
    k.execute("os.environ['OMP_NUM_THREADS'] = '3'")
    try:
        k.execute("%procs --restart")
        assert _result(k.execute("%%procs 2\nimport os\nos.environ['OMP_NUM_THREADS']")) == {0: "3", 1: "3"}
    finally:
        k.execute("del os.environ['OMP_NUM_THREADS']\n%procs --shutdown")


def test_cells_run_as_main(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    cell = k.execute(
        "%%procs 2\n"
        "import pickle, sys\n"
        "class Point:\n"
        "    def __init__(self, x): self.x = x\n"
        "ran_main_block = False\n"
        "if __name__ == '__main__':\n"
        "    ran_main_block = True\n"
        "(pickle.loads(pickle.dumps(Point(7))).x, ran_main_block, sys.modules['__main__'].__dict__ is globals())"
    )
    assert _result(cell) == {0: (7, True, True), 1: (7, True, True)}
    k.execute("%procs --shutdown")


def test_stacks_show_where_each_rank_is_even_in_a_hung_collective(shared_kernel: KernelDriver, record_figure) -> None:
    k = shared_kernel
    _result(k.execute(INIT + "def wait_for_peers(t):\n    dist.all_reduce(t)\n'ready'"))
    # Rank 0 enters a collective that rank 1 never joins (it holds the GIL in C code).
    bg = k.execute(
        "%%procs 2 --bg\n"
        "print('entering', flush=True)\n"
        "if rank == 0:\n"
        "    wait_for_peers(torch.ones(1))\n"
        "else:\n"
        "    sum(range(10**12))\n"
    )
    assert bg.status == "ok", bg.error
    k.wait_for_output(bg.msg_id, "[1] entering")
    k.wait_for_output(bg.msg_id, "[0] entering")
    t0 = time.monotonic()
    stacks = k.execute("%procs --stacks")
    took = time.monotonic() - t0
    text = stacks.result_text() or ""
    assert stacks.status == "ok", stacks.error
    record_figure("%procs --stacks, 2 procs (one in a collective, one holding the GIL)", f"{took * 1000:.0f} ms")
    cell = int(re.search(r"cell (\d+)", text).group(1))  # type: ignore[union-attr]
    rank0, rank1 = text.split("rank 1: ")
    assert rank0.startswith(f"rank 0: running cell {cell} (most recent call last):"), text
    assert f"<procs cell {cell}>, line 3, in <module>\n    wait_for_peers(torch.ones(1))" in rank0, text
    assert f"<procs cell {cell - 1}>, line 5, in wait_for_peers\n    dist.all_reduce(t)" in rank0, text
    assert "distributed_c10d.py" in rank0, text
    assert f"<procs cell {cell}>, line 5, in <module>\n    sum(range(10**12))" in rank1, text
    # The procs' own frames and threads are left out.
    assert "ipylogfwd" not in text and "control_loop" not in text and "multiprocessing" not in text, text
    # Once the ranks are replaced, they are idle, and shown together.
    k.execute("%procs --kill all")
    assert (k.execute("%procs --stacks").result_text() or "") == "ranks 0-1: idle"
    k.execute("%procs --shutdown")


def test_kill_replaces_a_stuck_rank_and_what_it_wrote_stays(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    _result(k.execute(f"%%procs 2\nimport os\nx = 'kept'\n{DAEMON}'started'"))
    daemon = _result(k.execute("%%procs 2 -t 1\ndaemon_pid"))[1]
    before = _pids(k)
    bg = k.execute(
        "%%procs 2 --bg\nprint('before the loop', flush=True)\nif os.environ['RANK'] == '1':\n    sum(range(10**12))\n"
    )
    k.execute("handle = _")
    k.wait_for_output(bg.msg_id, "[1] before the loop")
    busy = k.execute("%%procs 2\n1")
    assert busy.error is not None and busy.error["ename"] == "ProcsBusyError"
    assert "%procs --kill 1" in busy.error["evalue"] and busy.error["traceback"] == [
        f"\x1b[0;31mProcsBusyError\x1b[0m: {busy.error['evalue']}"
    ], busy.error

    killed = k.execute("%procs --kill 1")
    assert killed.status == "ok", killed.error
    after = _pids(k)
    assert after[0] == before[0] and after[1] != before[1]
    gone = lambda pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"  # noqa: E731
    wait_until(lambda: gone(before[1]), 5, "the killed proc gone")
    wait_until(lambda: gone(daemon), 5, "the killed proc's daemon (it had left its session) gone")
    # The cell it was running fails for it; rank 0 had finished it.
    waited = k.execute("handle.wait(10)")
    assert waited.error is not None and waited.error["ename"] == "ProcDiedError", waited.error
    assert "killed and replaced" in waited.error["evalue"] and "run the cells they need again" in waited.error["evalue"]
    # Its line written before the kill is in the cell; the new rank 1 has a fresh namespace.
    assert "[1] before the loop" in k.executed_stdout(bg.msg_id)
    assert _result(k.execute("%%procs 2\n'x' in globals()")) == {0: True, 1: False}
    report = k.execute("%logflush").result_text() or ""
    assert re.search(r"rank +0  published", report) and re.search(r"rank +1  published", report), report
    status = k.execute("%procs").result_text() or ""
    assert re.search(r"^\s+1\s+\d+\s+idle\s", status, re.M), status
    k.execute("%procs --shutdown")


def test_timeout_escalates_to_a_kill_and_cancel_too(shared_kernel: KernelDriver, record_figure) -> None:
    k = shared_kernel
    k.execute("%%procs 2\nimport os\nx = 1")
    t0 = time.monotonic()
    cell = k.execute("%%procs 2 --timeout 1\nif os.environ['RANK'] == '1':\n    sum(range(10**12))\n'done'")
    took = time.monotonic() - t0
    record_figure("%%procs --timeout 1 with a proc holding the GIL: killed, replaced, cell over", f"{took:.1f} s")
    assert cell.error is not None and cell.error["ename"] == "ProcTimeoutError", cell.error
    assert "SIGINT did not stop rank(s) 1 within 2 s: they were killed and replaced" in cell.error["evalue"]
    assert took < 1 + 2 + 10
    assert _result(k.execute("%%procs 2\n'x' in globals()")) == {0: True, 1: False}
    # cancel(): SIGINT stops rank 0's sleep; rank 1's C loop needs the kill.
    bg = k.execute(
        "%%procs 2 --bg\nimport time, os\nprint('in the cell', flush=True)\n"
        "if os.environ['RANK'] == '1':\n    sum(range(10**12))\nelse:\n    time.sleep(600)"
    )
    k.execute("h = _")
    for rank in (0, 1):  # an interrupt that comes before the cell starts has nothing to stop
        k.wait_for_output(bg.msg_id, f"[{rank}] in the cell")
    assert k.execute("h.cancel(grace=1)").result_text() == "[1]"
    waited = k.execute("h.wait(5)")
    assert waited.error is not None and waited.error["ename"] == "ProcsError", waited.error
    assert "rank 0: KeyboardInterrupt" in "\n".join(waited.error["traceback"])
    assert "rank 1: proc 1 was killed and replaced" in "\n".join(waited.error["traceback"])
    assert _result(k.execute("%%procs 2\n'after'")) == {0: "after", 1: "after"}
    k.execute("%procs --shutdown")


@pytest.mark.parametrize("how", ["os.close(1); os.close(2)", "os.dup2(os.open(os.devnull, os.O_WRONLY), 1)"])
def test_a_cell_that_closes_its_stdout_keeps_the_proc_and_the_barrier(shared_kernel: KernelDriver, how: str) -> None:
    k = shared_kernel
    cell = k.execute(f"%%procs 2\nimport os\nprint('before', flush=True)\n{how}\n'alive'")
    assert _result(cell) == {0: "alive", 1: "alive"}
    assert sorted(cell.stdout.splitlines()) == ["[0] before", "[1] before"]
    report = k.execute("%logflush --timeout 5").result_text() or ""
    assert "INCOMPLETE" not in report and len(re.findall(r"rank +\d+  published", report)) == 2, report
    assert _result(k.execute("%%procs 2\n'next'")) == {0: "next", 1: "next"}
    k.execute("%procs --shutdown")
