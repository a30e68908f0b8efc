"""The kernel-level suites again, with every group on agents: ordering, cell attribution, the
barrier, capture, crashes and stuck procs, floods, interrupts and restarts, rich output and
push/pull, through
``LocalLauncher`` agents on loopback (two "hosts" for an even number of procs), so the same
contract holds when output crosses the agents, the links and the lanes.

The tests are the suites' own functions, collected here a second time; the ``kernel`` and
``shared_kernel`` fixtures below start kernels whose groups use ``--launcher local`` by
default (``IPYLOGFWD_LAUNCHER``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from conftest import _loaded_kernel, loaded_frontend, wait_gone
from kernel_driver import KernelDriver
from test_faults_output import *  # noqa: F403
from test_faults_procs import *  # noqa: F403
from test_kernel_capture import *  # noqa: F403
from test_kernel_lifecycle import *  # noqa: F403
from test_kernel_ordering import *  # noqa: F403
from test_rich_kernel import (  # noqa: F401 - rich output and moving values, through the agents
    test_a_bundle_over_the_cap_is_a_note_in_its_place,
    test_figures_a_cell_leaves_open_and_a_figure_as_last_expression,
    test_logflush_after_display_returns_once_the_bundle_is_published,
    test_many_bundles_keep_their_order_among_the_lines,
    test_push_pull_in_a_kernel_and_errors_that_name_object_and_rank,
    test_text_mode_shows_bundles_as_display_data_in_place_with_their_rank,
)

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
    import signal

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
        took = wait_gone(agents + procs, 15, "the agents and procs of a killed kernel")
        record_figure("loopback: kernel SIGKILL -> 2 local agents and 4 procs gone", f"{took:.2f} s")  # type: ignore[operator]
    finally:
        k.shutdown()


def test_widgets_across_hosts_get_every_line_in_order_and_name_their_host() -> None:
    frontends = loaded_frontend(extra_env={"IPYLOGFWD_LAUNCHER": "local"})
    fe = next(frontends)
    try:
        cell = fe.execute(
            "%%procs 4\nimport os, sys\nr = os.environ['RANK']\n"
            "for i in range(500):\n    print(f'out {r} {i}')\n    print(f'err {r} {i}', file=sys.stderr)\n",
            timeout=60,
        )
        assert cell.status == "ok", cell.error
        report = fe.execute("%logflush").result_text() or ""
        assert report.startswith("FlushReport(barrier 1: ok)"), report
        assert len(re.findall(r"rank +\d+  rendered ", report)) == 4, report
        models = fe.proc_models()
        for r, m in models.items():
            assert m.stream_lines(1) == [f"out {r} {i}" for i in range(500)]
            assert m.stream_lines(2) == [f"err {r} {i}" for i in range(500)]
        fe.wait_until(
            lambda: [models[r].state.get("host") for r in range(4)] == ["local0", "local0", "local1", "local1"],
            10,
            "each widget's header naming its host",
        )
    finally:
        frontends.close()


def test_fetch_logs_brings_every_byte_from_each_host(tmp_path: object) -> None:
    from pathlib import Path

    from ipylogfwd import ProcGroup
    from ipylogfwd.launchers import CommandLauncher
    from ipylogfwd.sinks.text import TextSink

    class Quiet(TextSink):
        def _emit(self, name: str, text: str) -> None:
            pass

    dest = Path(str(tmp_path))
    # Two "hosts" on this machine that keep their logs apart, as real ones do.
    launcher = CommandLauncher(["ha", "hb"], "{agent}", per_host=1, listen="127.0.0.1")
    with ProcGroup(2, launcher=launcher, sink_factory=lambda r, p, l: Quiet()) as g:  # noqa: E741
        g.run(
            "import os, sys\nr = os.environ['RANK']\n"
            "sys.stdout.write(''.join(f'{r}:{i:07d}\\n' for i in range(300_000)))\n"
            "os.write(2, bytes(range(256)) * 10)\n",
            timeout=60,
        )
        assert g.flush(timeout=10).ok
        files = g.fetch_logs(dest)
        assert sorted(str(p.relative_to(dest)) for p in files) == [
            "ha/rank0.stderr.log", "ha/rank0.stdout.log", "hb/rank1.stderr.log", "hb/rank1.stdout.log"
        ]
        for host, r in (("ha", 0), ("hb", 1)):
            out = (dest / host / f"rank{r}.stdout.log").read_text()
            assert out == "".join(f"{r}:{i:07d}\n" for i in range(300_000)), f"{host}: {len(out)} chars"
            assert (dest / host / f"rank{r}.stderr.log").read_bytes() == bytes(range(256)) * 10
        # Only the procs' log files can be read from a host.
        remote = g._generation._sets[0]  # type: ignore[union-attr]  # white box
        with pytest.raises(OSError, match="not a log file name"):
            remote._ask("read_log", "reading", 5.0, name="../../etc/passwd", offset=0)  # type: ignore[attr-defined]


def test_a_flooding_rank_is_held_at_its_pipe_not_in_the_kernel_and_its_host_mate_flows(record_figure: object) -> None:
    import psutil

    from ipylogfwd import ProcGroup
    from ipylogfwd.launchers import LocalLauncher
    from ipylogfwd.sinks.text import TextSink

    class SlowSink(TextSink):
        """A kernel that takes output slowly (a busy notebook): about 20 publishes a second."""

        def __init__(self) -> None:
            super().__init__()
            self.ticks: list[tuple[float, float]] = []  # (written by rank 1, published here)

        def _emit(self, name: str, text: str) -> None:
            now = time.time()
            for line in text.splitlines():
                if line.startswith("[1] tick "):
                    self.ticks.append((float(line.split()[-1]), now))
            time.sleep(0.05)

    sink = SlowSink()
    me = psutil.Process()
    with ProcGroup(2, launcher=LocalLauncher(hosts=1), sink_factory=lambda r, p, l: TextSink()) as g:  # noqa: E741
        before = me.memory_info().rss
        peak = before
        job = g.submit(
            "import os, sys, time\n"
            "end = time.time() + 4\n"
            "if os.environ['RANK'] == '0':\n"
            "    line = 'x' * 1000 + '\\n'\n"
            "    while time.time() < end:\n"
            "        sys.stdout.write(line * 100)\n"
            "else:\n"
            "    while time.time() < end:\n"
            "        print('tick', time.time(), flush=True)\n"
            "        time.sleep(0.1)\n",
            sink=sink,
        )
        while not job.done:
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.02)
        job.wait(60)
    growth = (peak - before) / (1 << 20)
    delays = sorted(got - sent for sent, got in sink.ticks)
    record_figure(  # type: ignore[operator]
        "loopback: rank 0 flooding a slow kernel, rank 1 ticking on the same host",
        f"kernel RSS +{growth:.1f} MiB; rank 1's tick delay median {delays[len(delays) // 2] * 1000:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms",
    )
    assert len(delays) >= 30, f"rank 1 ticked {len(delays)} times in 4 s"
    assert delays[-1] < 1.5, f"rank 1 waited behind rank 0's flood: {delays[-5:]}"
    assert growth < 64 + 16, f"the kernel held {growth:.0f} MiB of a flood it could not take"


def test_stacks_kill_and_timeout_escalation_work_on_hosts(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("%procs --shutdown")
    job = k.execute("%%procs 4 --bg\nimport os, time\nif os.environ['RANK'] == '3':\n    sum(range(10**11))\n")
    assert job.status == "ok", job.error
    time.sleep(0.5)
    stacks = k.execute("%procs --stacks").result_text() or ""
    assert stacks.startswith("ranks 0-2: idle"), stacks
    assert re.search(r"rank 3: running cell \d+.*\n\s+<procs cell \d+>, line 3.*\n\s+sum\(range", stacks), stacks
    killed = k.execute("%procs --kill 3")
    assert killed.status == "ok", killed.error
    status = k.execute("%procs").result_text() or ""
    assert re.search(r"^\s+3\s+\d+\s+idle\b.*local1", status, re.M), status
    cell = k.execute("%%procs 4 --timeout 1\nimport os, time\nif os.environ['RANK'] == '2':\n    sum(range(10**11))\n")
    assert cell.error is not None and cell.error["ename"] == "ProcTimeoutError", cell.error
    assert "2" in cell.error["evalue"] and "replaced" in cell.error["evalue"], cell.error["evalue"]
    assert k.execute("%%procs 4\nimport os; os.environ['RANK']").result_text() == "{0: '0', 1: '1', 2: '2', 3: '3'}"
