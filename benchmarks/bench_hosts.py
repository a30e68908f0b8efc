"""Benchmarks of ipylogfwd across hosts: agents on this machine (``LocalLauncher``) and, as root,
hosts in network namespaces on a bridge (``CommandLauncher("ip netns exec {host} {agent}")``).

Run from the project root::

    .venv/bin/python benchmarks/bench_hosts.py            # every part (about 2 minutes)
    .venv/bin/python benchmarks/bench_hosts.py --quick    # a smaller run of each part
    .venv/bin/python benchmarks/bench_hosts.py --write    # and update docs/benchmarks.md

Parts (``--parts``, default all):

a  Throughput: 4 procs x ``--lines`` lines of about 40 bytes, from submitting the cell until
   the flush after it returns, every line counted at the sink: on this machine (no agents),
   through 1 local agent, through 2 local agents, and (root) across 2 netns hosts.
b  ``flush`` latency with 8 idle procs on 2 hosts (netns as root, else local agents): p50/p99
   over ``--flushes`` flushes, beside the links' ping round trip.
c  Kernel memory while one remote rank floods a kernel that takes output slowly (a sink that
   sleeps 50 ms per publish), for 10 s: peak RSS growth of this process (the kernel side).
d  (root) Time from healing a 4 s partition of one of 2 netns hosts, while it prints at 2 kHz,
   until the flush after the cell returns: the backlog shown.
e  Time until every agent and proc is gone after the process that owns the group (a stand-in
   for the kernel) is SIGKILLed: local agents, and (root) agents in netns behind a shell, which
   only the kernel's watchdog stand-in can reach.

This script prints figures; it is not a test. Quote medians from one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench_core import write_section  # noqa: E402
from netns import Net  # noqa: E402

from ipylogfwd import ProcGroup  # noqa: E402
from ipylogfwd.launchers import CommandLauncher, LocalLauncher  # noqa: E402
from ipylogfwd.launchers.base import Launcher  # noqa: E402
from ipylogfwd.sinks.text import TextSink  # noqa: E402


class CountingSink(TextSink):
    """Counts each rank's lines as they are published (text limit: none)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.lines = 0
        self.delay = delay

    def _emit(self, name: str, text: str) -> None:
        self.lines += text.count("\n")
        if self.delay:
            time.sleep(self.delay)


def quiet(ranks: list[int], pids: object, logs: object) -> TextSink:
    return CountingSink()


@contextmanager
def netns(hosts: int) -> Iterator[Net | None]:
    if os.geteuid() != 0:
        yield None
        return
    with Net(hosts) as net:
        yield net


def on_netns(net: Net, hosts: list[str], per_host: int) -> CommandLauncher:
    return CommandLauncher(hosts, "ip netns exec {host} {agent}", per_host=per_host, listen=net.kernel_addr)


def throughput(label: str, launcher: Launcher | None, lines: int) -> tuple[str, float, float]:
    with ProcGroup(4, launcher=launcher, sink_factory=quiet) as g:
        sink = CountingSink()
        code = (
            f"import sys\nfor i in range({lines}):\n"
            "    sys.stdout.write(f'line {i:010d} of the benchmark xx\\n')\n"
        )
        start = time.monotonic()
        g.submit(code, sink=sink).wait(600)
        assert g.flush(timeout=60).ok
        took = time.monotonic() - start
        assert sink.lines == 4 * lines, f"{label}: {sink.lines} of {4 * lines} lines"
    return label, took, 4 * lines * 40 / took / 1e6


def part_a(args: argparse.Namespace, out: list[str]) -> None:
    rows = [
        throughput("this machine, no agents", None, args.lines),
        throughput("1 local agent", LocalLauncher(hosts=1), args.lines),
        throughput("2 local agents", LocalLauncher(hosts=2), args.lines),
    ]
    with netns(2) as net:
        if net is not None:
            rows.append(throughput("2 netns hosts", on_netns(net, net.hosts, 2), args.lines))
    base = rows[0][1]
    out.append(f"### a. Throughput: 4 procs x {args.lines:,} lines of 40 bytes, submit to flush\n")
    out.append("| where | seconds | MB/s | vs no agents |\n|---|---|---|---|")
    out += [f"| {label} | {took:.2f} | {mbs:.1f} | {took / base:.2f}x |" for label, took, mbs in rows]


ECHO = """
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
while data := c.recv(64):
    c.sendall(data)
"""


def round_trip(net: Net | None, count: int) -> float:
    """The median round trip of a 1-byte TCP echo to a host (a process in its namespace, or on
    this machine): what one crossing of the network costs, without ipylogfwd."""
    addr = net.host_addr(net.hosts[0]) if net else "127.0.0.1"
    prefix = ["ip", "netns", "exec", net.hosts[0]] if net else []
    echo = subprocess.Popen([*prefix, sys.executable, "-c", ECHO, addr], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        with socket.create_connection((addr, port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times = []
            for _ in range(count):
                start = time.monotonic()
                s.sendall(b"x")
                s.recv(1)
                times.append(time.monotonic() - start)
        return statistics.median(times)
    finally:
        echo.kill()
        echo.wait()


def flush_times(group: ProcGroup, count: int) -> list[float]:
    for _ in range(20):  # warm up
        group.flush()
    times = []
    for _ in range(count):
        start = time.monotonic()
        assert group.flush(timeout=10).ok
        times.append(time.monotonic() - start)
    return sorted(times)


def part_b(args: argparse.Namespace, out: list[str]) -> None:
    rows = []
    with netns(2) as net:
        where = "2 netns hosts" if net else "2 local agents"
        rtt = round_trip(net, 200)
        for per_host in (1, 2, 4):
            launcher: Launcher = on_netns(net, net.hosts, per_host) if net else LocalLauncher(hosts=2)
            with ProcGroup(2 * per_host, launcher=launcher, sink_factory=quiet) as g:
                times = flush_times(g, args.flushes)
            with ProcGroup(2 * per_host, sink_factory=quiet) as g:  # the same flush with no hosts
                local = flush_times(g, args.flushes)
            rows.append((2 * per_host, times, local))
    out.append(f"\n### b. flush of idle procs on {where}, {args.flushes} flushes each\n")
    out.append(f"One round trip (a 1-byte TCP echo to a host): {rtt * 1000:.2f} ms.\n")
    heads = ["procs", "p50", "p99", "p50 minus the round trip", "the same flush, no hosts (p50)"]
    out.append("| " + " | ".join(heads) + " |\n|---|---|---|---|---|")
    for n, times, local in rows:
        p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
        cells = [p50, p99, p50 - rtt, local[len(local) // 2]]
        out.append(f"| {n} | " + " | ".join(f"{x * 1000:.2f} ms" for x in cells) + " |")
    out.append(
        "\nEvery host here shares the same 2 cores with the kernel and the other host, so each "
        "proc added to a host adds its wake-ups (its marker, the agent's read and send) to "
        "every flush's critical path."
    )


def part_c(args: argparse.Namespace, out: list[str]) -> None:
    me = psutil.Process()
    with ProcGroup(2, launcher=LocalLauncher(hosts=1), sink_factory=quiet) as g:
        sink = CountingSink(delay=0.05)
        before = peak = me.memory_info().rss
        code = (
            "import os, sys, time\nend = time.time() + 10\nline = 'x' * 1000 + '\\n'\n"
            "while os.environ['RANK'] == '0' and time.time() < end:\n    sys.stdout.write(line * 100)\n"
        )
        job = g.submit(code, sink=sink)
        while not job.done:
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.02)
        job.wait(60)
    out.append("\n### c. One remote rank flooding a kernel that takes output slowly, 10 s\n")
    growth = (peak - before) / (1 << 20)
    out.append(f"Kernel peak RSS growth: **{growth:.1f} MiB** ({sink.lines:,} lines of 1 kB taken).")


def part_d(args: argparse.Namespace, out: list[str]) -> None:
    with netns(2) as net:
        if net is None:
            out.append("\n### d. Partition heal: needs root (network namespaces); not run.")
            return
        with ProcGroup(4, launcher=on_netns(net, net.hosts, 2), sink_factory=quiet) as g:
            sink = CountingSink()
            code = "import time\nfor i in range(12000):\n    print(i, flush=True)\n    time.sleep(0.0005)\n"
            job = g.submit(code, sink=sink)
            time.sleep(0.5)
            net.partition(net.hosts[1])
            time.sleep(4.0)
            net.heal(net.hosts[1])
            healed = time.monotonic()
            job.wait(120)
            assert g.flush(timeout=30).ok and sink.lines == 4 * 12000
            shown = time.monotonic() - healed
    out.append("\n### d. A 4 s partition of 1 of 2 netns hosts printing at 2 kHz per rank\n")
    out.append(f"From the heal to the flush after the cell: **{shown:.2f} s**; every line once, in order.")


KERNEL = textwrap.dedent(
    """
    import sys, time
    from ipylogfwd import ProcGroup
    from ipylogfwd.launchers import CommandLauncher, LocalLauncher
    if __name__ == "__main__":
        kind, hosts, listen = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
        if kind == "local":
            launcher = LocalLauncher(hosts=2)
        else:
            launcher = CommandLauncher(hosts, "ip netns exec {host} sh -c 'exec 3<&0; {agent} <&3 & wait'",
                                       per_host=2, listen=listen, lease=60)
        g = ProcGroup(4, launcher=launcher)
        agents = " ".join(str(h.agent_pid) for h in g.status().hosts)
        print(agents, "|", " ".join(str(p.pid) for p in g.status().procs), flush=True)
        time.sleep(600)
    """
)


def cleanup_after_sigkill(kind: str, hosts: list[str], listen: str, gone: Callable[[list[int]], bool]) -> float:
    script = ROOT / "benchmarks" / ".bench_hosts_kernel.py"
    script.write_text(KERNEL)
    try:
        owner = subprocess.Popen([sys.executable, str(script), kind, *hosts, listen], stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None
        agents, procs = (list(map(int, part.split())) for part in owner.stdout.readline().split("|"))
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        start = time.monotonic()
        while not gone(agents + procs):
            if time.monotonic() - start > 30:
                return float("inf")
            time.sleep(0.02)
        return time.monotonic() - start
    finally:
        script.unlink(missing_ok=True)


def part_e(args: argparse.Namespace, out: list[str]) -> None:
    def gone(pids: list[int]) -> bool:
        return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)

    rows = [("2 local agents (parent-death signal)", cleanup_after_sigkill("local", ["-"], "-", gone))]
    with netns(2) as net:
        if net is not None:
            took = cleanup_after_sigkill("netns", net.hosts, net.kernel_addr, gone)
            rows.append(("2 netns hosts behind a shell (the kernel's stand-in)", took))
    out.append("\n### e. After SIGKILL of the process that owns the group: every agent and proc gone\n")
    out.append("| agents | seconds |\n|---|---|")
    out += [f"| {label} | {took:.2f} |" for label, took in rows]


PARTS: dict[str, Callable[[argparse.Namespace, list[str]], None]] = {
    "a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="abcde")
    ap.add_argument("--lines", type=int, default=250_000)
    ap.add_argument("--flushes", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="fewer lines and flushes")
    ap.add_argument("--write", action="store_true", help="update the hosts section of docs/benchmarks.md")
    args = ap.parse_args()
    if args.quick:
        args.lines, args.flushes = 50_000, 50
    out = [
        "## Across hosts (benchmarks/bench_hosts.py)\n",
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"load {os.getloadavg()[0]:.1f} at the start; "
        f"{time.strftime('%Y-%m-%d')}. `{' '.join(['benchmarks/bench_hosts.py', *sys.argv[1:]])}`\n",
    ]
    for part in args.parts:
        PARTS[part](args, out)
        print(f"part {part} done", flush=True)
    text = "\n".join(out)
    print("\n" + text)
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", "bench_hosts", text)


if __name__ == "__main__":
    main()
