"""Through a real ipykernel: every line arrives once, in per-proc per-stream order, in its cell."""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import by_rank
from kernel_driver import KernelDriver

N_LINES = 100_000

FLOOD = f"""
import os, sys
r = os.environ["RANK"]
for i in range({N_LINES}):
    print(f"out {{r}} {{i}}")
    print(f"err {{r}} {{i}}", file=sys.stderr)
"""


def _check_sequence(lines: list[str], kind: str, rank: int) -> None:
    expected = [f"{kind} {rank} {i}" for i in range(N_LINES)]
    assert len(lines) == N_LINES, f"rank {rank} {kind}: {len(lines)} lines, expected {N_LINES}"
    assert lines == expected, f"rank {rank} {kind}: lines lost, duplicated or out of order"


def _show_all_text(kernel: KernelDriver) -> None:
    # As for nbconvert or any client on jupyter_client: no server between, so no limit.
    assert kernel.execute("import ipylogfwd; ipylogfwd.set_text_limit(None)").status == "ok"


def test_flood_blocking_cell_every_line_once_in_order(kernel: KernelDriver) -> None:
    _show_all_text(kernel)
    cell = kernel.execute("%%procs 4\n" + FLOOD, timeout=300)
    assert cell.status == "ok", cell.error
    out, err = by_rank(cell.stdout), by_rank(cell.stderr)
    assert sorted(out) == sorted(err) == [0, 1, 2, 3]
    for r in range(4):
        _check_sequence(out[r], "out", r)
        _check_sequence(err[r], "err", r)
    # Nothing of it bled into the next cell.
    nxt = kernel.execute("print('next cell')")
    assert nxt.stdout == "next cell\n"
    assert nxt.stderr == ""


def test_flood_background_cell_then_logflush(kernel: KernelDriver, tmp_path: Path) -> None:
    # The procs finish writing (the files say so), then %logflush: when it returns, every
    # line they wrote is published, whatever was still in buffers, pipes or queues.
    _show_all_text(kernel)
    body = FLOOD + f"open(os.path.join({str(tmp_path)!r}, 'done' + r), 'w').close()\n"
    start = kernel.execute("%%procs 4 --bg\n" + body)
    assert start.status == "ok"
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("done*"))) < 4:
        assert time.monotonic() < deadline, "procs did not finish printing within 120 s"
        time.sleep(0.01)
    flush = kernel.execute("%logflush --timeout 120", timeout=180)
    assert flush.status == "ok", flush.error
    report = flush.result_text()
    assert report is not None and report.startswith("FlushReport(barrier 1: ok"), report
    assert len(re.findall(r"rank +\d+  published ", report)) == 4, report
    # When %logflush has returned, the background cell's output is all there, in that cell.
    bg = kernel.by_parent[start.msg_id]
    out = by_rank(
        "".join(m["content"]["text"] for m in bg if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
    )
    err = by_rank(
        "".join(m["content"]["text"] for m in bg if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    )
    for r in range(4):
        _check_sequence(out[r], "out", r)
        _check_sequence(err[r], "err", r)
    assert not flush.stream_messages(), "proc output landed in the %logflush cell"


def test_output_goes_to_the_cell_that_produced_it(kernel: KernelDriver) -> None:
    # A background thread keeps printing after cell A ends; its lines belong to A until the
    # proc starts cell B, and to B after that. Nothing is lost or repeated across the switch.
    a = kernel.execute(
        "%%procs 2\n"
        "import threading, time\n"
        "def tick():\n"
        "    for i in range(400):\n"
        "        print(f'bg {i}', flush=True)\n"
        "        time.sleep(0.005)\n"
        "t = threading.Thread(target=tick); t.start()\n"
        "time.sleep(0.3)\n"
        "print('end of A')\n"
    )
    assert a.status == "ok"
    b = kernel.execute("%%procs 2\nprint('start of B')\nt.join()\nprint('end of B')")
    assert b.status == "ok"
    kernel.execute("%logflush")
    a_lines, b_lines = by_rank(a.stdout), by_rank(kernel.executed_stdout(b.msg_id))
    for r in (0, 1):
        assert "end of A" in a_lines[r]
        assert "start of B" not in a_lines[r] and "end of A" not in b_lines[r]
        assert [x for x in b_lines[r] if not x.startswith("bg ")] == ["start of B", "end of B"]
        bg = [x for x in a_lines[r] + b_lines[r] if x.startswith("bg ")]
        assert bg == [f"bg {i}" for i in range(400)], f"rank {r}: background lines lost or reordered"
        assert any(x.startswith("bg ") for x in a_lines[r]), "background output before B must stay in A"
        assert any(x.startswith("bg ") for x in b_lines[r]), "background output after B started must go to B"
