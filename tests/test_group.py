"""ProcGroup used from plain Python, without IPython: the API the magics are built on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import proc_group
from recording_sink import RecordingSink

from ipylogfwd import ProcDiedError, ProcGroup, ProcsError, ProcTimeoutError, UsageError
from ipylogfwd.sinks.elision import TextBudget


@pytest.fixture
def group() -> Iterator[ProcGroup]:
    yield from proc_group(2, lambda ranks, pids, logs: RecordingSink())


def test_run_returns_results_and_output_reaches_the_cells_sink(group: ProcGroup) -> None:
    sink = RecordingSink()
    execution = group.submit("import os\nprint('hello', os.environ['RANK'])\n6 * 7", sink=sink)
    assert execution.wait(30) == {0: 42, 1: 42}
    assert sorted(sink.text().splitlines()) == ["[0] hello 0", "[1] hello 1"]


def test_unpicklable_results_come_back_as_their_repr(group: ProcGroup) -> None:
    res = group.run("class Local:\n    def __repr__(self): return 'Local()'\nLocal()")
    assert [repr(v) for v in res.values()] == ["Local()", "Local()"]


def test_syntax_error_is_raised_before_anything_runs(group: ProcGroup) -> None:
    with pytest.raises(SyntaxError):
        group.submit("def (:")
    assert group.run("'still fine'") == {0: "still fine", 1: "still fine"}


def test_errors_carry_every_rank(group: ProcGroup) -> None:
    with pytest.raises(ProcsError) as info:
        group.run("import os\nif os.environ['RANK'] == '0': raise KeyError('k')\n'r1'")
    assert set(info.value.errors) == {0}
    assert info.value.results == {0: None, 1: "r1"}
    assert "KeyError: 'k'" in info.value.errors[0]


def test_bad_arguments() -> None:
    for n in (0, -1, 2.5, True):
        with pytest.raises(UsageError):
            ProcGroup(n)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="force"):
        ProcGroup(10_000)


LINES_BODY = """\
import os, sys, time
r = int(os.environ['RANK'])
for i in range(200):
    print(f'line {i} of rank {r}')
sys.stdout.flush()
time.sleep(0.5)  # published on its own first: more than a small text limit's burst
for i in range(200, 2000 + r):
    print(f'line {i} of rank {r}')
print('a partial line', end='', flush=True)
print(' ends here\\n' * 3, end='')
print('\\r10%\\r50%\\r100%')  # a progress bar
for i in range(7):
    print('err', i, file=sys.stderr)
"""


@pytest.mark.parametrize("limit", [None, 2_000], ids=["shown", "left-out"])
def test_the_status_counts_every_line_each_proc_printed(limit: int | None) -> None:
    # The text sink finds the lines as it prefixes them or leaves them out: no other stage
    # counts them, and the status shows each proc's. With a limit, the first lines overdraw
    # it, and the rest come while it recovers.
    budget = TextBudget(rate=limit, burst=limit) if limit is not None else None
    sink = RecordingSink(budget)
    with ProcGroup(2, sink_factory=lambda ranks, pids, logs: RecordingSink()) as g:
        g.submit(LINES_BODY, sink=sink).wait(60)
        g.flush(timeout=20)
        counts = {p.rank: (p.stdout_lines, p.stderr_lines) for p in g.status().procs}
    assert counts == {0: (2000 + 3 + 1, 7), 1: (2001 + 3 + 1, 7)}
    shown = sink.text()
    if limit is None:
        assert sink.lines(1)[:2] == ["line 0 of rank 1", "line 1 of rank 1"]
        assert "[0] a partial line ends here\n" in shown
    else:
        assert "lines not shown" in shown, shown[-2000:]


def test_flush_gives_the_weaker_barrier_to_a_proc_holding_the_gil(group: ProcGroup) -> None:
    sink = RecordingSink()
    # Rank 1 prints, then runs a long C loop that never releases the GIL: its control
    # thread cannot serve the flush. Its printed line is already in the pipe.
    execution = group.submit(
        "import os, sys\nprint('before the loop', flush=True)\n"
        "if os.environ['RANK'] == '1':\n    sum(range(10**11))\n",
        sink=sink,
    )
    time.sleep(0.5)
    t0 = time.monotonic()
    report = group.flush(timeout=3.0)
    took = time.monotonic() - t0
    assert took < 3.5, f"flush took {took:.1f} s with a 3 s timeout"
    assert report.outcomes == {0: "published", 1: "weak"}, report
    assert not report.ok
    assert "[1] before the loop" in sink.text()
    assert re.search(r"rank +1  weak .*did not serve the flush in time", repr(report))
    # The header says it is unresponsive once heartbeats stop.
    deadline = time.monotonic() + 10
    while group.status()[1].state != "unresponsive":
        assert time.monotonic() < deadline, group.status()
        time.sleep(0.1)
    assert group.status()[0].state == "idle"
    assert not execution.done


def test_flush_of_idle_procs_is_fast_and_full(group: ProcGroup) -> None:
    times = []
    for _ in range(20):
        report = group.flush()
        assert report.ok and set(report.outcomes.values()) == {"published"}
        times.append(max(e.seconds or 0 for e in report.entries))
    assert sorted(times)[10] < 0.5  # a generous bound: the benchmark measures the real figure


def test_plain_script_with_main_guard() -> None:
    # The documented way to use ProcGroup from a script (spawn needs the main guard).
    script = textwrap.dedent(
        """
        from ipylogfwd import ProcGroup
        if __name__ == "__main__":
            with ProcGroup(2) as g:
                print(g.run("import os; print('from', os.environ['RANK']); 1"))
                print(g.flush().ok)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sorted(lines[:2]) == ["[0] from 0", "[1] from 1"]
    assert lines[2:] == ["{0: 1, 1: 1}", "True"]


def test_restart_during_a_cell_ends_its_job_at_once_and_the_new_procs_run(group: ProcGroup) -> None:
    job = group.submit("import time\nprint('sleeping', flush=True)\ntime.sleep(60)")
    time.sleep(0.3)
    group.restart()
    t0 = time.monotonic()
    with pytest.raises(ProcDiedError, match="restarted"):
        job.wait(15)
    assert time.monotonic() - t0 < 1.0, "the job should end at once: its procs are gone"
    assert job.done
    assert group.run("import os; os.environ['RANK']") == {0: "0", 1: "1"}


def test_restart_from_another_thread_while_a_job_is_waited_for(group: ProcGroup) -> None:
    job = group.submit("import time\ntime.sleep(60)")
    outcome: list[BaseException | float] = []

    def waiter() -> None:
        t0 = time.monotonic()
        try:
            job.wait(15)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(exc)
        outcome.append(time.monotonic() - t0)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    restart_started = time.monotonic()
    group.restart()
    thread.join(15)
    assert not thread.is_alive(), "job.wait(15) did not return after the restart"
    error, waited = outcome
    assert isinstance(error, ProcDiedError), repr(error)
    assert isinstance(waited, float) and waited < (time.monotonic() - restart_started) + 0.3 + 1.0
    assert group.run("2 + 2") == {0: 4, 1: 4}


@pytest.mark.parametrize(
    "body",
    ["import time\ntime.sleep(60)", "import os\nif os.environ['RANK'] == '1':\n    sum(range(10**11))"],
    ids=["sleeping", "holding the GIL"],
)
def test_wait_never_overruns_its_timeout_by_more_than_a_second(group: ProcGroup, body: str) -> None:
    # Without the escalation to a kill (kill_after=None): SIGINT, then the wait is over.
    # With it (the default), tests/test_distributed.py measures the escalation.
    job = group.submit(body)
    t0 = time.monotonic()
    with pytest.raises(ProcTimeoutError):
        job.wait(1.0, kill_after=None)
    took = time.monotonic() - t0
    assert 1.0 <= took < 2.0, f"wait(1.0) took {took:.2f} s"


def test_a_progress_bar_in_stdio_text_shows_its_latest_state_at_most_once_a_second(group: ProcGroup) -> None:
    # Where output cannot be redrawn in place (plain Python: this process's stdio), a bar's
    # latest state is printed as a labelled line at most once a second, and its last state.
    sink = RecordingSink()
    code = (
        "import sys, time\n"
        "for i in range(26):\n"
        "    print(f'\\r{i * 4}%', end='', file=sys.stderr, flush=True)\n"
        "    time.sleep(0.1)\n"
        "print(file=sys.stderr)\n"
    )
    t0 = time.monotonic()
    group.submit(code, [0], sink=sink).wait(30)
    took = time.monotonic() - t0
    text = sink.text("stderr")
    assert "\r" not in text, repr(text)
    lines = text.splitlines()
    assert all(re.fullmatch(r"\[0\] \d+%", line) for line in lines), lines
    assert lines[-1] == "[0] 100%" and lines[0] != lines[-1], lines
    assert len(lines) <= took + 2, f"{len(lines)} states in {took:.1f} s: {lines}"


STALLED_FLOOD = """\
import json, os, threading, time
from ipylogfwd import ProcGroup
from ipylogfwd.sinks.text import TextSink

N, LINES = 16, 250_000


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Stalled(TextSink):
    \"\"\"A frontend that stops taking output until released; counts each rank's lines.\"\"\"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.lines = [0] * N

    def publish(self) -> None:
        self.release.wait(120)
        super().publish()

    def _emit(self, name: str, text: str) -> None:
        for r in range(N):
            self.lines[r] += text.count(f"[{r}] ")


g = ProcGroup(N)
try:
    g.run("1")
    base = rss()
    sink = Stalled()
    ex = g.submit(
        "import os\\nr = os.environ['RANK']\\n"
        f"for i in range({LINES}):\\n    print(f'{{r}} {{i:09d}} ' + 'x' * 27)\\n",
        sink=sink,
    )
    # Until the procs are blocked on their full pipes: the memory stops growing.
    peak, still_since, start = rss(), time.monotonic(), time.monotonic()
    while time.monotonic() - still_since < 1.5 and time.monotonic() - start < 60:
        time.sleep(0.1)
        now = rss()
        if now > peak + (1 << 20):
            still_since = time.monotonic()
        peak = max(peak, now)
    sink.release.set()
    ex.wait(120)
    g.flush(timeout=60)
    print(json.dumps({"growth": peak - base, "lines": sink.lines}))
finally:
    g.shutdown()
"""


def test_a_stalled_frontend_holds_the_memory_of_many_procs_bounded_and_loses_nothing() -> None:
    # 16 procs flood (10 MB each) into a cell whose frontend takes nothing: each queue fills
    # to its share of the group's budget, then the procs wait on their pipes. Once it takes
    # output again, every line arrives. In a fresh process, for a clean measure of memory.
    out = subprocess.run(
        [sys.executable, "-c", STALLED_FLOOD], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["lines"] == [250_000] * 16, "lines lost or duplicated after the stall"
    # 16 x 4 MiB queued, plus what was read and framed around it; 16 x 8 MiB before.
    assert res["growth"] < 100 << 20, f"the group held {res['growth'] / (1 << 20):.0f} MiB while the frontend stalled"


SCRIPT_WITHOUT_GUARD = """\
import os
from ipylogfwd import ProcGroup

print("top level ran in", os.getpid(), flush=True)
with ProcGroup(2) as group:
    print(group.run("import os; int(os.environ['RANK']) + 40"))
"""


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_a_script_needs_no_main_guard_and_its_top_level_runs_once(how: str, tmp_path: Path) -> None:
    # multiprocessing prepares a child by running the parent's main module again: a script's
    # top level once per proc, and from stdin it cannot. The procs need none of it.
    script = tmp_path / "job.py"
    script.write_text(SCRIPT_WITHOUT_GUARD)
    cmd = [sys.executable, str(script) if how == "script" else "-"]
    stdin = SCRIPT_WITHOUT_GUARD if how == "stdin" else None
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "{0: 40, 1: 41}" in out.stdout
    assert out.stdout.count("top level ran in") == 1, out.stdout
