"""The kernel-level suites again, with every group on agents: ordering, cell attribution, the
barrier, capture, crashes and stuck procs, floods, interrupts and restarts, through
``LocalLauncher`` agents on loopback (two "hosts" for an even number of procs), so the same
contract holds when output crosses the agents, the links and the lanes.

The tests are the suites' own functions, collected here a second time; the ``kernel`` and
``shared_kernel`` fixtures below start kernels whose groups use ``--launcher local`` by
default (``IPYLOGFWD_LAUNCHER``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import _loaded_kernel
from kernel_driver import KernelDriver
from test_faults_output import *  # noqa: F403
from test_faults_procs import *  # noqa: F403
from test_kernel_capture import *  # noqa: F403
from test_kernel_lifecycle import *  # noqa: F403
from test_kernel_ordering import *  # noqa: F403

# White box: it reads each proc's marker token from the kernel, where a group on hosts has
# none (the tokens stay on the hosts). Markers imitated with guessed tokens are covered by
# the framing tests, which are the agents' own code.
del test_imitated_markers_are_text_and_the_token_is_not_in_the_environment  # noqa: F821


@pytest.fixture
def kernel() -> Iterator[KernelDriver]:
    yield from _loaded_kernel(launcher="local")


@pytest.fixture(scope="module")
def shared_kernel() -> Iterator[KernelDriver]:
    yield from _loaded_kernel(launcher="local")


def test_the_groups_here_run_on_two_hosts(shared_kernel: KernelDriver) -> None:
    """The fixtures above are the ones in use: each proc is on a host of its own."""
    cell = shared_kernel.execute("%%procs 2\nimport os\nos.environ['NODE_RANK'], os.environ['NNODES']")
    assert cell.status == "ok", cell.error
    assert eval(cell.result_text() or "") == {0: ("0", "2"), 1: ("1", "2")}
    status = shared_kernel.execute("%procs").result_text() or ""
    assert "local0" in status and "local1" in status and "connected" in status, status


def test_a_killed_kernel_takes_its_agents_and_their_procs(record_figure: object) -> None:
    import os
    import re
    import signal
    import time

    k = KernelDriver()
    try:
        assert k.execute("%load_ext ipylogfwd").status == "ok"
        cell = k.execute("%%procs 4 --launcher local\nimport os; os.getpid()", timeout=60)
        assert cell.status == "ok", cell.error
        procs = list(eval(cell.result_text() or "").values())
        status = k.execute("%procs").result_text() or ""
        agents = [int(m) for m in re.findall(r"^local\d+\s+\S+\s+(\d+)\s+connected", status, re.M)]
        assert len(agents) == 2, status
        os.kill(k.km.provisioner.pid, signal.SIGKILL)  # type: ignore[union-attr]
        start = time.monotonic()
        while any(_alive(pid) for pid in agents + procs):
            left = [p for p in agents + procs if _alive(p)]
            assert time.monotonic() - start < 15, f"still alive 15 s after the kernel died: {left}"
            time.sleep(0.05)
        took = f"{time.monotonic() - start:.2f} s"
        record_figure("loopback: kernel SIGKILL -> 2 local agents and 4 procs gone", took)  # type: ignore[operator]
    finally:
        k.shutdown()


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie is dead too
