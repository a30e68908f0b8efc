"""Bad and hostile output, through a real ipykernel: huge lines, floods, binary, \\r storms,
escape sequences, and output that imitates ipylogfwd's own markers.

What the user checks: the kernel's memory stays bounded (its peak RSS is sampled while the
procs write), the widgets keep up and ``%logflush`` still reports "rendered", the log file
holds every byte, and nothing a proc prints is ever taken for a marker.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import loaded_frontend
from fake_frontend import FakeFrontend
from kernel_driver import KernelDriver

MiB = 1 << 20


class PeakRSS:
    """Samples a process's resident memory every 20 ms until stopped; ``growth`` is the peak
    above the first sample."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.base = self._proc.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        """Stop sampling; the growth in MiB."""
        self._stop.set()
        self._thread.join(5)
        return (self.peak - self.base) / MiB


@pytest.fixture
def frontend() -> Iterator[FakeFrontend]:
    """A kernel with ipylogfwd loaded, watched by a widget frontend that renders and acks."""
    yield from loaded_frontend()


def _logdir(k: KernelDriver) -> Path:
    return Path(k.execute("%procs --logdir").stdout.strip())


def _rendered(k: KernelDriver, timeout: float = 30) -> str:
    cell = k.execute(f"%logflush --timeout {timeout}", timeout=timeout + 30)
    report = cell.result_text() or ""
    assert cell.status == "ok" and re.search(r": ok\)", report), report
    assert "rendered" in report and "published" not in report, report
    return report


def _start_procs(k: KernelDriver, n: int) -> None:
    # Start the procs first, so the memory sampled below is the output's, not start-up's.
    assert k.execute(f"%procs {n}").status == "ok"


MAX_GROWTH_MIB = 150


def _run_measured(fe: FakeFrontend, n: int, body: str, figure: str, record_figure, flush_timeout: float = 30) -> None:
    """Run ``body`` in ``n`` procs until ``%logflush`` reports "rendered", sampling the kernel's
    memory meanwhile; record the growth (and the time) as ``figure`` and bound it."""
    _start_procs(fe, n)
    rss = PeakRSS(fe.pid)
    t0 = time.monotonic()
    cell = fe.execute(f"%%procs {n}\n{body}", timeout=600)
    assert cell.status == "ok", cell.error
    _rendered(fe, flush_timeout)
    took = time.monotonic() - t0
    growth = rss.stop()
    record_figure(figure, f"{growth:.1f} MiB in {took:.1f} s")
    assert growth < MAX_GROWTH_MIB, f"kernel grew {growth:.0f} MiB: {figure}"


def test_a_100_mb_line_without_newline(frontend: FakeFrontend, record_figure) -> None:
    _run_measured(
        frontend,
        1,
        "import os\n"
        "block = b'x' * (1 << 20)\n"
        "for _ in range(100):\n"
        "    os.write(1, block)\n"
        "os.write(1, b'\\nthe next line\\n')\n",
        "kernel RSS growth, one 100 MB line (widgets)",
        record_figure,
    )
    m = frontend.proc_models()[0]
    lines = m.stream_lines(1)
    # The line is shown split into marked pieces; the view ends with what followed it.
    assert lines[-1] == "the next line", lines[-1][:200]
    assert re.search(r"\[line longer than \d+ bytes, split\]", lines[-3]), lines[-3][-100:]
    assert m.dropped > 0  # the view shows a bounded tail, and says how much it does not show
    log = _logdir(frontend) / "rank0.stdout.log"
    assert log.stat().st_size == 100 * MiB + len(b"\nthe next line\n")
    with log.open("rb") as f:
        f.seek(100 * MiB - 4)
        assert f.read() == b"xxxx\nthe next line\n"


def test_a_flood_of_10_million_lines(frontend: FakeFrontend, record_figure) -> None:
    _run_measured(
        frontend,
        4,
        "import sys\nw = sys.stdout.write\nfor i in range(2_500_000):\n    w(f'{i}\\n')\n",
        "kernel RSS growth, 4 procs x 2.5M lines (widgets)",
        record_figure,
        flush_timeout=60,
    )
    logdir = _logdir(frontend)
    for rank, m in frontend.proc_models().items():
        shown = m.stream_lines(1)
        # The view holds the newest lines, contiguous and in order, and counts the rest.
        assert shown == [str(i) for i in range(2_500_000 - len(shown), 2_500_000)], (rank, shown[:3], shown[-3:])
        assert len(shown) + m.dropped == 2_500_000
        assert m.state["stdout_lines"] == 2_500_000
        data = (logdir / f"rank{rank}.stdout.log").read_bytes()
        assert data.count(b"\n") == 2_500_000 and data.endswith(b"\n2499999\n")


def test_binary_nul_and_invalid_utf8(frontend: FakeFrontend) -> None:
    payload = bytes(range(256)) * 4 + b"\x00\x00nul\x00\n" + b"\xc3\x28 bad \xe2\x82 utf8 \xff\n"
    cell = frontend.execute(
        "%%procs 2\n"
        "import os\n"
        f"os.write(1, {payload!r})\n"
        "os.write(2, b'\\x00' * 100000 + b'\\n')\n"
        "print('still readable')\n"
    )
    assert cell.status == "ok", cell.error
    _rendered(frontend)
    logdir = _logdir(frontend)
    for rank, m in frontend.proc_models().items():
        assert (logdir / f"rank{rank}.stdout.log").read_bytes() == payload + b"still readable\n"
        assert (logdir / f"rank{rank}.stderr.log").read_bytes() == b"\x00" * 100000 + b"\n"
        out = m.stream_lines(1)
        assert out[-1] == "still readable"
        # Invalid UTF-8 becomes replacement characters; the view gets text, never bytes.
        assert "\ufffd( bad \ufffd utf8 \ufffd" in out[-2], out[-2]
        assert out[-3].endswith("~\x7f" + "\ufffd" * 128 + "\x00\x00nul\x00"), out[-3]  # bytes 0x0b-0xff, NULs


def test_carriage_return_storm(frontend: FakeFrontend, record_figure) -> None:
    _run_measured(
        frontend,
        2,
        "import sys\n"
        "for i in range(1_000_000):\n"
        "    sys.stdout.write(f'\\r{i}')\n"
        "sys.stdout.write('\\r' * 1_000_000 + 'done\\n')\n",
        "kernel RSS growth, 2 procs x 1M \\r redraws without newline",
        record_figure,
    )
    logdir = _logdir(frontend)
    for rank, m in frontend.proc_models().items():
        # Redraws are forwarded as they are (rendering \r in place is the view's job); a line
        # this long (8 MB) is split into marked pieces.
        shown = m.stream_lines(1)
        assert shown[-1].endswith("\r" * 1000 + "done"), shown[-1][-50:]
        data = (logdir / f"rank{rank}.stdout.log").read_bytes()
        assert data.startswith(b"\r0\r1\r2") and data.endswith(b"\r999999" + b"\r" * 1_000_000 + b"done\n")


def test_escape_sequences_reach_the_view_as_text(frontend: FakeFrontend) -> None:
    # Cursor moves, screen clears, OSC titles and hyperlinks: the view strips all but colours
    # (tested in the browser); the kernel passes them as text and the log keeps them.
    nasty = "\x1b[2J\x1b[H\x1b[10A\x1b[5;5H\x1b]0;title\x07\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\\x1b[?1049h\x1bc"
    cell = frontend.execute(f"%%procs 1\nprint('before')\nprint({nasty!r})\nprint('after')\n")
    assert cell.status == "ok", cell.error
    _rendered(frontend)
    assert frontend.proc_models()[0].stream_lines(1) == ["before", nasty, "after"]
    assert (_logdir(frontend) / "rank0.stdout.log").read_bytes() == f"before\n{nasty}\nafter\n".encode()


# --- output that imitates the markers -----------------------------------------------------------
def test_imitated_markers_are_text_and_the_token_is_not_in_the_environment(kernel: KernelDriver) -> None:
    assert kernel.execute("%procs 2").status == "ok"
    tokens = kernel.execute(
        "import ipylogfwd\n"
        "g = ipylogfwd.current_group()\n"
        "procs = g._generation._sets[0]._procs  # white box: the tokens a leak would expose\n"
        "print(*[procs[r].token.decode() for r in g.ranks])\n"
    ).stdout.split()
    assert len(tokens) == 2 and all(re.fullmatch(r"[0-9a-f]+", t) for t in tokens), tokens
    from ipylogfwd.wire.markers import encode

    guessed = "0" * len(tokens[0])
    # A guessed token, the other proc's real token (as if leaked), and broken shapes of real
    # markers: rank r prints markers made with everything but its own token.
    fakes = []
    for kind, value in (("B", 1), ("C", 999), ("E", 999)):
        fakes.append(encode(guessed.encode(), kind, value))
    cell = kernel.execute(
        "%%procs 2\n"
        "import os, sys\n"
        f"tokens = {tokens!r}\n"
        "other = tokens[1 - int(os.environ['RANK'])].encode()\n"
        "from ipylogfwd.wire.markers import encode\n"
        f"fakes = {fakes!r} + [encode(other, k, v) for k, v in (('B', 1), ('C', 999), ('E', 999))]\n"
        "for f in fakes:\n"
        "    os.write(1, b'before ' + f + b' after\\n')\n"
        "    os.write(2, f + b'\\n')\n"
        "print('the end')\n"
        "# Where could a proc find its own token? Not in its environment or command line.\n"
        "mine = tokens[int(os.environ['RANK'])]\n"
        "env = open('/proc/self/environ', 'rb').read().decode(errors='replace')\n"
        "cmd = open('/proc/self/cmdline', 'rb').read().decode(errors='replace')\n"
        "(mine in env, mine in cmd, any(mine in v for v in os.environ.values()))\n"
    )
    assert cell.status == "ok", cell.error
    assert cell.result_text() == "{0: (False, False, False), 1: (False, False, False)}"
    for rank in (0, 1):
        out = [line for line in cell.stdout.splitlines() if line.startswith(f"[{rank}] ")]
        err = [line for line in cell.stderr.splitlines() if line.startswith(f"[{rank}] ")]
        assert len(out) == 7 and out[-1] == f"[{rank}] the end", out
        assert len(err) == 6, err
        for line in out[:-1]:
            assert line.startswith(f"[{rank}] before \x1b_LFWD") and line.endswith(" after"), repr(line)
    # The cell and the barrier were not disturbed: same procs, next cell and flush work.
    assert kernel.execute("%%procs 2\n1").result_text() == "{0: 1, 1: 1}"
    report = kernel.execute("%logflush").result_text() or ""
    assert len(re.findall(r"rank +\d+  published ", report)) == 2, report


def test_text_output_memory_stays_bounded_too(kernel: KernelDriver, record_figure) -> None:
    # Without a widget frontend and with no text limit (nbconvert, a client on jupyter_client):
    # everything is published as text, the most the kernel can hold.
    assert kernel.execute("import ipylogfwd; ipylogfwd.set_text_limit(None)").status == "ok"
    _start_procs(kernel, 4)
    rss = PeakRSS(kernel.pid)
    line = kernel.execute(
        "%%procs 1 -t 0\nimport os\nblock = b'x' * (1 << 20)\n"
        "for _ in range(100):\n    os.write(1, block)\nos.write(1, b'\\nend\\n')\n",
        timeout=300,
    )
    assert line.status == "ok", line.error
    line_growth = rss.stop()
    text = line.stdout
    assert text.count("x") == 100 * MiB and text.endswith("[0] end\n")
    del text, line
    kernel.by_parent.clear()
    rss = PeakRSS(kernel.pid)
    flood = kernel.execute(
        "%%procs 4\nimport sys\nw = sys.stdout.write\nfor i in range(2_500_000):\n    w(f'{i}\\n')\n", timeout=600
    )
    assert flood.status == "ok", flood.error
    flood_growth = rss.stop()
    record_figure(
        "kernel RSS growth, text output: one 100 MB line / 4 x 2.5M lines",
        f"{line_growth:.1f} MiB / {flood_growth:.1f} MiB",
    )
    assert line_growth < MAX_GROWTH_MIB and flood_growth < MAX_GROWTH_MIB
    # Every line, once, in order per rank.
    nxt = [0, 0, 0, 0]
    for m in flood.stream_messages():
        for row in m["content"]["text"].splitlines():
            rank, _, n = row.partition(" ")
            r = int(rank[1:-1])
            assert int(n) == nxt[r], f"rank {r}: got {n}, expected {nxt[r]}"
            nxt[r] += 1
    assert nxt == [2_500_000] * 4
