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


ORDERING = [
    new_markdown_cell(
        "# What is ordered, and what is not\n\n"
        "ipylogfwd keeps the contract of the distributed runtime it borrows from:\n\n"
        "* **per proc, per stream**: each proc's stdout lines arrive in the order it wrote them, "
        "and so do its stderr lines;\n"
        "* **no global order**: nothing is promised between a proc's stdout and its stderr, nor "
        "across procs;\n"
        "* **the barrier** (`%logflush`) means: for every proc, everything it wrote before the "
        "barrier is shown. It does not sort anything.\n\n"
        "If you need more, put sequence markers in your own output, as below."
    ),
    new_code_cell("%load_ext ipylogfwd\nimport glob, os, re\nimport ipylogfwd"),
    new_markdown_cell(
        "Each proc writes numbered lines to both streams, alternating. Watch the output: within "
        "one rank and one stream the numbers only go up; between streams and ranks they interleave "
        "however the pipes were read."
    ),
    ignore_output(
        "%%procs 4\n"
        "import os, sys\n"
        "rank = int(os.environ['RANK'])\n"
        "for seq in range(200):\n"
        "    print(f'rank={rank} stream=out seq={seq}')\n"
        "    print(f'rank={rank} stream=err seq={seq}', file=sys.stderr)"
    ),
    new_markdown_cell(
        "Every byte also goes to per-proc log files. Checking them against the sequence markers "
        "proves the per-proc, per-stream order (the cell's output follows the same order)."
    ),
    new_code_cell(
        "logdir = ipylogfwd.current_group().logdir\n"
        "def seqs(path):\n"
        "    return [int(m) for m in re.findall(r'seq=(\\d+)', open(path).read())]\n"
        "ok = all(seqs(p) == list(range(200)) for p in sorted(glob.glob(f'{logdir}/rank*.log')))\n"
        "print('per proc, per stream, in order:', ok)"
    ),
    new_markdown_cell(
        "## The barrier\n\n"
        "A background cell keeps printing. `%logflush` asks every proc to mark its streams; when "
        "it returns, everything before each proc's mark is shown, whatever is still being printed "
        "after it."
    ),
    ignore_output(
        "%%procs 4 --bg\n"
        "import time\n"
        "for seq in range(40):\n"
        "    print(f'rank={rank} bg seq={seq}', flush=True)\n"
        "    time.sleep(0.05)"
    ),
    new_code_cell("job = _"),
    ignore_output("report = %logflush\nreport"),
    new_code_cell("print('every proc reached the barrier:', report.ok)"),
    ignore_output("job.wait(60);"),
    new_markdown_cell(
        "## Sequence markers at the source\n\n"
        "To reason across procs, stamp your lines yourself, for example with a clock and a "
        "counter, and merge the logs afterwards:"
    ),
    ignore_output(
        "%%procs 4\n"
        "import time\n"
        "for seq in range(3):\n"
        "    print(f'{time.time():.6f} rank={rank} seq={seq}', flush=True)"
    ),
    new_code_cell(
        "%logflush\n"
        "lines = []\n"
        "for p in glob.glob(f'{logdir}/rank*.stdout.log'):\n"
        "    lines += [l for l in open(p) if re.match(r'^\\d+\\.\\d+ rank=', l)]\n"
        "merged = sorted(lines)\n"
        "print(len(merged), 'stamped lines, merged by time across procs')"
    ),
    new_code_cell("%procs --shutdown"),
]

FAILURES = [
    new_markdown_cell(
        "# When procs fail\n\n"
        "A proc that crashes loses nothing it wrote; a proc that hangs does not hang the notebook; "
        "`%logflush` always returns, and its report says what each proc reached."
    ),
    new_code_cell("%load_ext ipylogfwd\nimport ipylogfwd"),
    new_markdown_cell(
        "Rank 1 writes half a line and exits at once with code 3. Everything it wrote is shown, and "
        "the cell raises one error naming the rank."
    ),
    new_code_cell(
        "%%procs 2\n"
        "import os, sys\n"
        "print('started', flush=True)\n"
        "if os.environ['RANK'] == '1':\n"
        "    os.write(1, b'half a li')\n"
        "    os._exit(3)",
        metadata={"tags": ["raises-exception", "nbval-ignore-output"]},
    ),
    new_code_cell("status = %procs\nprint(status[1].state, '/', status[1].exit)"),
    new_markdown_cell(
        "A proc stuck in C code that holds the GIL cannot serve the flush: it gets the weaker "
        "barrier (everything read from it so far), and the report says so. The others get the "
        "full one."
    ),
    new_code_cell("%%procs 2 --restart\n'fresh procs'"),
    ignore_output(
        "%%procs 2 --bg\n"
        "import os\n"
        "print('about to get stuck', flush=True)\n"
        "if os.environ['RANK'] == '1':\n"
        "    sum(range(10**11))  # holds the GIL for minutes"
    ),
    ignore_output("import time; time.sleep(0.5)\nreport = %logflush --timeout 3\nreport"),
    new_code_cell("print('rank 1:', report[1].outcome, '| whole report ok:', report.ok)"),
    new_markdown_cell("`%procs --restart` replaces stuck procs (and kills their children)."),
    new_code_cell("%procs --restart\nprint(sorted(s.state for s in ipylogfwd.current_group().status().procs))"),
    new_code_cell("%procs --shutdown"),
]


def build(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(HERE)}}
    ).execute()
    nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    build("quickstart.ipynb", QUICKSTART)
    build("ordering.ipynb", ORDERING)
    build("failures.ipynb", FAILURES)
