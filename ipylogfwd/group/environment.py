"""The environment a proc starts with: what ``torch.distributed`` (and torchrun-style code)
expects to find, computed in one place.

``proc_environment`` is a pure function from where a proc stands in the world (its rank, its
place on its host, the host's place among hosts, the rendezvous address) to the variables it
gets, so that ``dist.init_process_group("gloo")`` works in a cell with no set-up. Each proc
set calls it for its ranks (a proc set on another host calls the same function for its own).

Variables the user set in the kernel's environment before the procs started win, except the
ones that say who a proc is (``RANK``, ``LOCAL_RANK``, ...): one value in the kernel cannot
be every proc's identity (a kernel itself started by torchrun has ``RANK=0``).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

IDENTITY = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK", "NNODES")
"""Always set by ipylogfwd: each proc's own place in the world."""

SHARED_DEFAULTS = ("MASTER_ADDR", "MASTER_PORT", "OMP_NUM_THREADS")
"""Set by ipylogfwd unless the kernel's environment already has them (the user's value wins)."""


def proc_environment(
    *,
    rank: int,
    world_size: int,
    local_rank: int,
    local_world_size: int,
    node_rank: int,
    nnodes: int,
    master_addr: str,
    master_port: int,
    cpus: int,
    inherited: Mapping[str, str],
) -> dict[str, str]:
    """The variables proc ``rank`` must be given on top of ``inherited`` (the kernel's
    environment when the procs start): its identity always, the rendezvous and thread count
    only where ``inherited`` lacks them. ``OMP_NUM_THREADS`` shares the host's ``cpus``
    among its procs, as torchrun does, so N procs do not each start a thread per core."""
    env = {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "GROUP_RANK": str(node_rank),
        "NODE_RANK": str(node_rank),
        "NNODES": str(nnodes),
    }
    defaults = {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "OMP_NUM_THREADS": str(max(1, cpus // max(1, local_world_size))),
    }
    env.update({k: v for k, v in defaults.items() if k not in inherited})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now, for a generation's rendezvous (``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
