"""How close ipylogfwd's kernel path is to its floors: the figures of docs/benchmarks.md's
"Closer to the floor" section, through a real ipykernel driven by jupyter_client.

Run from the project root::

    .venv/bin/python benchmarks/bench_floor.py                      # prints the figures
    .venv/bin/python benchmarks/bench_floor.py --save after.json --before before.json --write

Figures:

a  4 procs x 250,000 lines of 40 bytes on stdout, from the first print until ``%logflush``
   returns (text limit off; the frontend checks every line arrived once, in order), against
   two floors: the same code in 4 plain ``python -c CODE | cat > /dev/null`` pipelines (the
   procs' floor as Python sets stdout up for a pipe, 8 KiB buffer), and the same again with
   stdout set up as a proc's (64 KiB buffer), so only the path differs. Medians of 9.
   Each run also prints the CPU time of the kernel, the client and the procs (from the
   scheduler's counts) and the stream messages. ``--against DIR`` floods a second kernel, on
   the ipylogfwd of another checkout, in turn with this one: an A/B comparison on a shared
   machine, whose drift between two separate runs is larger than most single changes.
b  The procs' own slowdown: each proc writes 250,000 lines on stdout and 250,000 on stderr,
   alternating (benchmarks/compare_workload.py's loop, 32-byte lines), first into /dev/null
   and then, from a start time shared by all procs, into its captured stdout and stderr; the
   loop's wall time and CPU time over the /dev/null loop's, median over procs, at 4 and 16
   procs. The kernel's CPU time over the captured loops is printed beside.
c  ``%logflush`` rendered in JupyterLab in headless Chromium with 8 idle procs: p50 and p99 of
   ``--flushes`` calls, and where the time goes, from benchmarks/bench_browser.py part 2 (run
   here as a subprocess; ``--no-server-extension`` runs it without ipylogfwd's server
   extension).
d  ``%%procs 64`` with a body of ``1`` in a fresh kernel: 64 procs started and a first cell
   done, median of 9.

``--tree DIR`` runs the kernel (and so its procs) on the ipylogfwd of another checkout, e.g.
``git worktree add /tmp/before <commit>``, for a before/after table from one script;
``--packer json`` makes the kernel pack its messages with json, as it does where orjson is
not installed. ``--save`` keeps the figures as JSON; ``--write`` writes the section, with a
"before" column from ``--before FILE`` (figures saved by an earlier run).

This script prints figures; it is not a test. Quote medians from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from bench_core import (
    PYTHON,
    ROOT,
    Frontend,
    StreamStats,
    check_lines,
    flood_floor,
    flood_in_kernel,
    med,
    write_section,
)

LINES, PAYLOAD = 250_000, 27  # 40-byte lines, as the figures

# stdout as a proc has it (ipylogfwd/proc/stdio.py): the floor with only the path different.
PROC_STDOUT = (
    "import io, sys\n"
    "sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, 'w', closefd=False), 1 << 16), "
    "encoding='utf-8')\n"
)

SLOWDOWN_BODY = """\
import os, sys, time
sys.path.insert(0, {bench!r})
import compare_workload as w
rank = int(os.environ["RANK"])
with open(os.devnull, "w") as o, open(os.devnull, "w") as e:
    t0, c0 = time.perf_counter(), time.process_time()
    w._loop(rank, {lines}, 20, o, e)
    o.flush(); e.flush()
    null_wall, null_cpu = time.perf_counter() - t0, time.process_time() - c0
while time.time() < {start_at!r}:
    time.sleep(0.0005)
t0, c0 = time.perf_counter(), time.process_time()
w._loop(rank, {lines}, 20, sys.stdout, sys.stderr)
sys.stdout.flush(); sys.stderr.flush()
(null_wall, null_cpu, time.perf_counter() - t0, time.process_time() - c0)
"""


def frontend(args: argparse.Namespace, tree: Path | None = None, **kw: Any) -> Frontend:
    """A kernel on ``tree``'s ipylogfwd (default: ``--tree``, else this checkout's)."""
    tree = tree or args.tree
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    extra = ["--Session.packer=json", "--Session.unpacker=json"] if args.packer == "json" else []
    # The kernel starts in the tree (its working directory comes first on its sys.path).
    return Frontend(env=env, extra_arguments=extra, cwd=tree, **kw)


def load(fe: Frontend) -> None:
    """``%load_ext ipylogfwd`` with the text limit off (no server between); says which
    ipylogfwd the kernel imported."""
    fe.execute("%load_ext ipylogfwd")
    where = fe.execute("import json, ipylogfwd\nipylogfwd.set_text_limit(None)\n_f = json.dumps(ipylogfwd.__file__)",
                       result="_f").value()
    print(f"  the kernel's ipylogfwd: {where}")


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    n = 4
    print(f"== (a) {n} procs x {LINES:,} lines of 40 bytes: kernel path vs cat floors ==")
    # With --against, a second kernel on another checkout floods in turn with this one, so
    # that the machine's drift (shared, noisy) falls on both alike.
    kernels = {"this": frontend(args, keep_text=True)}
    plain: list[float] = []
    same: list[float] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("this", "against")}
    try:
        if args.against is not None:
            kernels["against"] = frontend(args, keep_text=True, tree=args.against)
        for fe in kernels.values():
            load(fe)
            fe.execute(f"%%procs {n}\n1\n")
            flood_in_kernel(fe, n, 2000, PAYLOAD)  # warm-up through the whole path
        for rep in range(args.repeat):
            plain.append(flood_floor(n, LINES, PAYLOAD)["wall"])
            same.append(flood_floor(n, LINES, PAYLOAD, prefix=PROC_STDOUT)["wall"])
            order = list(kernels) if rep % 2 == 0 else list(kernels)[::-1]
            for name in order:
                runs[name].append(flood_checked(kernels[name], n))
            print(f"  run {rep + 1}: floor (plain stdout) {plain[-1]:.3f} s, floor (a proc's stdout) {same[-1]:.3f} s")
            for name in order:
                print(f"    {name}: {describe_flood(runs[name][-1])}")
    finally:
        for fe in kernels.values():
            fe.shutdown()
    out = {"wall": med([r["wall"] for r in runs["this"]]), "floor_plain": med(plain), "floor_same": med(same),
           "bad": sum(r["bad"] for r in runs["this"])}
    for name, rs in runs.items():
        if rs:
            print(f"  median, {name}: " + describe_flood({k: med([r[k] for r in rs]) for k in rs[0]}) +
                  f"; {med([r['wall'] for r in rs]) / out['floor_same']:.2f}x the same-stdout floor")
    print(f"  median: {out['wall']:.3f} s = {out['wall'] / out['floor_plain']:.2f}x the plain floor, "
          f"{out['wall'] / out['floor_same']:.2f}x the same-stdout floor")
    return out


def flood_checked(fe: Frontend, n: int) -> dict[str, Any]:
    """One flood of part a, its lines checked: wall time, CPU of kernel, client and procs."""
    r = flood_in_kernel(fe, n, LINES, PAYLOAD)
    st = fe.streams.get(r["bg_msg_id"], StreamStats())
    chk = check_lines(st.texts["stdout"], n, LINES, PAYLOAD)
    st.texts = {"stdout": [], "stderr": []}
    return {"wall": r["wall"], "kernel_cpu": r["kernel_cpu"], "client_cpu": r["frontend_cpu"],
            "procs_cpu": sum(r["proc_cpu"]), "messages": r["stream_messages"],
            "bad": chk["lost"] + chk["duplicated"] + chk["malformed"] + chk["out_of_order"]}


def describe_flood(r: dict[str, Any]) -> str:
    return (f"{r['wall']:.3f} s; cpu: kernel {r['kernel_cpu']:.3f} s, client {r['client_cpu']:.3f} s, "
            f"procs {r['procs_cpu']:.3f} s; {r['messages']:.0f} stream messages; "
            f"lost/duplicated/malformed/out of order {r['bad']:.0f}")


def part_b(args: argparse.Namespace, n: int) -> dict[str, Any]:
    print(f"== (b) the procs' print loop, {n} procs x {args.slow_lines:,} lines on each of stdout and stderr ==")
    fe = frontend(args, keep_text=False)
    runs = []
    try:
        kernel = psutil.Process(fe.pid)
        load(fe)
        fe.execute(f"%%procs {n}\n1\n")
        for rep in range(args.repeat):
            body = SLOWDOWN_BODY.format(bench=str(ROOT / "benchmarks"), lines=args.slow_lines,
                                        start_at=time.time() + 1.5 + n * 0.05)
            k0 = sum(kernel.cpu_times()[:2])
            fe.execute(f"%%procs {n} --bg\n" + body)
            res = fe.execute("import json as _j\n_h = get_ipython().magics_manager.registry['ProcsMagics'].last\n"
                             "_r = _h.wait(600)\nget_ipython().run_line_magic('logflush', '--timeout 600')\n"
                             "_v = _j.dumps([list(v) for v in _r.values()])\n", timeout=900, result="_v").value()
            kcpu = sum(kernel.cpu_times()[:2]) - k0
            wall = med([v[2] / v[0] for v in res])
            cpu = med([v[3] / v[1] for v in res])
            loop = med([v[2] for v in res])
            runs.append({"wall": wall, "cpu": cpu, "kernel_cpu": kcpu, "loop": loop, "null": med([v[0] for v in res])})
            print(f"  run {rep + 1}: loop {loop:.3f} s vs /dev/null {runs[-1]['null']:.3f} s: wall {wall:.2f}x, "
                  f"cpu {cpu:.2f}x; kernel cpu {kcpu:.2f} s")
    finally:
        fe.shutdown()
    out = {k: med([r[k] for r in runs]) for k in runs[0]}
    print(f"  median: wall {out['wall']:.2f}x, cpu {out['cpu']:.2f}x, kernel cpu {out['kernel_cpu']:.2f} s")
    return out


FLUSH_LINE = re.compile(r"p50 ([\d.]+) ms, p90 ([\d.]+) ms, p99 ([\d.]+) ms")
LEGS_LINE = re.compile(
    r"kernel -> server -> page ([\d.]+) ms, in the page ([\d.]+) ms, page -> server -> kernel ([\d.]+) ms"
)


def part_c(args: argparse.Namespace) -> dict[str, Any]:
    print(f"== (c) %logflush rendered in Chromium, 8 idle procs: bench_browser.py part 2, {args.flushes} flushes ==")
    cmd = [PYTHON, str(ROOT / "benchmarks" / "bench_browser.py"), "--parts", "2", "--flushes", str(args.flushes)]
    if args.no_server_extension:
        cmd.append("--server-arg=--ServerApp.jpserver_extensions=ipylogfwd=False")
    # bench_browser keeps its own temporary dirs (Chromium's socket path must stay short).
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    if args.tmpdir is not None:
        env["TMPDIR"] = args.tmpdir
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200,
                         cwd=ROOT, env=env).stdout
    flush, legs = FLUSH_LINE.search(out), LEGS_LINE.search(out)
    if flush is None or "all 8 ranks 'rendered'" not in out:
        raise RuntimeError(f"bench_browser.py part 2 gave no figure or not every flush rendered:\n{out[-3000:]}")
    got = {"p50": float(flush[1]), "p90": float(flush[2]), "p99": float(flush[3]),
           "server_extension": not args.no_server_extension}
    if legs is not None:
        got.update(down=float(legs[1]), page=float(legs[2]), up=float(legs[3]))
    print(f"  p50 {got['p50']} ms, p99 {got['p99']} ms" + (f"; legs {legs[0]}" if legs else ""))
    return got


def part_d(args: argparse.Namespace) -> dict[str, Any]:
    n = 64
    print(f"== (d) %%procs {n} and a first cell, fresh kernel each ==")
    took = []
    for i in range(args.repeat):
        fe = frontend(args, keep_text=True)
        try:
            load(fe)
            took.append(fe.execute(f"%%procs {n}\n1\n", timeout=120).seconds)
            print(f"  run {i + 1}: {took[-1]:.2f} s")
        finally:
            fe.shutdown()
    return {"seconds": med(took)}


ROWS = [
    # (key, label, target, format of a value, met?)
    ("a", "(a) 4 x 250,000 lines of 40 B, first print to `%logflush` returned, over the `cat` floor "
     "(plain Python stdout / a proc's stdout)", "≤ 1.3x"),
    ("a_ok", "(a) lines lost, duplicated, cut or out of order", "0"),
    ("b4", "(b) procs' print loop over the same loop into /dev/null, 4 procs: wall (cpu)", "≤ 1.5x"),
    ("b16", "(b) the same, 16 procs: wall (cpu)", "≤ 1.5x"),
    ("bk", "(b) kernel CPU over the captured loops, 4 / 16 procs", ""),
    ("c", "(c) `%logflush` rendered in Chromium, 8 idle procs: p50 / p99", "< 50 / < 120 ms"),
    ("c_legs", "(c) where a flush's time goes: kernel -> server -> page, in the page, page -> server -> kernel "
     "(medians, last message of each)", ""),
    ("d", "(d) `%%procs 64` and a first cell", "< 3 s"),
]


def cells(fig: dict[str, Any]) -> dict[str, tuple[str, bool | None]]:
    """Each row's text and whether it meets its target, for one run's figures."""
    out: dict[str, tuple[str, bool | None]] = {}
    if "a" in fig:
        a = fig["a"]
        r1, r2 = a["wall"] / a["floor_plain"], a["wall"] / a["floor_same"]
        out["a"] = (f"{a['wall']:.2f} s: {r1:.2f}x / {r2:.2f}x", max(r1, r2) <= 1.3)
        out["a_ok"] = (str(a["bad"]), a["bad"] == 0)
    for n in (4, 16):
        b = fig.get(f"b{n}")
        if b:
            out[f"b{n}"] = (f"{b['wall']:.2f}x ({b['cpu']:.2f}x)", b["wall"] <= 1.5)
    if "b4" in fig and "b16" in fig:
        out["bk"] = (f"{fig['b4']['kernel_cpu']:.2f} s / {fig['b16']['kernel_cpu']:.2f} s", None)
    if "c" in fig:
        c = fig["c"]
        off = "" if c["server_extension"] else " (server extension off)"
        out["c"] = (f"{c['p50']:.1f} / {c['p99']:.1f} ms{off}", c["p50"] < 50 and c["p99"] < 120)
        if "down" in c:
            out["c_legs"] = (f"{c['down']:.1f} / {c['page']:.1f} / {c['up']:.1f} ms{off}", None)
    if "d" in fig:
        out["d"] = (f"{fig['d']['seconds']:.2f} s", fig["d"]["seconds"] < 3)
    return out


def section(fig: dict[str, Any], before: dict[str, Any] | None, findings: str) -> str:
    now, was = cells(fig), cells(before) if before else {}
    lines = [
        "## Closer to the floor (benchmarks/bench_floor.py)",
        "",
        f"Now: {fig['label']}, {fig['when']}; {fig['machine']}. Medians of {fig.get('repeat', 3)} runs "
        f"({fig.get('flushes', 200)} flushes for c).",
        "",
    ]
    if before:
        lines += [f"Before: {before['label']}; {before['when']}; the same script.", ""]
    lines += [
        "| figure | target | " + ("before | " if before else "") + "now | met |",
        "|---|---|" + ("---|" if before else "") + "---|---|",
    ]
    for key, label, target in ROWS:
        if key not in now:
            continue
        text, ok = now[key]
        verdict = "" if ok is None else ("yes" if ok else "**no**")
        prior = f"{was[key][0]} | " if key in was else ("- | " if before else "")
        lines.append(f"| {label} | {target} | {prior}{text} | {verdict} |")
    lines += ["", findings.strip(), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="a,b,c,d", help="comma-separated: a, b, c, d (default all)")
    ap.add_argument("--flushes", type=int, default=200, help="(c) flushes timed (default 200)")
    ap.add_argument("--no-server-extension", action="store_true",
                    help="(c) JupyterLab without ipylogfwd's server extension (Nagle's algorithm on)")
    # On a shared 2-cpu machine the medians of 3 runs of (a) were 0.1x apart from one run to
    # the next (the floor moves as much as the kernel path); 9 runs take about 5 minutes.
    ap.add_argument("--repeat", type=int, default=9, help="runs per figure, median quoted (default 9)")
    ap.add_argument("--slow-lines", type=int, default=250_000, help="(b) lines per stream per proc")
    ap.add_argument("--tree", type=Path, help="import ipylogfwd from this checkout in the kernel")
    ap.add_argument("--against", type=Path,
                    help="(a) also flood a kernel on this checkout, in turn with this one (an A/B run)")
    ap.add_argument("--packer", choices=("default", "json"), default="default",
                    help="json: the kernel packs messages with json even where orjson is installed")
    ap.add_argument("--label", default="", help="what this run measured (kept with --save)")
    ap.add_argument("--save", type=Path, help="keep the figures as JSON")
    ap.add_argument("--before", type=Path, help="figures saved by an earlier run, for the before column")
    ap.add_argument("--before-c", type=Path, help="figures of part c for the before column, from another run")
    ap.add_argument("--load", type=Path, help="measure nothing: take this run's figures from a --save file")
    ap.add_argument("--findings", type=Path, default=ROOT / "benchmarks" / "floor_findings.md",
                    help="the profile's findings, written under the table")
    ap.add_argument("--write", action="store_true", help="update the section of docs/benchmarks.md")
    args = ap.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts <= {"a", "b", "c", "d"}:
        ap.error(f"unknown parts {sorted(parts - {'a', 'b', 'c', 'd'})}")
    if "c" in parts and args.tree is not None:
        ap.error("--tree: part c runs JupyterLab with this checkout's frontend and server extension")
    for opt, tree in (("--tree", args.tree), ("--against", args.against)):
        if tree is not None and not (tree / "ipylogfwd" / "__init__.py").exists():
            ap.error(f"{opt} {tree}: no ipylogfwd package there")
    rev = subprocess.run(["git", "-C", str(args.tree or ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    fig: dict[str, Any] = {
        "label": args.label or f"ipylogfwd @ {rev}" + (", messages packed with json" if args.packer == "json" else ""),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cpus, Python {sys.version.split()[0]}, load "
                   f"{os.getloadavg()[0]:.1f} at the start",
        "command": "benchmarks/bench_floor.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "repeat": args.repeat,
        "flushes": args.flushes,
    }
    print(fig["label"], "|", fig["machine"])
    args.tmpdir = os.environ.get("TMPDIR")
    if args.load is not None:
        fig = json.loads(args.load.read_text())
        parts = set()
    with tempfile.TemporaryDirectory(prefix="ipylogfwd-bench-floor-") as tmp:
        os.environ["TMPDIR"] = tmp  # the procs' log files: gone with the run
        if "a" in parts:
            fig["a"] = part_a(args)
        if "b" in parts:
            fig["b4"] = part_b(args, 4)
            fig["b16"] = part_b(args, 16)
        if "c" in parts:
            fig["c"] = part_c(args)
        if "d" in parts:
            fig["d"] = part_d(args)
    before = json.loads(args.before.read_text()) if args.before else None
    if before is not None and args.before_c is not None:
        before["c"] = json.loads(args.before_c.read_text())["c"]
    for key, label, target in ROWS:
        now = cells(fig).get(key)
        if now:
            print(f"  {label}: {now[0]} (target {target or '-'})")
    if args.save:
        args.save.write_text(json.dumps(fig, indent=1))
    if args.write:
        doc = ROOT / "docs" / "benchmarks.md"
        write_section(doc, "bench_floor", section(fig, before, args.findings.read_text()))
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
