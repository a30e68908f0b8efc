"""Timestamps: every line carries the time the kernel read it (``Log.at``); sinks that take it
(``TimedSink``) get it from the dispatcher, and text output shows it when asked
(``ProcGroup(timestamps=...)``, ``%%procs --timestamps``)."""

from __future__ import annotations

import io
import re
import time

import pytest

from ipylogfwd import ProcGroup, UsageError
from ipylogfwd.pipeline.items import STDERR, STDOUT
from ipylogfwd.sinks.text import StdioTextSink, TextSink

CLOCK = r"\d\d:\d\d:\d\d\.\d{3}"


def test_text_sink_prefixes_each_line_with_its_time_absolute_or_relative() -> None:
    out = io.StringIO()
    relative = StdioTextSink(out=out, err=io.StringIO(), timestamps="relative")
    start = relative._lines.started
    relative.write_at(3, STDOUT, "first\nsecond\n", start + 1.25)
    relative.write_at(3, STDOUT, "third\n", start + 2.5)
    relative.publish()
    assert out.getvalue() == "[3 +1.250s] first\n[3 +1.250s] second\n[3 +2.500s] third\n"

    out = io.StringIO()
    absolute = StdioTextSink(out=out, err=io.StringIO(), timestamps="absolute")
    at = time.mktime((2026, 11, 29, 14, 2, 7, 0, 0, -1)) + 0.123
    absolute.write_at(0, STDOUT, "hello\n", at)
    absolute.publish()
    assert out.getvalue() == "[0 14:02:07.123] hello\n"

    out = io.StringIO()
    plain = StdioTextSink(out=out, err=io.StringIO())
    plain.write_at(1, STDOUT, "as before\n", at)
    plain.publish()
    assert out.getvalue() == "[1] as before\n"


class Recorder(TextSink):
    """Keeps every text the dispatcher gives it, with its time."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[int, int, str, float]] = []

    def write_at(self, rank: int, stream: int, text: str, at: float) -> None:
        self.got.append((rank, stream, text, at))

    def _emit(self, name: str, text: str) -> None:
        pass


def test_a_timed_sink_gets_the_time_the_kernel_read_each_line() -> None:
    sink = Recorder()
    with ProcGroup(1, sink_factory=lambda ranks, pids, logs: Recorder()) as group:
        before = time.time()
        group.submit(
            "import sys, time\nprint('a', flush=True)\ntime.sleep(0.5)\nprint('b', file=sys.stderr, flush=True)\n",
            sink=sink,
        ).wait(30)
        after = time.time()
    times = {text: (stream, at) for _, stream, text, at in sink.got}
    assert times["a\n"][0] == STDOUT and times["b\n"][0] == STDERR, sink.got
    a, b = times["a\n"][1], times["b\n"][1]
    assert before <= a < b <= after, (before, a, b, after)
    assert b - a >= 0.45, f"b was printed 0.5 s after a, read {b - a:.3f} s after it"


def test_a_group_with_timestamps_shows_them_in_text_output(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="timestamps must be 'absolute', 'relative' or 'off'"):
        ProcGroup(1, timestamps="sometimes")
    with ProcGroup(1, timestamps="relative") as group:
        assert group.timestamps == "relative"
        group.run("import time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('two')\n", timeout=30)
        group.timestamps = "absolute"
        group.run("print('three')", timeout=30)
        group.timestamps = "off"
        assert group.timestamps is None
        group.run("print('four')", timeout=30)
    out = capfd.readouterr().out
    one, two = (float(m) for m in re.findall(r"^\[0 \+(\d+\.\d{3})s\] (?:one|two)$", out, re.M))
    assert 0 <= one < two and two - one >= 0.25, out
    assert re.search(rf"^\[0 {CLOCK}\] three$", out, re.M), out
    assert re.search(r"^\[0\] four$", out, re.M), out
