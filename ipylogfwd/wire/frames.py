"""Frames between the kernel and a host's agent, defined once.

Every ZeroMQ message is ``[header, body]``: the header is a small JSON object with the wire
version ``v`` and a type tag ``t``; the body is bytes (empty for most types). Nothing is
unpickled before an agent is admitted: ``hello`` (the first message) is JSON only. After
admission, control messages carry their payload pickled in the body (the agent and the
kernel trust each other as the kernel trusts its own procs), and ``data`` carries a proc's
pipeline items in the compact binary form below, framed on the host.

Types, agent -> kernel: ``hello`` (JSON), ``data`` (rank, epoch, seq; items), ``ctl``
(reliable: ``s``, the lane's sequence number; a pickled event), ``ack`` (unreliable: the
acknowledgement of the kernel's control messages, and the answer to a ping), ``status``
(unreliable, every second: the procs' states). Kernel -> agent: ``welcome``, ``refused``, ``ctl`` (reliable
commands), ``credit`` (unreliable: per-rank acks and credit limits, acks of the agent's
control messages), ``ping``, ``terminate`` (the kernel is gone: from its stand-in).
"""

from __future__ import annotations

import json
import pickle
import struct
from typing import Any

from ..pipeline.items import Barrier, CellStart, Display, Eof, Item, Log
from . import displays

WIRE_VERSION = 3  # 2: display bundles among the items, push/pull commands; 3: Log without a line count
MAX_HEADER = 64 * 1024
MAX_DATA_FRAME = 256 * 1024  # the size of items the agent puts in one data frame (about)

AGENT_TYPES = frozenset({"hello", "data", "ctl", "ack", "status"})
KERNEL_TYPES = frozenset({"welcome", "refused", "ctl", "credit", "ping", "terminate"})


class FrameError(ValueError):
    """A frame that is not one this side understands: wrong version, unknown type, malformed."""


def encode(header: dict[str, Any], body: bytes = b"") -> list[bytes]:
    """The frames of one message (``header`` gets the wire version)."""
    return [json.dumps({"v": WIRE_VERSION, **header}, separators=(",", ":")).encode(), body]


def decode(frames: list[bytes], types: frozenset[str]) -> tuple[dict[str, Any], bytes]:
    """(header, body) of a message whose type is one of ``types``; FrameError if it is not."""
    if len(frames) != 2:
        raise FrameError(f"a message has 2 frames, not {len(frames)}")
    raw, body = frames
    if len(raw) > MAX_HEADER:
        raise FrameError(f"header of {len(raw)} bytes")
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise FrameError("header is not an object")
    if header.get("v") != WIRE_VERSION:
        raise FrameError(f"wire version {header.get('v')!r}, this side speaks {WIRE_VERSION}")
    if header.get("t") not in types:
        raise FrameError(f"unknown message type {header.get('t')!r}")
    return header, body


def ctl_body(msg: dict[str, Any]) -> bytes:
    return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


def ctl_message(body: bytes) -> dict[str, Any]:
    """The control message in ``body``; only for bodies from an admitted peer."""
    try:
        msg = pickle.loads(body)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a malformed frame
        raise FrameError(f"control body does not unpickle: {exc!r}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise FrameError("control body is not a tagged message")
    return msg


# --- pipeline items -----------------------------------------------------------------------------
# Log:       b"L" stream:u8 length:u32 utf-8
# Barrier:   b"B" stream:u8 weak:u8 kind-length:u8 kind:ascii value:u64
# CellStart: b"C" stream:u8 cell:u64
# Display:   b"D" stream:u8 size:u32 length:u32 json (kind, data, metadata, display_id, update)
# Eof:       b"F" stream:u8
_LOG = struct.Struct("!BI")
_DISPLAY = struct.Struct("!BII")
_BARRIER = struct.Struct("!BBB")
_U64 = struct.Struct("!Q")
_CELL = struct.Struct("!BQ")


def encode_items(items: list[Item]) -> bytes:
    """The compact binary form of ``items`` (``decode_items`` gives them back)."""
    out = bytearray()
    for item in items:
        if isinstance(item, Log):
            data = item.text.encode("utf-8", "surrogatepass")
            out += b"L" + _LOG.pack(item.stream, len(data)) + data
        elif isinstance(item, Barrier):
            kind = item.key[0].encode("ascii")
            out += b"B" + _BARRIER.pack(item.stream, int(item.weak), len(kind)) + kind + _U64.pack(item.key[1])
        elif isinstance(item, CellStart):
            out += b"C" + _CELL.pack(item.stream, item.cell)
        elif isinstance(item, Display):
            body: dict[str, Any] = {"kind": item.kind, "data": item.data, "metadata": item.metadata}
            body |= {"display_id": item.display_id, "update": item.update}
            data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
            out += b"D" + _DISPLAY.pack(item.stream, item.size, len(data)) + data
        else:
            out += b"F" + bytes([item.stream])
    return bytes(out)


def decode_items(data: bytes) -> list[Item]:
    """The items in ``data``; FrameError if it is not a whole, well-formed sequence."""
    items: list[Item] = []
    view = memoryview(data)
    pos = 0
    try:
        while pos < len(view):
            tag = view[pos : pos + 1].tobytes()
            pos += 1
            if tag == b"L":
                stream, length = _LOG.unpack_from(view, pos)
                pos += _LOG.size
                if pos + length > len(view):
                    raise FrameError("text runs past the frame")
                text = view[pos : pos + length].tobytes().decode("utf-8", "surrogatepass")
                pos += length
                items.append(Log(_stream(stream), text))
            elif tag == b"B":
                stream, weak, klen = _BARRIER.unpack_from(view, pos)
                pos += _BARRIER.size
                kind = view[pos : pos + klen].tobytes().decode("ascii")
                pos += klen
                (value,) = _U64.unpack_from(view, pos)
                pos += _U64.size
                items.append(Barrier(_stream(stream), (kind, value), bool(weak)))
            elif tag == b"C":
                stream, cell = _CELL.unpack_from(view, pos)
                pos += _CELL.size
                items.append(CellStart(_stream(stream), cell))
            elif tag == b"D":
                stream, size, length = _DISPLAY.unpack_from(view, pos)
                pos += _DISPLAY.size
                if pos + length > len(view):
                    raise FrameError("a display bundle runs past the frame")
                items.append(_display(_stream(stream), size, view[pos : pos + length].tobytes()))
                pos += length
            elif tag == b"F":
                if pos >= len(view):
                    raise FrameError("end of stream without its stream")
                items.append(Eof(_stream(view[pos])))
                pos += 1
            else:
                raise FrameError(f"unknown item tag {tag!r}")
    except (struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed items: {exc}") from None
    return items


def _display(stream: int, size: int, data: bytes) -> Display:
    try:
        body = displays.decode(data)
    except ValueError as exc:  # also JSON's and UTF-8's errors
        raise FrameError(f"malformed display bundle: {exc}") from None
    return Display(stream, body["kind"], body["data"], body["metadata"], size, body["display_id"], body["update"])


def _stream(value: int) -> int:
    if value not in (1, 2):
        raise FrameError(f"stream {value} is neither stdout (1) nor stderr (2)")
    return value
