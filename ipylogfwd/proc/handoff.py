"""Handing an open file descriptor to a proc as it starts: pickled with the proc's arguments,
it arrives in the proc as a descriptor of its own (``multiprocessing`` duplicates it across).

It lives beside the proc's own code: unpickling it in a starting proc imports this small
module, not the kernel's side of the package."""

from __future__ import annotations

from multiprocessing import reduction
from typing import Any


class InheritedFd:
    """An fd handed to a starting proc (pickled while the proc is being started)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return (_detach, (reduction.DupFd(self.fd),))


def _detach(dup: Any) -> int:
    return int(dup.detach())
