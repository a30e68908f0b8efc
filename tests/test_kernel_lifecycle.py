"""Through a real ipykernel: interrupt, restart, shutdown, and no orphaned processes."""

from __future__ import annotations

import time

import psutil
from conftest import DAEMON
from kernel_driver import KernelDriver


def _proc_pids(kernel: KernelDriver) -> list[int]:
    cell = kernel.execute("print(*[s.pid for s in ipylogfwd.current_group().status().procs])")
    assert cell.status == "ok", cell.error
    return [int(p) for p in cell.stdout.split()]


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_interrupt_stops_the_cell_promptly_and_procs_survive(kernel: KernelDriver) -> None:
    msg_id = kernel.start("%%procs 2\nimport time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    kernel.wait_for_output(msg_id, "[1] sleeping")
    kernel.wait_for_output(msg_id, "[0] sleeping")
    t0 = time.monotonic()
    kernel.interrupt()
    cell = kernel.wait_idle(msg_id, timeout=30)
    assert time.monotonic() - t0 < 10, "the cell did not end promptly after the interrupt"
    assert cell.status == "error" and cell.error is not None
    assert cell.error["ename"] == "KeyboardInterrupt"
    assert "KeyboardInterrupt" in cell.stderr  # each proc's traceback, with its rank
    # The procs kept their state and run the next cell.
    again = kernel.execute("%%procs 2\n'alive'")
    assert again.status == "ok" and again.result_text() == "{0: 'alive', 1: 'alive'}"


def test_restart_and_shutdown_leave_no_orphans(kernel: KernelDriver) -> None:
    kernel.execute("import ipylogfwd")
    cell = kernel.execute(
        "%%procs 3\n"
        f"{DAEMON}"
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "x = 41\n"
        "(child.pid, daemon_pid)\n"
    )
    assert cell.status == "ok", cell.error
    children = [p for pair in eval(cell.result_text() or "").values() for p in pair]
    pids = _proc_pids(kernel)
    assert len(pids) == 3 and len(children) == 6
    assert all(psutil.pid_exists(p) for p in pids + children)

    restart = kernel.execute("%procs --restart")
    assert restart.status == "ok", restart.error
    assert _gone_within(pids + children, 5) == []
    new = _proc_pids(kernel)
    assert len(new) == 3 and not set(new) & set(pids)
    fresh = kernel.execute("%%procs 3\n'x' in globals()")
    assert fresh.result_text() == "{0: False, 1: False, 2: False}", "restarted procs must have new namespaces"

    # Shut down, the daemons that left the procs' process groups go too.
    daemons = kernel.execute(f"%%procs 3\n{DAEMON}daemon_pid").result_text() or ""
    daemon_pids = list(eval(daemons).values())
    assert len(daemon_pids) == 3 and all(psutil.pid_exists(p) for p in daemon_pids)
    kernel.execute("%procs --shutdown")
    assert _gone_within(new + daemon_pids, 5) == []


def test_kernel_shutdown_takes_the_procs_with_it() -> None:
    k = KernelDriver()
    try:
        k.execute("%load_ext ipylogfwd")
        cell = k.execute("%%procs 2\nimport subprocess\nsubprocess.Popen(['sleep', '300']).pid")
        children = [int(v) for v in (cell.result_text() or "").strip("{}").replace(":", ",").split(",")[1::2]]
        k.execute("import ipylogfwd")
        pids = _proc_pids(k)
    finally:
        k.shutdown()
    assert _gone_within(pids + children, 5) == []


def test_kernel_killed_takes_the_procs_with_it() -> None:
    k = KernelDriver()
    try:
        k.execute("%load_ext ipylogfwd")
        k.execute("%%procs 2\n1")
        k.execute("import ipylogfwd")
        pids = _proc_pids(k)
        psutil.Process(k.pid).kill()
        assert _gone_within(pids, 5) == []
    finally:
        k.kc.stop_channels()
        k.km.cleanup_resources()
