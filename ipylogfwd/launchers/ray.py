"""``RayLauncher``: one agent per Ray node, on a cluster the user already has.

Ray only places and supervises the agents; the procs' output never goes through Ray. A
placement group of one bundle per host with the ``STRICT_SPREAD`` strategy puts each agent on
a node of its own and reserves the procs' CPUs (and GPUs) there. In each bundle an actor makes
the agent's CurveZMQ keypair, returns only the public key (the kernel admits exactly that
key: no secret crosses Ray's wire), then starts the agent as its child. The actors belong to
the kernel's Ray driver, so they die with it, and the agent with its actor (parent-death
signal), and the procs with their agent. Needs the ``ray`` extra: ``pip install ipylogfwd[ray]``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ProcStartError, UsageError
from ..hosts.link import HostInfo
from ..wire.admission import AgentSecrets
from .base import check_per_host

PLACE_TIMEOUT = 60.0


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("RayLauncher needs Ray: pip install 'ipylogfwd[ray]'") from None
    return ray


class _RayAgent:
    """An agent started by a Ray actor, as the launcher sees it."""

    def __init__(self, actor: Any, label: str) -> None:
        self._actor = actor
        self._label = label
        self._ended: int | None = None
        self._asked: Any = None  # the poll in flight

    @property
    def label(self) -> str:
        return self._label

    def exited(self) -> int | None:
        if self._ended is None:
            ray = _ray()
            if self._asked is None:
                self._asked = self._actor.poll.remote()
            ready, _ = ray.wait([self._asked], timeout=0)
            if ready:
                self._asked = None
                try:
                    self._ended = ray.get(ready[0])
                except Exception:  # noqa: BLE001 - the actor itself died (its node left): the agent did too
                    self._ended = -9
        return self._ended

    def output(self) -> str:
        try:
            return str(_ray().get(self._actor.output.remote(), timeout=5.0))
        except Exception as exc:  # noqa: BLE001 - an actor that cannot answer says why instead
            return f"(the agent's Ray actor did not answer: {exc!r})"

    def stop(self, timeout: float) -> None:
        ray = _ray()
        with contextlib.suppress(Exception):  # whatever failed (the actor is gone), it is killed below
            ray.get(self._actor.stop.remote(timeout), timeout=timeout + 5.0)
        ray.kill(self._actor)


class RayLauncher:
    """One agent per Ray node. ``address``: the cluster (``ray.init``'s; "auto" finds a local
    one). ``per_host``: procs per node (default: spread over every alive node). ``bundle``: the
    resources each node's procs reserve (default ``{"CPU": per_host}``); ``gpus_per_host`` adds
    GPUs, and Ray sets ``CUDA_VISIBLE_DEVICES`` for them."""

    def __init__(
        self,
        address: str = "auto",
        per_host: int | None = None,
        *,
        bundle: dict[str, float] | None = None,
        gpus_per_host: int = 0,
        lease: float = 30.0,
        place_timeout: float = PLACE_TIMEOUT,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.address = address
        self.per_host = per_host
        self.bundle = bundle
        self.gpus_per_host = gpus_per_host
        self.lease = lease
        self.place_timeout = place_timeout
        self.same_machine = False
        self._init_kwargs = init_kwargs or {}
        self._pg: Any = None
        self._agents: list[_RayAgent] = []

    def describe(self) -> str:
        return f"ray at {self.address}"

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, **self._init_kwargs)
        return ray

    def hosts_for(self, n: int) -> int:
        ray = self._connect()
        nodes = len([node for node in ray.nodes() if node.get("Alive")])
        if self.per_host is None:
            hosts = max(h for h in range(1, nodes + 1) if n % h == 0)
            self.per_host = n // hosts
        return check_per_host(n, self.per_host, nodes)

    def listen_address(self) -> str:
        return str(self._connect().util.get_node_ip_address())

    def launch(self, secrets: AgentSecrets, count: int, admit: Callable[[str], None]) -> list[Any]:
        ray = self._connect()
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        per_host = self.per_host or 1
        bundle = dict(self.bundle or {"CPU": float(per_host)})
        if self.gpus_per_host:
            bundle["GPU"] = float(self.gpus_per_host)
        self._pg = placement_group([dict(bundle) for _ in range(count)], strategy="STRICT_SPREAD")
        try:
            ray.get(self._pg.ready(), timeout=self.place_timeout)
        except Exception as exc:  # noqa: BLE001 - Ray's timeout or scheduling error, said plainly
            self.close()
            raise ProcStartError(
                f"Ray could not place {count} agents on {count} distinct nodes, each with {bundle} "
                f"free, within {self.place_timeout:g} s ({type(exc).__name__})"
            ) from None
        actor_cls = ray.remote(num_cpus=0)(_AgentActor)
        gpus = float(self.gpus_per_host) if self.gpus_per_host else 0
        actors = [
            actor_cls.options(
                num_gpus=gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=self._pg, placement_group_bundle_index=i
                ),
            ).remote()
            for i in range(count)
        ]
        places = ray.get([a.place.remote() for a in actors], timeout=self.place_timeout)
        names = _names([(ip, node) for ip, node, _ in places])
        for _, _, key in places:
            admit(key)  # before the agents exist: their first hello is already welcome
        endpoint, server_key = secrets.endpoint, secrets.server_key
        ray.get([a.start.remote(endpoint, server_key, n, self.lease) for a, n in zip(actors, names, strict=True)])
        self._agents = [_RayAgent(a, name) for a, name in zip(actors, names, strict=True)]
        return list(self._agents)

    def order(self, joined: list[HostInfo]) -> list[HostInfo]:
        return sorted(joined, key=lambda h: (tuple(int(x) for x in h.addr.split(".") if x.isdigit()), h.host))

    def close(self) -> None:
        for agent in self._agents:
            agent.stop(2.0)
        if self._pg is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._pg)
            self._pg = None

    def __repr__(self) -> str:
        return f"RayLauncher(address={self.address!r}, per_host={self.per_host})"


def _names(places: list[tuple[str, str]]) -> list[str]:
    """Host names: the node's IP, with a short node id where IPs repeat (nodes on one machine)."""
    ips = [ip for ip, _ in places]
    return [ip if ips.count(ip) == 1 else f"{ip}-{node[:6]}" for ip, node in places]


class _AgentActor:
    """Runs in a Ray worker on one node: makes the agent's keys, then starts the agent."""

    def __init__(self) -> None:
        import zmq

        public, secret = zmq.curve_keypair()
        self._public, self._secret = public.decode(), secret.decode()
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._lock = threading.Lock()  # the reader thread appends, calls read

    def place(self) -> tuple[str, str, str]:
        ray = _ray()
        ctx = ray.get_runtime_context()
        return str(ray.util.get_node_ip_address()), str(ctx.get_node_id()), self._public

    def start(self, endpoint: str, server_key: str, host: str, lease: float) -> None:
        secrets = AgentSecrets(endpoint, server_key, public_key=self._public, secret_key=self._secret)
        argv = [sys.executable, "-m", "ipylogfwd.agent", "--host", host, "--lease", f"{lease:g}", "--die-with-parent"]
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._process.stdin is not None
        self._process.stdin.write(secrets.dumps() + "\n")
        self._process.stdin.close()
        threading.Thread(target=self._read, name="ipylogfwd-ray-agent-output", daemon=True).start()

    def poll(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def output(self) -> str:
        with self._lock:
            return "".join(self._output[-200:])

    def stop(self, timeout: float) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def _read(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            with self._lock:
                self._output.append(line)
