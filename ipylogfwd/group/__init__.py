"""The group of procs a user works with: ``ProcGroup`` (the facade, ``procgroup``) over one
``generation`` at a time, which holds the proc sets (``procset``; this machine's are
``localprocs``), the running ``cells``, the ``flush`` across them and their ``status``;
``args`` checks what the user asks for."""

from __future__ import annotations

from .args import MAX_PROCS, parse_targets
from .cells import Execution, ReprValue
from .procgroup import ProcGroup
from .status import GroupStatus, ProcStatus

__all__ = ["MAX_PROCS", "Execution", "GroupStatus", "ProcGroup", "ProcStatus", "ReprValue", "parse_targets"]
