"""How a proc's print() reaches its pipes: lines whole, prompts live, stderr line-buffered
except under a flood (``proc/stdio.py``)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator

import pytest

from ipylogfwd import ProcGroup, ProcsError
from ipylogfwd.pipeline.reader import make_pipe
from ipylogfwd.proc.stdio import MAX_HELD, _LineFile
from ipylogfwd.sinks.text import TextSink


class RecordingSink(TextSink):
    """Keeps what a cell published, per stream."""

    def __init__(self) -> None:
        super().__init__()
        self.published: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def _emit(self, name: str, text: str) -> None:
        self.published[name].append(text)

    def text(self, name: str) -> str:
        return "".join(self.published[name])


@pytest.fixture
def group() -> Iterator[ProcGroup]:
    g = ProcGroup(1, sink_factory=lambda ranks, pids, logs: RecordingSink())
    try:
        yield g
    finally:
        g.shutdown()


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def test_a_prompt_without_a_newline_shows_while_the_cell_runs(group: ProcGroup) -> None:
    sink = RecordingSink()
    code = "import sys, time\nsys.stdout.write('out prompt> ')\nsys.stderr.write('err prompt> ')\ntime.sleep(4)\n"
    execution = group.submit(code, sink=sink)
    try:
        _until(lambda: "out prompt> " in sink.text("stdout"), 2.0, "stdout's prompt shown")
        _until(lambda: "err prompt> " in sink.text("stderr"), 2.0, "stderr's prompt shown")
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
    with pytest.raises(ProcsError, match="ProcDiedError"):
        group.submit(code, sink=sink).wait(30)
    _until(lambda: "last words" in sink.text("stderr"), 10.0, "the line written before os._exit shown")
    assert re.fullmatch(r"(\[0\] flood\n)+\[0\] last words\n", sink.text("stderr"))


def test_the_raw_file_writes_whole_lines_and_holds_the_rest_until_released() -> None:
    r, w = make_pipe()  # 1 MiB: the long line below fits without a reader
    raw = _LineFile(w)
    try:
        assert raw.write(b"one\ntwo\nthr") == 11
        assert os.read(r, 100) == b"one\ntwo\n"
        assert raw.write(b"ee") == 2
        with pytest.raises(BlockingIOError):
            os.read(r, 100)  # nothing whole yet
        raw.write(b"\nfour")
        assert os.read(r, 100) == b"three\n"
        raw.release()
        assert os.read(r, 100) == b"four"
        long = b"x" * (MAX_HELD + 10)
        raw.write(long)  # a line longer than the limit goes out without waiting for its end
        got = b""
        while len(got) < len(long):
            got += os.read(r, 1 << 20)
        assert got == long
    finally:
        raw.close()
        os.close(w)
        os.close(r)
