"""The environment each proc starts with: its place in the group, as ``torchrun`` sets it, so
``torch.distributed.init_process_group()`` (and other libraries that read these variables)
work with no set-up.

Computed in one place for procs on this machine and on other hosts alike. A variable the user
set in the kernel's own environment before the procs started wins over the computed one (a
chosen ``MASTER_PORT``, a ``GLOO_SOCKET_IFNAME``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables a user may set in the kernel's environment to override what is computed here.
OVERRIDABLE = ("MASTER_ADDR", "MASTER_PORT", "GLOO_SOCKET_IFNAME", "CUDA_VISIBLE_DEVICES")


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
    extra: Mapping[str, str] | None = None,
    kernel_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables for proc ``rank``; ``extra`` (e.g. an interface name) is added unless
    the kernel's environment (default ``os.environ``) already sets the same names."""
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
    given = os.environ if kernel_env is None else kernel_env
    for name in OVERRIDABLE:
        if name in given:
            env[name] = given[name]
    return env
