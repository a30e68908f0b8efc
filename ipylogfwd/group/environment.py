"""The environment each proc starts with: its place in the group, as ``torchrun`` sets it, so
``torch.distributed.init_process_group()`` (and other libraries that read these variables)
work with no set-up.

Computed in one place for procs on this machine and on other hosts alike (``proc_env`` is a
pure function of the proc's place and the rendezvous address). A variable the user set in the
kernel's own environment before the procs started wins over the computed one (a chosen
``MASTER_PORT``, a ``GLOO_SOCKET_IFNAME``, an ``OMP_NUM_THREADS``); a proc's identity
(``RANK``, ``LOCAL_RANK``, ...) is always its own: one value in the kernel cannot be every
proc's (a kernel itself started by torchrun has ``RANK=0``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# Variables a user may set in the kernel's environment to override what is computed here.
OVERRIDABLE = ("MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")


def proc_env(
    rank: int,
    world_size: int,
    *,
    local_rank: int,
    local_world_size: int,
    node_rank: int,
    nnodes: int,
    master_addr: str,
    master_port: int,
    cpus: int | None = None,
    extra: Mapping[str, str] | None = None,
    kernel_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables for proc ``rank``; ``extra`` (e.g. an interface name) is added unless
    the kernel's environment (default ``os.environ``) already sets the same names. With
    ``cpus`` (the host's cores), ``OMP_NUM_THREADS`` shares them among the host's procs, as
    torchrun does, so N procs do not each start a thread per core."""
    env = {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "NODE_RANK": str(node_rank),
        "GROUP_RANK": str(node_rank),
        "NNODES": str(nnodes),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        **(extra or {}),
    }
    if cpus is not None:
        env["OMP_NUM_THREADS"] = str(max(1, cpus // max(1, local_world_size)))
    given = os.environ if kernel_env is None else kernel_env
    for name in OVERRIDABLE:
        if name in given:
            env[name] = given[name]
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now, for a generation's rendezvous (``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def local_envs(size: int, master_port: int, cpus: int | None = None) -> dict[int, dict[str, str]]:
    """Each rank's variables for ``size`` procs all on this machine (one node)."""
    return {
        rank: proc_env(
            rank,
            size,
            local_rank=rank,
            local_world_size=size,
            node_rank=0,
            nnodes=1,
            master_addr="127.0.0.1",
            master_port=master_port,
            cpus=os.cpu_count() or 1 if cpus is None else cpus,
        )
        for rank in range(size)
    }
