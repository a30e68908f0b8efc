"""Browser benchmarks of ipylogfwd: a real JupyterLab, its widgets in headless Chromium.

Run from the project root (the venv needs jupyterlab, ipykernel, playwright and pytest, and
the ipylogfwd labextension installed; Chromium is Debian's ``/usr/bin/chromium``)::

    .venv/bin/python benchmarks/bench_browser.py            # full run (about 2 minutes)
    .venv/bin/python benchmarks/bench_browser.py --quick    # scaled down, about a minute
    .venv/bin/python benchmarks/bench_browser.py --parts 2 --flushes 300

It starts JupyterLab (default server settings: default IOPub rate limits; 127.0.0.1, a free
port, empty token, ``--allow-root``, a private settings dir with the news pop-up off, a
private root dir for the notebooks it writes), opens one notebook per part in headless
Chromium through Playwright, runs its cells as a user would (JupyterLab's own commands) and
prints what it measured. Each part gets a fresh kernel; the kernel and its procs are shut
down before the next part starts.

Parts (``--parts``, default all):

1  Catch-up: 4 procs x ``--lines`` sequence-numbered stdout lines, from a ``%%procs 4 --bg``
   cell. The next cell waits for the handle, then times ``ipylogfwd.logflush(600)``. All
   times are ``time.time()`` inside the kernel and the procs (one clock): "last print ->
   flush returned" runs from the last proc's last ``print`` to the flush's return (it
   includes the handle's wait, which returns once the cell's output is published); "flush
   call" is the flush alone. Then, in the DOM: each rank's widget ends with its last line,
   the lines shown are the contiguous tail, and the hidden-lines notice counts the rest.
   ``--runs`` runs in the same kernel and procs; medians are quoted.
2  ``%logflush`` latency with 8 idle procs (their widgets shown, the browser acking): one cell
   times ``--flushes`` calls of ``ipylogfwd.logflush()`` with ``perf_counter`` and checks
   every outcome is "rendered". p50/p90/p99 (nearest rank), the first call also alone.
3  Page responsiveness while 16 procs print flat out for ``--flood-seconds``: a buffered
   PerformanceObserver for ``longtask`` entries is installed in the page first; the procs
   print from a ``--bg`` cell; the next cell waits for them and flushes. Long tasks that
   started in that window are counted (and those over 200 ms); meanwhile the script times a
   ``page.evaluate('1')`` round trip every 500 ms. Also: every rank "rendered" and each
   widget ending with its proc's last line.

4  The merged view (the default from 8 procs on): ``--merged-procs`` procs (64) print
   distinct lines flat out for ``--flood-seconds``, ``--merged-runs`` times (5) in the same
   kernel and procs, the merged view on screen. Per run: long tasks in the window (and those
   over 200 ms; the target is none in at least 4 of 5 runs), page round trips, every rank
   "rendered", the merged view's newest rows (each rank shown ends with its last line), what
   merging cost per line (the view's ``data-merge-stats``: lines taken into rows, ms spent),
   what it keeps against its bounds (rows, copies: at most the sum of the procs' tails) and
   the page's JS heap after a garbage collection.

Everything is printed from one run. The server's and the browser's processes are stopped
in a ``finally``; every wait has a timeout that names what it waited for (calls that have
no timeout of their own, like ``page.evaluate``, run under a watchdog that stops the server
and exits with a message). The server log is kept (and its path printed) only if the run
failed. This is a script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psutil
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def _load_labdriver() -> ModuleType:
    """``tests/browser/labdriver.py`` (the browser tests' JupyterLab server and Playwright
    helpers), loaded by path under a private name: ``tests`` is not a package, and this
    instance's module globals are ours to set (see ``ARTIFACTS`` in ``main``)."""
    path = ROOT / "tests" / "browser" / "labdriver.py"
    spec = importlib.util.spec_from_file_location("ipylogfwd_bench_labdriver", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # the same module, as mypy finds it from the project root
    from tests.browser import labdriver
    from tests.browser.labdriver import LabServer, Notebook
else:
    labdriver = _load_labdriver()
    LabServer = labdriver.LabServer
    Notebook = labdriver.Notebook

LOAD = "%load_ext ipylogfwd"
BENCH = re.compile(r"^BENCH (.*)$", re.MULTILINE)
HIDDEN = re.compile(r"^(\d+) earlier lines? not shown")
RATE_EXCEEDED = re.compile(r"IOPub (message|data) rate exceeded")
OPEN_TIMEOUT = 90_000  # ms: page load, kernel start, kernel idle
SPAWN_TIMEOUT = 180_000  # ms: a cell that starts procs (16 on a small machine)
LONG_TASK_TARGET = 0.200  # s
FLUSH_P50_TARGET = 0.100  # s


@dataclass(frozen=True)
class Config:
    lines: int  # part 1: lines per proc
    runs: int  # part 1: runs (medians quoted)
    flushes: int  # part 2: flush calls timed
    idle_procs: int  # part 2
    flood_procs: int  # part 3
    flood_seconds: float  # part 3
    sample_interval: float  # part 3: s between page.evaluate('1') samples
    trace: str = ""  # part 3: write a Chromium trace of the flood's start here ("" = none)
    trace_seconds: float = 8.0  # part 3: how long the trace runs, from the --bg cell's start
    trace_js: bool = False  # part 3: the trace includes JS samples (V8's sampling profiler)
    trace_catchup: str = ""  # part 1: write a Chromium trace of the last run's flush cell here
    flood_nice: int = 0  # parts 3, 4: os.nice() increment of the flooding procs
    merged_procs: int = 64  # part 4
    merged_runs: int = 5  # part 4: floods, each in the same kernel and procs
    task_cpu: bool = False  # part 4: trace every run for each long task's CPU time (the trace costs CPU too)
    browser_cpu: int | None = None  # Chromium alone on this cpu, the rest (server, kernel, procs) on the others


FULL = Config(lines=100_000, runs=3, flushes=100, idle_procs=8, flood_procs=16, flood_seconds=30.0, sample_interval=0.5)
QUICK = Config(
    lines=10_000,
    runs=1,
    flushes=20,
    idle_procs=8,
    flood_procs=16,
    flood_seconds=5.0,
    sample_interval=0.5,
    merged_runs=1,
)


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# Bounds for calls that have no timeout of their own
# ---------------------------------------------------------------------------------------------


class Watchdog:
    """Bounds a block of calls that cannot time out by themselves (``page.evaluate``; a
    Playwright call can only be cancelled from its own thread). On expiry it says what was
    awaited, runs ``emergency`` (stops the server; the Playwright driver closes the browser
    when this process exits) and exits with status 3."""

    def __init__(self) -> None:
        self.emergency: Callable[[], None] = lambda: None

    @contextmanager
    def bound(self, seconds: float, what: str) -> Iterator[None]:
        timer = threading.Timer(seconds, self._expire, args=(seconds, what))
        timer.name = "bench-watchdog"
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _expire(self, seconds: float, what: str) -> None:
        print(
            f"\nbench_browser: timed out after {seconds:g} s waiting for {what}; stopping the server and exiting",
            file=sys.stderr,
            flush=True,
        )
        try:
            self.emergency()
        finally:
            os._exit(3)


WATCHDOG = Watchdog()


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


def kill_server(server: LabServer) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(10)


def cpu_seconds(server: LabServer) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each group of the processes the run
    started, and by the whole machine (``machine``: busy time summed over every cpu)."""
    groups = dict.fromkeys(("page renderer", "browser (other processes)", "server", "kernel", "procs"), 0.0)

    def add(group: str, p: psutil.Process) -> None:
        try:
            t = p.cpu_times()
            groups[group] += t.user + t.system
        except psutil.Error:
            pass  # gone meanwhile

    for p in psutil.Process().children(recursive=True):  # the Playwright driver and Chromium
        try:
            cmdline = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "chrom" in p.name() or "chrom" in cmdline:
            add("page renderer" if "--type=renderer" in cmdline else "browser (other processes)", p)
    add("server", psutil.Process(server.proc.pid))
    for p in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            cmdline = " ".join(p.cmdline())
        except psutil.Error:
            continue
        add("kernel" if "ipykernel" in cmdline else "procs", p)
    t = psutil.cpu_times()
    groups["machine"] = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return groups


def cpu_report(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    used = {k: after[k] - before[k] for k in after}
    ours = sum(v for k, v in used.items() if k != "machine")
    parts = [f"{k} {v:.1f} s ({100 * v / seconds:.0f}%)" for k, v in used.items() if k != "machine"]
    return (
        f"CPU over the {seconds:.1f} s (% of one cpu): "
        + ", ".join(parts)
        + f"; everything else on the machine {max(0.0, used['machine'] - ours):.1f} s "
        f"({100 * max(0.0, used['machine'] - ours) / seconds:.0f}%), of {os.cpu_count()} cpus x {seconds:.1f} s"
    )


def kernel_tree_pids(server: LabServer) -> set[int]:
    """The pids of the server's descendants (kernels and their procs)."""
    try:
        return {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def shut_kernels_down(server: LabServer, page: Page, timeout: float = 60.0) -> None:
    """Leave the notebook, shut every kernel down, and wait until the kernels and their procs
    (every process the server had started) are gone, so that the next part starts on a
    quiet machine."""
    page.goto("about:blank", timeout=30_000)
    pids = kernel_tree_pids(server)
    server.shutdown_kernels()
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if _running(p)]
        if not alive:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the kernel's processes {sorted(alive)} were still running {timeout:g} s after the kernels "
                "were shut down (orphaned procs?)"
            )
        time.sleep(0.1)  # polling interval of a wait on process state


# ---------------------------------------------------------------------------------------------
# Page and notebook helpers (on top of the browser tests' Notebook)
# ---------------------------------------------------------------------------------------------


def open_notebook(server: LabServer, page: Page, name: str, cells: list[str]) -> Notebook:
    path = server.write_notebook(name, cells)
    nb = Notebook(page, server, path)
    with WATCHDOG.bound(OPEN_TIMEOUT / 1000 + 60, f"JupyterLab to open {path}"):
        nb.open(OPEN_TIMEOUT)
    return nb


def run(nb: Notebook, index: int, timeout_ms: float) -> int:
    with WATCHDOG.bound(timeout_ms / 1000 + 60, f"cell {index} of {nb.path} to finish"):
        return nb.run_cell(index, timeout=timeout_ms)


def bench_output(nb: Notebook, index: int) -> dict[str, Any]:
    """The ``BENCH {json}`` line a measuring cell printed; the cell's errors if it has none."""
    text = nb.output_text(index)
    m = BENCH.search(text)
    if m is None:
        raise RuntimeError(f"cell {index} of {nb.path} printed no BENCH line; its output:\n{text[-3000:]}")
    data: dict[str, Any] = json.loads(m.group(1))
    return data


def cell_done(page: Page, index: int, floor: int) -> bool:
    """What ``Notebook.wait_cell_done`` waits for, checked once."""
    return bool(
        page.evaluate(
            labdriver.CELL_DONE_JS,
            [index, floor],
        )
    )


def widgets_dom(page: Page, index: int) -> dict[int, dict[str, Any]]:
    """Per rank, from the cell's proc widgets: the texts and streams of the lines shown, and
    the hidden-lines notice (empty when hidden)."""
    raw = page.evaluate(
        """(i) => {
             const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
             const out = {};
             for (const p of c.node.querySelectorAll('.ipylogfwd-proc[data-rank]')) {
               const ls = Array.from(p.querySelectorAll('.ipylogfwd-line'));
               const h = p.querySelector('.ipylogfwd-hidden');
               out[p.dataset.rank] = {
                 texts: ls.map(l => l.textContent),
                 streams: Array.from(new Set(ls.map(l => l.dataset.stream))),
                 hidden: h && !h.hidden ? h.textContent : '',
               };
             }
             return out;
           }""",
        index,
    )
    return {int(r): v for r, v in raw.items()}


HEADER_COUNTS = """
([i, want]) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const got = {};
  for (const p of c.node.querySelectorAll('.ipylogfwd-proc[data-rank]')) {
    got[p.dataset.rank] = p.querySelector('.ipylogfwd-counts').textContent;
  }
  return Object.keys(want).every(r => got[r] === want[r]);
}
"""


def header_counts_agree(page: Page, index: int, want: dict[int, str], timeout_ms: float = 10_000) -> str:
    """Wait (the headers refresh about once a second) until each rank's header counts read
    ``want[rank]``; return "" or what they read instead."""
    arg = [index, {str(r): t for r, t in want.items()}]
    try:
        labdriver.wait_for(page, HEADER_COUNTS, f"the headers of cell {index} to read {want}", timeout_ms, arg)
        return ""
    except AssertionError:
        got = page.evaluate(
            """(i) => Array.from(window.jupyterapp.shell.currentWidget.content.widgets[i].node
                 .querySelectorAll('.ipylogfwd-proc[data-rank]'),
                 p => p.dataset.rank + ': ' + p.querySelector('.ipylogfwd-counts').textContent)""",
            index,
        )
        return "; ".join(got)


def hidden_count(notice: str) -> int:
    if not notice:
        return 0
    m = HIDDEN.match(notice)
    if m is None:
        raise RuntimeError(f"unexpected hidden-lines notice {notice!r}")
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Summary:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # what, target, result, verdict

    def add(self, what: str, target: str, result: str, ok: bool | None) -> None:
        self.rows.append((what, target, result, "info" if ok is None else "PASS" if ok else "MISS"))

    def error(self, what: str, exc: BaseException) -> None:
        self.rows.append((what, "runs", f"{type(exc).__name__}", "ERROR"))

    def print(self) -> None:
        w = [max(len(r[i]) for r in [*self.rows, ("check", "target", "result", "")]) for i in range(3)]
        say(f"{'check':<{w[0]}}  {'target':<{w[1]}}  {'result':<{w[2]}}  verdict")
        say(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}  -------")
        for what, target, result, verdict in self.rows:
            say(f"{what:<{w[0]}}  {target:<{w[1]}}  {result:<{w[2]}}  {verdict}")


# ---------------------------------------------------------------------------------------------
# Machine information
# ---------------------------------------------------------------------------------------------


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> None:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    mem = psutil.virtual_memory()
    try:
        chromium = subprocess.run(
            [str(labdriver.CHROMIUM), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        chromium = f"unknown ({e})"
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = "unknown"
    say("machine")
    say(
        f"  cpus: {cpus} ({usable} usable by this process); "
        f"memory {mem.total / 2**30:.1f} GiB, {mem.available / 2**30:.1f} GiB available"
    )
    say(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    # CPU use over one second, of the whole machine and of its busiest processes (other
    # sessions on a shared machine show up here).
    procs = list(psutil.process_iter(["pid", "name"]))
    psutil.cpu_percent(None)
    for p in procs:
        with suppress(psutil.Error):  # it exited meanwhile, or is not ours to read: left out
            p.cpu_percent(None)
    time.sleep(1.0)  # the sampling window of the CPU figures
    cpu = psutil.cpu_percent(None)
    top = []
    for p in procs:
        with suppress(psutil.Error):  # it exited meanwhile, or is not ours to read: left out
            top.append((p.cpu_percent(None), p.info["name"], p.pid))
    top.sort(reverse=True)
    others = ", ".join(f"{name} (pid {pid}) {c:.0f}%" for c, name, pid in top[:3] if c >= 5) or "none over 5%"
    say(f"  CPU busy over 1 s before the run: {cpu:.0f}% of all cpus; busiest processes: {others}")
    say(f"  {platform.platform()}; Python {platform.python_version()}")
    say(
        f"  jupyterlab {version_of('jupyterlab')}, jupyter_server {version_of('jupyter_server')}, "
        f"ipykernel {version_of('ipykernel')}, ipywidgets {version_of('ipywidgets')}, "
        f"playwright {version_of('playwright')}, ipylogfwd {version_of('ipylogfwd')} (checkout {commit})"
    )
    say(f"  {chromium} ({labdriver.CHROMIUM})")


# ---------------------------------------------------------------------------------------------
# Part 1: catch-up after 4 x N lines
# ---------------------------------------------------------------------------------------------


def part1(server: LabServer, page: Page, cfg: Config, summary: Summary) -> None:
    procs, n = 4, cfg.lines
    kernel_timeout = 600
    say(
        f"\n== 1. last print of {procs} procs x {n:,} stdout lines -> %logflush returns, "
        f"all 'rendered' ({cfg.runs} run(s))"
    )
    nb = open_notebook(
        server,
        page,
        "bench_catchup.ipynb",
        [
            LOAD,
            f"%procs {procs}",  # start the procs first: spawning is not measured
            (
                f"%%procs {procs} --bg\n"
                "import os, time\n"
                "r = os.environ['RANK']\n"
                "t_first = time.time()\n"
                f"for i in range({n}):\n"
                "    print(f'r{r} {i:07d}')\n"
                "t_last = time.time()  # after the last print call (block-buffered: not yet flushed)\n"
                "(t_first, t_last)\n"
            ),
            (
                "import json, time, ipylogfwd\n"
                "job = _  # the --bg cell's handle\n"
                f"res = job.wait({kernel_timeout})  # returns once the cell's output is published\n"
                "t_waited = time.time()\n"
                "t0 = time.time()\n"
                f"rep = ipylogfwd.logflush({kernel_timeout})\n"
                "t1 = time.time()\n"
                "print('BENCH ' + json.dumps({'results': {str(k): v for k, v in res.items()},\n"
                "    't_waited': t_waited, 't0': t0, 't1': t1, 'note': rep.note,\n"
                "    'outcomes': {str(k): v for k, v in rep.outcomes.items()},\n"
                "    'seconds': {str(e.rank): e.seconds for e in rep.entries}}))\n"
                "rep\n"
            ),
        ],
    )
    run(nb, 0, 60_000)
    t = time.monotonic()
    run(nb, 1, SPAWN_TIMEOUT)
    say(f"  {procs} procs started in {time.monotonic() - t:.1f} s (not measured)")
    cell_timeout = (2 * kernel_timeout + 120) * 1000
    totals, flushes, waits, prints = [], [], [], []
    all_rendered, all_last, all_tail, all_hidden, all_counts = True, True, True, True, True
    for k in range(cfg.runs):
        run(nb, 2, 60_000)
        with WATCHDOG.bound(60, f"{procs} proc widgets in cell 2"):
            nb.wait_procs(2, procs, timeout=30_000)
        browser = page.context.browser
        tracing = bool(cfg.trace_catchup) and k == cfg.runs - 1 and browser is not None
        if tracing and browser is not None:
            with WATCHDOG.bound(60, "Chromium to start tracing"):
                categories = TRACE_CATEGORIES + ([PROFILER_CATEGORY] if cfg.trace_js else [])
                browser.start_tracing(page=page, path=cfg.trace_catchup, categories=categories)
                page.evaluate("performance.mark('bench: flush cell started')")  # the trace's origin
        run(nb, 3, cell_timeout)
        if tracing and browser is not None:
            with WATCHDOG.bound(120, "Chromium to stop tracing"):
                browser.stop_tracing()
            say(f"  trace of run {k + 1}'s flush cell written to {cfg.trace_catchup}")
        with WATCHDOG.bound(60, "reading the widgets' DOM"):
            dom = widgets_dom(page, 2)  # at once: "rendered" means in the DOM now
        b = bench_output(nb, 3)
        t_lasts = {int(r): v[1] for r, v in b["results"].items()}
        t_firsts = {int(r): v[0] for r, v in b["results"].items()}
        last_print = max(t_lasts.values())
        total = b["t1"] - last_print
        flush = b["t1"] - b["t0"]
        wait = b["t_waited"] - last_print
        printing = max(t_lasts[r] - t_firsts[r] for r in t_lasts)
        totals.append(total)
        flushes.append(flush)
        waits.append(wait)
        prints.append(printing)
        outcomes = {int(r): o for r, o in b["outcomes"].items()}
        rendered = outcomes == dict.fromkeys(range(procs), "rendered")
        all_rendered &= rendered
        say(
            f"  run {k + 1}: last print -> flush returned {total:.3f} s "
            f"(-> handle's wait returned {wait:.3f} s; flush call {ms(flush)}); "
            f"procs printed for {printing:.2f} s (slowest)"
        )
        say(
            f"         outcomes {sorted(set(outcomes.values()))}"
            + (f" {outcomes}" if not rendered else "")
            + (f"; note: {b['note']}" if b["note"] else "")
            + "; per-rank flush entries "
            + ", ".join(
                f"{r}: {ms(s) if s is not None else '--'}"
                for r, s in sorted((int(r), s) for r, s in b["seconds"].items())
            )
        )
        for r in range(procs):
            d = dom.get(r)
            if d is None:
                say(f"         rank {r}: no widget in the DOM")
                all_last = all_tail = all_hidden = False
                continue
            texts = d["texts"]
            shown = len(texts)
            want_last = f"r{r} {n - 1:07d}"
            last_ok = bool(texts) and texts[-1] == want_last
            tail_ok = texts == [f"r{r} {i:07d}" for i in range(n - shown, n)] and d["streams"] in ([], ["stdout"])
            hidden = hidden_count(d["hidden"])
            hidden_ok = hidden == n - shown
            all_last &= last_ok
            all_tail &= tail_ok
            all_hidden &= hidden_ok
            if not tail_ok:
                want_tail = [f"r{r} {i:07d}" for i in range(n - shown, n)]
                k = next(
                    (i for i, (g, w) in enumerate(zip(texts, want_tail, strict=False)) if g != w),
                    min(len(texts), len(want_tail)),
                )
                say(
                    f"         rank {r}: first difference at line {k} of {shown}: "
                    f"got {texts[max(0, k - 1) : k + 2]!r}, "
                    f"want {want_tail[max(0, k - 1) : k + 2]!r}; streams {d['streams']}"
                )
            say(
                f"         rank {r}: last line {texts[-1] if texts else None!r} "
                f"({'ok' if last_ok else 'WRONG, want ' + repr(want_last)}); "
                f"{shown:,} lines shown ({'contiguous tail' if tail_ok else 'NOT the contiguous tail'}); "
                f"hidden notice: {hidden:,} ({'= printed - shown' if hidden_ok else f'WRONG, want {n - shown:,}'})"
            )
        with WATCHDOG.bound(60, "the widgets' header counts"):
            wrong = header_counts_agree(page, 2, dict.fromkeys(range(procs), f"out {n} · err 0"))
        all_counts &= not wrong
        say(f"         header counts: {'out ' + str(n) + ' · err 0 on every rank' if not wrong else 'WRONG: ' + wrong}")
    med_total, med_flush, med_wait = statistics.median(totals), statistics.median(flushes), statistics.median(waits)
    say(
        f"  median of {len(totals)}: last print -> flush returned {med_total:.3f} s; flush call {ms(med_flush)}; "
        f"last print -> handle's wait returned {med_wait:.3f} s; printing took {statistics.median(prints):.2f} s"
    )
    summary.add(f"1 last print -> flush returned ({procs}x{n:,}, median)", "(none)", f"{med_total:.3f} s", None)
    summary.add("1 flush call itself (median)", "(none)", ms(med_flush), None)
    summary.add("1 every rank 'rendered'", "all runs", "yes" if all_rendered else "no", all_rendered)
    summary.add("1 each widget ends with its last line", "all ranks", "yes" if all_last else "no", all_last)
    summary.add("1 shown lines = contiguous tail", "all ranks", "yes" if all_tail else "no", all_tail)
    summary.add("1 hidden notice = printed - shown", "all ranks", "yes" if all_hidden else "no", all_hidden)
    summary.add("1 header counts = lines printed", "all ranks", "yes" if all_counts else "no", all_counts)


# ---------------------------------------------------------------------------------------------
# Part 2: flush latency, idle procs
# ---------------------------------------------------------------------------------------------


# Part 2's breakdown: when the kernel sent each barrier to a widget, and when each ack came.
# (Measurement only: it wraps two methods of the kernel's side of the package.)
FLUSH_STAMPS = (
    "import time\n"
    "from ipylogfwd.sinks import acks as _acks, widget_sink as _ws\n"
    "_stamps = []\n"
    "_barrier = _ws.WidgetSink.barrier\n"
    "def _stamped_barrier(self, rank, version):\n"
    "    _barrier(self, rank, version)\n"
    "    _stamps.append(('sent', time.monotonic(), time.time()))\n"
    "_ws.WidgetSink.barrier = _stamped_barrier\n"
    "_hub = _acks._hub\n"
    "_receive = _hub._receive\n"
    "def _stamped_receive(data):\n"
    "    _receive(data)\n"
    "    if isinstance(data, dict) and data.get('type') == 'ack':\n"
    "        _stamps.append(('ack', time.monotonic(), time.time()))\n"
    "_hub._receive = _stamped_receive\n"
)


# Part 2's breakdown in the page: when each barrier arrived on the kernel's websocket and when
# each ack left on it (performance.now()), by barrier version.
WS_PROBE = """
(() => {
  const log = (window.__ipylogfwdWs = []);
  const text = data => typeof data === 'string' ? data : new TextDecoder().decode(data);
  const scan = (data, dir) => {
    try {
      const s = text(data);
      if (!s.includes('"barrier"') && !s.includes('"ack"')) return;
      const now = performance.timeOrigin + performance.now();
      for (const m of s.matchAll(/\\{[^{}]*"type": ?"(barrier|ack)"[^{}]*\\}/g)) {
        const v = /"version": ?(\\d+)/.exec(m[0]);
        if (v) log.push([dir, m[1], Number(v[1]), now]);
      }
    } catch (e) {}
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { scan(data, 'out'); return send.call(this, data); };
  const Native = window.WebSocket;
  window.WebSocket = function (...a) {
    const ws = new Native(...a);
    ws.addEventListener('message', e => scan(e.data, 'in'));
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, Native);
})();
"""


def page_breakdown(page: Page, kernel: list[Any]) -> dict[str, float]:
    """Medians over flushes, in ms, of each leg of a flush's round trip: the kernel's last
    barrier sent -> the page's last one in (kernel -> server -> page); the page's last
    barrier in -> its last ack out; the page's last ack out -> the kernel's last ack in
    (page -> server -> kernel). One clock: time.time() in the kernel, the page's epoch ms."""
    log = page.evaluate("window.__ipylogfwdWs || []")
    by: dict[int, dict[str, list[float]]] = {}
    for direction, kind, version, at in log:
        by.setdefault(version, {}).setdefault(f"{direction}-{kind}", []).append(at / 1000)
    legs: dict[str, list[float]] = {"down": [], "page": [], "up": []}
    for version, sent, acked in kernel:
        v = by.get(version, {})
        if not (sent and acked and v.get("in-barrier") and v.get("out-ack")):
            continue
        legs["down"].append(max(v["in-barrier"]) - max(sent))
        legs["page"].append(max(v["out-ack"]) - max(v["in-barrier"]))
        legs["up"].append(max(acked) - max(v["out-ack"]))
    return {k: statistics.median(x) * 1000 for k, x in legs.items() if x}


def part2(server: LabServer, page: Page, cfg: Config, summary: Summary) -> None:
    procs, count = cfg.idle_procs, cfg.flushes
    say(f"\n== 2. %logflush latency, {procs} idle procs, {count} calls of ipylogfwd.logflush() in one cell")
    page.add_init_script(WS_PROBE)
    nb = open_notebook(
        server,
        page,
        "bench_flush.ipynb",
        [
            LOAD,
            # One widget per proc (8 procs would open on the merged view): the figure issue 3
            # and the side-by-side benchmarks measured, each widget acking its own barrier.
            f"%%procs {procs} --view procs\nimport os\nprint('ready', os.environ['RANK'])\n",
            FLUSH_STAMPS
            + (
                "import json, time, ipylogfwd\n"
                "lat, bad, worst, sent, acked, wall = [], [], [], [], [], []\n"
                f"for i in range({count}):\n"
                "    _stamps.clear()\n"
                "    t0, t = time.monotonic(), time.perf_counter()\n"
                "    rep = ipylogfwd.logflush()\n"
                "    lat.append(time.perf_counter() - t)\n"
                "    worst.append(max((e.seconds or 0.0) for e in rep.entries))\n"
                "    sent.append(max([s for k, s, _ in _stamps if k == 'sent'], default=t0) - t0)\n"
                "    acked.append(max([s for k, s, _ in _stamps if k == 'ack'], default=t0) - t0)\n"
                "    wall.append([rep.version, [w for k, _, w in _stamps if k == 'sent'], "
                "[w for k, _, w in _stamps if k == 'ack']])\n"
                "    if set(rep.outcomes.values()) != {'rendered'} or len(rep.outcomes) != "
                f"{procs}:\n"
                "        bad.append([i, {str(k): v for k, v in rep.outcomes.items()}, rep.note])\n"
                "print('BENCH ' + json.dumps({'lat': lat, 'bad': bad, 'worst': worst, 'sent': sent, 'acked': acked, "
                "'wall': wall}))\n"
            ),
        ],
    )
    run(nb, 0, 60_000)
    t = time.monotonic()
    run(nb, 1, SPAWN_TIMEOUT)
    with WATCHDOG.bound(60, f"{procs} proc widgets in cell 1"):
        nb.wait_procs(1, procs, timeout=30_000)
    say(f"  {procs} procs started and their widgets shown in {time.monotonic() - t:.1f} s (not measured)")
    run(nb, 2, (count * 10 + 60) * 1000)
    b = bench_output(nb, 2)
    lat: list[float] = b["lat"]
    p50, p90, p99 = pct(lat, 50), pct(lat, 90), pct(lat, 99)
    say(
        f"  p50 {ms(p50)}, p90 {ms(p90)}, p99 {ms(p99)}, max {ms(max(lat))}, min {ms(min(lat))}; "
        f"first call {ms(lat[0])}; p50 without the first {ms(pct(lat[1:], 50)) if len(lat) > 1 else '--'}"
    )
    say(
        "  slowest rank's entry per call (FlushEntry.seconds): "
        f"median {ms(statistics.median(b['worst']))}, max {ms(max(b['worst']))}"
    )
    say(
        "  where the time goes (medians, from the call): the kernel has sent the last barrier to "
        f"a widget at {ms(statistics.median(b['sent']))}, the last ack has come back at "
        f"{ms(statistics.median(b['acked']))}"
    )
    legs = page_breakdown(page, b["wall"])
    if legs:
        say(
            f"  legs (medians): kernel -> server -> page {legs['down']:.1f} ms, in the page "
            f"{legs['page']:.1f} ms, page -> server -> kernel {legs['up']:.1f} ms (last message of each)"
        )
    if b["bad"]:
        say(f"  {len(b['bad'])} call(s) not 'rendered' on every rank; first: {b['bad'][:3]}")
    else:
        say(f"  every call: all {procs} ranks 'rendered'")
    summary.add(f"2 flush p50 ({procs} idle procs, {count} calls)", "< 100 ms", ms(p50), p50 < FLUSH_P50_TARGET)
    summary.add("2 flush p90 / p99", "(none)", f"{ms(p90)} / {ms(p99)}", None)
    summary.add("2 every call all 'rendered'", f"{count}/{count}", f"{count - len(b['bad'])}/{count}", not b["bad"])


# ---------------------------------------------------------------------------------------------
# Part 3: page responsiveness while procs print flat out
# ---------------------------------------------------------------------------------------------

INSTALL_OBSERVER = """
() => {
  const supported = (PerformanceObserver.supportedEntryTypes || []).includes('longtask');
  window.__benchLongTasks = [];
  if (window.__benchObserver) window.__benchObserver.disconnect();
  if (supported) {
    window.__benchObserver = new PerformanceObserver(list => {
      for (const e of list.getEntries()) window.__benchLongTasks.push([e.startTime, e.duration]);
    });
    window.__benchObserver.observe({type: 'longtask', buffered: true});
  }
  // Date.now() is the wall clock the kernel's time.time() reads; performance.now() is not.
  return {supported, now: performance.now(), wall: Date.now()};
}
"""

COLLECT_LONG_TASKS = """
() => {
  const obs = window.__benchObserver;
  if (obs) {
    for (const e of obs.takeRecords()) window.__benchLongTasks.push([e.startTime, e.duration]);
    obs.disconnect();
  }
  return {tasks: window.__benchLongTasks, now: performance.now()};
}
"""


TRACE_CATEGORIES = [
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "disabled-by-default-devtools.timeline.frame",
    "v8.execute",
    "v8",
    "blink.user_timing",
]
PROFILER_CATEGORY = "disabled-by-default-v8.cpu_profiler"  # JS samples; starting it costs a long task


def flood_cell(procs: int, seconds: float, nice: int, view: str) -> str:
    """A --bg cell whose procs print distinct lines flat out for ``seconds`` at CPU priority
    ``nice`` (set, not added: the same in every run) and return (start, end, lines)."""
    return (
        f"%%procs {procs} --bg --view {view}\n"
        "import os, time\n"
        f"os.setpriority(os.PRIO_PROCESS, 0, {nice})\n"
        "r = os.environ['RANK']\n"
        "t0 = time.time(); i = 0\n"
        f"while time.time() - t0 < {seconds}:\n"
        "    print(f'rank {r} line {i}')\n"
        "    i += 1\n"
        "(t0, time.time(), i)\n"
    )


def wait_and_flush_cell(seconds: float) -> str:
    """A cell that waits for the --bg cell before it, flushes, and prints what it saw as JSON."""
    return (
        "import json, time, ipylogfwd\n"
        "job = _  # the --bg cell's handle\n"
        f"res = job.wait({seconds + 300})\n"
        "t_waited = time.time()\n"
        "rep = ipylogfwd.logflush(300)\n"
        "t1 = time.time()\n"
        "print('BENCH ' + json.dumps({'results': {str(k): v for k, v in res.items()},\n"
        "    't_waited': t_waited, 't1': t1, 'note': rep.note,\n"
        "    'outcomes': {str(k): v for k, v in rep.outcomes.items()}}))\n"
        "rep\n"
    )


def part3(server: LabServer, page: Page, cfg: Config, summary: Summary) -> None:
    procs, seconds = cfg.flood_procs, cfg.flood_seconds
    say(f"\n== 3. page responsiveness while {procs} procs print flat out for {seconds:g} s")
    nb = open_notebook(
        server,
        page,
        "bench_flood.ipynb",
        [
            LOAD,
            f"%procs {procs}",  # start the procs first
            flood_cell(procs, seconds, cfg.flood_nice, "procs"),
            wait_and_flush_cell(seconds),
        ],
    )
    run(nb, 0, 60_000)
    # Tracing starts before the procs are started: starting it (the sampling profiler) costs
    # the page a long task of its own, which must not fall in the window measured.
    browser = page.context.browser
    tracing = bool(cfg.trace) and browser is not None
    if tracing and browser is not None:
        with WATCHDOG.bound(60, "Chromium to start tracing"):
            categories = TRACE_CATEGORIES + ([PROFILER_CATEGORY] if cfg.trace_js else [])
            browser.start_tracing(page=page, path=cfg.trace, categories=categories)
    t = time.monotonic()
    run(nb, 1, SPAWN_TIMEOUT)
    say(f"  {procs} procs started in {time.monotonic() - t:.1f} s (not measured)")
    log_start = server.log_size()
    with WATCHDOG.bound(60, "the long-task observer to be installed"):
        obs = page.evaluate(INSTALL_OBSERVER)
    if not obs["supported"]:
        say("  this Chromium does not report 'longtask' entries (PerformanceObserver.supportedEntryTypes)")
    window_start = obs["now"]  # ms, page clock
    load_before = os.getloadavg()[0]
    cpu_before, cpu_t0 = cpu_seconds(server), time.monotonic()

    samples: list[tuple[float, float]] = []  # (time.time() at the sample, round trip s)
    trace_until = time.monotonic() + cfg.trace_seconds
    if tracing:
        with WATCHDOG.bound(60, "a performance mark"):
            page.evaluate("performance.mark('bench: --bg cell started')")  # the trace's origin
    floor2 = nb.start_cell(2)
    with WATCHDOG.bound(120, f"the --bg cell of {nb.path} to return its handle"):
        nb.wait_cell_done(2, floor2, timeout=60_000)
    floor3 = nb.start_cell(3)
    cell_deadline = time.monotonic() + seconds + 600 + 120
    next_at = time.monotonic()
    while True:
        with WATCHDOG.bound(120, "page.evaluate('1') to return (a responsiveness sample)"):
            t_wall = time.time()
            t = time.perf_counter()
            page.evaluate("1")
            samples.append((t_wall, time.perf_counter() - t))
            done = cell_done(page, 3, floor3)
        if tracing and (done or time.monotonic() >= trace_until) and browser is not None:
            tracing = False
            with WATCHDOG.bound(120, "Chromium to stop tracing"):
                browser.stop_tracing()
            say(f"  trace of the first {cfg.trace_seconds:g} s written to {cfg.trace} (samples then are skewed)")
        if done:
            break
        if time.monotonic() > cell_deadline:
            raise TimeoutError(f"timed out waiting for cell 3 of {nb.path} (wait for the procs, then flush) to finish")
        next_at = max(next_at + cfg.sample_interval, time.monotonic())
        time.sleep(max(0.0, next_at - time.monotonic()))  # the sampling interval, not a wait for state
    with WATCHDOG.bound(60, f"cell 3 of {nb.path} to show its prompt"):
        nb.wait_cell_done(3, floor3, timeout=30_000)
        dom = widgets_dom(page, 2)
        lt = page.evaluate(COLLECT_LONG_TASKS)
    load_after = os.getloadavg()[0]
    cpu_after, cpu_t1 = cpu_seconds(server), time.monotonic()
    b = bench_output(nb, 3)

    res = {int(r): v for r, v in b["results"].items()}  # rank -> (t0, t_end, lines)
    flood_start = min(v[0] for v in res.values())
    flood_end = max(v[1] for v in res.values())
    total_lines = sum(v[2] for v in res.values())
    say(
        f"  procs printed {total_lines:,} lines in {flood_end - flood_start:.1f} s "
        f"({total_lines / max(flood_end - flood_start, 1e-9):,.0f} lines/s in all; "
        f"per rank {min(v[2] for v in res.values()):,} to {max(v[2] for v in res.values()):,}); "
        f"after the last print, the handle's wait returned in {b['t_waited'] - flood_end:.2f} s "
        f"and the flush in {b['t1'] - b['t_waited']:.2f} s more"
    )
    say(f"  load average (1 min) {load_before:.2f} before, {load_after:.2f} after")
    say("  " + cpu_report(cpu_before, cpu_after, cpu_t1 - cpu_t0))
    outcomes = {int(r): o for r, o in b["outcomes"].items()}
    rendered = outcomes == dict.fromkeys(range(procs), "rendered")
    say(
        f"  flush outcomes: {sorted(set(outcomes.values()))}"
        + (f" {outcomes}" if not rendered else "")
        + (f"; note: {b['note']}" if b["note"] else "")
    )
    wrong = []
    for r, (_, _, count) in sorted(res.items()):
        texts = dom.get(r, {}).get("texts", [])
        want = f"rank {r} line {count - 1}"
        if not texts or texts[-1] != want:
            wrong.append(f"rank {r}: last line {texts[-1] if texts else None!r}, want {want!r}")
    say(f"  every widget ends with its proc's last line: {'yes' if not wrong else 'NO: ' + '; '.join(wrong[:4])}")
    with WATCHDOG.bound(60, "the widgets' header counts"):
        wrong_counts = header_counts_agree(page, 2, {r: f"out {v[2]} · err 0" for r, v in res.items()})
    say(f"  header counts = lines printed: {'yes' if not wrong_counts else 'NO: ' + wrong_counts}")

    # Long tasks that started in the window (buffered entries from before it are left out).
    tasks = [(s, d) for s, d in lt["tasks"] if s >= window_start]
    durations = [d / 1000 for _, d in tasks]
    origin = (obs["wall"] - obs["now"]) / 1000  # performance.now() 0 on the wall clock, epoch s
    in_flood = [d / 1000 for s, d in tasks if flood_start <= origin + s / 1000 <= flood_end]
    over = [d for d in durations if d > LONG_TASK_TARGET]
    window = (lt["now"] - window_start) / 1000
    if obs["supported"]:
        say(
            f"  long tasks (> 50 ms) in the {window:.1f} s window (--bg cell start -> flush cell done): "
            f"{len(durations)}, max {ms(max(durations)) if durations else '--'}, over 200 ms: {len(over)}, "
            f"total {sum(durations):.2f} s; while the procs printed: {len(in_flood)}, "
            f"max {ms(max(in_flood)) if in_flood else '--'}"
        )
        if over:
            say(
                "    over 200 ms (start, from the procs' first print): "
                + ", ".join(
                    f"{ms(d / 1000)} at {origin + st / 1000 - flood_start:+.1f} s"
                    for st, d in sorted(tasks, key=lambda t: -t[1])
                    if d / 1000 > LONG_TASK_TARGET
                )
            )
    rts = [rt for _, rt in samples]
    rts_flood = [rt for tw, rt in samples if flood_start <= tw <= flood_end]
    say(
        f"  page.evaluate('1') round trips, every {cfg.sample_interval:g} s: {len(rts)} samples, "
        f"median {ms(statistics.median(rts))}, max {ms(max(rts))}; "
        + (
            f"while the procs printed ({len(rts_flood)}): "
            f"median {ms(statistics.median(rts_flood))}, max {ms(max(rts_flood))}"
            if rts_flood
            else "none while the procs printed"
        )
    )
    hits = [line for line in server.log_since(log_start).splitlines() if RATE_EXCEEDED.search(line)]
    say(f"  server log: {len(hits)} 'IOPub rate exceeded' line(s)" + (f", first: {hits[0].strip()}" if hits else ""))

    if obs["supported"]:
        summary.add(f"3 long tasks > 200 ms ({procs} procs, {seconds:g} s)", "0", str(len(over)), not over)
        summary.add(
            "3 long tasks: count / max",
            "(none)",
            f"{len(durations)} / {ms(max(durations)) if durations else '--'}",
            None,
        )
    else:
        summary.add(f"3 long tasks > 200 ms ({procs} procs, {seconds:g} s)", "0", "not supported", False)
    summary.add("3 page.evaluate('1') median / max", "(none)", f"{ms(statistics.median(rts))} / {ms(max(rts))}", None)
    summary.add("3 flush after the flood all 'rendered'", "all ranks", "yes" if rendered else "no", rendered)
    summary.add(
        "3 each widget ends with its last line", "all ranks", "yes" if not wrong else f"no ({len(wrong)})", not wrong
    )
    summary.add("3 header counts = lines printed", "all ranks", "yes" if not wrong_counts else "no", not wrong_counts)
    summary.add("3 IOPub rate limit hits (server log)", "0", str(len(hits)), not hits)


# ---------------------------------------------------------------------------------------------
# Part 4: the merged view while 64 procs print flat out
# ---------------------------------------------------------------------------------------------

MERGE_STATS = """
([i]) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const m = c.node.querySelector('[data-ipylogfwd-merged]');
  const rows = m ? [...m.querySelectorAll('.ipylogfwd-mrow')] : [];
  const last = {};
  for (const r of rows) last[r.dataset.ranks] = r.querySelector(':scope > .ipylogfwd-mtext').textContent;
  return {stats: m && m.dataset.mergeStats ? JSON.parse(m.dataset.mergeStats) : null,
          domRows: rows.length, last, widgets: c.node.querySelectorAll('.ipylogfwd-panel .ipylogfwd-proc').length};
}
"""


def js_heap_mb(page: Page) -> float:
    """The page's JS heap in use after a garbage collection (MiB), through the DevTools protocol."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("HeapProfiler.collectGarbage")
        cdp.send("Performance.enable")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    finally:
        cdp.detach()
    return float(metrics.get("JSHeapUsedSize", 0.0)) / 2**20


def pin_browser(cpu: int) -> None:
    """Every thread of Chromium's processes on ``cpu`` alone (as when the browser runs on a
    machine of its own: the procs cannot take its CPU). Threads started later inherit it."""
    for p in psutil.Process().children(recursive=True):
        try:
            if "chrom" not in p.name() and "chrom" not in " ".join(p.cmdline()):
                continue
            for t in p.threads():
                with suppress(OSError):  # a thread gone meanwhile
                    os.sched_setaffinity(t.id, {cpu})
        except psutil.Error:
            pass  # gone meanwhile


def renderer_tasks(trace: str, over: float) -> list[tuple[float, float]]:
    """The page's top-level tasks longer than ``over`` seconds in a Chromium trace, as (wall,
    CPU) seconds: a long task with little CPU in it is time the renderer waited for a CPU."""
    with open(trace, encoding="utf-8") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    return [
        (e["dur"] / 1e6, e.get("tdur", e["dur"]) / 1e6)
        for e in events
        if e.get("ph") == "X" and e.get("name") == "RunTask" and (e["pid"], e["tid"]) in main and e["dur"] > over * 1e6
    ]


def part4(server: LabServer, page: Page, cfg: Config, summary: Summary) -> None:
    procs, seconds, runs = cfg.merged_procs, cfg.flood_seconds, cfg.merged_runs
    say(f"\n== 4. the merged view: {procs} procs print flat out for {seconds:g} s, {runs} run(s)")
    nb = open_notebook(
        server,
        page,
        "bench_merged.ipynb",
        [
            LOAD,
            f"%procs {procs}",  # start the procs first
            flood_cell(procs, seconds, cfg.flood_nice, "merged"),
            wait_and_flush_cell(seconds),
        ],
    )
    run(nb, 0, 60_000)
    t = time.monotonic()
    run(nb, 1, SPAWN_TIMEOUT)
    say(f"  {procs} procs started in {time.monotonic() - t:.1f} s (not measured)")
    with WATCHDOG.bound(120, "the page's JS heap"):
        heap_start = js_heap_mb(page)
    clean, rendered_all, tails_ok, bounds_ok = 0, True, True, True
    worst_tasks: list[float] = []
    worst_cpu: list[float] = []
    busy_clean = 0
    per_line: list[float] = []
    heaps: list[float] = []
    for k in range(runs):
        log_start = server.log_size()
        with WATCHDOG.bound(60, "the long-task observer to be installed"):
            obs = page.evaluate(INSTALL_OBSERVER)
        window_start = obs["now"]
        cpu_before, cpu_t0 = cpu_seconds(server), time.monotonic()
        samples: list[float] = []
        browser = page.context.browser
        if cfg.browser_cpu is not None:
            pin_browser(cfg.browser_cpu)  # renderers started since are pinned too
        tracing = bool(cfg.trace) and k == min(1, runs - 1) and browser is not None  # the second run
        # With --task-cpu every run is traced (top-level tasks only, unless --trace asks for
        # more): a trace has each task's CPU time beside its wall time, which the Long Tasks
        # API lacks. Tracing costs the browser CPU of its own, so it is off by default.
        trace_path = cfg.trace if tracing else str(Path(tempfile.gettempdir()) / f"bench-merged-{os.getpid()}.json")
        traced = tracing or cfg.task_cpu
        main_tasks: list[tuple[float, float]] = []
        if traced and browser is not None:
            with WATCHDOG.bound(60, "Chromium to start tracing"):
                categories = (
                    TRACE_CATEGORIES + ([PROFILER_CATEGORY] if cfg.trace_js else [])
                    if tracing
                    else ["disabled-by-default-devtools.timeline"]  # RunTask, with CPU time
                )
                browser.start_tracing(page=page, path=trace_path, categories=categories)
        floor2 = nb.start_cell(2)
        with WATCHDOG.bound(120, f"the --bg cell of {nb.path} to return its handle"):
            nb.wait_cell_done(2, floor2, timeout=60_000)
        floor3 = nb.start_cell(3)
        deadline = time.monotonic() + seconds + 600
        while True:
            with WATCHDOG.bound(120, "page.evaluate('1') to return (a responsiveness sample)"):
                t = time.perf_counter()
                page.evaluate("1")
                samples.append(time.perf_counter() - t)
                done = cell_done(page, 3, floor3)
            if done:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for cell 3 of {nb.path} (wait for the procs, then flush)")
            time.sleep(cfg.sample_interval)  # the sampling interval, not a wait for state
        if traced and browser is not None:
            with WATCHDOG.bound(120, "Chromium to stop tracing"):
                browser.stop_tracing()
            main_tasks = renderer_tasks(trace_path, 0.05)
            if tracing:
                say(f"  trace of run {k + 1} written to {cfg.trace}")
            else:
                os.unlink(trace_path)
        with WATCHDOG.bound(120, f"cell 3 of {nb.path} to show its prompt, and the merged view's figures"):
            nb.wait_cell_done(3, floor3, timeout=30_000)
            view = page.evaluate(MERGE_STATS, [2])  # at once: "rendered" means in the DOM now
            lt = page.evaluate(COLLECT_LONG_TASKS)
            heap = js_heap_mb(page)
        cpu_after, cpu_t1 = cpu_seconds(server), time.monotonic()
        b = bench_output(nb, 3)
        res = {int(r): v for r, v in b["results"].items()}
        total = sum(v[2] for v in res.values())
        span = max(v[1] for v in res.values()) - min(v[0] for v in res.values())
        durations = [d / 1000 for s, d in lt["tasks"] if s >= window_start]
        over = [d for d in durations if d > LONG_TASK_TARGET]
        origin = (obs["wall"] - obs["now"]) / 1000  # performance.now() 0 on the wall clock
        flood_start = min(v[0] for v in res.values())
        over_at = [
            f"{ms(d / 1000)} at {origin + st / 1000 - flood_start:+.1f} s"
            for st, d in lt["tasks"]
            if st >= window_start and d / 1000 > LONG_TASK_TARGET
        ]
        busy = [cpu for _, cpu in main_tasks if cpu > LONG_TASK_TARGET]
        busy_clean += not busy
        worst_cpu.append(max((cpu for _, cpu in main_tasks), default=0.0))
        clean += not over
        worst_tasks.append(max(durations, default=0.0))
        outcomes = {int(r): o for r, o in b["outcomes"].items()}
        rendered = outcomes == dict.fromkeys(range(procs), "rendered")
        rendered_all &= rendered
        wrong = [
            f"rank {rank}: {text!r}"
            for rank, text in view["last"].items()
            if text != f"rank {rank} line {res[int(rank)][2] - 1}"
        ]
        tails_ok &= bool(view["last"]) and not wrong and view["widgets"] == 0
        st = view["stats"] or {}
        cost = 1000 * st.get("ms", 0.0) / max(1, st.get("lines", 0))
        per_line.append(cost)
        within = st.get("copies", 0) <= st.get("maxCopies", 0) and st.get("rows", 0) <= st.get("maxRows", 0)
        bounds_ok &= within
        heaps.append(heap)
        hits = [line for line in server.log_since(log_start).splitlines() if RATE_EXCEEDED.search(line)]
        say(
            f"  run {k + 1}: {total:,} lines in {span:.1f} s ({total / max(span, 1e-9):,.0f}/s); long tasks "
            f"{len(durations)}, max {ms(max(durations)) if durations else '--'}, over 200 ms: {len(over)}; "
            f"page.evaluate('1') median {ms(statistics.median(samples))}, max {ms(max(samples))}; "
            f"flush {sorted(set(outcomes.values()))} {b['t1'] - b['t_waited']:.2f} s after the handle's wait"
            + (f"; over 200 ms (from the procs' first print): {', '.join(over_at)}" if over_at else "")
            + (
                "; the renderer's main thread in tasks over 200 ms (trace): "
                + ", ".join(f"{ms(wall)} wall, {ms(cpu)} CPU" for wall, cpu in main_tasks if wall > LONG_TASK_TARGET)
                if any(wall > LONG_TASK_TARGET for wall, _ in main_tasks)
                else ""
            )
        )
        say(
            f"         merged: {st.get('lines', 0):,} lines taken into rows in {st.get('ms', 0.0):,.0f} ms "
            f"({cost:.2f} us a line); kept {st.get('rows', 0):,} rows (max {st.get('maxRows', 0):,}), "
            f"{st.get('copies', 0):,} copies (max {st.get('maxCopies', 0):,}); {view['domRows']:,} rows in the DOM; "
            f"not kept: {st.get('evictedRows', 0):,} rows, {st.get('skippedLines', 0):,} lines left the tails first; "
            f"{len(view['last'])} ranks shown, each ending with its last line: {'yes' if not wrong else wrong[:3]}"
        )
        say(
            f"         JS heap after GC {heap:.1f} MiB (at the start {heap_start:.1f}); "
            + cpu_report(cpu_before, cpu_after, cpu_t1 - cpu_t0)
            + f"; IOPub rate limit hits: {len(hits)}"
        )
    summary.add(
        f"4 runs with no long task > 200 ms ({procs} procs, {seconds:g} s)",
        f">= {max(1, runs - 1)} of {runs}",
        f"{clean} of {runs}",
        clean >= max(1, runs - 1),
    )
    summary.add("4 longest task per run", "(none)", " / ".join(ms(w) for w in worst_tasks), None)
    if cfg.task_cpu:
        summary.add(
            f"4 runs with no task > 200 ms of the renderer's CPU ({procs} procs)",
            "(none)",
            f"{busy_clean} of {runs}; most CPU in one task per run " + " / ".join(ms(w) for w in worst_cpu),
            None,
        )
    summary.add("4 merging cost per line (median of runs)", "O(1)", f"{statistics.median(per_line):.2f} us", None)
    summary.add("4 rows, copies within their bounds", "every run", "yes" if bounds_ok else "no", bounds_ok)
    summary.add("4 JS heap after GC, per run", "(none)", " / ".join(f"{h:.0f} MiB" for h in heaps), None)
    summary.add("4 flush after each flood all 'rendered'", "all ranks", "yes" if rendered_all else "no", rendered_all)
    summary.add("4 each rank shown ends with its last line", "every run", "yes" if tails_ok else "no", tails_ok)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="scale down: 4x10,000 lines, 1 run, 20 flushes, 16 procs for 5 s"
    )
    ap.add_argument("--parts", default="1,2,3,4", help="comma-separated parts to run (default 1,2,3,4)")
    ap.add_argument("--lines", type=int, help="(1) lines per proc (default 100000; quick 10000)")
    ap.add_argument("--runs", type=int, help="(1) runs, median quoted (default 3; quick 1)")
    ap.add_argument("--flushes", type=int, help="(2) flush calls (default 100; quick 20)")
    ap.add_argument("--flood-seconds", type=float, help="(3, 4) seconds the procs print (default 30; quick 5)")
    ap.add_argument("--merged-procs", type=int, default=64, help="(4) procs flooding the merged view (default 64)")
    ap.add_argument("--merged-runs", type=int, help="(4) floods in a row (default 5; quick 1)")
    ap.add_argument(
        "--trace",
        default="",
        help="(3, 4) write a Chromium performance trace (JSON, for DevTools) of the flood's start (3) "
        "or of the second run (4) here",
    )
    ap.add_argument(
        "--flood-nice",
        type=int,
        default=0,
        help="(3, 4) the flooding procs lower their CPU priority by this (os.nice; default 0)",
    )
    ap.add_argument(
        "--task-cpu",
        action="store_true",
        help="(4) trace every run to give each long task's CPU time beside its wall time (costs CPU)",
    )
    ap.add_argument(
        "--browser-cpu",
        type=int,
        help="run Chromium alone on this cpu and everything else on the others, as when the browser "
        "runs on the user's own machine (default: all share every cpu)",
    )
    ap.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="add this to JupyterLab's command line (repeatable), e.g. "
        "--server-arg=--ServerApp.jpserver_extensions=ipylogfwd=False to measure without ipylogfwd's "
        "server extension",
    )
    ap.add_argument("--trace-seconds", type=float, default=8.0, help="(3) seconds the trace runs (default 8)")
    ap.add_argument("--trace-js", action="store_true", help="(1, 3) the traces include JS samples (costs more)")
    ap.add_argument(
        "--trace-catchup",
        default="",
        help="(1) write a Chromium performance trace (JSON) of the last run's flush cell here",
    )
    args = ap.parse_args()
    cpus = os.sched_getaffinity(0)
    if args.browser_cpu is not None and (args.browser_cpu not in cpus or len(cpus) < 2):
        ap.error(f"--browser-cpu {args.browser_cpu}: needs a cpu of {sorted(cpus)}, and another one left for the rest")
    base = QUICK if args.quick else FULL
    cfg = Config(
        lines=args.lines or base.lines,
        runs=args.runs or base.runs,
        flushes=args.flushes or base.flushes,
        idle_procs=base.idle_procs,
        flood_procs=base.flood_procs,
        flood_seconds=args.flood_seconds or base.flood_seconds,
        sample_interval=base.sample_interval,
        trace=args.trace,
        trace_seconds=args.trace_seconds,
        trace_js=args.trace_js,
        trace_catchup=args.trace_catchup,
        flood_nice=args.flood_nice,
        task_cpu=args.task_cpu,
        browser_cpu=args.browser_cpu,
        merged_procs=args.merged_procs,
        merged_runs=args.merged_runs or base.merged_runs,
    )
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not set(parts) <= {"1", "2", "3", "4"}:
        ap.error(f"unknown part(s) in --parts {args.parts!r}: use 1, 2, 3, 4")
    if not labdriver.CHROMIUM.exists():
        ap.error(f"no Chromium at {labdriver.CHROMIUM} (apt-get install -y chromium)")

    say(f"bench_browser.py {'--quick ' if args.quick else ''}({time.strftime('%Y-%m-%d %H:%M:%S')}): {cfg}")
    machine_info()
    started = time.monotonic()
    summary = Summary()
    failed = False
    page_errors: list[str] = []
    # labdriver.start_lab writes the server's log into its module's ARTIFACTS dir: point this
    # (privately loaded) instance at a dir of our own, so that a run never overwrites the
    # browser tests' tests/artifacts/jupyter-server.log (or has its own log truncated by them).
    logdir = Path(tempfile.mkdtemp(prefix="ipylogfwd-bench-browser-"))
    if cfg.browser_cpu is not None:
        # The server, its kernels and their procs inherit this; Chromium is moved once started.
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {cfg.browser_cpu})
    labdriver.ARTIFACTS = logdir
    # The procs' log files (gigabytes in a flood: every line is kept on disk) go to a dir of
    # the run's own, removed at the end: the kernels make their log dirs under the TMPDIR
    # they inherit from the server.
    proc_logs = Path(tempfile.mkdtemp(prefix="ipylogfwd-bench-logs-"))
    os.environ["TMPDIR"] = str(proc_logs)
    try:
        # start_lab stops the kernels, then the server, on the way out; sync_playwright stops
        # its driver, which closes the browser.
        with labdriver.start_lab(tuple(args.server_arg)) as server, sync_playwright() as pw:

            def emergency() -> None:
                kill_server(server)
                print(f"server log kept: {server.log_path}", file=sys.stderr, flush=True)

            WATCHDOG.emergency = emergency
            say(f"  JupyterLab at {server.url} (server log {server.log_path})")
            with WATCHDOG.bound(120, "Playwright to launch Chromium and open a page"):
                browser = pw.chromium.launch(
                    executable_path=str(labdriver.CHROMIUM), headless=True, args=labdriver.CHROMIUM_ARGS
                )
            try:
                with WATCHDOG.bound(120, "Playwright to open a page"):
                    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
                    page = context.new_page()
                page.set_default_timeout(30_000)
                page.on("dialog", lambda d: d.accept())  # e.g. "leave the page?"
                page.on("pageerror", lambda e: page_errors.append(str(e)))
                say(f"  browser: Chromium {browser.version} (headless, via Playwright)")
                if cfg.browser_cpu is not None:
                    pin_browser(cfg.browser_cpu)
                    say(f"  Chromium on cpu {cfg.browser_cpu} alone; the server, kernels and procs on the others")
                for part, fn in (("1", part1), ("2", part2), ("3", part3), ("4", part4)):
                    if part not in parts:
                        continue
                    try:
                        fn(server, page, cfg, summary)
                    except Exception as exc:  # noqa: BLE001 -- report it, go on with the next part
                        failed = True
                        say(f"  part {part} FAILED: {type(exc).__name__}: {exc}")
                        traceback.print_exc(file=sys.stdout)
                        summary.error(f"{part} (part failed)", exc)
                    finally:
                        with WATCHDOG.bound(120, "the kernels and their procs to stop"):
                            shut_kernels_down(server, page)
            finally:
                with WATCHDOG.bound(60, "the browser to close"):
                    browser.close()
    except BaseException:
        failed = True
        raise
    finally:
        WATCHDOG.emergency = lambda: None
        shutil.rmtree(proc_logs, ignore_errors=True)
        if failed:
            say(f"server log kept: {logdir / 'jupyter-server.log'}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    say(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    if page_errors:
        say(f"page errors ({len(page_errors)}): " + " | ".join(page_errors[:5]))
    say(f"\nsummary ({'--quick' if args.quick else 'full run'}, {time.monotonic() - started:.0f} s in all)")
    summary.add("page errors (uncaught, in the page)", "0", str(len(page_errors)), not page_errors)
    summary.print()
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
