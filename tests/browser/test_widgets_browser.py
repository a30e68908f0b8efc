"""ipylogfwd's proc widgets in a real JupyterLab, in headless Chromium (fixtures: conftest.py, helpers: labdriver.py).

Each test writes a small notebook into the server's root dir, opens it, runs it, and reads
the widgets' DOM (the contract: ``.ipylogfwd-proc[data-rank][data-state]`` >
``.ipylogfwd-header`` / ``.ipylogfwd-body`` > ``.ipylogfwd-line[data-stream]``).
"""

from __future__ import annotations

import ast
import re
import time
from typing import Any

from .labdriver import NOTEBOOKS, Notebook, peak_rate, wait_for

LOAD = "%load_ext ipylogfwd"
RATE_EXCEEDED = re.compile(r"IOPub (message|data) rate exceeded")


def flush_outcomes(report_text: str) -> dict[int, str]:
    """rank -> outcome, from a FlushReport's repr (``  rank   0  rendered  12.3 ms  ...``)."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\s*rank\s+(\d+)\s+(\S+)", report_text, re.MULTILINE)}


def assert_rendered(report_text: str, ranks: range | list[int]) -> None:
    """Every rank 'rendered': a row each for a few ranks, or (many ranks: the report is
    compact, rows only for those that fell short) the count in the report's first line."""
    outcomes = flush_outcomes(report_text)
    if len(ranks) > 8:
        head = re.search(r"FlushReport\(barrier \d+: ok\) (\d+) ranks rendered, slowest", report_text)
        assert head and int(head.group(1)) == len(ranks) and not outcomes, (
            f"%logflush did not report 'rendered' for every rank:\n{report_text}"
        )
        return
    assert outcomes == dict.fromkeys(ranks, "rendered"), (
        f"%logflush did not report 'rendered' for every rank:\n{report_text}"
    )


def problems_in(outputs: list[list[dict[str, Any]]]) -> list[str]:
    """Error outputs and stderr streams in a notebook's outputs."""
    bad = []
    for i, outs in enumerate(outputs):
        for o in outs:
            if o.get("output_type") == "error":
                bad.append(f"cell {i}: {o.get('ename')}: {o.get('evalue')}")
            elif o.get("output_type") == "stream" and o.get("name") == "stderr":
                bad.append(f"cell {i}: stderr {''.join(o.get('text', ''))!r}")
    return bad


def first_difference(got: list[str], want: list[str]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"first difference at line {i}: got {g!r}, want {w!r}"
    return f"lengths differ: got {len(got)} lines, want {len(want)} (last got: {got[-3:]!r})"


# --------------------------------------------------------------------------------------------


def test_quickstart_notebook_runs_without_errors(nb, lab):
    path = lab.copy_notebook(NOTEBOOKS / "quickstart.ipynb")
    n: Notebook = nb(path)
    n.clear_outputs()  # the stored outputs' execution counts would look like "done" already
    n.run_all(timeout=120_000)
    assert problems_in(n.outputs_json()) == []
    # The %%procs cells got widgets (not the text fallback), and report.ok is True.
    sources = n.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => c.model.sharedModel.source)"
    )
    first_procs = next(i for i, s in enumerate(sources) if s.startswith("%%procs 4\n"))
    n.wait_procs(first_procs, 4)
    # The frontend probe shown by %load_ext is invisible.
    probes = n.page.locator(".ipylogfwd-probe")
    assert all(not probes.nth(i).is_visible() for i in range(probes.count()))
    ok_cell = sources.index("report.ok")
    assert n.output_text(ok_cell).strip() == "True"
    assert n.page.page_errors == []


def test_every_line_in_order_after_logflush(nb, lab):
    procs, count = 4, 500
    path = lab.write_notebook(
        "order.ipynb",
        [
            LOAD,
            (
                f"%%procs {procs}\n"
                "import os, sys\n"
                "r = os.environ['RANK']\n"
                f"for i in range({count}):\n"
                "    print(f'r{r} out {i:04d}')\n"
                "    print(f'r{r} err {i:04d}', file=sys.stderr)\n"
            ),
            "%logflush",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.wait_procs(1, procs)
    n.run_cell(2)
    report = n.output_text(2)
    assert_rendered(report, range(procs))
    # "rendered" means in the DOM now: read it at once, no waiting.
    lines = n.lines(1)
    assert sorted(lines) == list(range(procs))
    for r in range(procs):
        for stream, tag in (("stdout", "out"), ("stderr", "err")):
            want = [f"r{r} {tag} {i:04d}" for i in range(count)]
            got = lines[r][stream]
            assert got == want, f"rank {r} {stream}: {first_difference(got, want)}"
    # The header counts agree with the lines.
    for r in range(procs):
        counts = n.proc(1, r).locator(".ipylogfwd-counts")
        wait_for(
            n.page,
            "(el) => el.textContent === 'out 500 · err 500'",
            f"rank {r}'s header counts to read 'out 500 · err 500'",
            arg=counts.element_handle(),
            timeout=5_000,
        )
    assert problems_in(n.outputs_json()) == []


SAMPLER = """
([cellIndex]) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[cellIndex];
  window.__samples = {};
  window.__sampler = setInterval(() => {
    for (const p of cell.node.querySelectorAll('.ipylogfwd-proc[data-rank]')) {
      const s = (window.__samples[p.dataset.rank] ??= {maxLines: {}, texts: {stdout: [], stderr: []}});
      for (const stream of ['stdout', 'stderr']) {
        const ls = p.querySelectorAll(`.ipylogfwd-line[data-stream="${stream}"]`);
        s.maxLines[stream] = Math.max(s.maxLines[stream] ?? 0, ls.length);
        const last = ls.length ? ls[ls.length - 1].textContent : null;
        const seen = s.texts[stream];
        if (last !== null && seen[seen.length - 1] !== last) seen.push(last);
      }
    }
  }, 5);
}
"""


def _run_bar(n: Notebook) -> tuple[dict[int, dict[str, list[str]]], dict[str, Any]]:
    """Run a 3-cell bar notebook (load, bar, %logflush) while sampling the bar cell's DOM;
    the widgets' final lines and what the sampler saw."""
    n.run_cell(0)
    n.page.evaluate(SAMPLER, [1])
    n.run_cell(1)
    n.wait_procs(1, 2)
    n.run_cell(2)
    n.page.evaluate("() => clearInterval(window.__sampler)")
    assert_rendered(n.output_text(2), range(2))
    return n.lines(1), n.page.evaluate("() => window.__samples")


def test_progress_bar_animates_in_place(nb, lab):
    path = lab.write_notebook(
        "bar.ipynb",
        [
            LOAD,
            (
                "%%procs 2\n"
                "import time\n"
                "for i in range(50):\n"
                "    print(f'\\r{i}/50', end='', flush=True)\n"
                "    time.sleep(0.02)\n"
                "print()\n"
            ),
            "%logflush",
        ],
    )
    lines, samples = _run_bar(nb(path))
    for r in range(2):
        assert lines[r] == {"stdout": ["49/50"], "stderr": []}, f"rank {r}: the bar did not end as one line: {lines[r]}"
        s = samples[str(r)]
        assert s["maxLines"]["stdout"] == 1, f"rank {r}: the bar took {s['maxLines']['stdout']} lines at some point"
        seen = s["texts"]["stdout"]
        steps = [int(t.split("/")[0]) for t in seen]
        assert all(re.fullmatch(r"\d+/50", t) for t in seen), f"rank {r}: unexpected bar texts {seen}"
        assert steps == sorted(steps), f"rank {r}: the bar went backwards: {seen}"
        assert len(seen) >= 5, f"rank {r}: the bar did not animate (texts seen: {seen})"


def test_real_tqdm_bar_on_stderr(nb, lab):
    path = lab.write_notebook(
        "tqdm.ipynb",
        [
            LOAD,
            (
                "%%procs 2\nimport time, sys\nfrom tqdm import tqdm\n"
                "for _ in tqdm(range(50), file=sys.stderr):\n    time.sleep(0.02)\n"
            ),
            "%logflush",
        ],
    )
    lines, samples = _run_bar(nb(path))
    for r in range(2):
        assert len(lines[r]["stderr"]) == 1 and "50/50" in lines[r]["stderr"][0], f"rank {r}: {lines[r]}"
        assert samples[str(r)]["maxLines"]["stderr"] == 1
        assert len(samples[str(r)]["texts"]["stderr"]) >= 5


def test_html_in_output_is_text_not_markup(nb, lab):
    img = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=2</script>"
    path = lab.write_notebook(
        "xss.ipynb",
        [LOAD, f"%%procs 2\nprint({img!r})\nprint({script!r})\n", "%logflush"],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.wait_procs(1, 2)
    n.run_cell(2)
    assert_rendered(n.output_text(2), range(2))
    out = n.output(1)
    assert out.locator("img").count() == 0
    assert out.locator("script").count() == 0
    assert n.page.evaluate("() => typeof window.__pwned") == "undefined"
    lines = n.lines(1)
    for r in range(2):
        assert lines[r]["stdout"] == [img, script], f"rank {r}: {lines[r]}"
        shown = n.proc(1, r).locator(".ipylogfwd-line")
        assert shown.nth(0).is_visible() and shown.nth(0).inner_text() == img
        assert shown.nth(1).inner_text() == script
    assert n.page.evaluate("() => typeof window.__pwned") == "undefined"


def test_crashed_proc_shows_its_exit_code(nb, lab):
    path = lab.write_notebook(
        "crash.ipynb",
        [
            LOAD,
            "%%procs 2\nimport os\nif os.environ['RANK'] == '1':\n    os._exit(3)\n"
            "print('alive', os.environ['RANK'])\n",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.wait_procs(1, 2)
    crashed = n.proc(1, 1)
    wait_for(
        n.page,
        "(el) => el.dataset.state === 'exited'"
        " && el.querySelector('.ipylogfwd-header').textContent.includes('exited with code 3')",
        "rank 1's widget to show data-state=exited and 'exited with code 3' in its header",
        arg=crashed.element_handle(),
        timeout=10_000,
    )
    assert "exited with code 3" in crashed.locator(".ipylogfwd-header").inner_text()
    survivor = n.proc(1, 0)
    assert survivor.get_attribute("data-state") != "exited"
    assert n.lines(1)[0]["stdout"] == ["alive 0"]
    # The cell says which rank failed (ProcsError).
    errors = [o for o in n.outputs_json(1) if o["output_type"] == "error"]
    assert [(e["ename"], e["evalue"].split(":")[0]) for e in errors] == [("ProcsError", "cell failed on rank 1")], (
        errors
    )


def test_reloaded_page_catches_up(nb, lab):
    count = 700  # ~8 s of output: the page is reloaded while the procs print
    path = lab.write_notebook(
        "reload.ipynb",
        [
            LOAD,
            (
                "%%procs 2 --bg\nimport time\n"
                f"for i in range({count}):\n    print(f'line {{i:04d}}', flush=True)\n    time.sleep(0.01)\n"
            ),
            "job = _",
            "job.wait(60)\nreport = %logflush\nreport",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.run_cell(2)
    n.wait_procs(1, 2)
    wait_for(
        n.page,
        """([i]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                      return c.node.querySelectorAll('.ipylogfwd-proc[data-rank="0"] .ipylogfwd-line')
                                   .length >= 30; }""",
        "rank 0's widget to show 30 lines before the reload",
        arg=[1],
        timeout=20_000,
    )
    n.save()
    before = {r: len(v["stdout"]) for r, v in n.lines(1).items()}
    assert all(c < count for c in before.values()), f"the job ended before the reload: {before}"
    t_reload = time.monotonic()
    n.page.reload()
    n.wait_ready()
    n.wait_procs(1, 2, timeout=30_000)
    after_reload = {r: len(v["stdout"]) for r, v in n.lines(1).items()}
    print(
        f"lines before reload {before}, right after the views came back {after_reload} "
        f"({time.monotonic() - t_reload:.1f} s after the reload)"
    )
    n.run_cell(3)
    assert_rendered(n.output_text(3), range(2))
    lines = n.lines(1)
    for r in range(2):
        got = lines[r]["stdout"]
        assert got, f"rank {r}: no lines after the reload"
        m = re.fullmatch(r"line (\d{4})", got[0])
        assert m, f"rank {r}: first line {got[0]!r}"
        start = int(m.group(1))
        want = [f"line {i:04d}" for i in range(start, count)]
        assert got == want, f"rank {r}: not the tail in order: {first_difference(got, want)}"
        hidden = n.proc(1, r).locator(".ipylogfwd-hidden")
        if start > 0:
            assert hidden.inner_text().startswith(f"{start} earlier line"), hidden.inner_text()
        else:
            assert not hidden.is_visible()
    assert problems_in(n.outputs_json()) == []


def test_64_procs_flat_out_stay_under_iopub_limits(nb, lab):
    procs = 64
    path = lab.write_notebook(
        "flood.ipynb",
        [
            LOAD,
            f"%procs {procs}",  # start the procs first: spawning 64 is not what this test measures
            (
                f"%%procs {procs}\n"
                "import os, time\n"
                "r = os.environ['RANK']\n"
                "t0 = time.time(); i = 0\n"
                "while time.time() - t0 < 10:\n"
                "    print(f'{r} {i} ' + 'x' * 60)\n"
                "    i += 1\n"
                "i\n"
            ),
            "%logflush",
            "1 + 1",
        ],
    )
    n: Notebook = nb(path)
    n.run_cell(0)
    t0 = time.monotonic()
    n.run_cell(1, timeout=120_000)
    t_spawn = time.monotonic() - t0
    log_start = lab.log_size()
    t0 = time.monotonic()
    floor = n.start_cell(2)
    n.merged(2).wait_for(state="attached", timeout=30_000)  # 64 procs: the merged view first
    t_views = time.monotonic() - t0
    # While the procs print, the page answers: time round trips into the page.
    worst = 0.0
    busy = True
    while busy:
        t = time.monotonic()
        busy = n.page.evaluate(
            "([i]) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount == null", [2]
        )
        worst = max(worst, time.monotonic() - t)
        if busy:
            n.page.wait_for_timeout(200)  # the probe's sampling interval, not a wait for state
    n.wait_cell_done(2, floor, timeout=120_000)
    t_cell = time.monotonic() - t0
    peak = peak_rate(n.page.ws_frames, t0, time.monotonic())
    # ... and a click works: rank 5's cell in the header's grid opens its widget.
    n.panel(2).locator('.ipylogfwd-grid .ipylogfwd-cell[data-rank="5"]').click(timeout=10_000)
    n.proc(2, 5).wait_for(state="visible", timeout=10_000)
    n.run_cell(3, timeout=60_000)
    report = n.output_text(3)
    n.run_cell(4, timeout=30_000)
    assert n.output_text(4).strip() == "2"
    print(
        f"64 procs started in {t_spawn:.1f} s; flood cell: merged view after {t_views:.1f} s, "
        f"done after {t_cell:.1f} s; "
        f"worst page round trip while flooding: {worst * 1000:.0f} ms; peak websocket message rate "
        f"{peak:.0f}/s over 3 s (the server's default limit: 1000/s)"
    )
    print(report)
    log = lab.log_since(log_start)
    hits = [line for line in log.splitlines() if RATE_EXCEEDED.search(line)]
    assert hits == [], "the server hit its IOPub rate limit:\n" + "\n".join(hits)
    stderr = [p for p in problems_in(n.outputs_json()) if "rate exceeded" in p]
    assert stderr == []
    assert worst < 5.0, f"the page took {worst:.1f} s to answer while the procs printed"
    assert_rendered(report, range(procs))
    # Every proc's widget ends with its last line (the view keeps a bounded tail).
    counts = {}
    for o in n.outputs_json(2):
        if o["output_type"] == "execute_result":
            counts = ast.literal_eval(o["data"]["text/plain"])  # {rank: lines printed}
    assert sorted(counts) == list(range(procs)), n.outputs_json(2)
    # "rendered" with the merged view on screen: it keeps the newest rows (by the time the
    # kernel read them: with every line different, the last few thousand of all ranks), and a
    # rank it shows ends with that rank's last line.
    last_rows: dict[str, str] = {}
    for row in n.merged_rows(2):
        last_rows[str(row["ranks"])] = str(row["text"])
    assert last_rows, "the merged view shows no row after the flood"
    for rank, text in last_rows.items():
        want = f"{rank} {counts[int(rank)] - 1} " + "x" * 60
        assert text == want, f"rank {rank}: its last row in the merged view is {text!r}, its last line {want!r}"
    # One widget per proc: each ends with its last line (the view keeps a bounded tail).
    n.panel(2).locator("button[data-ipylogfwd-mode]").click()
    n.wait_procs(2, procs, timeout=30_000)
    wait_for(
        n.page,
        """([i, want]) => { const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             return Object.entries(want).every(([r, last]) => {
               const ls = c.node.querySelectorAll(`.ipylogfwd-proc[data-rank="${r}"] .ipylogfwd-line`);
               return ls.length > 0 && ls[ls.length - 1].textContent === last; }); }""",
        "every one of the 64 widgets to end with its proc's last line",
        arg=[2, {str(r): f"{r} {counts[r] - 1} " + "x" * 60 for r in range(procs)}],
        timeout=30_000,
    )


def _sample_cell(procs: int) -> str:
    return (
        f"%%procs {procs}\n"
        "import os, sys\n"
        "r = int(os.environ['RANK'])\n"
        "for step in range(8):\n"
        "    print(f'rank {r} step {step}: loss {1 / (step + 1):.4f}')\n"
        "print(f'\\x1b[32mok\\x1b[0m rank {r} \\x1b[1;34mdone\\x1b[0m')\n"
        "print(f'warning: rank {r} saw a slow batch', file=sys.stderr)\n"
    )


def test_screenshots_light_and_dark(nb, lab):
    path = lab.write_notebook("look.ipynb", [LOAD, _sample_cell(2), "%logflush", _sample_cell(16), "%logflush"])
    n: Notebook = nb(path)
    n.page.set_viewport_size({"width": 1500, "height": 1500})
    n.command("application:toggle-left-area")
    shots = []
    try:
        n.run_cell(0)
        for cell, procs in ((1, 2), (3, 16)):
            n.run_cell(cell)
            if procs >= 8:  # many procs start with the merged view: show the widgets
                n.panel(cell).locator("button[data-ipylogfwd-mode]").click()
            n.wait_procs(cell, procs)
            n.run_cell(cell + 1)
            assert_rendered(n.output_text(cell + 1), range(procs))
            # The headers catch up (they refresh about once a second): idle, final counts.
            wait_for(
                n.page,
                """([i, n]) => {
                     const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                     const ps = c.node.querySelectorAll('.ipylogfwd-proc[data-rank]');
                     return ps.length === n && Array.from(ps).every(p => p.dataset.state === 'idle'
                       && p.querySelector('.ipylogfwd-counts').textContent === 'out 9 · err 1'
                       && p.querySelector('.ipylogfwd-heard').textContent.startsWith('heard'));
                   }""",
                f"every header of cell {cell} to read idle, 'out 9 · err 1' and 'heard ...'",
                arg=[cell, procs],
                timeout=10_000,
            )
            panel = n.output(cell).locator(".ipylogfwd-panel")
            for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
                n.set_theme(theme)
                shots.append(n.screenshot(panel, f"widgets-{procs}-{name}.png"))
            n.set_theme("JupyterLab Light")
    finally:
        n.set_theme("JupyterLab Light")  # the theme is a user setting: do not leak it into later tests
    print("\n".join(str(s) for s in shots))
    for s in shots:
        assert s.stat().st_size > 10_000, s


def test_rendered_flush_with_ipykernel_6_29(nb, lab):
    """ipykernel 6.29 has no subshells: the views acknowledge over the control channel."""
    from .labdriver import IPK6_KERNEL, IPK6_PYTHON

    assert IPK6_PYTHON.exists(), f"{IPK6_PYTHON} is missing: run scripts/setup"
    path = lab.write_notebook(
        "ipk6.ipynb",
        [
            "import ipykernel; print(ipykernel.__version__)\n%load_ext ipylogfwd",
            "%%procs 2\nfor i in range(40):\n    print(f'line {i:02d}')",
            "r = %logflush\nprint(r.outcomes)",
        ],
        kernel=IPK6_KERNEL,
    )
    notebook = nb(path)
    notebook.run_all()
    assert notebook.output_text(0).startswith("6.29."), notebook.output_text(0)
    assert "{0: 'rendered', 1: 'rendered'}" in notebook.output_text(2), notebook.output_text(2)
    lines = notebook.lines(1)
    for rank in (0, 1):
        assert lines[rank]["stdout"] == [f"line {i:02d}" for i in range(40)]
