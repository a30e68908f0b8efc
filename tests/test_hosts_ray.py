"""Procs on a real Ray cluster (``ray.cluster_utils.Cluster``: three raylets with their own node
ids on this machine): one agent per node, placed by a STRICT_SPREAD placement group, dying
with the kernel that owns them; a node removed is a host lost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import wait_gone
from kernel_driver import KernelDriver

from ipylogfwd import ProcGroup, ProcsError, ProcStartError, UsageError
from ipylogfwd.launchers import RayLauncher
from ipylogfwd.sinks.text import TextSink

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def quiet(ranks: list[int], pids: object, logs: object) -> TextSink:
    class Quiet(TextSink):
        def _emit(self, name: str, text: str) -> None:
            pass

    return Quiet()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        for _ in range(2):
            c.add_node(num_cpus=2)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def test_one_agent_per_node_with_torchruns_environment(cluster: Any) -> None:
    import ray

    g = ProcGroup(6, launcher=RayLauncher(address=cluster.address, per_host=2), sink_factory=quiet, start_timeout=90)
    try:
        code = "import os; (os.environ['NODE_RANK'], os.environ['LOCAL_RANK'], os.environ['WORLD_SIZE'])"
        env = g.run(code, timeout=30)
        assert env == {r: (str(r // 2), str(r % 2), "6") for r in range(6)}
        hosts = g.status().hosts
        assert len({h.host for h in hosts}) == 3 and {h.link for h in hosts} == {"connected"}
        nodes = {n["NodeID"][:6] for n in ray.nodes() if n["Alive"]}
        assert {h.host.rsplit("-", 1)[-1] for h in hosts} == nodes, "each agent on a node of its own"
        assert g.flush(timeout=10).ok
    finally:
        g.shutdown()


def test_more_hosts_than_nodes_or_too_large_a_bundle_is_a_clear_error(cluster: Any) -> None:
    with pytest.raises(UsageError, match="need 4 hosts; the launcher has 3"):
        ProcGroup(4, launcher=RayLauncher(address=cluster.address, per_host=1))
    start = time.monotonic()
    with pytest.raises(ProcStartError, match="Ray could not place 3 agents on 3 distinct nodes"):
        ProcGroup(3, launcher=RayLauncher(address=cluster.address, per_host=1, bundle={"CPU": 3}, place_timeout=5))
    assert time.monotonic() - start < 30


def test_a_node_removed_is_a_host_lost_and_the_others_go_on(cluster: Any) -> None:
    g = ProcGroup(6, launcher=RayLauncher(address=cluster.address, per_host=2, lease=4.0), sink_factory=quiet)
    try:
        workers = {n.node_id[:6]: n for n in cluster.worker_nodes}  # the head node cannot be removed
        victim_host = next(h for h in g.status().hosts if h.host.rsplit("-", 1)[-1] in workers)
        node = workers[victim_host.host.rsplit("-", 1)[-1]]
        job = g.submit("import time\ntime.sleep(60)", targets=victim_host.ranks)
        cluster.remove_node(node)
        with pytest.raises(ProcsError) as err, pytest.warns(UserWarning, match="are cut off"):
            job.wait(30)
        assert sorted(err.value.errors) == victim_host.ranks, err.value.errors
        others = [r for r in range(6) if r not in victim_host.ranks]
        assert g.run("1", targets=others, timeout=20) == dict.fromkeys(others, 1)
        assert next(h for h in g.status().hosts if h.host == victim_host.host).link == "lost"
    finally:
        g.shutdown(timeout=3.0)
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()


def test_the_agents_die_with_the_kernel_that_owns_them(cluster: Any, record_figure: object) -> None:
    k = KernelDriver()
    try:
        assert k.execute("%load_ext ipylogfwd").status == "ok"
        setup = f"from ipylogfwd.launchers import RayLauncher\nL = RayLauncher(address={cluster.address!r}, per_host=1)"
        assert k.execute(setup).status == "ok"
        cell = k.execute("%%procs 3 --launcher L\nimport os; os.getpid()", timeout=120)
        assert cell.status == "ok", cell.error
        procs = list(eval(cell.result_text() or "").values())
        status = k.execute("import ipylogfwd; print([h.agent_pid for h in ipylogfwd.current_group().status().hosts])")
        agents = eval(status.stdout.strip())
        assert len(agents) == 3
        os.kill(k.km.provisioner.pid, signal.SIGKILL)  # type: ignore[union-attr]
        took = wait_gone(agents + procs, 15, "the agents and procs of a killed kernel")
        record_figure("ray: kernel SIGKILL -> 3 agents and their procs gone", f"{took:.2f} s")  # type: ignore[operator]
    finally:
        k.shutdown()
