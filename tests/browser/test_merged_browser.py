"""The panel of many procs in a real JupyterLab: the merged view (lines several ranks printed,
once, with their ranks; what differs apart), the toolbar's search and filters on live output,
timestamps, the toggle to one widget per proc and back, and the group's header.

Hooks read (labextension/README.md): ``[data-ipylogfwd-merged] .ipylogfwd-mrow[data-ranks]
[data-kind][data-severity]``, ``input[data-ipylogfwd-search]``, ``[data-ipylogfwd-matches]``,
``.ipylogfwd-group``. Screenshots go to ``tests/artifacts/`` (the README's come from there).
"""

from __future__ import annotations

import re

from .labdriver import ARTIFACTS, Notebook, wait_for
from .test_widgets_browser import LOAD, assert_rendered

CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")
SINCE = re.compile(r"^\+(\d+\.\d{3}) s$")


def _sixteen_with_an_error() -> str:
    return (
        "%%procs 16\n"
        "import os, sys\n"
        "r = int(os.environ['RANK'])\n"
        "for step in range(3):\n"
        "    print(f'step {step}: loss {1 / (step + 1):.4f}')\n"
        "print(f'rank {r} saw {r * 7 % 5} slow batches')\n"
        "if r == 5:\n"
        "    raise ValueError(f'bad rank {r}')\n"
        "print('epoch done')\n"
        "sys.stdout.flush()\n"
        "print('warning: checkpoint is slow', file=sys.stderr)\n"
    )


def test_sixteen_ranks_merged_with_one_ranks_error_apart(nb, lab):
    path = lab.write_notebook("merged16.ipynb", [LOAD, _sixteen_with_an_error(), "%logflush"])
    n: Notebook = nb(path)
    n.page.set_viewport_size({"width": 1300, "height": 1400})
    n.run_cell(0)
    n.run_cell(1)
    n.run_cell(2)
    assert_rendered(n.output_text(2), range(16))
    # "rendered" with the merged view on screen: its rows show every line now.
    rows = n.merged_rows(1)
    assert n.panel(1).locator(".ipylogfwd-proc").count() == 0, "16 procs start with the merged view"
    shared = [(r["ranks"], r["count"], r["text"]) for r in rows if r["ranks"] == "0-15"]
    assert shared == [("0-15", "\u00d716", f"step {s}: loss {1 / (s + 1):.4f}") for s in range(3)], rows
    own = sorted((r["ranks"], r["text"]) for r in rows if r["text"].startswith("rank "))
    assert own == sorted((str(r), f"rank {r} saw {r * 7 % 5} slow batches") for r in range(16)), rows
    (error,) = [r for r in rows if r["kind"] == "block"]
    assert error["ranks"] == "5" and error["severity"] == "error" and error["stream"] == "stderr"
    assert error["text"].startswith("Traceback (most recent call last):") and error["text"].endswith(
        "ValueError: bad rank 5"
    ), error
    after = {r["text"]: (r["ranks"], r["severity"]) for r in rows if r["ranks"] == "0-4,6-15"}
    assert after == {"epoch done": ("0-4,6-15", ""), "warning: checkpoint is slow": ("0-4,6-15", "warning")}, rows
    assert all(r["visible"] for r in rows)
    # The header counts the group: every proc idle, the lines per stream.
    header = n.panel(1).locator(".ipylogfwd-group")
    wait_for(
        n.page,
        "(el) => el.querySelector('.ipylogfwd-gcounts').textContent === '16 idle'",
        "the group header to count 16 idle procs",
        arg=header.element_handle(),
        timeout=10_000,
    )
    shot = n.screenshot(n.panel(1), "merged-16-light.png")
    # A shared row expands to each rank's own copy, with its time; a rank opens its widget.
    row = n.merged(1).locator('.ipylogfwd-mrow[data-ranks="0-15"]').first
    row.click()
    copies = row.locator(".ipylogfwd-mcopy")
    wait_for(
        n.page,
        "(el) => el.querySelectorAll('.ipylogfwd-mcopy').length === 16",
        "the first shared row to expand to 16 copies",
        arg=row.element_handle(),
        timeout=5_000,
    )
    assert row.get_attribute("aria-expanded") == "true"
    assert [copies.nth(i).locator(".ipylogfwd-rank-link").inner_text() for i in range(16)] == [
        f"rank {r}" for r in range(16)
    ]
    assert all(re.search(r"\d:\d\d:\d\d", copies.nth(i).locator(".ipylogfwd-mtime").inner_text()) for i in range(16))
    copies.nth(5).locator(".ipylogfwd-rank-link").click()
    pinned = n.panel(1).locator('.ipylogfwd-pin[data-rank="5"] .ipylogfwd-proc[data-rank="5"]')
    pinned.wait_for(state="visible", timeout=10_000)
    lines = pinned.locator(".ipylogfwd-line")
    wait_for(
        n.page,
        "(el) => el.querySelectorAll('.ipylogfwd-line').length >= 8",
        "rank 5's widget to show its lines",
        arg=pinned.element_handle(),
        timeout=10_000,
    )
    # Order holds per stream (stdout and stderr are read from two pipes: no order between them).
    out = pinned.locator('.ipylogfwd-line[data-stream="stdout"]').all_inner_texts()
    assert out == [f"step {s}: loss {1 / (s + 1):.4f}" for s in range(3)] + ["rank 5 saw 0 slow batches"]
    assert "ValueError: bad rank 5" in lines.all_inner_texts()
    n.panel(1).locator(".ipylogfwd-unpin").click()
    pinned.wait_for(state="detached", timeout=5_000)
    n.set_theme("JupyterLab Dark")
    try:
        dark = n.screenshot(n.panel(1), "merged-16-dark.png")
    finally:
        n.set_theme("JupyterLab Light")
    assert shot.stat().st_size > 10_000 and dark.stat().st_size > 10_000
    assert n.page.page_errors == []


def _live_cell(procs: int, seconds: float) -> str:
    return (
        f"%%procs {procs} --bg\n"
        "import os, sys, time\n"
        "r = int(os.environ['RANK'])\n"
        "t0 = time.time(); i = 0\n"
        f"while time.time() - t0 < {seconds}:\n"
        "    print(f'step {i}: loss {1 / (i + 1):.3f}', flush=True)\n"
        "    if (i + r) % 5 == 0:\n"
        "        print(f'ERROR rank {r} step {i}: retrying', file=sys.stderr, flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.1)\n"
    )


def ranks_of(text: str) -> set[int]:
    """The ranks of a row's ``data-ranks`` ("0-3,5")."""
    out: set[int] = set()
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


RANKS_JS = """s => s.split(',').flatMap(p => { const [a, b] = p.split('-').map(Number);
                 return b === undefined ? [a] : Array.from({length: b - a + 1}, (_, k) => a + k); })"""


def _visible(n: Notebook, index: int) -> list[dict[str, object]]:
    return [r for r in n.merged_rows(index) if r["visible"]]


def test_search_and_filters_narrow_live_output(nb, lab):
    path = lab.write_notebook(
        "filters.ipynb", [LOAD, "%procs 8", _live_cell(8, 14), "h = _\nh.wait(60)\nr = %logflush\nr"]
    )
    n: Notebook = nb(path)
    n.page.set_viewport_size({"width": 1300, "height": 1300})
    n.run_cell(0)
    n.run_cell(1, timeout=120_000)
    n.run_cell(2)
    n.wait_merged(2, "rows => rows.length >= 16", "the merged view to show the live output")
    search = n.panel(2).locator("input[data-ipylogfwd-search]")
    matches = n.panel(2).locator("[data-ipylogfwd-matches]")
    search.fill("ERROR")
    n.wait_merged(2, "rows => rows.some(r => r.visible)", "rows matching ERROR to show")
    first = len(_visible(n, 2))
    # Live: new matching rows keep coming, and nothing else ever shows.
    n.wait_merged(
        2, f"rows => rows.filter(r => r.visible).length >= {first + 8}", "more ERROR rows to arrive while filtered"
    )
    for r in _visible(n, 2):
        assert "ERROR" in r["text"] and r["stream"] == "stderr", r
    assert re.fullmatch(r"[\d,]+ matching rows?", matches.inner_text()), matches.inner_text()
    # Lines every rank printed are one row; the ranks' own errors stand apart.
    search.fill("step 1")
    n.wait_merged(
        2,
        "rows => rows.some(r => r.visible && r.ranks === '0-7') && rows.some(r => r.visible && r.severity === 'error')"
        " && rows.filter(r => r.visible).every(r => r.text.includes('step 1'))",
        "only rows of 'step 1': shared by ranks 0-7, and the ranks' own errors",
    )
    n.screenshot(n.panel(2), "search-8.png")
    # A regular expression, and the rank filter.
    n.panel(2).locator("button[data-ipylogfwd-regex]").click()
    search.fill(r"step \d*[05]:")
    n.panel(2).locator("input[data-ipylogfwd-ranks]").fill("3,5-6")
    n.wait_merged(
        2,
        "rows => rows.some(r => r.visible && r.ranks === '5') && rows.filter(r => r.visible).every("
        f"r => ({RANKS_JS})(r.ranks).some(k => [3, 5, 6].includes(k)) && /step \\d*[05]:/.test(r.text))",
        "only rows with rank 3, 5 or 6 and steps ending in 0 or 5 (rank 5's errors among them) to show",
    )
    # The stream filter: stdout only leaves the step lines of those ranks.
    n.panel(2).locator("select[data-ipylogfwd-stream]").select_option("stdout")
    n.wait_merged(
        2,
        "rows => rows.some(r => r.visible) && rows.filter(r => r.visible).every(r => r.stream === 'stdout')",
        "only stdout rows to show",
    )
    # The per-proc widgets follow the same filters.
    n.panel(2).locator("button[data-ipylogfwd-mode]").click()
    n.wait_procs(2, 8)
    wait_for(
        n.page,
        """([i]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             const shown = [...c.node.querySelectorAll('.ipylogfwd-proc')].filter(p => p.checkVisibility());
             const lines = shown.flatMap(
               p => [...p.querySelectorAll('.ipylogfwd-line')].filter(l => l.checkVisibility()));
             return shown.map(p => p.dataset.rank).join(',') === '3,5,6' && lines.length > 0
               && lines.every(l => l.dataset.stream === 'stdout' && /step \\d*[05]:/.test(l.textContent)); }""",
        "the widgets of ranks 3, 5, 6 only, with only stdout lines of steps ending in 0 or 5",
        arg=[2],
    )
    # Esc clears the search, a second Esc the other filters: everything shows again.
    search.press("Escape")
    search.press("Escape")
    wait_for(
        n.page,
        """([i]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             const ps = [...c.node.querySelectorAll('.ipylogfwd-proc')];
             return ps.length === 8 && ps.every(p => p.checkVisibility())
               && [...c.node.querySelectorAll('.ipylogfwd-line')].every(l => l.checkVisibility()); }""",
        "Esc, Esc to clear the filters: all 8 widgets and every line visible",
        arg=[2],
    )
    assert search.input_value() == ""
    wait_for(
        n.page, "(el) => el.textContent === ''", "no match count once no filter is on", arg=matches.element_handle()
    )
    n.panel(2).locator("button[data-ipylogfwd-mode]").click()
    n.run_cell(3, timeout=120_000)
    assert_rendered(n.output_text(3), range(8))
    assert n.page.page_errors == []


def test_timestamps_toggle_between_time_of_day_since_start_and_none(nb, lab):
    path = lab.write_notebook(
        "times.ipynb",
        [
            LOAD,
            "%%procs 8\nimport time\nprint('first', flush=True)\ntime.sleep(1.2)\nprint('second')\n",
            "%logflush",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.run_cell(2)
    assert_rendered(n.output_text(2), range(8))
    rows = n.merged_rows(1)
    assert [r["text"] for r in rows] == ["first", "second"] and all(r["time"] == "" for r in rows), rows
    time_select = n.panel(1).locator("select[data-ipylogfwd-time]")
    time_select.select_option("absolute")
    n.wait_merged(1, "rows => rows.every(r => r.time !== '')", "timestamps on every row")
    assert all(CLOCK.match(r["time"]) for r in n.merged_rows(1)), n.merged_rows(1)
    time_select.select_option("relative")
    n.wait_merged(1, "rows => rows.every(r => r.time.startsWith('+'))", "relative timestamps on every row")
    first, second = (float(SINCE.match(r["time"]).group(1)) for r in n.merged_rows(1))  # type: ignore[union-attr]
    assert 0 <= first < second and 1.0 <= second - first < 3.0, (first, second)
    # The widgets show them too; the choice is kept in the panel's model (the kernel has it).
    n.panel(1).locator("button[data-ipylogfwd-mode]").click()
    n.wait_procs(1, 8)
    wait_for(
        n.page,
        """([i]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             const ls = [...c.node.querySelectorAll('.ipylogfwd-line')];
             return ls.length === 16
               && ls.every(l => /^"\\+\\d+\\.\\d{3} s"$/.test(getComputedStyle(l, '::before').content)); }""",
        "every line of the 8 widgets to show its time since the start",
        arg=[1],
    )
    texts = n.lines(1)
    assert all(v["stdout"] == ["first", "second"] for v in texts.values()), "a line's text has no time in it"
    time_select.select_option("off")
    wait_for(
        n.page,
        """([i]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             return [...c.node.querySelectorAll('.ipylogfwd-line')].every(
               l => ['none', 'normal'].includes(getComputedStyle(l, '::before').content)); }""",
        "no timestamps once they are off",
        arg=[1],
    )


def test_the_toggle_to_per_proc_widgets_and_back_during_a_flush(nb, lab):
    path = lab.write_notebook(
        "toggle.ipynb",
        [
            LOAD,
            "%procs 8",
            _live_cell(8, 6),
            "h = _\nh.wait(60)\nimport ipylogfwd\nr = ipylogfwd.logflush(60)\nr",
            "%logflush",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1, timeout=120_000)
    n.run_cell(2)
    n.wait_merged(2, "rows => rows.length >= 8", "the merged view to show the live output")
    toggle = n.panel(2).locator("button[data-ipylogfwd-mode]")
    floor = n.start_cell(3)  # waits for the procs, then flushes: the views switch meanwhile
    for _ in range(3):
        toggle.click()
        n.wait_procs(2, 8)
        toggle.click()
        n.merged(2).wait_for(state="visible", timeout=10_000)
    toggle.click()
    n.wait_procs(2, 8)
    n.wait_cell_done(3, floor)
    assert_rendered(n.output_text(3), range(8))
    # "rendered" with the widgets on screen: each shows its proc's lines through the last.
    lines = n.lines(2)
    for r in range(8):
        steps = [int(t.split()[1].rstrip(":")) for t in lines[r]["stdout"]]
        assert steps == list(range(steps[0], steps[0] + len(steps))) and steps[-1] >= 30, (r, steps[-3:])
    # And back: the merged view rebuilds from the procs' lines; a flush is rendered there.
    toggle.click()
    n.merged(2).wait_for(state="visible", timeout=10_000)
    assert n.panel(2).locator(".ipylogfwd-proc").count() == 0
    n.run_cell(4)
    assert_rendered(n.output_text(4), range(8))
    rows = n.merged_rows(2)
    for r in range(8):
        last = lines[r]["stdout"][-1]
        assert any(r in ranks_of(str(row["ranks"])) and row["text"] == last for row in rows), (r, last)
    assert n.page.page_errors == []


def test_64_ranks_grid_in_the_header_links_to_each_widget(nb, lab):
    path = lab.write_notebook(
        "grid64.ipynb",
        [
            LOAD,
            "%procs 64",
            "%%procs 64 --bg\nimport os, time\nr = int(os.environ['RANK'])\nprint('ready', flush=True)\n"
            "if r == 9:\n    os._exit(3)\nif r in (20, 41):\n    time.sleep(30)\n",
            "import time\ntime.sleep(1)\n%logflush --timeout 5",
        ],
    )
    n: Notebook = nb(path)
    n.page.set_viewport_size({"width": 1300, "height": 900})
    n.run_cell(0)
    n.run_cell(1, timeout=180_000)
    n.run_cell(2)
    n.run_cell(3)
    grid = n.panel(2).locator(".ipylogfwd-grid .ipylogfwd-cell")
    assert grid.count() == 64
    wait_for(
        n.page,
        """(el) => el.querySelector('[data-rank="9"]').dataset.state === 'exited'
             && el.querySelector('[data-rank="20"]').dataset.state === 'running'
             && el.querySelector('.ipylogfwd-gcounts').textContent === '61 idle · 2 running · 1 exited 3'""",
        "the grid to show rank 9 exited and 20 running, the header '61 idle · 2 running · 1 exited 3'",
        arg=n.panel(2).locator(".ipylogfwd-group").element_handle(),
        timeout=15_000,
    )
    rows = n.merged_rows(2)
    assert [(r["ranks"], r["text"]) for r in rows] == [("0-63", "ready")], rows
    n.screenshot(n.panel(2), "grid-64.png")
    grid.nth(41).click()
    pinned = n.panel(2).locator('.ipylogfwd-pin .ipylogfwd-proc[data-rank="41"]')
    pinned.wait_for(state="visible", timeout=10_000)
    wait_for(
        n.page,
        "(el) => el.dataset.state === 'running' && el.querySelector('.ipylogfwd-line')?.textContent === 'ready'",
        "rank 41's widget, opened from the grid, to show it running with its line",
        arg=pinned.element_handle(),
        timeout=10_000,
    )
    assert (ARTIFACTS / "grid-64.png").stat().st_size > 10_000
    assert n.page.page_errors == []
