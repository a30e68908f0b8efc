"""Writes the notebooks in this folder from their source below, and executes them so that
their stored outputs are the ones nbval compares against.

    python notebooks/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent


def ignore_output(source: str):  # type: ignore[no-untyped-def]
    """A cell whose output varies from run to run (timing, interleaving): nbval runs it but
    does not compare its output. A tag, since a cell magic must stay on the first line."""
    return new_code_cell(source, metadata={"tags": ["nbval-ignore-output"]})

QUICKSTART = [
    new_markdown_cell(
        "# ipylogfwd quickstart\n\n"
        "`%%procs N` runs a cell in N worker processes. Each proc's stdout and stderr stream "
        "into the cell as they are written, each line prefixed with the proc's rank, in order "
        "per proc and per stream. `%logflush` is a barrier: when it returns, everything every "
        "proc printed before it is shown."
    ),
    new_code_cell("%load_ext ipylogfwd"),
    ignore_output(
        "%%procs 4\n"
        "import os, time\n"
        "for step in range(20):\n"
        "    print(f\"rank {os.environ['RANK']} step {step}\")\n"
        "    time.sleep(0.05)"
    ),
    new_markdown_cell(
        "Procs persist across cells, each with its own namespace. The value of the body's last "
        "expression comes back per rank."
    ),
    new_code_cell("%%procs 4\nrank = int(os.environ['RANK'])\nrank ** 2"),
    new_markdown_cell(
        "Run in the background with `--bg`, keep working, and use `%logflush` before reading "
        "anything that depends on the procs' logs. The report says, per proc, how far the "
        "barrier got."
    ),
    ignore_output(
        "%%procs 4 --bg\n"
        "for i in range(3):\n"
        "    print(f'background line {i} from rank {rank}')\n"
        "    time.sleep(0.1)"
    ),
    new_code_cell("job = _\njob.wait(30)"),
    ignore_output("report = %logflush\nreport"),
    new_code_cell("report.ok"),
    new_markdown_cell("`%procs` shows each proc: pid, state, exit, lines so far, last heard."),
    ignore_output("%procs"),
    new_code_cell("%procs --shutdown"),
]


def build(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    build("quickstart.ipynb", QUICKSTART)
