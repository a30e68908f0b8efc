"""The widgets in Notebook 7 (served by the same Jupyter server as JupyterLab)."""

from __future__ import annotations

from typing import Any

from .labdriver import LabServer, wait_for


def run_all_until_flushed(page: Any, lab: LabServer, name: str, procs_cell: str) -> None:
    """Write notebook ``name`` (``%load_ext``, ``procs_cell``, a ``%logflush`` cell), open it
    in Notebook 7, run all its cells, and wait until the flush printed that every proc's
    widget rendered everything before the barrier."""
    path = lab.write_notebook(
        name, ["%load_ext ipylogfwd", procs_cell, "r = %logflush\nprint('FLUSH', sorted(set(r.outcomes.values())))"]
    )
    page.goto(f"{lab.url}/notebooks/{path}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # Run All before the kernel is ready is lost: wait for it to be started and idle.
    wait_for(
        page,
        "() => !!document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')",
        "Notebook 7's kernel to be idle (.jp-Notebook-ExecutionIndicator[data-status=idle])",
        timeout=60_000,
    )
    # On a loaded machine the indicator can say idle before the kernel takes requests, and a
    # Run All then runs nothing (every prompt stays "[ ]"): try again while nothing started.
    for attempt in range(3):
        page.get_by_text("Run", exact=True).first.click()
        page.get_by_text("Run All Cells", exact=True).first.click()
        try:
            wait_for(
                page,
                "() => [...document.querySelectorAll('.jp-InputPrompt')]"
                ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))",
                "a cell of Notebook 7 to start running (a prompt showing [*] or [N])",
                timeout=20_000,
            )
            break
        except AssertionError:  # wait_for's timeout
            if attempt == 2:
                raise
    wait_for(
        page,
        "() => document.body.innerText.includes(\"FLUSH ['rendered']\")",
        "Notebook 7 to run all cells and %logflush to report 'rendered' for every proc",
        timeout=120_000,
    )


def test_widgets_and_rendered_flush_in_notebook_7(page: Any, lab: LabServer) -> None:
    run_all_until_flushed(page, lab, "nb7.ipynb", "%%procs 2\nfor i in range(30):\n    print(f'line {i:02d}')")
    for rank in (0, 1):
        texts = page.locator(f'.ipylogfwd-proc[data-rank="{rank}"] .ipylogfwd-line').all_inner_texts()
        assert texts == [f"line {i:02d}" for i in range(30)], texts


def test_the_merged_view_and_its_toggle_in_notebook_7(page: Any, lab: LabServer) -> None:
    run_all_until_flushed(
        page,
        lab,
        "nb7merged.ipynb",
        "%%procs 8\nimport os\nfor i in range(3):\n    print(f'line {i}')\nprint('rank', os.environ['RANK'])",
    )
    # 8 procs: the merged view, its rows as rendered when the flush returned.
    rows = page.locator("[data-ipylogfwd-merged] .ipylogfwd-mrow")
    got = [
        (rows.nth(i).get_attribute("data-ranks"), rows.nth(i).locator(".ipylogfwd-mtext").first.inner_text())
        for i in range(rows.count())
    ]
    assert got[:3] == [("0-7", f"line {i}") for i in range(3)], got
    assert sorted(got[3:]) == sorted((str(r), f"rank {r}") for r in range(8)), got
    assert page.locator(".ipylogfwd-panel .ipylogfwd-proc").count() == 0
    # The toggle: one widget per proc, and back.
    page.locator("button[data-ipylogfwd-mode]").click()
    wait_for(
        page,
        "() => document.querySelectorAll('.ipylogfwd-panel .ipylogfwd-proc[data-rank]').length === 8"
        " && [...document.querySelectorAll('.ipylogfwd-panel .ipylogfwd-proc[data-rank] .ipylogfwd-body')].every("
        "b => b.querySelectorAll('.ipylogfwd-line').length === 4)",
        "8 widgets of 4 lines each after the toggle",
        timeout=30_000,
    )
    page.locator("button[data-ipylogfwd-mode]").click()
    page.locator("[data-ipylogfwd-merged]").wait_for(state="visible", timeout=10_000)
    wait_for(
        page,
        "() => document.querySelectorAll('[data-ipylogfwd-merged] .ipylogfwd-mrow').length === 11"
        " && document.querySelectorAll('.ipylogfwd-panel .ipylogfwd-proc').length === 0",
        "the merged view back with its 11 rows, and no widget left",
        timeout=30_000,
    )
