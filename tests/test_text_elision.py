"""Text output past its budget: what is left out is counted, noted and never silently lost.

Unit tests drive a text sink with a fake clock; the last test runs real procs through a
``ProcGroup`` whose text sink has a small budget.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipylogfwd import ProcGroup
from ipylogfwd.pipeline.items import STDERR, STDOUT
from ipylogfwd.sinks.elision import TAIL_LINES, Elided, TextBudget
from ipylogfwd.sinks.text import TextSink

NOTE = re.compile(
    r"^\[(\d+)\] … ([\d,]+) lines? not shown \(text output is limited to ([^;)]+)(?:; full log: (.+))?\)$"
)
LINE = re.compile(r"^\[(\d+)\] (\w+) (\d+)$")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class BudgetSink(TextSink):
    """A text sink with a budget, keeping what it published per stream."""

    def __init__(self, budget: TextBudget, log_paths: dict[int, list[str]] | None = None) -> None:
        super().__init__(budget, log_paths)
        self.published: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def _emit(self, name: str, text: str) -> None:
        self.published[name].append(text)

    def lines(self, name: str) -> list[str]:
        return "".join(self.published[name]).splitlines()


def account(lines: list[str]) -> dict[int, tuple[list[int], int]]:
    """Per rank: the sequence numbers shown, and the lines the notes say were left out."""
    out: dict[int, tuple[list[int], int]] = {}
    for line in lines:
        note = NOTE.match(line)
        if note:
            out.setdefault(int(note[1]), ([], 0))
            shown, hidden = out[int(note[1])]
            out[int(note[1])] = (shown, hidden + int(note[2].replace(",", "")))
            continue
        m = LINE.match(line)
        assert m, f"a line that is neither a proc's line nor a note: {line!r}"
        out.setdefault(int(m[1]), ([], 0))[0].append(int(m[3]))
    return out


def test_elided_counts_every_line_and_keeps_the_last_ones_whatever_the_chunks() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        n = rnd.randrange(0, 40)
        text = "".join(f"line {i}\n" for i in range(n)) + ("partial" if rnd.random() < 0.5 else "")
        record = Elided()
        i = 0
        while i < len(text):
            j = min(len(text), i + rnd.randrange(1, 30))
            record.add(text[i:j])
            i = j
        assert record.lines == n
        assert list(record.tail) == [f"line {i}" for i in range(max(0, n - TAIL_LINES), n)]
        assert record.hidden == max(0, n - TAIL_LINES)
        assert record.partial == text.rpartition("\n")[2]


def test_elided_bounds_what_it_keeps_of_long_lines() -> None:
    record = Elided()
    record.add("x" * 100_000 + "\n")
    record.add("y" * 100_000)
    assert len(record.tail[0]) < 1100 and record.tail[0].endswith(" …")
    assert len(record.partial) < 5000 and record.partial.startswith("…") and record.partial.endswith("y")


def test_text_under_the_budget_is_shown_whole() -> None:
    clock = Clock()
    sink = BudgetSink(TextBudget(rate=10_000, burst=10_000, clock=clock))
    for i in range(50):
        sink.write(i % 2, STDOUT, f"out {i}\n")
        sink.publish()
        clock.t += 0.02
    assert sink.lines("stdout") == [f"[{i % 2}] out {i}" for i in range(50)]
    assert not sink.has_deferred()


def test_text_past_the_budget_is_counted_noted_and_its_last_lines_shown() -> None:
    clock = Clock()
    logs = {r: [f"/logs/rank{r}.stdout.log", f"/logs/rank{r}.stderr.log"] for r in range(3)}
    budget = TextBudget(rate=2_000, burst=4_000, clock=clock)
    sink = BudgetSink(budget, logs)
    total = 3000
    for i in range(total):
        for rank in range(3):
            sink.write(rank, STDOUT, f"out {i}\n")
            sink.write(rank, STDERR, f"err {i}\n")
        if i % 10 == 9:  # a dispatcher tick every 10 lines per proc, 20 ms apart
            sink.publish()
            clock.t += 0.02
    assert sink.has_deferred(), "text was left out: the sink must ask to publish again"
    for rank in range(3):
        for stream in (STDOUT, STDERR):
            assert sink.settle(rank, stream)
    for name in ("stdout", "stderr"):
        lines = sink.lines(name)
        notes = [NOTE.match(line) for line in lines if NOTE.match(line)]
        assert notes, "nothing was left out: the budget did not apply"
        assert all(n[3] == "1.95 KiB/s" for n in notes)
        assert all(n[4] == f"/logs/rank{n[1]}.{name}.log" for n in notes)
        acc = account(lines)
        for rank in range(3):
            shown, hidden = acc[rank]
            assert shown == sorted(shown) and len(set(shown)) == len(shown), "shown out of order or twice"
            assert len(shown) + hidden == total, f"rank {rank} {name}: lines neither shown nor counted"
            assert shown[-1] == total - 1, "the last line before the barrier must be shown"
    # What went out stays within the budget (one burst and 6 s at the rate; notes are paid
    # from it too), but for the notes the barriers asked for.
    published = sum(len(t) for ts in sink.published.values() for t in ts)
    assert published < 4_000 + 2_000 * 6 + 6 * 400


def test_notes_come_about_once_a_second_while_text_is_left_out() -> None:
    clock = Clock()
    sink = BudgetSink(TextBudget(rate=1_000, burst=1_000, clock=clock))
    published_at: list[float] = []
    for i in range(1000):
        sink.write(0, STDOUT, f"out {i}\n" * 20)
        before = len(sink.published["stdout"])
        sink.publish()
        if len(sink.published["stdout"]) > before:
            published_at.append(clock.t)
        clock.t += 0.02
    gaps = [b - a for a, b in itertools.pairwise(published_at)]
    assert len(published_at) >= 15, published_at  # 20 s of flood: progress shows throughout
    assert max(gaps) <= 1.05


def test_a_line_in_progress_when_text_is_left_out_continues_when_text_is_shown_again() -> None:
    clock = Clock()
    sink = BudgetSink(TextBudget(rate=100, burst=100, clock=clock))
    sink.write(0, STDOUT, "x" * 500 + "\n")  # over the budget: left out
    sink.publish()
    sink.write(0, STDOUT, "start of a line, ")
    sink.publish()
    clock.t += 5.0  # the budget recovers
    sink.write(0, STDOUT, "end of it\n")
    sink.publish()
    assert sink.lines("stdout")[-1] == "[0] start of a line, end of it"


@pytest.fixture
def small_budget_group(tmp_path: Path) -> Iterator[tuple[ProcGroup, list[BudgetSink]]]:
    sinks: list[BudgetSink] = []

    def factory(ranks: list[int], pids: dict[int, int | None], logs: dict[int, list[str]]) -> BudgetSink:
        sinks.append(BudgetSink(TextBudget(rate=20_000, burst=40_000), logs))
        return sinks[-1]

    g = ProcGroup(2, sink_factory=factory, logdir=tmp_path)
    try:
        yield g, sinks
    finally:
        g.shutdown()


def test_procs_printing_past_the_budget_lose_nothing_unnoted(
    small_budget_group: tuple[ProcGroup, list[BudgetSink]],
) -> None:
    group, sinks = small_budget_group
    total = 50_000
    code = f"import sys\nfor i in range({total}):\n    print('out', i)\n    print('err', i, file=sys.stderr)\n"
    group.run(code, timeout=120)
    sink = sinks[-1]
    for name in ("stdout", "stderr"):
        lines = sink.lines(name)
        acc = account(lines)
        notes = [m for m in map(NOTE.match, lines) if m]
        assert notes, "50k lines per proc at 20 KB/s: text must have been left out"
        for rank in (0, 1):
            shown, hidden = acc[rank]
            assert shown == sorted(shown), f"rank {rank} {name}: out of order"
            assert len(shown) + hidden == total, f"rank {rank} {name}: {total - len(shown) - hidden} lines unaccounted"
            assert shown[-1] == total - 1, "the cell's last line is shown before the cell returns"
        for note in notes:
            log = Path(note[4])
            assert log.name == f"rank{note[1]}.{name}.log"
            assert log.read_text().count("\n") == total


def test_set_text_limit_takes_a_rate_or_none_and_refuses_anything_else() -> None:
    import ipylogfwd
    from ipylogfwd.sinks.elision import TEXT_BUDGET, TEXT_RATE

    for bad in (0, -5, "fast", True, float("nan")):
        with pytest.raises(ValueError, match="positive number of characters per second or None"):
            ipylogfwd.set_text_limit(bad)  # type: ignore[arg-type]
    try:
        assert ipylogfwd.set_text_limit(None) == TEXT_RATE
        assert TEXT_BUDGET.take(10**9) and TEXT_BUDGET.describe() == "no limit"
        assert ipylogfwd.set_text_limit(64 * 1024) is None
        assert TEXT_BUDGET.describe() == "64 KiB/s" and TEXT_BUDGET.burst == 256 * 1024
    finally:
        ipylogfwd.set_text_limit(TEXT_RATE)
