"""Control messages between the kernel and a proc, defined once.

They travel pickled over the proc's control ``Connection`` (output never does: it travels on
fds 1 and 2 and the display pipe). Each is a ``TypedDict`` tagged by ``type`` and carrying the
protocol version ``v``; ``check`` rejects a message of another version or an unknown tag.

Values the user moves between the kernel and the procs (``push``/``pull``) travel here too,
each pickled on its own so that an error can name the one that failed; the proc answers every
``push`` and ``pull`` with one ``data`` message carrying the same ``req``.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

PROC_PROTOCOL_VERSION = 2


# kernel -> proc
class Exec(TypedDict):
    type: Literal["exec"]
    v: int
    cell: int
    code: str
    filename: str


class Flush(TypedDict):
    type: Literal["flush"]
    v: int
    version: int


class Shutdown(TypedDict):
    type: Literal["shutdown"]
    v: int


class Push(TypedDict):
    """Set these names in the proc's namespace (values pickled one by one)."""

    type: Literal["push"]
    v: int
    req: int
    values: dict[str, bytes]


class Pull(TypedDict):
    """Send back the values of these names."""

    type: Literal["pull"]
    v: int
    req: int
    names: list[str]


# proc -> kernel
class Hello(TypedDict):
    type: Literal["hello"]
    v: int
    pid: int


class Heartbeat(TypedDict):
    type: Literal["heartbeat"]
    v: int
    busy_cell: int | None


class Started(TypedDict):
    type: Literal["started"]
    v: int
    cell: int


class Flushed(TypedDict):
    """The proc has read flush request ``version`` and marked its streams."""

    type: Literal["flushed"]
    v: int
    version: int


class Result(TypedDict):
    type: Literal["result"]
    v: int
    cell: int
    ok: bool
    value: bytes | None  # pickled last-expression value, None when there is none
    value_repr: str | None  # repr, for values that cannot be pickled
    error: str | None  # the formatted traceback
    error_type: str | None


class Data(TypedDict):
    """The answer to push or pull ``req``: the values pulled (pickled), and per name what went
    wrong (unpickling a pushed value, a name not defined, pickling a value to pull)."""

    type: Literal["data"]
    v: int
    req: int
    values: dict[str, bytes]
    errors: dict[str, str]


ToProc = Exec | Flush | Shutdown | Push | Pull
FromProc = Hello | Heartbeat | Started | Flushed | Result | Data

_TO_PROC = {"exec", "flush", "shutdown", "push", "pull"}
_FROM_PROC = {"hello", "heartbeat", "started", "flushed", "result", "data"}


class ProcProtocolError(RuntimeError):
    """A control message of another protocol version or of an unknown type."""


def check(msg: Any, direction: Literal["to_proc", "from_proc"]) -> None:
    """Raise ProcProtocolError unless ``msg`` is a message this side understands."""
    tags = _TO_PROC if direction == "to_proc" else _FROM_PROC
    if not isinstance(msg, dict):
        raise ProcProtocolError(f"control message is not a dict: {type(msg).__name__}")
    if msg.get("v") != PROC_PROTOCOL_VERSION:
        raise ProcProtocolError(f"control protocol v{msg.get('v')}, expected v{PROC_PROTOCOL_VERSION}")
    if msg.get("type") not in tags:
        raise ProcProtocolError(f"unknown control message type {msg.get('type')!r}")


def exec_(cell: int, code: str, filename: str) -> Exec:
    return {"type": "exec", "v": PROC_PROTOCOL_VERSION, "cell": cell, "code": code, "filename": filename}


def flush(version: int) -> Flush:
    return {"type": "flush", "v": PROC_PROTOCOL_VERSION, "version": version}


def shutdown() -> Shutdown:
    return {"type": "shutdown", "v": PROC_PROTOCOL_VERSION}


def push(req: int, values: dict[str, bytes]) -> Push:
    return {"type": "push", "v": PROC_PROTOCOL_VERSION, "req": req, "values": values}


def pull(req: int, names: list[str]) -> Pull:
    return {"type": "pull", "v": PROC_PROTOCOL_VERSION, "req": req, "names": names}


def data(req: int, values: dict[str, bytes], errors: dict[str, str]) -> Data:
    return {"type": "data", "v": PROC_PROTOCOL_VERSION, "req": req, "values": values, "errors": errors}


def hello(pid: int) -> Hello:
    return {"type": "hello", "v": PROC_PROTOCOL_VERSION, "pid": pid}


def heartbeat(busy_cell: int | None) -> Heartbeat:
    return {"type": "heartbeat", "v": PROC_PROTOCOL_VERSION, "busy_cell": busy_cell}


def started(cell: int) -> Started:
    return {"type": "started", "v": PROC_PROTOCOL_VERSION, "cell": cell}


def flushed(version: int) -> Flushed:
    return {"type": "flushed", "v": PROC_PROTOCOL_VERSION, "version": version}


def result(
    cell: int,
    *,
    value: bytes | None = None,
    value_repr: str | None = None,
    error: str | None = None,
    error_type: str | None = None,
) -> Result:
    return {
        "type": "result",
        "v": PROC_PROTOCOL_VERSION,
        "cell": cell,
        "ok": error is None,
        "value": value,
        "value_repr": value_repr,
        "error": error,
        "error_type": error_type,
    }
