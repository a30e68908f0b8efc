"""Side-by-side benchmark: ipylogfwd against ipyparallel's %%px, plain multiprocessing in
ipykernel, and Monarch (torchmonarch), each through a real kernel driven by jupyter_client.

Setup, once, from the project root (its own venv, so the peers stay out of .venv)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -e ".[test,lab]" -r benchmarks/requirements-compare.txt

(torch==2.13.0 resolves to the CPU build where that wheel is on a find-links path, as on the
project's machines; elsewhere install a CPU build of torch 2.13.0 first, or pip may pull the
CUDA one.)

Run (the full run takes about 26 minutes on 2 cores and rewrites docs/benchmarks.md)::

    flock -w 3600 /tmp/ipylogfwd-bench.lock .venv-bench/bin/python benchmarks/compare.py
    .venv-bench/bin/python benchmarks/compare.py --quick     # a small subset, prints only

For each system and each row (N procs, L lines): the procs, started beforehand and kept,
each write L sequence-numbered lines on stdout and L on stderr (compare_workload.py); the cell
then calls the system's own flush, and the frontend immediately sends the next cell
(``print('next')``). Measured: wall time from the first print until the last line is visible
to the frontend, and until the flush returned; lines lost, duplicated, out of order per proc
and stream, mangled, or shown in the next cell; IOPub messages and bytes, and how many output
messages jupyter_server's default IOPub rate limits would have dropped (a replay of its
limiter over the recorded arrival times); the kernel's peak RSS over its idle RSS; the procs'
own slowdown (the same loop into /dev/null as the floor). Then each system's flush latency
with 8 idle procs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_core import med, pct
from compare_frontend import Recorder, bench_value, check_lines, kill_marked, replay_rate_limits
from compare_server import ServerCheck, server_check
from compare_systems import SYSTEMS, System

MIB = 1 << 20


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The figures of one workload run of one system."""

    wall_visible: float  # first print -> last workload line arrived at the frontend
    wall_flush: float  # first print -> the system's flush returned (kernel clock)
    lost: int
    duplicated: int
    out_of_order: int
    mangled: int
    wrong_stream: int
    wrong_cell: int
    elsewhere: int
    primary_lost: int | None  # lost on the system's forwarded path alone (Monarch)
    primary_out_of_order: int | None  # out of order on that path alone
    iopub_msgs: int
    iopub_mb: float
    dropped: int  # output messages the default rate limits would drop
    dropped_lines: int  # lines in them
    rss_peak_mib: float
    rss_delta_mib: float
    slowdown: float  # median over procs of print loop / /dev/null loop


class RssPoller:
    """Polls a process's RSS every ``interval`` s on its own thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.proc = psutil.Process(pid)
        self.idle = self.proc.memory_info().rss
        self.peak = self.idle
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._poll, name="compare-rss", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def run_once(fe: Recorder, system: System, n: int, lines: int, payload: int, timeout: float) -> Run:
    """One workload cell and its immediate next cell; the figures (TimeoutError past ``timeout``)."""
    fe.reset()
    start_at = time.time() + 1.0 + 0.05 * n  # every proc waits for this before its first print
    rss = RssPoller(fe.pid)
    try:
        what = f"{system.name} {n}x{lines:,}"
        cell = fe.send(system.workload(n, lines, payload, start_at))
        nxt = fe.send("print('next')")  # queued now, so it runs the moment the workload cell ends
        v = bench_value(fe.reply(cell, timeout, what), what)
        fe.wait_idle(cell, timeout, what + " (workload cell)")
        fe.wait_idle(nxt, 60, what + " (the next cell)")
        fe.quiet(0.5, 15.0)  # late output (pipes still being drained) lands, in whichever cell
    finally:
        rss.stop()
    rec = fe.rec
    rec.measure()
    procs = v["procs"]
    t0 = min(p[0] for p in procs.values())
    chk = check_lines(rec, n, lines, payload, cell, nxt)
    primary = (
        check_lines(rec, n, lines, payload, cell, nxt, only_prefixed=system.primary_prefix)
        if system.primary_prefix
        else None
    )
    last = max(rec.last_output_at.values(), default=float("nan"))
    replay = replay_rate_limits(rec.traffic)
    return Run(
        wall_visible=last - t0,
        wall_flush=v["flushed"] - t0,
        lost=chk.lost,
        duplicated=chk.duplicated,
        out_of_order=chk.out_of_order,
        mangled=chk.mangled,
        wrong_stream=chk.wrong_stream,
        wrong_cell=chk.wrong_cell,
        elsewhere=chk.elsewhere,
        primary_lost=primary.lost if primary else None,
        primary_out_of_order=primary.out_of_order if primary else None,
        iopub_msgs=len(rec.traffic),
        iopub_mb=sum(t.nbytes for t in rec.traffic) / 1e6,
        dropped=replay.dropped_output,
        dropped_lines=replay.dropped_lines,
        rss_peak_mib=rss.peak / MIB,
        rss_delta_mib=(rss.peak - rss.idle) / MIB,
        slowdown=statistics.median(p[2] / p[3] for p in procs.values()),
    )


# ---------------------------------------------------------------------------------------------
# Sessions: one kernel per system and proc count
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """All runs of one system on one (procs, lines) row, or why there are none."""

    system: str
    n: int
    lines: int
    runs: list[Run] = field(default_factory=list)
    failure: str | None = None  # "timed out after …", "not runnable here: …", a cell error


class Session:
    """A kernel with one system's N procs set up; killed (with all it started) on close."""

    def __init__(self, system: System, n: int, setup_timeout: float) -> None:
        self.system, self.n = system, n
        self.marker = uuid.uuid4().hex
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")])),
               "IPP_NONINTERACTIVE": ""}
        self.fe = Recorder(env, self.marker)
        try:
            self.fe.run(system.setup(n), setup_timeout, f"{system.name}: setting up {n} procs")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Tear the system down politely (bounded), then kill whatever is left."""
        with contextlib.suppress(Exception):  # a failed teardown is fine: the kill below guarantees cleanup
            if self.fe.pump_error is None:
                self.fe.run(self.system.teardown_code, 30, f"{self.system.name}: teardown")
        self.fe.kill_tree()
        time.sleep(0.2)
        kill_marked(self.marker)


def run_rows(system: System, n: int, lines_list: list[int], args: argparse.Namespace) -> list[Row]:
    """Every row of one system with n procs; a timeout ends the session and the next row gets a new one."""
    rows: list[Row] = []
    session: Session | None = None
    try:
        for lines in lines_list:
            row = Row(system.name, n, lines)
            rows.append(row)
            reps = args.repeat if n * lines <= args.big_lines else args.big_repeat
            for rep in range(reps):
                try:
                    if session is None:
                        session = Session(system, n, args.setup_timeout)
                    r = run_once(session.fe, system, n, lines, args.payload, args.row_timeout)
                except TimeoutError as exc:
                    row.failure = f"timed out after {args.row_timeout:.0f} s ({exc})"
                except Exception as exc:  # noqa: BLE001 - reported in the table, the run goes on
                    row.failure = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
                else:
                    row.runs.append(r)
                    log(f"  {system.name:15s} {n:2d} procs x {lines:>7,} lines, rep {rep + 1}/{reps}: "
                        f"visible {r.wall_visible:7.2f} s, flush {r.wall_flush:7.2f} s, lost {r.lost}, "
                        f"dup {r.duplicated}, ooo {r.out_of_order}, mangled {r.mangled}, next cell {r.wrong_cell}, "
                        f"msgs {r.iopub_msgs} ({r.iopub_mb:.1f} MB), dropped {r.dropped} ({r.dropped_lines} lines), "
                        f"rss +{r.rss_delta_mib:.0f} MiB, slowdown {r.slowdown:.2f}x")
                    continue
                log(f"  {system.name:15s} {n:2d} procs x {lines:>7,} lines: {row.failure}")
                if session is not None:
                    session.close()
                    session = None
                break
    finally:
        if session is not None:
            session.close()
    return rows


def flush_latency(system: System, n: int, count: int, args: argparse.Namespace) -> tuple[list[float], str | None]:
    """``count`` flushes with n idle procs (fewer, but at least 10, past ``--flush-seconds``), each
    timed in the kernel (ms); or why not."""
    code = (
        "import time as _tm, json as _json\n"
        "for _ in range(5):\n" + _indent(system.flush_code) +
        "_dts = []\n"
        f"_t_end = _tm.perf_counter() + {args.flush_seconds!r}\n"
        f"for _ in range({count}):\n"
        "    _t = _tm.perf_counter()\n" + _indent(system.flush_code) +
        "    _dts.append((_tm.perf_counter() - _t) * 1000)\n"
        "    if _t > _t_end and len(_dts) >= 10:\n"
        "        break\n"
        "_bench = _json.dumps(_dts)\n"
    )
    try:
        session = Session(system, n, args.setup_timeout)
    except Exception as exc:  # noqa: BLE001
        return [], f"failed: {type(exc).__name__}: {str(exc)[:300]}"
    try:
        time.sleep(1.0)
        return session.fe.run(code, args.row_timeout, f"{system.name}: {count} flushes"), None
    except Exception as exc:  # noqa: BLE001
        return [], f"failed: {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        session.close()


def _indent(code: str) -> str:
    return "".join("    " + ln + "\n" for ln in code.splitlines())


# ---------------------------------------------------------------------------------------------
# Which systems can run here
# ---------------------------------------------------------------------------------------------


def preflight(system: System) -> str | None:
    """None if ``system``'s package imports in this interpreter; else the exact error."""
    if system.needs is None:
        return None
    code = {"monarch": "import torch, monarch.actor; from monarch.actor import this_host",
            "ipyparallel": "import ipyparallel"}[system.needs]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if p.returncode == 0:
        return None
    err = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
    return f"`{code}` failed: {err}"


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def log(text: str) -> None:
    print(text, flush=True)


def versions() -> dict[str, str]:
    """Versions of everything involved, from this interpreter's metadata."""
    from importlib import metadata

    out = {}
    for dist in ("ipylogfwd", "ipykernel", "jupyter_client", "jupyter_server", "pyzmq", "ipyparallel",
                 "torchmonarch", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ipylogfwd"],
                           capture_output=True, text=True).stdout.strip()
    out["ipylogfwd"] += f" @ {rev}" + (" (ipylogfwd/ modified)" if dirty else "")
    out["python"] = platform.python_version()
    return out


def command_line() -> str:
    """This run's command, with the interpreter relative to the project root where it lies there."""
    exe = Path(sys.executable)
    shown = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else str(exe)
    return " ".join([shown, *sys.argv])


def machine() -> str:
    cpu = "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cpus ({cpu}), {psutil.virtual_memory().total / (1 << 30):.0f} GiB, "
            f"{platform.platform()}")


def fmt_int_med(runs: list[Run], attr: str) -> str:
    """Median of an integer figure; with the max when the runs disagree."""
    vals = [getattr(r, attr) for r in runs]
    m, hi = int(med(vals)), max(vals)
    return f"{m:,}" if hi == m else f"{m:,} (max {hi:,})"


def main_table(rows: list[Row], names: list[str]) -> list[str]:
    """The markdown rows of the main table, ipylogfwd first in each (procs, lines) group."""
    out = [
        "| procs x lines | system | visible (s) | / ipylogfwd | flush returned (s) | lost | duplicated | "
        "out of order | mangled | in next cell | IOPub msgs (MB) | dropped at default limits: msgs (lines) | "
        "kernel RSS peak (+MiB) | procs' slowdown vs /dev/null |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[int, int], dict[str, Row]] = {}
    for r in rows:
        groups.setdefault((r.n, r.lines), {})[r.system] = r
    for (n, lines), by in sorted(groups.items()):
        base = by.get("ipylogfwd")
        base_wall = med([r.wall_visible for r in base.runs]) if base and base.runs else None
        for name in names:
            row = by.get(name)
            if row is None:
                continue
            label = f"{n} x {lines:,}"
            if not row.runs:
                out.append(f"| {label} | {name} | {row.failure} | | | | | | | | | | | |")
                continue
            rs = row.runs
            wall = med([r.wall_visible for r in rs])
            ratio = f"{wall / base_wall:.2f}" if base_wall else "–"  # noqa: RUF001 - the en dash marks "no value"
            lost = fmt_int_med(rs, "lost")
            ooo = fmt_int_med(rs, "out_of_order")
            cell_col = fmt_int_med(rs, "wrong_cell")
            if any(r.elsewhere for r in rs):
                cell_col += f" (+{fmt_int_med(rs, 'elsewhere')} in other cells)"
            if any(r.wrong_stream for r in rs):
                cell_col += f" ({fmt_int_med(rs, 'wrong_stream')} on the wrong stream)"
            if rs[0].primary_lost is not None:
                # two copies of each line arrive by two paths: order only means something per path
                lost += f" (forwarded copy: {fmt_int_med(rs, 'primary_lost')})"
                ooo = f"{fmt_int_med(rs, 'primary_out_of_order')} (forwarded copy)"
            out.append(
                f"| {label} | {name} | {wall:.2f} | {ratio} | {med([r.wall_flush for r in rs]):.2f} | {lost} | "
                f"{fmt_int_med(rs, 'duplicated')} | {ooo} | {fmt_int_med(rs, 'mangled')} | "
                f"{cell_col} | {int(med([r.iopub_msgs for r in rs])):,} "
                f"({med([r.iopub_mb for r in rs]):.1f}) | "
                f"{fmt_int_med(rs, 'dropped')} ({fmt_int_med(rs, 'dropped_lines')}) | "
                f"{med([r.rss_peak_mib for r in rs]):.0f} (+{med([r.rss_delta_mib for r in rs]):.0f}) | "
                f"{med([r.slowdown for r in rs]):.2f}x |"
            )
            if row.failure:
                out.append(f"| {label} | {name} (later run) | {row.failure} | | | | | | | | | | | |")
    return out


def flush_table(flushes: dict[str, tuple[list[float], str | None]], n: int) -> list[str]:
    out = [f"| system ({n} idle procs) | p50 (ms) | p99 (ms) | flushes | what it guarantees when it returns |",
           "|---|---:|---:|---:|---|"]
    for name, (dts, err) in flushes.items():
        g = SYSTEMS[name].guarantee
        if not dts:
            out.append(f"| {name} | {err} | | | {g} |")
        else:
            out.append(f"| {name} | {pct(dts, 0.5):.2f} | {pct(dts, 0.99):.2f} | {len(dts)} | {g} |")
    return out


def server_table(checks: list[ServerCheck], rows: list[Row]) -> list[str]:
    """Markdown rows: what arrived through a real server, next to the replay's prediction."""
    out = ["| system | procs x lines | lines expected | lost through the server | left out and counted by the "
           "system | mangled | server notices \"IOPub … rate exceeded\" | \"iopub messages resumed\" in its log | "
           "replay: output msgs (lines) dropped (direct run, median) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for c in checks:
        direct = next((r for r in rows if (r.system, r.n, r.lines) == (c.system, c.n, c.lines)), None)
        pred = (f"{fmt_int_med(direct.runs, 'dropped')} ({fmt_int_med(direct.runs, 'dropped_lines')})"
                if direct and direct.runs else "–")  # noqa: RUF001 - the en dash marks "no value"
        if c.failure:
            out.append(f"| {c.system} | {c.n} x {c.lines:,} | {c.expected:,} | {c.failure} | | | | | {pred} |")
        else:
            out.append(f"| {c.system} | {c.n} x {c.lines:,} | {c.expected:,} | {c.lost:,} | {c.noted:,} | "
                       f"{c.mangled:,} | "
                       f"{c.rate_notices} | {c.resumed_in_log} | {pred} |")
    return out


def write_doc(path: Path, args: argparse.Namespace, rows: list[Row], flushes: dict[str, tuple[list[float], str | None]],
              unrunnable: dict[str, str], seconds: float, names: list[str], analysis: list[str],
              checks: list[ServerCheck]) -> None:
    v = versions()
    lines = [
        "# ipylogfwd side by side",
        "",
        "Generated by `benchmarks/compare.py` (do not edit by hand; rerun it). One run, one machine, "
        f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')} local time, {seconds / 60:.0f} min.",
        "",
        f"- machine: {machine()}; load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- command: `{command_line()}`",
        f"- workload: every proc writes L lines on stdout and L on stderr, alternating, each "
        f"`Q<rank><o|e><seq> ` + {args.payload} x ({args.payload + 12} bytes with the newline); medians of "
        f"{args.repeat} runs (rows over {args.big_lines:,} lines in all: {args.big_repeat} run); "
        f"per-row timeout {args.row_timeout:.0f} s",
        "",
        "## Systems",
        "",
        "| system | how the procs' output reaches the cell, and the flush used |",
        "|---|---|",
        *[f"| {name} | {SYSTEMS[name].about} |" for name in names],
        "",
    ]
    if unrunnable:
        lines += ["Not runnable here:", ""]
        lines += [f"- {name}: {why}" for name, why in unrunnable.items()]
        lines += [""]
    lines += [
        "## Throughput and correctness",
        "",
        "*visible*: from the first print (procs' clock, shared with the kernel) until the last workload line "
        "arrived at the frontend (where lines were lost: the last one that arrived); "
        "*/ ipylogfwd*: the peer's median over ipylogfwd's (above 1: ipylogfwd is faster); "
        "*flush returned*: until the system's own flush returned in the kernel. *lost*: lines never shown intact; "
        "*duplicated*: extra intact copies; *out of order*: lines shown after a later line of the same proc and "
        "stream; *mangled*: line starts that did not make an intact line (lines cut or glued together); *in next "
        "cell*: intact lines attributed to the `print('next')` cell sent right behind the workload cell. "
        "*dropped at default limits*: output messages jupyter_server 2.x would not have forwarded with its "
        "default `iopub_msg_rate_limit` 1000/s and `iopub_data_rate_limit` 1 MB/s over 3 s — a replay of the "
        "server's limiter over the arrival times and sizes the frontend recorded, not a live server. *procs' "
        "slowdown*: median over procs of the print loop's time over the same loop into /dev/null.",
        "",
        *main_table(rows, names),
        "",
        "## Through a real jupyter_server",
        "",
        "The same workload once more, with `jupyter server` (default limits) between the kernel and a "
        "websocket client, as JupyterLab has it; the last column is the replay's prediction for the same row.",
        "",
        *(server_table(checks, rows) if checks else ["(not run: `--server-row none`)"]),
        "",
        "## Flush latency",
        "",
        *flush_table(flushes, args.flush_procs),
        "",
        "## Reading the figures",
        "",
        *analysis,
        "",
        "## Reproduce",
        "",
        "```",
        "python3 -m venv .venv-bench",
        '.venv-bench/bin/pip install -e ".[test,lab]" -r benchmarks/requirements-compare.txt',
        "flock -w 3600 /tmp/ipylogfwd-bench.lock .venv-bench/bin/python benchmarks/compare.py",
        "```",
        "",
        "`--quick` runs a small subset and prints only; `--help` lists the knobs (systems, procs, lines, repeats, "
        "timeouts).",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    # benchmarks/bench_hosts.py, bench_browser.py and bench_floor.py keep sections of their own in the same
    # file: carry them over.
    old = path.read_text() if path.exists() else ""
    for name in ("bench_hosts", "bench_browser", "bench_floor"):
        begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
        if begin in old and end in old:
            lines += ["", old[old.index(begin) : old.index(end) + len(end)], ""]
    path.write_text("\n".join(lines))


# Why a figure comes out as it does, where the mechanism is known from the systems' code; each
# is printed only when the run shows the effect it explains.
WHY = {
    "ipylogfwd-split": (
        "ipylogfwd's text output split some lines in two: the reader releases a partial line once it "
        "has been held 0.1 s (so prompts and progress bars show), measured by age, not by quiet. Under "
        "load a proc's 8 KiB block write can end mid-line and its next bytes wait in the pipe longer "
        "than that (2 cores, many procs, or the proc paused by back-pressure), so the head of the line "
        "is published alone; the text sink then ends it when another rank writes, and the tail shows "
        "as a line of its own. Every byte is there, in order, but the line is cut (counted as lost and "
        "mangled). The widget frontend completes a partial line in place and is not affected."
    ),
    "ipylogfwd-rate": (
        "In the direct runs ipylogfwd's text output has its limit off (no server between, as with "
        "nbconvert: `ipylogfwd.set_text_limit(None)`), so it publishes whatever the procs print and the "
        "replay counts what a jupyter_server with default limits would have dropped of it. With the "
        "default limit, as through the real server below, the server drops nothing: ipylogfwd leaves "
        "lines out itself and counts them in notes. The other text-stream peers are dropped the same way; "
        "ipyparallel is not because the server counts only stream messages' bytes, not display updates'."
    ),
    "ipylogfwd-noted": (
        "ipylogfwd's text output, used when no widget frontend answers, is limited (192 KiB/s by default) "
        "so that a server's IOPub data limit (1 MB/s) never drops it: past the limit it leaves lines out "
        "and notes, per proc about once a second and before each barrier, how many and where the full log "
        "is, followed by the last lines left out. In the direct runs above (no server between, as with "
        "nbconvert) the limit is off, `ipylogfwd.set_text_limit(None)`. In JupyterLab and Notebook 7 "
        "ipylogfwd uses its widgets, which pace lines within the server's limits; "
        "benchmarks/bench_browser.py measures that path."
    ),
    "multiprocessing-mangled": (
        "multiprocessing in ipykernel mangles lines: every child writes its 8 KiB buffer into the one "
        "capture pipe ipykernel reads, and pipe writes are atomic only up to 4 KiB, so children's "
        "writes interleave mid-line."
    ),
    "multiprocessing-fast": (
        "multiprocessing in ipykernel has the shortest path (children write into one capture pipe that "
        "ipykernel reads and publishes in big chunks) and a flush that waits for nothing; it pays with "
        "lines mangled by children's 8 KiB writes interleaving mid-line (pipe writes are atomic only up "
        "to 4 KiB) and, when the next cell starts at once, output in the wrong cell."
    ),
    "ipyparallel-lost": (
        "ipyparallel's %%px streams each engine's output as a display that every update replaces with the "
        "engine's whole output so far (quadratic bytes), and stops updating it when %%px returns: what the "
        "kernel's client had not yet processed by then is missing from the cell."
    ),
    "monarch-dup": (
        "Monarch on one host shows every line twice: the proc's host process tees the proc's raw output to "
        "its own stdout, which is the kernel's (ipykernel forwards it), besides forwarding it over the mesh "
        "with a `[proc] [rank]` prefix; the raw copies of different procs share one pipe and get glued or "
        "cut (mangled). Its flush barrier takes about one second even with idle procs."
    ),
}


def analyse(rows: list[Row], flushes: dict[str, tuple[list[float], str | None]],
            checks: list[ServerCheck]) -> list[str]:
    """Plain statements, from the figures, of where ipylogfwd is not ahead or not clean, and why."""
    out: list[str] = []
    why: list[str] = []
    groups: dict[tuple[int, int], dict[str, Row]] = {}
    for r in rows:
        groups.setdefault((r.n, r.lines), {})[r.system] = r
    for (n, lines), by in sorted(groups.items()):
        base = by.get("ipylogfwd")
        if base is None or not base.runs:
            out.append(f"- {n} x {lines:,}: ipylogfwd has no figure ({base.failure if base else 'not run'}).")
            continue
        b = med([r.wall_visible for r in base.runs])
        bad = [r for r in base.runs if r.lost or r.duplicated or r.out_of_order or r.mangled or r.wrong_cell]
        if bad:
            out.append(f"- {n} x {lines:,}: ipylogfwd did not show every line exactly once, intact, in order and "
                       f"in its cell in {len(bad)} of {len(base.runs)} runs (lost {max(r.lost for r in bad):,} at "
                       f"most, all of them lines cut in two).")
            why.append("ipylogfwd-split")
        if any(r.dropped for r in base.runs):
            why.append("ipylogfwd-rate")
        for name, row in by.items():
            if name == "ipylogfwd" or not row.runs:
                continue
            w = med([r.wall_visible for r in row.runs])
            if w < b:
                out.append(f"- {n} x {lines:,}: {name} showed its last line sooner: {w:.2f} s against ipylogfwd's "
                           f"{b:.2f} s (ratio {w / b:.2f}).")
                why.append(f"{name}-fast")
            if name == "multiprocessing" and any(r.mangled for r in row.runs):
                why.append("multiprocessing-mangled")
            if name == "ipyparallel" and any(r.lost for r in row.runs):
                why.append("ipyparallel-lost")
            if name == "monarch" and any(r.duplicated for r in row.runs):
                why.append("monarch-dup")
    for c in checks:
        if c.system == "ipylogfwd" and c.noted and not c.lost:
            shown = c.expected - c.noted
            full = ", ".join(
                f"{o.system} {o.expected - o.lost:,}" for o in checks if o.system != "ipylogfwd" and not o.failure
            )
            out.append(f"- through a real jupyter_server with its default limits, {c.n} x {c.lines:,}: "
                       f"ipylogfwd's text output showed {shown:,} of {c.expected:,} lines "
                       f"and counted the other {c.noted:,} in its notes; "
                       "the server dropped nothing" + (f" (lines shown there: {full})" if full else "") + ".")
            why.append("ipylogfwd-noted")
        if c.system == "ipylogfwd" and (c.lost or c.failure):
            others = ", ".join(f"{o.system} {o.lost:,}" for o in checks if o.system != "ipylogfwd" and not o.failure)
            out.append(f"- through a real jupyter_server with its default limits, {c.n} x {c.lines:,}: "
                       f"ipylogfwd's text output lost {c.lost:,} of {c.expected:,} lines"
                       + (f" (lost there: {others})" if others else "")
                       + (f"; {c.failure}" if c.failure else "") + ".")
            why.append("ipylogfwd-rate")
    base_fl = flushes.get("ipylogfwd", ([], None))[0]
    for name, (dts, _) in flushes.items():
        if name != "ipylogfwd" and dts and base_fl and pct(dts, 0.5) < pct(base_fl, 0.5):
            out.append(f"- flush: {name}'s p50 {pct(dts, 0.5):.2f} ms is below ipylogfwd's {pct(base_fl, 0.5):.2f} ms; "
                       "it guarantees nothing about the procs (see the flush table).")
    if not out:
        out.append("- ipylogfwd was at least as fast as every peer on every row, and lost nothing.")
    reasons = [WHY[k] for k in dict.fromkeys(why) if k in WHY]
    return out + ([""] + [f"- {r}" for r in reasons] if reasons else [])


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 and 4 procs x 2,000 lines, one run each; prints only")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated, default all: " + ",".join(SYSTEMS))
    ap.add_argument("--procs", help="comma-separated proc counts (default 2,4,16)")
    ap.add_argument("--lines", help="comma-separated lines per proc per stream (default 10000,250000)")
    ap.add_argument("--payload", type=int, default=20, help="payload characters per line (default 20)")
    ap.add_argument("--repeat", type=int, help="runs per row, median quoted (default 3)")
    ap.add_argument("--big-lines", type=int, default=1_000_000,
                    help="rows with more lines than this in all (procs x lines) get --big-repeat runs")
    ap.add_argument("--big-repeat", type=int, default=1, help="runs of the big rows (default 1)")
    ap.add_argument("--row-timeout", type=float, help="seconds one workload cell may take (default 300)")
    ap.add_argument("--setup-timeout", type=float, default=180, help="seconds a system's setup cell may take")
    ap.add_argument("--flushes", type=int, help="flushes timed per system (default 200)")
    ap.add_argument("--flush-seconds", type=float, default=30,
                    help="stop timing a system's flushes after this long (at least 10 are timed; default 30)")
    ap.add_argument("--flush-procs", type=int, default=8, help="idle procs during the flush timing (default 8)")
    ap.add_argument("--server-row", help="procs x lines run once more through a real jupyter_server "
                    "(default 16x10000; quick 2x2000; 'none' to skip)")
    ap.add_argument("--out", help="markdown file to write (default docs/benchmarks.md; none with --quick)")
    args = ap.parse_args()
    q = args.quick
    procs = [int(x) for x in (args.procs or ("2,4" if q else "2,4,16")).split(",")]
    lines_list = [int(x) for x in (args.lines or ("2000" if q else "10000,250000")).split(",")]
    args.repeat = args.repeat or (1 if q else 3)
    args.row_timeout = args.row_timeout or (120 if q else 300)
    args.flushes = args.flushes or (20 if q else 200)
    out = Path(args.out) if args.out else (None if q else ROOT / "docs" / "benchmarks.md")
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}")

    t0 = time.monotonic()
    log(f"machine: {machine()}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    unrunnable: dict[str, str] = {}
    for name in names:
        why = preflight(SYSTEMS[name])
        if why:
            unrunnable[name] = f"not runnable here: {why}"
            log(f"{name}: {unrunnable[name]}")
    rows: list[Row] = []
    for n in procs:
        for name in names:
            if name in unrunnable:
                rows += [Row(name, n, ln, failure=unrunnable[name]) for ln in lines_list]
                continue
            log(f"== {name}, {n} procs ==")
            rows += run_rows(SYSTEMS[name], n, lines_list, args)
    flushes: dict[str, tuple[list[float], str | None]] = {}
    for name in names:
        if name in unrunnable:
            flushes[name] = ([], unrunnable[name])
            continue
        log(f"== {name}: {args.flushes} flushes, {args.flush_procs} idle procs ==")
        flushes[name] = flush_latency(SYSTEMS[name], args.flush_procs, args.flushes, args)
        dts, err = flushes[name]
        log(f"  {err}" if err else f"  p50 {pct(dts, 0.5):.2f} ms, p99 {pct(dts, 0.99):.2f} ms")
    checks: list[ServerCheck] = []
    server_row = args.server_row or ("2x2000" if q else "16x10000")
    if server_row != "none":
        sn, sl = (int(x) for x in server_row.split("x"))
        for name in names:
            if name in unrunnable:
                continue
            log(f"== {name}: {sn} x {sl:,} through a real jupyter_server ==")
            c = server_check(SYSTEMS[name], sn, sl, args.payload, args.row_timeout)
            checks.append(c)
            log(f"  {c}")
    seconds = time.monotonic() - t0
    analysis = analyse(rows, flushes, checks)
    log("\n".join(["", *main_table(rows, names), "", *server_table(checks, rows), "",
                   *flush_table(flushes, args.flush_procs), "", *analysis]))
    if out is not None:
        write_doc(out, args, rows, flushes, unrunnable, seconds, names, analysis, checks)
        log(f"wrote {out}")
    log(f"done in {seconds:.0f} s")


if __name__ == "__main__":
    main()
