"""Simulated hosts for tests: network namespaces on a bridge, made and torn down by the test.

``Net`` makes a bridge in a namespace of its own, one namespace per host (``h1``, ``h2``, ...)
with ``eth0`` at ``10.77.S.i``, and attaches the test's own (root) namespace at ``10.77.S.254``,
where the kernel listens. The only route of each host is that /24: nothing leaves the
machine. Names and the subnet ``S`` derive from the test process's pid, so two runs never
meet. Faults: ``partition`` (nftables drops everything on a host's eth0), ``heal``,
``slow_link`` (tc tbf), ``kill_host`` (SIGKILL to every process in its namespace).
Teardown kills processes by pid, then deletes the namespaces and the root-side link.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def run(*argv: str, check: bool = True, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


class Net:
    def __init__(self, hosts: int) -> None:
        tag = os.getpid() % 10000
        self.subnet = 10 + tag % 200
        self.prefix = f"lf{tag}"
        self.switch = f"{self.prefix}sw"
        self.hosts = [f"{self.prefix}h{i}" for i in range(1, hosts + 1)]
        self.root_if = f"{self.prefix}r"
        self.kernel_addr = self.addr_of(254)
        self._made: list[str] = []
        try:
            self._make()
        except BaseException:
            self.close()
            raise

    def addr_of(self, i: int) -> str:
        return f"10.77.{self.subnet}.{i}"

    def host_addr(self, host: str) -> str:
        return self.addr_of(self.hosts.index(host) + 1)

    def _make(self) -> None:
        run("ip", "netns", "add", self.switch)
        self._made.append(self.switch)
        run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts, 1):
            run("ip", "netns", "add", host)
            self._made.append(host)
            port = f"{self.prefix}p{i}"
            run("ip", "link", "add", "eth0", "netns", host, "type", "veth", "peer", "name", port, "netns", self.switch)
            run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
            run("ip", "-n", host, "addr", "add", f"{self.addr_of(i)}/24", "dev", "eth0")
            run("ip", "-n", host, "link", "set", "eth0", "up")
            run("ip", "-n", host, "link", "set", "lo", "up")
        peer = f"{self.prefix}rp"
        run("ip", "link", "add", self.root_if, "type", "veth", "peer", "name", peer, "netns", self.switch)
        run("ip", "-n", self.switch, "link", "set", peer, "master", "br0", "up")
        run("ip", "addr", "add", f"{self.kernel_addr}/24", "dev", self.root_if)
        run("ip", "link", "set", self.root_if, "up")

    # --- faults --------------------------------------------------------------------------------
    def partition(self, host: str) -> None:
        """Drop everything in and out of ``host``'s eth0 (loopback inside it still works)."""
        script = (
            "add table inet lfpart\n"
            "add chain inet lfpart input { type filter hook input priority 0; policy accept; }\n"
            "add chain inet lfpart output { type filter hook output priority 0; policy accept; }\n"
            'add rule inet lfpart input iifname "eth0" drop\n'
            'add rule inet lfpart output oifname "eth0" drop\n'
        )
        subprocess.run(["ip", "netns", "exec", host, "nft", "-f", "-"], input=script, text=True, check=True, timeout=20)

    def heal(self, host: str) -> None:
        run("ip", "netns", "exec", host, "nft", "delete", "table", "inet", "lfpart")

    def slow_link(self, host: str, rate: str = "8mbit") -> None:
        run("ip", "netns", "exec", host, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
            "rate", rate, "burst", "32kbit", "latency", "400ms")

    def pids(self, host: str) -> list[int]:
        out = run("ip", "netns", "pids", host, check=False)
        return [int(p) for p in out.stdout.split()]

    def kill_host(self, host: str) -> None:
        """Every process of ``host`` gets SIGKILL (as if the machine died)."""
        for _ in range(5):  # processes may fork meanwhile
            pids = self.pids(host)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)

    def close(self) -> None:
        for ns in reversed(self._made):
            self.kill_host(ns)
            run("ip", "netns", "del", ns, check=False)
        run("ip", "link", "del", self.root_if, check=False)
        self._made.clear()

    def __enter__(self) -> Net:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
