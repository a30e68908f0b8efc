"""The widgets in Notebook 7 (served by the same Jupyter server as JupyterLab)."""

from __future__ import annotations

from typing import Any

from .labdriver import LabServer, wait_for


def test_widgets_and_rendered_flush_in_notebook_7(page: Any, lab: LabServer) -> None:
    path = lab.write_notebook(
        "nb7.ipynb",
        [
            "%load_ext ipylogfwd",
            "%%procs 2\nfor i in range(30):\n    print(f'line {i:02d}')",
            "r = %logflush\nprint('FLUSH', sorted(set(r.outcomes.values())))",
        ],
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
    for rank in (0, 1):
        texts = page.locator(f'.ipylogfwd-proc[data-rank="{rank}"] .ipylogfwd-line').all_inner_texts()
        assert texts == [f"line {i:02d}" for i in range(30)], texts
