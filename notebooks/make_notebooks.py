"""Writes the notebooks in this folder from their source below, and executes them so that
their stored outputs are the ones nbval compares against.

    python notebooks/make_notebooks.py              # every notebook
    python notebooks/make_notebooks.py distributed  # only notebooks/distributed.ipynb
"""

from __future__ import annotations

import sys
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

DISTRIBUTED = [
    new_markdown_cell(
        "# torch.distributed in procs\n\n"
        "Each proc starts with what `torch.distributed` reads from the environment: `RANK`, "
        "`WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, and a `MASTER_PORT` "
        "chosen for these procs (it stays until `%procs --restart`). So "
        "`dist.init_process_group(\"gloo\")` needs no set-up. Values you set in the kernel's "
        "environment before the procs start win (`MASTER_PORT`, `OMP_NUM_THREADS`)."
    ),
    new_code_cell("%load_ext ipylogfwd\nimport ipylogfwd, time"),
    new_markdown_cell(
        "A tiny model trained with `DistributedDataParallel` over gloo on 2 procs: each rank has "
        "its own data, DDP averages the gradients, and each rank prints its own loss."
    ),
    ignore_output(
        "%%procs 2\n"
        "import os, time, torch, torch.distributed as dist\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "rank = int(os.environ['RANK'])\n"
        "dist.init_process_group('gloo')\n"
        "torch.manual_seed(0)\n"
        "model = DDP(torch.nn.Linear(4, 1))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "gen = torch.Generator().manual_seed(rank)  # each rank its own data\n"
        "x = torch.randn(64, 4, generator=gen)\n"
        "y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])\n"
        "losses = []\n"
        "for epoch in range(5):\n"
        "    opt.zero_grad()\n"
        "    loss = torch.nn.functional.mse_loss(model(x), y)\n"
        "    loss.backward()  # DDP averages the gradients across ranks\n"
        "    opt.step()\n"
        "    losses.append(loss.item())\n"
        "    print(f'epoch {epoch} loss {loss.item():.4f}')"
    ),
    new_markdown_cell(
        "The losses differ per rank (their data differ); the weights are the same on every rank, "
        "which is what DDP is for. Values come back per rank."
    ),
    new_code_cell("%%procs 2\nround(loss.item(), 3)"),
    new_code_cell("%%procs 2\n[round(w, 4) for w in model.module.weight.flatten().tolist()]"),
    new_code_cell("weights = _\nprint('the same weights on every rank:', weights[0] == weights[1])"),
    new_markdown_cell(
        "A figure drawn in a proc shows in the notebook, labelled with its rank: here rank 0's "
        "loss curve (`plt.show()` in a proc, drawn by matplotlib's Agg)."
    ),
    ignore_output(
        "%%procs 2 --targets 0\n"
        "import matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(4, 2.5))\n"
        "plt.plot(losses, marker='o')\n"
        "plt.title('rank 0: loss per epoch')\n"
        "plt.show()"
    ),
    new_markdown_cell(
        "## A hung collective\n\n"
        "Rank 1 never joins the `all_reduce` rank 0 waits in. `%procs --stacks` shows where "
        "every proc is, even one stuck in C code: the cell's own frames as `<procs cell N>` with "
        "their source line, and ranks doing the same thing shown together."
    ),
    ignore_output(
        "%%procs 2 --bg\n"
        "t = torch.ones(1)\n"
        "if rank == 0:\n"
        "    dist.all_reduce(t)  # waits for rank 1, which never comes\n"
        "else:\n"
        "    time.sleep(3600)"
    ),
    new_code_cell("job = _"),
    ignore_output(
        "group = ipylogfwd.current_group()\n"
        "while 'all_reduce' not in group.stacks().by_rank[0]:  # until rank 0 is in it\n"
        "    time.sleep(0.1)\n"
        "%procs --stacks"
    ),
    new_markdown_cell("The frames of the cells, per rank (the full stacks are above):"),
    new_code_cell(
        "stacks = group.stacks()\n"
        "for rank, text in stacks.by_rank.items():\n"
        "    lines = [line.strip() for line in text.splitlines()]\n"
        "    cell = [f'{a} | {b}' for a, b in zip(lines, lines[1:]) if a.startswith('<procs cell')]\n"
        "    print(rank, lines[0], cell)"
    ),
    new_markdown_cell(
        "## Getting going again\n\n"
        "`%procs --kill 1` kills rank 1 (and everything it started) and starts a fresh proc in "
        "its place, with the same rank and environment and an empty namespace; rank 0 keeps its "
        "state. Rank 0's collective then fails at once: its peer is gone."
    ),
    ignore_output("%procs --kill 1"),
    new_code_cell(
        "try:\n"
        "    job.wait(30)\n"
        "except ipylogfwd.ProcsError as error:\n"
        "    print(sorted(error.error_types.items()))"
    ),
    new_markdown_cell(
        "Rank 0 kept its namespace, but its process group lost a member, which torch does not "
        "repair in place (the rendezvous store of the old group lives on in rank 0). Replace "
        "rank 0 too, then make the process group again and go on:"
    ),
    ignore_output("%procs --kill 0"),
    new_code_cell(
        "%%procs 2\n"
        "import os, time, torch, torch.distributed as dist\n"
        "rank = int(os.environ['RANK'])\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.ones(1)\n"
        "dist.all_reduce(t)\n"
        "t.item()"
    ),
    new_markdown_cell(
        "`%%procs --timeout S` escalates the same way: SIGINT at the timeout, then a kill and a "
        "fresh proc for a rank still running 2 s later; `job.cancel()` does it for a `--bg` cell."
    ),
    new_code_cell("%procs --shutdown"),
]


MULTIHOST = [
    new_markdown_cell(
        "# Procs on many hosts\n\n"
        "With a launcher, `%%procs` runs its procs on several hosts: one agent per host spawns "
        "them, reads their output there and streams it to the kernel, in order per proc, with "
        "the same barrier. Here `LocalLauncher` starts two agents on this machine, each a "
        "\"host\" of its own, so the notebook runs anywhere; `RayLauncher`, "
        "`CommandLauncher.ssh` or `CommandLauncher.slurm` do the same on real hosts "
        "(see docs/multihost.md)."
    ),
    new_code_cell("%load_ext ipylogfwd\nimport ipylogfwd, tempfile\nfrom ipylogfwd.launchers import LocalLauncher"),
    new_code_cell("hosts = LocalLauncher(hosts=2)"),
    new_markdown_cell(
        "Ranks are contiguous per host. Each proc gets the environment `torchrun` would give "
        "it: its rank, its host's rank (`NODE_RANK`) and its rank on that host (`LOCAL_RANK`), "
        "and the first host's address as `MASTER_ADDR`."
    ),
    ignore_output(
        "%%procs 4 --launcher hosts\n"
        "import os\n"
        "rank, node, local = os.environ['RANK'], os.environ['NODE_RANK'], os.environ['LOCAL_RANK']\n"
        "print(f'rank {rank} on host {node} as local rank {local}')"
    ),
    new_code_cell(
        "%%procs 4\n(os.environ['NODE_RANK'], os.environ['LOCAL_RANK'], os.environ['LOCAL_WORLD_SIZE'])"
    ),
    new_markdown_cell(
        "`%logflush` sends one request per host; each agent marks its procs' streams and the "
        "barrier travels behind their output, so when it returns everything printed before it "
        "is shown."
    ),
    ignore_output(
        "%%procs 4 --bg\n"
        "import time\n"
        "for i in range(3):\n"
        "    print(f'line {i} of rank {os.environ[\"RANK\"]}')\n"
        "    time.sleep(0.05)"
    ),
    new_code_cell("_.wait(30)\nreport = %logflush\nreport.ok"),
    new_markdown_cell("`%procs` has a host column, and a row per host: its agent, its link, the round trip."),
    ignore_output("%procs"),
    new_markdown_cell("`torch.distributed` works across the hosts with no set-up:"),
    new_code_cell(
        "%%procs 4\n"
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([float(dist.get_rank())])\n"
        "dist.all_reduce(t)\n"
        "dist.destroy_process_group()\n"
        "t.item()"
    ),
    new_markdown_cell(
        "Each host keeps its procs' complete log files; `fetch_logs` brings them here, one "
        "folder per host."
    ),
    new_code_cell(
        "dest = tempfile.mkdtemp()\n"
        "files = ipylogfwd.current_group().fetch_logs(dest)\n"
        "sorted(str(f.relative_to(dest)) for f in files)"
    ),
    new_code_cell("%procs --shutdown"),
]


def build(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(HERE)}}
    ).execute()
    nbformat.write(nb, HERE / name)


NOTEBOOKS = {
    "quickstart": QUICKSTART,
    "ordering": ORDERING,
    "failures": FAILURES,
    "distributed": DISTRIBUTED,
    "multihost": MULTIHOST,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or NOTEBOOKS:
        build(f"{name}.ipynb", NOTEBOOKS[name])
