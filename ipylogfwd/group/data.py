"""Moving values between the kernel and the procs: ``push``, ``pull``, ``scatter``, ``gather``.

Values are pickled one by one, so that whatever cannot be moved is named with its rank: a value
the kernel cannot pickle (a generator, a lock), one a proc cannot unpickle (a function or class
defined in the notebook is pickled by reference to the kernel's ``__main__``, which a proc does
not have), a name a proc does not have, or a value the kernel cannot unpickle (a class defined
only in the procs). Requests go to each proc's control thread, which serves them at once, also
while a cell runs (``proc.worker``); ``Replies`` matches the answers to the requests.

``split`` and ``join`` cut a sequence into one contiguous part per rank and put the parts back
together in rank order.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ProcTimeoutError, TransferError
from ..wire.proc_messages import Data

MAIN_HINT = (
    " (a function or class defined in the notebook is pickled as a reference to the kernel's "
    "__main__, which the procs do not share: define it in a %%procs cell or in a module)"
)
PROC_ONLY_HINT = " (a class or function defined in a %%procs cell exists only in the procs)"


class Replies:
    """Answers to push/pull requests, by (rank, request id). Delivered on a proc set's control
    thread, waited for by callers: guarded by one condition."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: dict[int, set[int]] = {}  # req -> ranks asked
        self._got: dict[int, dict[int, Data]] = {}  # req -> rank -> answer

    def expect(self, req: int, ranks: list[int]) -> None:
        with self._cond:
            self._waiting[req] = set(ranks)
            self._got[req] = {}

    def deliver(self, rank: int, msg: Data) -> None:
        with self._cond:
            if rank in self._waiting.get(msg["req"], ()):
                self._got[msg["req"]][rank] = msg
                self._cond.notify_all()
            # else: the answer to a request whose caller gave up (timed out): dropped

    def wait(self, req: int, timeout: float) -> dict[int, Data]:
        """The answers to ``req`` that came within ``timeout`` (interruptible); forgets ``req``."""
        deadline = time.monotonic() + timeout
        try:
            with self._cond:
                while len(self._got[req]) < len(self._waiting[req]):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, 0.1))
                return dict(self._got[req])
        finally:
            with self._cond:
                self._waiting.pop(req, None)
                self._got.pop(req, None)


def dumps(what: str, name: str, value: Any, rank: int | None = None) -> bytes:
    """``value`` pickled; ``TransferError`` naming it (and the rank it is for) if it cannot be."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # whatever pickling raised (re-raised), the user needs its name
        part = "" if rank is None else f" (its part for rank {rank})"
        raise TransferError(what, {}, f"cannot pickle {name!r}{part}, a {type(value).__name__}: {_exc(exc)}") from exc


def check_pushed(what: str, ranks: list[int], replies: dict[int, Data], timeout: float) -> None:
    """Raise if a rank did not answer a push, or could not take a value."""
    _check_answered(what, ranks, replies, timeout)
    errors = {
        r: "; ".join(f"{name!r}: {e}{MAIN_HINT if 'main__' in e else ''}" for name, e in msg["errors"].items())
        for r, msg in replies.items()
        if msg["errors"]
    }
    if errors:
        raise TransferError(what, errors)


def loads_pulled(what: str, name: str, ranks: list[int], replies: dict[int, Data], timeout: float) -> dict[int, Any]:
    """``{rank: value}`` of ``name`` from the answers to a pull; raise naming what failed where."""
    _check_answered(what, ranks, replies, timeout)
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    for rank in ranks:
        msg = replies[rank]
        if name in msg["errors"]:
            errors[rank] = f"{name!r}: {msg['errors'][name]}"
            continue
        try:
            values[rank] = pickle.loads(msg["values"][name])
        except Exception as exc:  # noqa: BLE001 - whatever unpickling raised, name the object
            errors[rank] = f"{name!r}: cannot unpickle it in the kernel: {_exc(exc)}{PROC_ONLY_HINT}"
    if errors:
        raise TransferError(what, errors)
    return values


def _check_answered(what: str, ranks: list[int], replies: dict[int, Data], timeout: float) -> None:
    late = [r for r in ranks if r not in replies]
    if late:
        raise ProcTimeoutError(
            f"{what}: rank(s) {', '.join(map(str, late))} did not answer within {timeout:g} s "
            "(a proc in C code that holds the GIL cannot)",
            late,
        )


def split(seq: Sequence[Any], parts: int) -> list[Sequence[Any]]:
    """``seq`` cut into ``parts`` contiguous slices, as even as can be (the first ones longer)."""
    n = len(seq)
    bounds = [n - (parts - i) * n // parts for i in range(parts + 1)]  # 5 in 2 parts: 3, then 2
    return [seq[bounds[i] : bounds[i + 1]] for i in range(parts)]


def join(parts: list[Any]) -> Any:
    """The parts of a gather put back together in rank order: lists, tuples, strings, bytes and
    numpy arrays are concatenated; anything else gives a list of the parts."""
    if not parts:
        return []
    if all(isinstance(p, list) for p in parts):
        return [x for p in parts for x in p]
    if all(isinstance(p, tuple) for p in parts):
        return tuple(x for p in parts for x in p)
    if all(isinstance(p, str) for p in parts):
        return "".join(parts)
    if all(isinstance(p, bytes) for p in parts):
        return b"".join(parts)
    if all(type(p).__name__ == "ndarray" and type(p).__module__ == "numpy" for p in parts):
        import numpy

        return numpy.concatenate(parts)
    return list(parts)


def _exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
