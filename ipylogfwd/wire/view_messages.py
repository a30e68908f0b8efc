"""Messages between the kernel and the proc widgets' views, defined once (mirrored in
``labextension/src/messages.ts``; a test checks the two agree).

Kernel -> view, as custom messages on each ``ProcWidget``'s own comm, in order:

* ``lines``   output for the view to append, in order: chunks of text per stream, coalesced,
              each with the time the kernel read it (``[stream, text, at]``: the lines that
              start in it show ``at``), and display bundles (a chunk
              ``[DISPLAY, DisplayData, at]``: the view renders it
              with JupyterLab's rendermime, untrusted, in its place among the lines; an
              ``update`` re-renders the bundle of its ``display_id`` where it is); ``dropped``
              lines that were not sent (the view's "N earlier lines not shown" grows by it);
* ``barrier`` everything before this message is sent: once it is in the DOM, ack ``version``;
* ``replay``  the kernel's bounded backlog (text and bundles): the view replaces what it shows
              with it (a late, second or reloaded view catching up), then continues with
              ``seq + 1``.

Every message carries ``seq``, the widget's message counter, so a model that replays can
ignore what it already has. Times (``at``) are seconds since the epoch, to the millisecond.

Version 3 added ``at`` to every chunk (timestamps), and the ``ProcsPanel`` widget (its
children are the cell's ``ProcWidget`` models; its views merge their lines in the page, see
``labextension/src/merge.ts``), which has no messages of its own.

View -> kernel, on the acknowledgement channel (a comm of target ``ACK_TARGET`` opened by
the frontend, or a ``CONTROL_MSG_TYPE`` message on the control channel, whichever the view
was told to use in its ``ack_route`` trait):

* ``hello`` a view of ``model_id`` exists, holding messages up to ``seq``;
* ``ack``   a view of ``model_id`` has rendered everything before barrier ``version``;
* ``bye``   the view is gone.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

VIEW_PROTOCOL_VERSION = 3
ACK_TARGET = "ipylogfwd.acks"
CONTROL_MSG_TYPE = "ipylogfwd_ack"
MODULE_NAME = "ipylogfwd"
MODULE_VERSION = "^0.1.0"

Stream = Literal[1, 2]
DISPLAY = 0
"""The first element of a chunk that carries a display bundle instead of text."""


class DisplayData(TypedDict):
    """A proc's mime bundle, as a view gets it (see ``wire.displays``)."""

    kind: Literal["display", "result"]
    data: dict[str, Any]
    metadata: dict[str, Any]
    display_id: str | None
    update: bool


Chunk = tuple[int, str | DisplayData, float]
"""(1 stdout / 2 stderr, text: may end without "\n", at), or (DISPLAY, bundle, at); ``at`` is
when the kernel read it (``time.time()``)."""


class Lines(TypedDict):
    protocol: int
    type: Literal["lines"]
    seq: int
    dropped: int
    chunks: list[list[Any]]  # [[stream, text, at], [DISPLAY, bundle, at], ...]


class BarrierMsg(TypedDict):
    protocol: int
    type: Literal["barrier"]
    seq: int
    version: int


class Replay(TypedDict):
    protocol: int
    type: Literal["replay"]
    seq: int
    dropped: int
    chunks: list[list[Any]]


ToView = Lines | BarrierMsg | Replay


class Hello(TypedDict):
    protocol: int
    type: Literal["hello"]
    model_id: str
    view_id: str
    seq: int


class Ack(TypedDict):
    protocol: int
    type: Literal["ack"]
    model_id: str
    view_id: str
    version: int


class Bye(TypedDict):
    protocol: int
    type: Literal["bye"]
    model_id: str
    view_id: str


FromView = Hello | Ack | Bye

TO_VIEW_TYPES = ("lines", "barrier", "replay")
FROM_VIEW_TYPES = ("hello", "ack", "bye")


class ViewProtocolError(ValueError):
    """A view message of another protocol version, an unknown type, or a malformed one."""


def lines(seq: int, dropped: int, chunks: list[Chunk]) -> Lines:
    return {
        "protocol": VIEW_PROTOCOL_VERSION,
        "type": "lines",
        "seq": seq,
        "dropped": dropped,
        "chunks": [list(c) for c in chunks],
    }


def display_data(
    kind: Literal["display", "result"],
    data: dict[str, Any],
    metadata: dict[str, Any],
    display_id: str | None,
    update: bool,
) -> DisplayData:
    return {"kind": kind, "data": data, "metadata": metadata, "display_id": display_id, "update": update}


def barrier(seq: int, version: int) -> BarrierMsg:
    return {"protocol": VIEW_PROTOCOL_VERSION, "type": "barrier", "seq": seq, "version": version}


def replay(seq: int, dropped: int, chunks: list[Chunk]) -> Replay:
    return {
        "protocol": VIEW_PROTOCOL_VERSION,
        "type": "replay",
        "seq": seq,
        "dropped": dropped,
        "chunks": [list(c) for c in chunks],
    }


def parse_from_view(data: Any) -> FromView:
    """The view message in ``data``; ViewProtocolError if it is not one this kernel understands."""
    if not isinstance(data, dict):
        raise ViewProtocolError(f"view message is not an object: {type(data).__name__}")
    if data.get("protocol") != VIEW_PROTOCOL_VERSION:
        raise ViewProtocolError(f"view protocol {data.get('protocol')!r}, this kernel speaks {VIEW_PROTOCOL_VERSION}")
    kind = data.get("type")
    if kind not in FROM_VIEW_TYPES:
        raise ViewProtocolError(f"unknown view message type {kind!r}")
    if not isinstance(data.get("model_id"), str) or not isinstance(data.get("view_id"), str):
        raise ViewProtocolError("view message without model_id/view_id")
    if kind == "hello" and not isinstance(data.get("seq"), int):
        raise ViewProtocolError("hello without seq")
    if kind == "ack" and not isinstance(data.get("version"), int):
        raise ViewProtocolError("ack without version")
    return data  # type: ignore[return-value]
