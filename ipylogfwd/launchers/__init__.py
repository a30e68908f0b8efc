"""Launchers start one agent per host for a group: ``LocalLauncher`` (agents on this machine),
``CommandLauncher`` (any command: ssh, srun, ``ip netns exec``), ``RayLauncher`` (one agent
per Ray node, placed by a placement group). See ``base`` for what they share."""

from __future__ import annotations

from .base import Launcher
from .command import CommandLauncher
from .local import LocalLauncher

__all__ = ["CommandLauncher", "Launcher", "LocalLauncher", "RayLauncher"]


def __getattr__(name: str) -> object:
    # Ray is an optional extra: importing it costs seconds, so only when asked for.
    if name == "RayLauncher":
        from .ray import RayLauncher

        return RayLauncher
    raise AttributeError(name)
