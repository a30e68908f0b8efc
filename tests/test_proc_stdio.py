"""How a proc's print() reaches its pipes: prompts live, stderr line-buffered except under a
flood, an explicit flush always in the pipe (``proc/stdio.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import proc_group, wait_until
from recording_sink import RecordingSink

from ipylogfwd import ProcGroup, ProcsError


@pytest.fixture
def group() -> Iterator[ProcGroup]:
    yield from proc_group(1, lambda ranks, pids, logs: RecordingSink())


def _run_to_its_death(group: ProcGroup, code: str, sink: RecordingSink) -> None:
    """Run ``code``, which ends its proc (``os._exit``)."""
    with pytest.raises(ProcsError, match="ProcDiedError"):
        group.submit(code, sink=sink).wait(30)


def test_a_prompt_without_a_newline_shows_while_the_cell_runs(group: ProcGroup) -> None:
    sink = RecordingSink()
    code = "import sys, time\nsys.stdout.write('out prompt> ')\nsys.stderr.write('err prompt> ')\ntime.sleep(4)\n"
    execution = group.submit(code, sink=sink)
    try:
        wait_until(lambda: "out prompt> " in sink.text("stdout"), 2.0, "stdout's prompt shown")
        wait_until(lambda: "err prompt> " in sink.text("stderr"), 2.0, "stderr's prompt shown")
        assert not execution.done
    finally:
        group.interrupt()


def test_stderr_is_block_buffered_during_a_flood_and_line_buffered_once_calm(group: ProcGroup) -> None:
    sink = RecordingSink()
    code = (
        "import sys, time\n"
        "t, n = time.monotonic(), 0\n"
        "while time.monotonic() - t < 0.5:\n"
        "    print(f'flood {n}', file=sys.stderr)\n"
        "    n += 1\n"
        "during = sys.stderr.line_buffering\n"
        "time.sleep(0.4)\n"
        "(during, sys.stderr.line_buffering, n)\n"
    )
    during, after, n = group.submit(code, sink=sink).wait(30)[0]
    assert (during, after) == (False, True)
    group.flush(timeout=10)
    assert sink.text("stderr") == "".join(f"[0] flood {i}\n" for i in range(n))


def test_stderr_written_just_before_a_crash_after_a_flood_is_shown(group: ProcGroup) -> None:
    sink = RecordingSink()
    code = (
        "import os, sys, time\n"
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 0.3:\n"
        "    print('flood', file=sys.stderr)\n"
        "time.sleep(0.4)\n"
        "print('last words', file=sys.stderr)\n"
        "os._exit(3)\n"
    )
    _run_to_its_death(group, code, sink)
    wait_until(lambda: "last words" in sink.text("stderr"), 10.0, "the line written before os._exit shown")
    assert re.fullmatch(r"(\[0\] flood\n)+\[0\] last words\n", sink.text("stderr"))


def test_an_explicit_flush_puts_a_partial_line_in_the_pipe_before_a_crash(group: ProcGroup) -> None:
    sink = RecordingSink()
    code = (
        "import os, sys\n"
        "print('working', end='...', file=sys.stderr, flush=True)\n"
        "sys.stdout.write('half a line'); sys.stdout.flush()\n"
        "os._exit(3)\n"
    )
    _run_to_its_death(group, code, sink)
    wait_until(lambda: "working..." in sink.text("stderr"), 10.0, "stderr's flushed partial line shown")
    wait_until(lambda: "half a line" in sink.text("stdout"), 10.0, "stdout's flushed partial line shown")
