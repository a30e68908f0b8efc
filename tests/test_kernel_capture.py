"""Through a real ipykernel: what a proc writes by any route reaches the cell and the log."""

from __future__ import annotations

import re
import time
from pathlib import Path

from conftest import by_rank
from kernel_driver import KernelDriver


def test_c_level_and_child_process_output_is_captured(kernel: KernelDriver) -> None:
    cell = kernel.execute(
        "%%procs 2\n"
        "import os, ctypes, subprocess\n"
        "os.write(1, b'raw fd write\\n')\n"
        "os.write(2, b'raw fd2 write\\n')\n"
        "subprocess.run(['echo', 'from a child echo'], check=True)\n"
        "os.system('echo from os.system >&2')\n"
        "ctypes.CDLL(None).printf(b'from C printf\\n')\n"
    )
    assert cell.status == "ok", cell.error
    out, err = by_rank(cell.stdout), by_rank(cell.stderr)
    for r in (0, 1):
        assert out[r] == ["raw fd write", "from a child echo", "from C printf"], out[r]
        assert err[r] == ["raw fd2 write", "from os.system"], err[r]


def test_partial_line_is_shown_at_logflush(kernel: KernelDriver, tmp_path: Path) -> None:
    start = kernel.execute(
        "%%procs 2 --bg\n"
        "import os, time\n"
        "print('no newline yet', end='')\n"
        f"open(os.path.join({str(tmp_path)!r}, 'p' + os.environ['RANK']), 'w').close()\n"
        "time.sleep(2)\n"
        "print(' ...done')\n"
    )
    kernel.execute("handle = _")
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("p*"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    flush = kernel.execute("%logflush")
    assert flush.status == "ok"
    shown = kernel.executed_stdout(start.msg_id)
    for r in (0, 1):
        assert f"[{r}] no newline yet" in shown, shown
    kernel.execute("handle.wait(30)")
    kernel.execute("%logflush")
    # The rest of the line follows the part already shown; nothing is repeated.
    final = kernel.executed_stdout(start.msg_id)
    assert final.count("no newline yet") == 2
    for lines in by_rank(final).values():
        # Continued on the same line, or (if another rank wrote in between) on the next one.
        assert lines in (["no newline yet ...done"], ["no newline yet", " ...done"]), final


def test_proc_that_exits_mid_output_loses_nothing(kernel: KernelDriver) -> None:
    cell = kernel.execute(
        "%%procs 2\n"
        "import os, sys\n"
        "for i in range(20000):\n"
        "    print(f'line {i}')\n"
        "sys.stdout.flush()\n"
        "if os.environ['RANK'] == '1':\n"
        "    os.write(1, b'half a li')\n"
        "    os._exit(3)\n"
        "'survived'\n",
        timeout=120,
    )
    assert cell.status == "error"
    assert cell.error is not None and cell.error["ename"] == "ProcsError"
    assert "rank 1" in cell.error["evalue"]
    out = by_rank(cell.stdout)
    assert out[0] == [f"line {i}" for i in range(20000)]
    assert out[1] == [f"line {i}" for i in range(20000)] + ["half a li"]
    status = kernel.execute("%procs")
    text = status.result_text() or ""
    assert re.search(r"\n\s+1\s+\d+\s+exited\s+exited with code 3", text), text
    assert re.search(r"\n\s+0\s+\d+\s+idle", text), text
    # The barrier completes at once for the dead proc, normally for the live one.
    flush = kernel.execute("%logflush --timeout 5")
    report = flush.result_text() or ""
    assert re.search(r"rank +0  published", report) and re.search(r"rank +1  exited", report), report


def test_log_files_hold_every_byte(kernel: KernelDriver) -> None:
    cell = kernel.execute(
        "%%procs 2\n"
        "import os, sys\n"
        "for i in range(5000):\n"
        "    print(f'log {i}')\n"
        "sys.stdout.flush()\n"
        "os.write(1, b'bytes \\xff\\xfe not utf-8\\n')\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    assert cell.status == "ok"
    logdir = kernel.execute("%procs --logdir").stdout.strip()
    for r in (0, 1):
        data = (Path(logdir) / f"rank{r}.stdout.log").read_bytes()
        assert data == b"".join(b"log %d\n" % i for i in range(5000)) + b"bytes \xff\xfe not utf-8\n"
        assert (Path(logdir) / f"rank{r}.stderr.log").read_bytes() == b"to stderr\n"
    # In the cell, invalid UTF-8 shows as replacement characters.
    assert "[0] bytes \ufffd\ufffd not utf-8" in cell.stdout
