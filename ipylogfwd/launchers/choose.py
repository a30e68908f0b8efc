"""Which launcher a ``%%procs --launcher NAME`` (or ``IPYLOGFWD_LAUNCHER``) means.

NAME is ``local`` (agents on this machine), ``ray`` (one agent per Ray node), or the name of
a launcher object in the user's namespace. Two choices are the same launcher when they name
the same object, or the same kind with the same ``--per-host``: a cell with the same launcher
reuses the running procs, another one replaces them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .base import Launcher

ENV = "IPYLOGFWD_LAUNCHER"


@dataclass(frozen=True)
class Choice:
    """A launcher chosen by name: ``key`` tells choices apart, ``make(n)`` builds it."""

    key: tuple[Any, ...]
    make: Callable[[int], Launcher]


def choose(name: str | None, per_host: int | None, namespace: Mapping[str, Any]) -> Choice | None:
    """The launcher ``name`` means (None: no ``--launcher`` and no ``IPYLOGFWD_LAUNCHER``)."""
    if name is None:
        name = os.environ.get(ENV) or None
        if name is None:
            if per_host is not None:
                raise UsageError("--per-host goes with --launcher")
            return None
    if name == "local":
        from .local import LocalLauncher

        return Choice(("local", per_host), lambda n: LocalLauncher(hosts=_local_hosts(n, per_host), per_host=per_host))
    if name == "ray":
        from .ray import RayLauncher

        return Choice(("ray", per_host), lambda n: RayLauncher(per_host=per_host))
    if not name.isidentifier() or name not in namespace:
        raise UsageError(f"--launcher {name!r}: use local, ray, or the name of a launcher in your namespace")
    obj = namespace[name]
    if not callable(getattr(obj, "launch", None)) or not callable(getattr(obj, "hosts_for", None)):
        raise UsageError(f"--launcher {name!r} is a {type(obj).__name__}, not a launcher (see ipylogfwd.launchers)")
    if per_host is not None:
        raise UsageError(f"--per-host is for --launcher local or ray; {name} has its own per_host")
    launcher: Launcher = obj
    return Choice(("object", id(obj)), lambda n: launcher)


def _local_hosts(n: int, per_host: int | None) -> int:
    if per_host is None:
        return 2 if n % 2 == 0 else 1
    return max(1, n // per_host)
