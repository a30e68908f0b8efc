"""What a flush and ``%procs`` show, for many procs: compact first (counts, the slowest, the
procs that need a look), every row on demand (``details()``, and expandable in a notebook)."""

from __future__ import annotations

import re
from pathlib import Path

from ipylogfwd import FlushEntry, FlushReport, GroupStatus, ProcStatus
from ipylogfwd.ranks import compact_ranks

ROW = re.compile(r"^\s*rank\s+(\d+)\s+(\S+)", re.M)


def test_compact_ranks_writes_runs_as_ranges() -> None:
    assert compact_ranks([0, 1, 2, 3, 5, 7, 8, 9]) == "0-3,5,7-9"
    assert compact_ranks([9, 3, 3]) == "3,9"
    assert compact_ranks([]) == ""


def test_a_flush_of_sixteen_ranks_is_one_line_and_details_has_every_rank() -> None:
    report = FlushReport(3, [FlushEntry(r, "rendered", 0.010 + 0.0058 * r) for r in range(16)])
    text = repr(report)
    assert text.splitlines() == [
        "FlushReport(barrier 3: ok) 16 ranks rendered, slowest 97 ms (rank 15)",
        "  report.details() lists every rank",
    ]
    details = report.details()
    assert repr(details) == str(details), "details() shows as a table, not as a quoted string"
    assert {int(r): o for r, o in ROW.findall(details)} == dict.fromkeys(range(16), "rendered")
    html = report._repr_html_()
    assert html.startswith('<details class="ipylogfwd-report"><summary>FlushReport(barrier 3: ok) 16 ranks')
    assert html.count("rank  15  rendered") == 1 and "<pre>" in html


def test_a_report_that_fell_short_names_those_ranks_and_opens_in_the_page() -> None:
    entries = [FlushEntry(r, "rendered", 0.02) for r in range(12)]
    entries[3] = FlushEntry(3, "timed out", None, "host h2 unreachable 4.1 s")
    entries[7] = FlushEntry(7, "weak", 0.5)
    report = FlushReport(5, entries, "not rendered everywhere")
    lines = repr(report).splitlines()
    assert lines[0] == (
        "FlushReport(barrier 5: INCOMPLETE; not rendered everywhere) 10 ranks rendered, 1 weak (rank 7), "
        "1 timed out (rank 3), slowest 500 ms (rank 7)"
    )
    assert [(int(r), o) for r, o in ROW.findall("\n".join(lines))] == [(3, "timed"), (7, "weak")]
    assert "host h2 unreachable 4.1 s" in lines[1]
    assert report._repr_html_().startswith('<details class="ipylogfwd-report" open>')


def test_a_small_report_still_lists_every_rank() -> None:
    report = FlushReport(1, [FlushEntry(0, "published", 0.002), FlushEntry(1, "exited", 0.001)])
    text = repr(report)
    assert text.startswith("FlushReport(barrier 1: ok) 1 rank published, 1 exited, slowest 2.0 ms (rank 0)\n")
    assert {int(r): o for r, o in ROW.findall(text)} == {0: "published", 1: "exited"}


def _status(n: int) -> GroupStatus:
    procs = []
    for r in range(n):
        state, code = ("exited", 3) if r == 5 else ("running", None) if r in (9, 17) else ("idle", None)
        procs.append(ProcStatus(r, 1000 + r, state, code, 100, 2, 7.5 if r == 17 else 0.2))
    return GroupStatus(procs, Path("/tmp/logs"), [])


def test_status_of_64_procs_starts_with_counts_by_state_and_lists_only_those_that_need_a_look() -> None:
    text = repr(_status(64))
    lines = text.splitlines()
    assert lines[0] == "64 procs: 61 idle · 2 running · 1 exited 3"
    assert lines[1] == "stdout 6,400 lines · stderr 128 lines · heard from longest ago: rank 17 (7.5s ago)"
    assert "  idle      ranks 0-4,6-8,10-16,18-63" in lines and "  exited 3  rank 5" in lines
    rows = re.findall(r"^\s+(\d+)\s+\d+\s+(\w+)\s", text, re.M)
    assert rows == [("5", "exited")], text
    assert lines[-1] == "status.details() lists every proc"
    assert len(re.findall(r"^\s+\d+\s+\d+\s+\w+\s", _status(64).details(), re.M)) == 64


def test_status_of_a_few_procs_has_the_counts_then_every_row() -> None:
    lines = repr(_status(4)).splitlines()
    assert lines[0] == "4 procs: 4 idle" and lines[1].split()[:3] == ["rank", "pid", "state"]
    assert len(lines) == 1 + 1 + 4 + 1
