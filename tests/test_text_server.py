"""Text output behind a real jupyter_server with its default limits: the server never drops
proc output, and what ipylogfwd leaves out to stay under them is counted and noted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_frontend import ServerFrontend

N_PROCS = 64
N_LINES = 4000
NOTE = re.compile(r"^\[(\d+)\] … ([\d,]+) lines? not shown \(text output is limited to [^;]+; full log: (.+)\)$")
LINE = re.compile(r"^\[(\d+)\] (out|err) (\d+) x{40}$")

FLOOD = f"""%%procs {N_PROCS}
import sys
for i in range({N_LINES}):
    print('out', i, 'x' * 40)
    print('err', i, 'x' * 40, file=sys.stderr)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerFrontend]:
    fe = ServerFrontend(tmp_path)
    try:
        yield fe
    finally:
        fe.close()


def test_text_flood_behind_a_server_is_never_dropped_and_every_line_is_shown_or_counted(server: ServerFrontend) -> None:
    server.execute("%load_ext ipylogfwd")
    server.execute(f"%procs {N_PROCS}", timeout=300)
    cell = server.execute(FLOOD, timeout=300)
    nxt = server.execute("print('next cell')")
    log = server.server_log()
    out, err = server.text(cell, "stdout"), server.text(cell, "stderr")
    assert "rate exceeded" not in out + err and "rate exceeded" not in log, "the server dropped output"
    assert server.text(nxt, "stdout") == "next cell\n" and server.text(nxt, "stderr") == ""
    for name, kind, text in (("stdout", "out", out), ("stderr", "err", err)):
        shown: dict[int, list[int]] = {r: [] for r in range(N_PROCS)}
        hidden = dict.fromkeys(range(N_PROCS), 0)
        for line in text.splitlines():
            note = NOTE.match(line)
            if note:
                rank = int(note[1])
                hidden[rank] += int(note[2].replace(",", ""))
                assert note[3].endswith(f"rank{rank}.{name}.log"), note[3]
                assert Path(note[3]).read_text().count("\n") == N_LINES
                continue
            m = LINE.match(line)
            assert m and m[2] == kind, f"a line that is neither a proc's nor a note: {line!r}"
            shown[int(m[1])].append(int(m[3]))
        assert sum(hidden.values()) > 0, f"{N_PROCS} procs flat out: the limit must have left text out"
        for r in range(N_PROCS):
            assert shown[r] == sorted(set(shown[r])), f"rank {r} {name}: lines out of order or twice"
            assert len(shown[r]) + hidden[r] == N_LINES, f"rank {r} {name}: lines neither shown nor counted"
            assert shown[r][-1] == N_LINES - 1, f"rank {r} {name}: its last line is not shown"
