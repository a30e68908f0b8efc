"""A ``%%procs`` cell behaves like a notebook cell where it can, and says plainly where it
cannot, through a real ipykernel: ``;``, top-level ``await``, IPython syntax, compact errors,
names defined only in the kernel, ``%reload_ext``, and progress bars in text output.
"""

from __future__ import annotations

import re

from kernel_driver import Cell, KernelDriver

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(cell: Cell) -> str:
    assert cell.error is not None, cell.reply
    return ANSI.sub("", "\n".join(cell.error["traceback"]))


def test_a_trailing_semicolon_silences_the_result(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    assert k.execute("%%procs 2\n6 * 7").result_text() == "{0: 42, 1: 42}"
    quiet = k.execute("%%procs 2\n6 * 7;  # like IPython")
    assert quiet.status == "ok" and quiet.result_text() is None


def test_top_level_await_runs(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2\nimport asyncio\nawait asyncio.sleep(0.01)\nawait asyncio.sleep(0, 'awaited')"
    )
    assert cell.result_text() == "{0: 'awaited', 1: 'awaited'}", cell.error


def test_ipython_syntax_and_syntax_errors_are_one_clear_error(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("%%procs 2\nx = 'untouched'")
    for line in ("%time x = 1", "!ls", "files = !ls"):
        cell = k.execute(f"%%procs 2\nx = 'changed'\n{line}\n")
        assert cell.error is not None and cell.error["ename"] == "CellSyntaxError", cell.error
        text = _plain(cell)
        assert f"'{line}' is IPython syntax: procs run plain Python" in text, text
        assert "site-packages" not in text and "interactiveshell" not in text, text
    bad = k.execute("%%procs 2\nx = 1\ndef (:\n")
    assert bad.error is not None and bad.error["ename"] == "CellSyntaxError"
    expected = ['  File "<procs cell>", line 2', "    def (:", "        ^", "SyntaxError: invalid syntax"]
    assert _plain(bad).splitlines() == expected
    # Nothing ran.
    assert k.execute("%%procs 2\nx").result_text() == "{0: 'untouched', 1: 'untouched'}"


def test_a_name_defined_only_in_the_kernel_says_how_to_push_it(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("learning_rate = 0.1")
    cell = k.execute("%%procs 2\nlearning_rate * 2")
    assert cell.error is not None and cell.error["ename"] == "ProcsError"
    text = _plain(cell)
    assert "'learning_rate' is defined in the kernel, not in the procs: each proc has its own namespace" in text
    assert "group.push(dict(learning_rate=learning_rate))" in text, text
    # A name the kernel lacks too gets no such note.
    assert "is defined in the kernel" not in _plain(k.execute("%%procs 2\nno_such_name"))


def test_errors_that_stop_the_user_are_compact_and_name_the_way_on(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    pid = eval(k.execute("%%procs 2 -t 1\nimport os\nos.getpid()").result_text() or "")[1]
    k.execute(f"import os, signal\nos.kill({pid}, signal.SIGKILL)")
    k.execute("import ipylogfwd, time\nwhile ipylogfwd.current_group().status()[1].state != 'killed': time.sleep(0.05)")
    died = k.execute("%%procs 2\n1")
    assert died.error is not None and died.error["ename"] == "ProcDiedError"
    assert _plain(died).splitlines() == [f"ProcDiedError: {died.error['evalue']}"]
    assert "%procs --kill 1 replaces them" in died.error["evalue"]
    assert k.execute("%procs --kill 1").status == "ok"
    assert k.execute("%%procs 2\n'both'").result_text() == "{0: 'both', 1: 'both'}"


def test_reload_ext_keeps_the_procs_and_a_running_cell(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    k.execute("%%procs 2\nkept = 'yes'")
    k.execute("import ipylogfwd")
    pids = k.execute("[s.pid for s in ipylogfwd.current_group().status().procs]").result_text()
    k.execute("%%procs 2 --bg\nimport time\ntime.sleep(1)\n'bg result'")
    k.execute("h = _")
    reload = k.execute("%reload_ext ipylogfwd")
    assert reload.status == "ok", reload.error
    assert k.execute("[s.pid for s in ipylogfwd.current_group().status().procs]").result_text() == pids
    assert k.execute("h.wait(30)").result_text() == "{0: 'bg result', 1: 'bg result'}"
    assert k.execute("%%procs 2\nkept").result_text() == "{0: 'yes', 1: 'yes'}"


def test_a_progress_bar_in_text_output_keeps_its_label_and_redraws_in_place(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2\n"
        "import sys, time\n"
        "print('start', flush=True)\n"
        "for i in range(5):\n"
        "    print(f'\\r{i * 25}%', end='', file=sys.stderr, flush=True)\n"
        "    time.sleep(0.25)\n"
        "print(file=sys.stderr)\n"
        "print('end', flush=True)\n"
    )
    assert cell.status == "ok", cell.error
    assert "\r" not in cell.stderr and "\r" not in cell.stdout
    for rank in (0, 1):
        shown = [m for m in cell.messages if m["msg_type"] in ("display_data", "update_display_data")
                 and m["content"]["data"]["text/plain"].startswith(f"[{rank}] ")]
        assert shown and shown[0]["msg_type"] == "display_data", shown
        ids = {m["content"]["transient"]["display_id"] for m in shown}
        assert len(ids) == 1, ids  # one display per bar, redrawn in place
        assert shown[-1]["content"]["data"]["text/plain"] == f"[{rank}] 100%"
        assert all(m["msg_type"] == "update_display_data" for m in shown[1:])
    assert sorted(cell.stdout.splitlines()) == ["[0] end", "[0] start", "[1] end", "[1] start"]
    shared_kernel.execute("%procs --shutdown")
