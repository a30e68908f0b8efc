"""Procs on hosts across a network: each host a network namespace on a bridge, the kernel (this
test process, or a real ipykernel) in the test's own namespace, agents started by
``CommandLauncher(command="ip netns exec {host} {agent}")``.

Faults are real: nftables partitions, a host's every process killed, an agent or the kernel
SIGKILLed, a slow link (tc tbf). Test traffic goes only to the namespaces the test made.
These tests need root (CI runs as root); they fail, not skip, without it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import wait_gone
from kernel_driver import KernelDriver
from netns import Net
from recording_sink import RecordingSink

from ipylogfwd import ProcGroup, ProcsError
from ipylogfwd.launchers import CommandLauncher


def recording(ranks: list[int], pids: object, logs: object) -> RecordingSink:
    return RecordingSink()


@pytest.fixture(scope="module")
def net() -> Iterator[Net]:
    assert os.geteuid() == 0, "these tests make network namespaces: run them as root (CI does)"
    with Net(3) as n:
        yield n


def launcher(net: Net, hosts: list[str], *, lease: float = 30.0) -> CommandLauncher:
    return CommandLauncher(hosts, "ip netns exec {host} {agent}", per_host=2, listen=net.kernel_addr, lease=lease)


@pytest.fixture
def group(net: Net) -> Iterator[ProcGroup]:
    g = ProcGroup(4, launcher=launcher(net, net.hosts[:2]), sink_factory=recording, start_timeout=30)
    try:
        yield g
    finally:
        g.shutdown()


def wait_for(what: str, predicate: object, timeout: float) -> float:
    """Seconds until ``predicate()`` held; fails naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_two_hosts_get_torchruns_environment_and_keep_each_ranks_order(net: Net, group: ProcGroup) -> None:
    env = group.run(
        "import os\n(os.environ['MASTER_ADDR'], os.environ['NODE_RANK'], os.environ['LOCAL_RANK'],"
        " os.environ['LOCAL_WORLD_SIZE'], os.environ['NNODES'], os.environ['GLOO_SOCKET_IFNAME'])",
        timeout=30,
    )
    head = net.host_addr(net.hosts[0])
    assert env == {
        0: (head, "0", "0", "2", "2", "eth0"),
        1: (head, "0", "1", "2", "2", "eth0"),
        2: (head, "1", "0", "2", "2", "eth0"),
        3: (head, "1", "1", "2", "2", "eth0"),
    }
    sink = RecordingSink()
    code = "import os, sys\nfor i in range(3000):\n    print(f'l {i}')\nprint('partial', end='')"
    group.submit(code, sink=sink).wait(60)
    assert group.flush(timeout=10).ok
    for rank in range(4):
        assert sink.lines(rank) == [f"l {i}" for i in range(3000)] + ["partial"], f"rank {rank}"
    status = group.status()
    assert [h.host for h in status.hosts] == net.hosts[:2] and {h.link for h in status.hosts} == {"connected"}
    assert {p.host for p in status.procs} == set(net.hosts[:2])


def test_a_partition_shorter_than_the_lease_loses_and_duplicates_nothing(
    net: Net, group: ProcGroup, record_figure: object
) -> None:
    sink = RecordingSink()
    lines = 6000  # about 2 kHz per rank for 3 s
    job = group.submit(
        f"import time\nfor i in range({lines}):\n    print(f'n {{i}}', flush=True)\n    time.sleep(0.0005)\n", sink=sink
    )
    victim = net.hosts[1]
    time.sleep(0.5)
    net.partition(victim)
    try:
        cut_off = lambda: group.status().hosts[1].link == "unreachable"  # noqa: E731
        unreachable = wait_for("the host turning unreachable", cut_off, 10)
        time.sleep(max(0.0, 4.0 - unreachable))
    finally:
        net.heal(victim)
    healed = time.monotonic()
    job.wait(120)
    assert group.flush(timeout=20).ok
    shown = time.monotonic() - healed
    for rank in range(4):
        got = sink.lines(rank)
        gap = next((i for i, x in enumerate(got) if x != f"n {i}"), None)
        assert got == [f"n {i}" for i in range(lines)], f"rank {rank}: {len(got)} lines, first difference at {gap}"
    record_figure(  # type: ignore[operator]
        "netns: 4 s partition of 1 of 2 hosts at 2 kHz/rank",
        f"unreachable after {unreachable:.1f} s of silence; backlog shown {shown:.1f} s after the heal; nothing lost",
    )


def test_a_flush_during_a_partition_names_the_host_and_the_others_go_on(net: Net, group: ProcGroup) -> None:
    victim = net.hosts[1]
    net.partition(victim)
    try:
        wait_for("the host turning unreachable", lambda: group.status().hosts[1].link == "unreachable", 10)
        report = group.flush(timeout=2.0)
        assert report.outcomes == {0: "published", 1: "published", 2: "timed out", 3: "timed out"}, report
        assert re.search(rf"rank +2  timed out .*host {victim} unreachable \d+\.\d s", repr(report)), report
        assert group.run("import os; os.environ['RANK']", targets=[0, 1], timeout=20) == {0: "0", 1: "1"}
    finally:
        net.heal(victim)
    wait_for("the host coming back", lambda: group.status().hosts[1].link == "connected", 15)
    assert group.flush(timeout=10).ok


def test_a_lost_host_fails_its_ranks_cells_and_the_others_go_on(net: Net) -> None:
    g = ProcGroup(4, launcher=launcher(net, net.hosts[:2], lease=4.0), sink_factory=recording)
    try:
        job = g.submit("import time\ntime.sleep(60)", targets=[2, 3])
        net.kill_host(net.hosts[1])
        cut_off = r"rank\(s\) \[2, 3\] are cut off \(host .* lost"
        with pytest.raises(ProcsError) as err, pytest.warns(UserWarning, match=cut_off):
            job.wait(30)
        assert sorted(err.value.errors) == [2, 3] and "out of reach" in err.value.errors[2], err.value.errors
        assert g.status().hosts[1].link == "lost"
        report = g.flush(timeout=2.0)
        assert report.outcomes[2] == "timed out" and f"host {net.hosts[1]} lost" in repr(report)
        assert g.run("1 + 1", targets=[0, 1], timeout=20) == {0: 2, 1: 2}
    finally:
        g.shutdown(timeout=3.0)


def test_an_agent_killed_takes_its_procs_with_it(net: Net) -> None:
    g = ProcGroup(4, launcher=launcher(net, net.hosts[:2], lease=5.0), sink_factory=recording)
    try:
        host = g.status().hosts[0]
        procs = [p.pid for p in g.status().procs if p.host == host.host]
        os.kill(host.agent_pid, signal.SIGKILL)
        took = wait_gone([pid for pid in procs if pid], 10, "the procs of a killed agent")
        assert took < 10
        wait_for("the host turning unreachable", lambda: g.status().hosts[0].link != "connected", 10)
    finally:
        g.shutdown(timeout=3.0)


def test_the_kernel_killed_takes_every_agent_and_proc_on_every_host(net: Net, record_figure: object) -> None:
    # The agents are started through a shell that stays their parent, so the kernel's death
    # reaches them only through its stand-in (or their lease: 60 s here, far past the bound).
    k = KernelDriver()
    try:
        assert k.execute("%load_ext ipylogfwd").status == "ok"
        setup = (
            "from ipylogfwd.launchers import CommandLauncher\n"
            # (stdin through fd 3: a shell gives a background job /dev/null for its own stdin.)
            f"L = CommandLauncher({net.hosts[:2]!r}, "
            "\"ip netns exec {host} sh -c 'exec 3<&0; {agent} <&3 & wait'\", "
            f"per_host=2, listen={net.kernel_addr!r}, lease=60)\n"
        )
        assert k.execute(setup).status == "ok"
        cell = k.execute("%%procs 4 --launcher L\nimport os; os.getpid()", timeout=90)
        assert cell.status == "ok", cell.error
        before = {h: net.pids(h) for h in net.hosts[:2]}
        assert all(before.values()), before
        os.kill(k.km.provisioner.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        killed = time.monotonic()
        hosts = net.hosts[:2]
        took = wait_for("every process on the hosts gone", lambda: not any(net.pids(h) for h in hosts), 15)
        gone = f"{time.monotonic() - killed:.2f} s"
        record_figure("netns: kernel SIGKILL -> agents and procs on 2 hosts gone", gone)  # type: ignore[operator]
        assert took < 15
    finally:
        k.shutdown()


def test_a_slow_link_delivers_everything(net: Net, record_figure: object) -> None:
    slow = net.hosts[2]
    net.slow_link(slow)
    g = ProcGroup(2, launcher=launcher(net, [slow]), sink_factory=recording)
    try:
        sink = RecordingSink()
        start = time.monotonic()
        g.submit("for i in range(20000):\n    print(f'{i:08d}' + 'x' * 92)", sink=sink).wait(120)
        assert g.flush(timeout=30).ok
        took = time.monotonic() - start
        for rank in range(2):
            assert sink.lines(rank) == [f"{i:08d}" + "x" * 92 for i in range(20000)]
        record_figure("netns: 2 ranks x 2 MB over an 8 Mbit/s link", f"{took:.1f} s to the end of the flush")  # type: ignore[operator]
    finally:
        g.shutdown()


def test_torch_gloo_all_reduce_across_hosts(net: Net, group: ProcGroup) -> None:
    got = group.run(
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([float(dist.get_rank() + 1)])\n"
        "dist.all_reduce(t)\n"
        "dist.destroy_process_group()\n"
        "t.item()",
        timeout=120,
    )
    assert got == dict.fromkeys(range(4), 10.0)


def test_a_launch_that_fails_names_the_host_and_says_why(net: Net) -> None:
    start = time.monotonic()
    with pytest.raises(Exception) as err:
        bad = CommandLauncher(["nosuch"], "ip netns exec {host} {agent}", per_host=2, listen=net.kernel_addr)
        ProcGroup(2, launcher=bad, start_timeout=20)
    assert "host nosuch" in str(err.value) and 'Cannot open network namespace "nosuch"' in str(err.value), err.value
    assert time.monotonic() - start < 20



ATTACKER = r'''
import json, sys, zmq
from ipylogfwd.wire import frames
endpoint, server_key = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
def peer(curve, key=None):
    s = ctx.socket(zmq.DEALER); s.linger = 0
    if curve:
        pub, sec = zmq.curve_keypair()
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = (key or server_key).encode()
    s.connect(endpoint)
    return s
hello = {"t": "hello", "host": "intruder", "pid": 1, "addr": "x", "python": "3.11", "version": "0",
         "key": "k", "mac": "00"}
data = frames.encode({"t": "data", "e": 1, "r": 0, "s": 1}, b"L\x01\x00\x00\x00\x01\x00\x00\x00\x09injected\n")
answers = {}
for name, sock, msgs in [
    ("plaintext", peer(False), [frames.encode(hello), data]),
    ("wrong server key", peer(True, zmq.curve_keypair()[0].decode()), [frames.encode(hello)]),
    ("forged hello", peer(True), [frames.encode(hello)]),
    ("data before hello", peer(True), [data]),
    ("garbage", peer(True), [[b"\xff" * 64], [b"{}", b"", b""]]),
]:
    for m in msgs:
        try:
            sock.send_multipart(m, zmq.NOBLOCK)
        except zmq.Again:
            pass  # no connection to queue it on: the handshake was refused
    answers[name] = sock.recv_multipart()[0].decode() if sock.poll(1500) else None
    sock.close(0)
print(json.dumps(answers), flush=True)
ctx.term()
'''


def test_a_foreign_process_on_another_host_gets_nothing_in(net: Net, group: ProcGroup) -> None:
    router = group._cluster.router  # type: ignore[union-attr]  # white box: its endpoint and public key
    attacker = net.hosts[2]
    out = subprocess.run(
        ["ip", "netns", "exec", attacker, sys.executable, "-c", ATTACKER, router.endpoint, router.server_key],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    answers = json.loads(out.stdout)
    assert answers == dict.fromkeys(answers), f"a foreign peer got an answer: {answers}"
    sink = RecordingSink()
    group.submit("print('only this')", sink=sink).wait(30)
    assert group.flush(timeout=10).ok
    assert all(sink.lines(r) == ["only this"] for r in range(4)), sink.text()
    assert [h.host for h in group.status().hosts] == net.hosts[:2]
