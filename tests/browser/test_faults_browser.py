"""Hostile output in a real JupyterLab page (headless Chromium): markup, script URLs, escape
sequences that move the cursor or clear the screen, huge lines and \\r storms. What the user
checks: no element is created from output, earlier lines stay where they were, the page
keeps answering, and ``%logflush`` still reports "rendered".
"""

from __future__ import annotations

import time

from .labdriver import Notebook
from .test_widgets_browser import LOAD, assert_rendered

# Each payload, and the text the line must show (escape sequences other than colours are
# dropped; everything else is characters).
PAYLOADS = [
    ('<a href="javascript:window.__pwned=1">click</a>', '<a href="javascript:window.__pwned=1">click</a>'),
    ("\x1b]8;;javascript:window.__pwned=2\x1b\\a terminal hyperlink\x1b]8;;\x1b\\", "a terminal hyperlink"),
    ('\x1b[31m<img src=x onerror="window.__pwned=3">\x1b[0m', '<img src=x onerror="window.__pwned=3">'),
    ("\x1b[1;4m<script>window.__pwned=4</script>\x1b[0m", "<script>window.__pwned=4</script>"),
    ('<iframe src="javascript:window.__pwned=5"></iframe>', '<iframe src="javascript:window.__pwned=5"></iframe>'),
    (
        '<svg onload="window.__pwned=6"><a xlink:href="javascript:1">x</a></svg>',
        '<svg onload="window.__pwned=6"><a xlink:href="javascript:1">x</a></svg>',
    ),
    ("&lt;b&gt;entities stay as typed&lt;/b&gt;", "&lt;b&gt;entities stay as typed&lt;/b&gt;"),
]


def test_markup_and_script_urls_in_output_create_no_element(nb, lab):
    body = "".join(f"print({p!r})\n" for p, _ in PAYLOADS)
    path = lab.write_notebook("hostile.ipynb", [LOAD, f"%%procs 2\n{body}", "%logflush"])
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.wait_procs(1, 2)
    n.run_cell(2)
    assert_rendered(n.output_text(2), range(2))
    for r, lines in n.lines(1).items():
        assert lines["stdout"] == [shown for _, shown in PAYLOADS], f"rank {r}: {lines}"
    bodies = n.cell(1).locator(".ipylogfwd-body")
    for tag in ("a", "img", "script", "iframe", "svg", "b", "object", "embed"):
        assert bodies.locator(tag).count() == 0, f"a <{tag}> element was created from output"
    # Colours survive as styling of text (the ANSI-wrapped tag is red), not as markup.
    red = n.proc(1, 0).locator(".ipylogfwd-line").nth(2).locator("span")
    assert red.count() >= 1 and red.first.inner_text() == PAYLOADS[2][1]
    assert n.page.evaluate("() => typeof window.__pwned") == "undefined"
    assert n.page.page_errors == []


def test_escapes_that_move_the_cursor_or_clear_the_screen_change_nothing_else(nb, lab):
    cell = (
        "%%procs 2\n"
        "print('line one')\n"
        "print('\\x1b[2J\\x1b[H\\x1b[3Acleared?\\x1b[K')\n"
        "print('\\x1b[?1049halternate screen?\\x1b[?1049l')\n"
        "print('\\x1b[10;10Hmoved?\\x1bc\\x1b]0;a title\\x07')\n"
        "print('line five')\n"
    )
    path = lab.write_notebook("escapes.ipynb", [LOAD, "print('a cell above')", cell, "%logflush"])
    n: Notebook = nb(path)
    for i in range(4):
        n.run_cell(i)
    assert_rendered(n.output_text(3), range(2))
    for r, lines in n.lines(2).items():
        assert lines["stdout"] == ["line one", "cleared?", "alternate screen?", "moved?", "line five"], (
            f"rank {r}: {lines}"
        )
        first = n.proc(2, r).locator(".ipylogfwd-line").first
        assert first.is_visible() and first.inner_text() == "line one"
    # The rest of the page is as it was: the cell above still shows its output, the title too.
    assert n.output_text(1).strip() == "a cell above"
    assert n.page.title() != "a title"


def test_the_page_keeps_answering_under_huge_lines_and_carriage_return_storms(nb, lab, record_figure):
    cell = (
        "%%procs 3\n"
        "import os, sys\n"
        "r = int(os.environ['RANK'])\n"
        "if r == 0:\n"
        "    block = b'x' * (1 << 20)\n"
        "    for _ in range(30):\n"
        "        os.write(1, block)\n"
        "    os.write(1, b'\\nafter the long line\\n')\n"
        "elif r == 1:\n"
        "    for i in range(300_000):\n"
        "        sys.stdout.write(f'\\r{i}')\n"
        "    print('\\rafter the storm')\n"
        "else:\n"
        "    os.write(1, bytes(range(256)) * 2000 + b'\\x00' * 200_000 + b'\\nafter the binary\\n')\n"
    )
    path = lab.write_notebook("floods.ipynb", [LOAD, cell, "%logflush --timeout 60"])
    n: Notebook = nb(path)
    n.run_cell(0)
    floor = n.start_cell(1)
    # While it runs, time the page's answers to a trivial evaluation.
    rtts, deadline = [], time.monotonic() + 120
    while n.page.evaluate(
        "([i, floor]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];"
        " return !(c.model.executionCount > floor); }",
        [1, floor],
    ):
        assert time.monotonic() < deadline, "the flooding cell did not finish within 120 s"
        t0 = time.monotonic()
        n.page.evaluate("1")
        rtts.append(time.monotonic() - t0)
        n.page.wait_for_timeout(200)
    n.wait_cell_done(1, floor)
    n.run_cell(2, timeout=90_000)
    assert_rendered(n.output_text(2), range(3))
    assert rtts and max(rtts) < 2.0, f"the page took {max(rtts):.2f} s to answer during the flood"
    rtts.sort()
    record_figure(
        "page round trip during a 30 MB line + \\r storm + binary",
        f"median {rtts[len(rtts) // 2] * 1000:.0f} ms, max {rtts[-1] * 1000:.0f} ms ({len(rtts)} samples)",
    )
    last = {r: lines["stdout"][-1] for r, lines in n.lines(1).items()}
    assert last == {0: "after the long line", 1: "after the storm", 2: "after the binary"}, last
    # The view shows a bounded tail of the long line and says what it does not show.
    hidden = n.proc(1, 0).locator(".ipylogfwd-hidden")
    assert hidden.is_visible() and "not shown" in hidden.inner_text()
    assert n.page.page_errors == []
