"""Core benchmarks of ipylogfwd through a real ipykernel driven by jupyter_client.

Run from the project root::

    .venv/bin/python benchmarks/bench_core.py            # full run (several minutes)
    .venv/bin/python benchmarks/bench_core.py --quick    # smoke check, under ~60 s
    .venv/bin/python benchmarks/bench_core.py --parts a,c --lines 100000

Parts (``--parts``, default all):

a  Throughput: 4 procs x ``--lines`` sequence-numbered lines to stdout, from the first print
   until ``%logflush`` returns (timed with time.time() inside the kernel; the procs share its
   clock), and whether the frontend received every line exactly once. Floor: the same code
   as 4 plain ``python -c CODE | cat > /dev/null`` pipelines started together.
b  The procs' own slowdown under capture: each proc's first-print to last-print(+flush) time
   under ipylogfwd vs under the ``cat`` floor (same runs as part a).
c  ``%logflush`` latency with 8 idle procs, measured inside the kernel (one cell, many
   flushes) and, as a secondary figure, as a frontend round trip of a ``%logflush`` cell.
d  Kernel peak RSS while ``--rss-lines`` x 4 short lines pass, polled with psutil every
   ``--rss-interval`` s, against the kernel's idle RSS after %load_ext and starting the procs.
e  Start-up: ``%%procs 64`` with a body of ``1`` in a fresh kernel, from sending the cell to
   its reply (64 procs started and a first cell done), ``--spawn-runs`` times.

The frontend is a small jupyter_client client whose IOPub socket is drained by its own thread
as fast as messages come (ZMQ drops IOPub messages beyond the kernel's send high-water mark if
a frontend falls behind, which would show up here as lost lines).

This script prints figures; it is not a test. Quote medians from one run.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import queue
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# ---------------------------------------------------------------------------------------------
# The frontend
# ---------------------------------------------------------------------------------------------


@dataclass
class CellResult:
    msg_id: str
    reply: dict[str, Any]
    seconds: float  # frontend round trip: execute sent -> reply and idle received

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def value(self, name: str = "r") -> Any:
        """A JSON user expression evaluated after the cell (see Frontend.execute)."""
        ue = self.reply["content"].get("user_expressions", {}).get(name)
        if ue is None or ue.get("status") != "ok":
            raise RuntimeError(f"user expression {name!r} failed: {ue!r}\nreply: {self.reply['content']!r}")
        return json.loads(ast.literal_eval(ue["data"]["text/plain"]))


@dataclass
class StreamStats:
    """What the frontend received on the stream channels for one parent cell."""

    messages: int = 0
    chars: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    texts: dict[str, list[str]] = field(default_factory=lambda: {"stdout": [], "stderr": []})
    rank_lines: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    first_at: float | None = None  # time.time() when the first / last stream message arrived
    last_at: float | None = None


class Frontend:
    """A jupyter_client frontend with a thread that drains IOPub promptly.

    ``keep_text``: keep every stream text (for exact per-line checks); otherwise only count
    rank-prefixed lines (``count_ranks`` ranks) and drop the text at once.
    """

    def __init__(
        self,
        *,
        keep_text: bool = True,
        count_ranks: int = 0,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        extra_arguments: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.keep_text = keep_text
        self.count_ranks = count_ranks
        self.km = KernelManager(kernel_name="python3")
        # The kernel's own stdout/stderr (start-up warnings, crashes) go to ``log`` if given.
        self._log = open(log, "ab") if log is not None else None  # noqa: SIM115 - the kernel's stdout until close()
        kw: dict[str, Any] = {"extra_arguments": extra_arguments or []}
        if env is not None:
            kw["env"] = env
        if cwd is not None:
            kw["cwd"] = str(cwd)
        if self._log is not None:
            kw.update(stdout=self._log, stderr=subprocess.STDOUT)
        self.km.start_kernel(**kw)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self._cond = threading.Condition()
        self.streams: dict[str, StreamStats] = defaultdict(StreamStats)
        self.other: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._idle: set[str] = set()
        self._stop = False
        self.pump_error: BaseException | None = None
        self._prefixes = [f"[{r}] {r} " for r in range(count_ranks)]
        self._thread = threading.Thread(target=self._pump, name="bench-iopub", daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid  # type: ignore[union-attr]

    def _pump(self) -> None:
        chan = self.kc.iopub_channel
        try:
            while not self._stop:
                try:
                    msg = chan.get_msg(timeout=0.1)
                except queue.Empty:
                    continue
                self._on_msg(msg)
        except BaseException as exc:  # noqa: BLE001 - whatever it is, execute() raises it in the caller
            self.pump_error = exc
            with self._cond:
                self._cond.notify_all()

    def _on_msg(self, msg: dict[str, Any]) -> None:
        parent = msg["parent_header"].get("msg_id", "")
        mtype = msg["msg_type"]
        if mtype == "stream":
            now = time.time()
            name = msg["content"]["name"]
            text = msg["content"]["text"]
            st = self.streams[parent]
            st.messages += 1
            st.chars[name] += len(text)
            if st.first_at is None:
                st.first_at = now
            st.last_at = now
            if self.keep_text:
                st.texts[name].append(text)
            elif name == "stdout":
                for r, prefix in enumerate(self._prefixes):
                    st.rank_lines[r] += text.count(prefix)
            return
        with self._cond:
            self.other[parent].append(msg)
            if mtype == "status" and msg["content"]["execution_state"] == "idle":
                self._idle.add(parent)
                self._cond.notify_all()

    def execute(self, code: str, timeout: float = 600.0, result: str | None = None) -> CellResult:
        """Run one cell; return when its reply and its idle status are in.

        ``result``: an expression (evaluated in the kernel after the cell) whose value is
        returned through ``CellResult.value()``; it must evaluate to a JSON string.
        """
        t0 = time.perf_counter()
        ue = {"r": result} if result else {}
        msg_id = self.kc.execute(code, user_expressions=ue, store_history=False)
        deadline = time.monotonic() + timeout
        reply = None
        while reply is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply within {timeout} s: {code[:80]!r}")
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg
        with self._cond:
            while msg_id not in self._idle:
                if self.pump_error is not None:
                    raise RuntimeError("IOPub pump failed") from self.pump_error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no idle within {timeout} s: {code[:80]!r}")
                self._cond.wait(min(left, 0.5))
        res = CellResult(msg_id, reply, time.perf_counter() - t0)
        if res.status != "ok":
            c = reply["content"]
            raise RuntimeError(f"cell failed: {c.get('ename')}: {c.get('evalue')}\n{code[:300]}")
        return res

    def shutdown(self) -> None:
        self._stop = True
        self._thread.join(2.0)
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        if self._log is not None:
            self._log.close()


# ---------------------------------------------------------------------------------------------
# The code the procs run (identical under ipylogfwd and under the cat floor)
# ---------------------------------------------------------------------------------------------

PROC_BODY = """\
import os, sys, time
rank = int(os.environ["RANK"])
payload = "x" * {payload}
start_at = {start_at!r}
while time.time() < start_at:
    time.sleep(0.0005)
t_first, c_first = time.time(), time.process_time()
for i in range({lines}):
    print(f"{{rank}} {{i:09d}} " + payload)
sys.stdout.flush()
t_last, c_last = time.time(), time.process_time()
"""


# Part d's second writer: pre-built blocks of 10,000 lines, so the procs produce lines much
# faster than print() does and the kernel, not the procs, is the bottleneck.
BLOCK_BODY = """\
import os, sys, time
rank = int(os.environ["RANK"])
payload = "x" * {payload}
t_first, c_first = time.time(), time.process_time()
for j in range(0, {lines}, 10000):
    sys.stdout.write("".join([f"{{rank}} {{i:09d}} " + payload + "\\n" for i in range(j, min(j + 10000, {lines}))]))
sys.stdout.flush()
t_last, c_last = time.time(), time.process_time()
"""


def proc_body(lines: int, payload: int, start_at: float = 0.0, writer: str = "print") -> str:
    if writer == "block":
        return BLOCK_BODY.format(lines=lines, payload=payload)
    return PROC_BODY.format(lines=lines, payload=payload, start_at=start_at)


def line_text(rank: int, i: int, payload: int) -> str:
    return f"{rank} {i:09d} " + "x" * payload


def process_cpu(pid: int) -> float:
    """CPU seconds ``pid``'s threads have used, to the nanosecond (the scheduler's own count,
    ``/proc/<pid>/task/*/schedstat``; psutil's counts are in 10 ms ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def flood_in_kernel(fe: Frontend, nprocs: int, lines: int, payload: int, writer: str = "print") -> dict[str, Any]:
    """One flood through ipylogfwd: a ``%%procs N --bg`` cell, then (in the kernel) wait until
    the procs have printed everything, then ``%logflush --timeout 600``. Times are time.time()
    in the kernel and procs."""
    k0, s0 = process_cpu(fe.pid), process_cpu(os.getpid())
    bg = fe.execute(
        f"%%procs {nprocs} --bg\n" + proc_body(lines, payload, writer=writer) + "(t_first, t_last, c_last - c_first)\n"
    )
    flush = fe.execute(
        "import time as _time, json as _json\n"
        "_h = get_ipython().magics_manager.registry['ProcsMagics'].last\n"
        "_h.wait(600)\n"  # blocks without polling (a poll loop would take the procs' cpu)
        "_t_written = _time.time()\n"
        "_rep = get_ipython().run_line_magic('logflush', '--timeout 600')\n"
        "_t_flushed = _time.time()\n"
        "_res = _h.wait(600)\n"
        "_bench = _json.dumps({'written': _t_written, 'flushed': _t_flushed,\n"
        "    'procs': {str(r): v for r, v in _res.items()},\n"
        "    'outcomes': {str(e.rank): e.outcome for e in _rep.entries},\n"
        "    'flush_s': {str(e.rank): e.seconds for e in _rep.entries}})\n",
        timeout=900,
        result="_bench",
    )
    k1, s1 = process_cpu(fe.pid), process_cpu(os.getpid())
    v = flush.value()
    firsts = [p[0] for p in v["procs"].values()]
    lasts = [p[1] for p in v["procs"].values()]
    st = fe.streams.get(bg.msg_id, StreamStats())
    return {
        "bg_msg_id": bg.msg_id,
        "flush_msg_id": flush.msg_id,
        "t_first": min(firsts),
        "wall": v["flushed"] - min(firsts),
        "written": max(lasts) - min(firsts),
        "done_seen": v["written"] - min(firsts),
        "proc_times": [p[1] - p[0] for p in v["procs"].values()],
        "proc_cpu": [p[2] for p in v["procs"].values()],
        "outcomes": v["outcomes"],
        "frontend_last": (st.last_at - min(firsts)) if st.last_at else None,
        "stream_messages": st.messages,
        "kernel_cpu": k1 - k0,
        "frontend_cpu": s1 - s0,
    }


def flood_floor(nprocs: int, lines: int, payload: int, sink: str = "cat", prefix: str = "") -> dict[str, Any]:
    """The same code as ``nprocs`` plain ``python -c CODE | cat > /dev/null`` pipelines
    (``sink="devnull"``: ``python -c CODE > /dev/null``, no pipe at all), started together
    (each waits for a common start time so interpreter start-up skew is not counted), timed
    from the first print until every pipeline has finished. ``prefix``: code run first (to
    set stdout up differently)."""
    start_at = time.time() + 1.0
    code = (
        prefix
        + proc_body(lines, payload, start_at)
        + 'sys.stderr.write("%r %r %r\\n" % (t_first, t_last, c_last - c_first))\n'
    )
    redirect = "| cat > /dev/null" if sink == "cat" else "> /dev/null"
    cmd = f"{shlex.quote(PYTHON)} -c {shlex.quote(code)} {redirect}"
    pipes = [
        subprocess.Popen(["sh", "-c", cmd], env={**os.environ, "RANK": str(r)}, stderr=subprocess.PIPE, text=True)
        for r in range(nprocs)
    ]
    errs = []
    for p in pipes:
        _, err = p.communicate(timeout=600)  # a floor run takes seconds
        errs.append(err)
    t_end = time.time()
    times = [tuple(map(float, e.split())) for e in errs]
    first = min(t[0] for t in times)
    return {
        "wall": t_end - first,
        "written": max(t[1] for t in times) - first,
        "proc_times": [t[1] - t[0] for t in times],
        "proc_cpu": [t[2] for t in times],
    }


def check_lines(texts: list[str], nprocs: int, lines: int, payload: int) -> dict[str, Any]:
    """Every expected line exactly once, in order per rank? Lost/duplicated/malformed counts."""
    counts = [bytearray(lines) for _ in range(nprocs)]
    malformed = 0
    out_of_order = 0
    last = [-1] * nprocs
    text = "".join(texts)
    body = text[:-1] if text.endswith("\n") else text
    for line in body.split("\n") if body else []:
        try:
            close = line.index("] ")
            r = int(line[1:close])
            rest = line[close + 2 :]
            i = int(rest.split(" ", 2)[1])
        except (ValueError, IndexError):
            malformed += 1
            continue
        if not (0 <= r < nprocs and 0 <= i < lines) or rest != line_text(r, i, payload):
            malformed += 1
            continue
        c = counts[r]
        if c[i] < 255:
            c[i] += 1
        if i != last[r] + 1:
            out_of_order += 1
        last[r] = i
    lost = sum(c.count(0) for c in counts)
    dup = sum(sum(x - 1 for x in c if x > 1) for c in counts)
    received = [lines - c.count(0) for c in counts]
    return {"lost": lost, "duplicated": dup, "malformed": malformed, "out_of_order": out_of_order, "received": received}


# ---------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def part_ab(args: argparse.Namespace, logdir: Path, summary: list[tuple[str, str, str, bool | None]]) -> None:
    n, lines, payload, reps = 4, args.lines, args.payload, args.repeat
    line_bytes = len(line_text(0, 0, payload)) + 1
    print(f"\n== (a)/(b) throughput: {n} procs x {lines:,} lines of {line_bytes} bytes "
          f"({n * lines * line_bytes / 1e6:.1f} MB), {reps} repetition(s) ==")
    fe = Frontend(keep_text=True, log=logdir / "kernel-ab.log")
    try:
        fe.execute("%load_ext ipylogfwd")
        # No server stands between this client and the kernel: every line is shown (the text
        # limit is for a Jupyter server's IOPub rate limits).
        fe.execute("import ipylogfwd; ipylogfwd.set_text_limit(None)")
        fe.execute(f"%%procs {n} --logdir {logdir / 'ab'}\nimport os\n")
        # warm-up: a small flood through the whole path
        flood_in_kernel(fe, n, 2000, payload)
        runs, floors, nulls, checks = [], [], [], []
        for rep in range(reps):
            fl = flood_floor(n, lines, payload)
            floors.append(fl)
            nulls.append(flood_floor(n, lines, payload, sink="devnull"))
            r = flood_in_kernel(fe, n, lines, payload)
            st = fe.streams.get(r["bg_msg_id"], StreamStats())
            chk = check_lines(st.texts["stdout"], n, lines, payload)
            # output of the flood that landed in another cell (it should not)
            elsewhere = sum(
                s.chars["stdout"] + s.chars["stderr"] for mid, s in fe.streams.items() if mid == r["flush_msg_id"]
            )
            chk["stderr_chars"] = st.chars["stderr"]
            chk["in_flush_cell_chars"] = elsewhere
            checks.append(chk)
            runs.append(r)
            st.texts = {"stdout": [], "stderr": []}  # free the text
            print(
                f"  rep {rep + 1}: ipylogfwd wall {r['wall']:.3f} s (procs done writing at +{r['written']:.3f} s, "
                f"the cell done and published +{r['done_seen']:.3f} s, "
                f"frontend got last line +{r['frontend_last'] or float('nan'):.3f} s, "
                f"{r['stream_messages']} stream msgs) | "
                f"floor wall {fl['wall']:.3f} s (written +{fl['written']:.3f} s) | "
                f"/dev/null wall {nulls[-1]['wall']:.3f} s"
            )
            print(
                f"         proc first->last print: ipylogfwd {[f'{x:.3f}' for x in r['proc_times']]} | "
                f"floor {[f'{x:.3f}' for x in fl['proc_times']]} | "
                f"/dev/null {[f'{x:.3f}' for x in nulls[-1]['proc_times']]}"
            )
            print(
                f"         kernel CPU {r['kernel_cpu']:.2f} s, frontend CPU {r['frontend_cpu']:.2f} s, "
                f"flush outcomes {sorted(set(r['outcomes'].values()))}; frontend check: received per rank "
                f"{chk['received']}, lost {chk['lost']}, duplicated {chk['duplicated']}, malformed {chk['malformed']}, "
                f"out of order {chk['out_of_order']}, stderr chars {chk['stderr_chars']}, "
                f"chars in the flush cell {chk['in_flush_cell_chars']}"
            )
    finally:
        fe.shutdown()
    wall = med([r["wall"] for r in runs])
    floor = med([f["wall"] for f in floors])
    total = n * lines
    print(f"  median wall: ipylogfwd {wall:.3f} s ({total / wall / 1e6:.2f} M lines/s, "
          f"{total * line_bytes / wall / 1e6:.1f} MB/s), floor {floor:.3f} s; ratio {wall / floor:.2f}x")
    lost = sum(c["lost"] for c in checks)
    dup = sum(c["duplicated"] for c in checks)
    bad = sum(c["malformed"] + c["out_of_order"] + c["stderr_chars"] + c["in_flush_cell_chars"] for c in checks)
    p_in = med([t for r in runs for t in r["proc_times"]])
    p_fl = med([t for f in floors for t in f["proc_times"]])
    print(f"  median proc first->last print: ipylogfwd {p_in:.3f} s, floor {p_fl:.3f} s; ratio {p_in / p_fl:.2f}x")
    c_in = med([t for r in runs for t in r["proc_cpu"]])
    c_fl = med([t for f in floors for t in f["proc_cpu"]])
    c_null = med([t for x in nulls for t in x["proc_cpu"]])
    print(f"  median proc CPU time over the same span (process_time; less sensitive to CPU contention): "
          f"ipylogfwd {c_in:.3f} s, floor {c_fl:.3f} s, /dev/null {c_null:.3f} s; ratio to floor {c_in / c_fl:.2f}x")
    null_wall = med([x["wall"] for x in nulls])
    p_null = med([t for x in nulls for t in x["proc_times"]])
    print(f"  for reference, the same code straight to /dev/null (no pipe): wall {null_wall:.3f} s, "
          f"proc first->last print {p_null:.3f} s")
    summary.append((f"(a) wall, 4x{lines:,} lines, first print -> %logflush returns",
                    f"{wall:.3f} s vs floor {floor:.3f} s = {wall / floor:.2f}x", "<= 1.5x", wall / floor <= 1.5))
    summary.append(("(a) frontend got every line exactly once",
                    f"lost {lost}, duplicated {dup}, malformed/out-of-order/misplaced {bad}", "0 / 0 / 0",
                    lost == 0 and dup == 0 and bad == 0))
    summary.append(("(b) proc first->last print (median of procs)",
                    f"{p_in:.3f} s vs floor {p_fl:.3f} s = {p_in / p_fl:.2f}x", "<= 1.2x", p_in / p_fl <= 1.2))
    summary.append(("(b) proc CPU time over that span (median)",
                    f"{c_in:.3f} s vs floor {c_fl:.3f} s = {c_in / c_fl:.2f}x", "(info)", None))
    summary.append(("(a/b) reference: same code > /dev/null (wall / proc)",
                    f"{null_wall:.3f} s / {p_null:.3f} s (ipylogfwd {wall / null_wall:.2f}x / {p_in / p_null:.2f}x)",
                    "(info)", None))


def part_c(args: argparse.Namespace, logdir: Path, summary: list[tuple[str, str, str, bool | None]]) -> None:
    n = 8
    print(f"\n== (c) %logflush latency, {n} idle procs, {args.flushes} flushes in one kernel cell ==")
    fe = Frontend(keep_text=True, log=logdir / "kernel-c.log")
    try:
        fe.execute("%load_ext ipylogfwd")
        fe.execute(f"%%procs {n} --logdir {logdir / 'c'}\nx = 1\n")
        time.sleep(0.5)
        cell = fe.execute(
            "import time as _time, json as _json\n"
            "_ip = get_ipython()\n"
            "for _ in range(5):\n"
            "    _ip.run_line_magic('logflush', '')\n"
            "_dts, _bad = [], 0\n"
            f"for _ in range({args.flushes}):\n"
            "    _t = _time.perf_counter()\n"
            "    _rep = _ip.run_line_magic('logflush', '')\n"
            "    _dts.append(_time.perf_counter() - _t)\n"
            "    _bad += not _rep.ok\n"
            "_bench = _json.dumps({'dts': _dts, 'bad': _bad})\n",
            timeout=600,
            result="_bench",
        )
        v = cell.value()
        dts = [d * 1000 for d in v["dts"]]
        p50, p90, p99 = pct(dts, 0.5), pct(dts, 0.9), pct(dts, 0.99)
        print(f"  in-kernel: p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, min {min(dts):.2f} ms, "
              f"max {max(dts):.2f} ms; flushes not ok: {v['bad']}")
        rts = []
        for _ in range(args.frontend_flushes):
            rts.append(fe.execute("%logflush").seconds * 1000)
        noop = [fe.execute("pass").seconds * 1000 for _ in range(args.frontend_flushes)]
        print(f"  frontend round trip of a '%logflush' cell: median {med(rts):.1f} ms, max {max(rts):.1f} ms "
              f"(n={len(rts)}); of a 'pass' cell: median {med(noop):.1f} ms")
    finally:
        fe.shutdown()
    summary.append(("(c) %%logflush p50 in kernel, 8 idle procs", f"{p50:.2f} ms", "< 20 ms", p50 < 20))
    summary.append(("(c) %%logflush p99 in kernel, 8 idle procs", f"{p99:.2f} ms", "(info)", None))
    summary.append(("(c) %%logflush cell, frontend round trip (median)",
                    f"{med(rts):.1f} ms ('pass' cell {med(noop):.1f} ms)", "(info)", None))


def part_d(args: argparse.Namespace, logdir: Path, summary: list[tuple[str, str, str, bool | None]]) -> None:
    for writer in args.rss_writers:
        _part_d(args, logdir, summary, writer)


def _part_d(args: argparse.Namespace, logdir: Path, summary: list[tuple[str, str, str, bool | None]],
            writer: str) -> None:
    n, lines, payload = 4, args.rss_lines, args.rss_payload
    line_bytes = len(line_text(0, 0, payload)) + 1
    total = n * lines
    how = "print() per line" if writer == "print" else "pre-built 10,000-line blocks (kernel-bound)"
    print(f"\n== (d) kernel RSS while {total:,} lines of {line_bytes} bytes pass ({n} procs x {lines:,}, "
          f"{how}) ==")
    fe = Frontend(keep_text=False, count_ranks=n, log=logdir / f"kernel-d-{writer}.log")
    try:
        kproc = psutil.Process(fe.pid)
        fe.execute("%load_ext ipylogfwd")
        fe.execute("import ipylogfwd; ipylogfwd.set_text_limit(None)")  # as in part a
        fe.execute(f"%%procs {n} --logdir {logdir / ('d-' + writer)}\nimport os\n")
        time.sleep(1.0)
        idle_samples = []
        for _ in range(10):
            idle_samples.append(kproc.memory_info().rss)
            time.sleep(0.05)
        idle = med(idle_samples)
        peak = [idle, 0.0]  # bytes, seconds since the flood began
        samples = [0]
        stop = threading.Event()
        t_start = time.time()

        def poll() -> None:
            while not stop.is_set():
                try:
                    rss = kproc.memory_info().rss
                except psutil.Error:
                    return
                samples[0] += 1
                if rss > peak[0]:
                    peak[0], peak[1] = rss, time.time() - t_start
                stop.wait(args.rss_interval)

        poller = threading.Thread(target=poll, name="bench-rss", daemon=True)
        poller.start()
        try:
            r = flood_in_kernel(fe, n, lines, payload, writer)
        finally:
            stop.set()
            poller.join(2.0)
        after = kproc.memory_info().rss
        st = fe.streams.get(r["bg_msg_id"], StreamStats())
        got = [st.rank_lines.get(k, 0) for k in range(n)]
    finally:
        fe.shutdown()
    diff = peak[0] - idle
    MB = 1 << 20
    print(f"  wall {r['wall']:.2f} s ({total / r['wall'] / 1e6:.2f} M lines/s), procs done writing at "
          f"+{r['written']:.2f} s, kernel CPU {r['kernel_cpu']:.1f} s, frontend CPU {r['frontend_cpu']:.1f} s, "
          f"{r['stream_messages']} stream msgs")
    print(f"  frontend lines per rank {got} (expected {lines:,} each); "
          f"flush outcomes {sorted(set(r['outcomes'].values()))}")
    print(f"  kernel RSS: idle {idle / MB:.1f} MiB, peak {peak[0] / MB:.1f} MiB (at +{peak[1]:.1f} s), "
          f"difference {diff / MB:.1f} MiB, after the flood {after / MB:.1f} MiB "
          f"({samples[0]} samples every {args.rss_interval * 1000:.0f} ms)")
    summary.append((f"(d) kernel peak RSS - idle, {total / 1e6:g}M lines, {writer}",
                    f"{diff / MB:.1f} MiB (idle {idle / MB:.0f}, peak {peak[0] / MB:.0f})", "< 150 MB",
                    diff < 150e6))
    summary.append((f"(d) frontend lines received, {writer}", f"{sum(got):,} of {total:,}", f"{total:,}",
                    sum(got) == total))
    summary.append((f"(d) throughput, {writer}", f"{total / r['wall'] / 1e6:.2f} M lines/s, kernel CPU "
                    f"{r['kernel_cpu']:.1f} s / {r['wall']:.1f} s wall", "(info)", None))


def write_section(doc: Path, name: str, text: str) -> None:
    """Put ``text`` between the ``<!-- name: begin -->`` and ``<!-- name: end -->`` markers of
    ``doc`` (appended the first time): a benchmark's own section of docs/benchmarks.md."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    old = doc.read_text() if doc.exists() else ""
    section = f"{begin}\n{text}\n{end}"
    if begin in old:
        new = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: section, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + section + "\n"
    doc.write_text(new)


# ---------------------------------------------------------------------------------------------


def part_e(args: argparse.Namespace, logdir: Path, summary: list[tuple[str, str, str, bool | None]]) -> None:
    n = 64
    print(f"\n== (e) {n} procs started and a first cell done, fresh kernel each, {args.spawn_runs} runs ==")
    took = []
    for i in range(args.spawn_runs):
        fe = Frontend(keep_text=True, log=logdir / f"kernel-e{i}.log")
        try:
            fe.execute("%load_ext ipylogfwd")
            cell = fe.execute(f"%%procs {n} --logdir {logdir / f'e{i}'}\n1\n", timeout=120)
            took.append(cell.seconds)
            print(f"  run {i + 1}: {cell.seconds:.2f} s")
        finally:
            fe.shutdown()
    summary.append((f"(e) %%procs {n} + first cell (median)", f"{med(took):.2f} s", "< 3 s", med(took) < 3))


def machine_info() -> None:
    import ipykernel
    import IPython
    import jupyter_client
    import zmq

    import ipylogfwd

    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ipylogfwd"],
                               capture_output=True, text=True).stdout.strip()
        rev += " (ipylogfwd/ modified)" if dirty else ""
    except OSError:
        rev = "?"
    print("== machine ==")
    print(f"  cpus {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}), "
          f"{platform.machine()}, {platform.platform()}, load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  memory {psutil.virtual_memory().total / (1 << 30):.1f} GiB")
    print(f"  python {platform.python_version()} ({PYTHON})")
    print(f"  ipylogfwd {ipylogfwd.__version__} @ {rev}, ipykernel {ipykernel.__version__}, "
          f"jupyter_client {jupyter_client.__version__}, IPython {IPython.__version__}, "
          f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()}), psutil {psutil.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--parts", default="a,b,c,d,e", help="comma-separated parts to run: a,b,c,d,e (a and b share runs)")
    ap.add_argument("--spawn-runs", type=int, help="(e) fresh kernels started (default 5; quick 1)")
    ap.add_argument("--quick", action="store_true", help="scale everything down (smoke check, < ~60 s)")
    ap.add_argument("--lines", type=int, help="(a/b) lines per proc (default 250000; quick 20000)")
    ap.add_argument("--payload", type=int, default=50, help="(a/b) payload characters per line (default 50)")
    ap.add_argument("--repeat", type=int, help="(a/b) repetitions, median quoted (default 3; quick 1)")
    ap.add_argument("--flushes", type=int, help="(c) flushes timed in the kernel (default 200; quick 50)")
    ap.add_argument("--frontend-flushes", type=int, help="(c) frontend %%logflush round trips (default 20; quick 5)")
    ap.add_argument("--rss-lines", type=int, help="(d) lines per proc, 4 procs (default 2500000; quick 100000)")
    ap.add_argument("--rss-payload", type=int, default=4, help="(d) payload characters per line (default 4)")
    ap.add_argument("--rss-interval", type=float, default=0.05, help="(d) RSS polling interval, s (default 0.05)")
    ap.add_argument("--rss-writers", default="print,block",
                    help="(d) how the procs write: print (one print() per line, as in part a) and/or block "
                    "(pre-built 10,000-line blocks, so the kernel is the bottleneck); default print,block")
    args = ap.parse_args()
    q = args.quick
    args.lines = args.lines or (20_000 if q else 250_000)
    args.repeat = args.repeat or (1 if q else 3)
    args.flushes = args.flushes or (50 if q else 200)
    args.frontend_flushes = args.frontend_flushes or (5 if q else 20)
    args.rss_lines = args.rss_lines or (100_000 if q else 2_500_000)
    args.spawn_runs = args.spawn_runs or (1 if q else 5)
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    args.rss_writers = [w.strip() for w in args.rss_writers.split(",") if w.strip()]
    if not set(args.rss_writers) <= {"print", "block"}:
        ap.error(f"--rss-writers: print and/or block, not {args.rss_writers}")
    unknown = parts - set("abcde")
    if unknown:
        ap.error(f"unknown parts {sorted(unknown)}")

    t0 = time.monotonic()
    machine_info()
    print(f"  args: {' '.join(sys.argv[1:]) or '(none)'}")
    summary: list[tuple[str, str, str, bool | None]] = []
    logdir = Path(tempfile.mkdtemp(prefix="ipylogfwd-bench-"))
    try:
        if parts & {"a", "b"}:
            part_ab(args, logdir, summary)
        if "c" in parts:
            part_c(args, logdir, summary)
        if "d" in parts:
            part_d(args, logdir, summary)
        if "e" in parts:
            part_e(args, logdir, summary)
    except BaseException:
        for log in sorted(logdir.glob("kernel-*.log")):
            tail = log.read_text(errors="replace").splitlines()[-30:]
            print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(logdir, ignore_errors=True)

    print(f"\n== summary ({time.monotonic() - t0:.0f} s; load avg now "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cpus) ==")
    w1 = max(len(s[0]) for s in summary)
    w2 = max(len(s[1]) for s in summary)
    w3 = max(len(s[2]) for s in summary)
    print(f"  {'figure':<{w1}}  {'value':<{w2}}  {'target':<{w3}}  result")
    for name, value, target, ok in summary:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"  {name.replace('%%', '%'):<{w1}}  {value:<{w2}}  {target:<{w3}}  {verdict}")


if __name__ == "__main__":
    main()
