"""Rich output on the wire: how a proc's display bundle travels to the kernel, defined once.

A proc's ``display()`` output (and the rich form of a cell's last expression) is a Jupyter mime
bundle. It does not travel in the proc's stdout: a bundle is megabytes of one write, and a
pipe keeps a write whole only up to ``PIPE_BUF`` (4 KiB), so C code, a child process or
another thread writing to fd 1 at the same moment could land inside it. Nor does it travel
on the control connection, where heartbeats and flush replies must never queue behind it.

Each proc has a third pipe, the display pipe, that only the proc's display code writes, one
whole frame at a time under a lock::

    b"LFWDdsp1" | id: 8 bytes, big-endian | length: 8 bytes, big-endian | payload: JSON, UTF-8

and right after each frame the proc writes a ``D`` marker with the same id on its stdout
(``markers``), behind everything it printed before. The kernel's reader owns both pipes: at
the marker it takes the frame with that id (``pipeline.displays``) and queues the bundle in
the stdout stream's place. So a bundle is ordered with the proc's stdout text like any line,
and a barrier marker written after it is found after it.

Memory stays bounded: a payload is at most ``BUNDLE_CAP`` bytes. The proc replaces a larger
bundle with a one-line note on stdout (``encode``); the kernel skips, without keeping them,
the bytes of any frame that claims more, and shows a note in its place.

The payload: ``{"kind": "display" | "result", "data": {mime: value}, "metadata": {...},
"display_id": str | None, "update": bool}``, binary values (``image/png``) base64-encoded as
Jupyter sends them.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, Literal, TypedDict

MAGIC = b"LFWDdsp1"
HEADER = struct.Struct(">8sQQ")
HEADER_LEN = HEADER.size
BUNDLE_CAP = 8 << 20
"""Largest payload of one bundle, in bytes (its JSON, binary values base64-encoded)."""

Kind = Literal["display", "result"]
KINDS: frozenset[str] = frozenset({"display", "result"})

LEFT_OUT_TYPES = frozenset({"application/vnd.jupyter.widget-view+json"})
"""Mime types dropped from a proc's bundles: a widget view refers to a model that lives in
the proc, where no frontend can reach it."""


class Payload(TypedDict):
    kind: Kind
    data: dict[str, Any]
    metadata: dict[str, Any]
    display_id: str | None
    update: bool


def frame(display_id: int, payload: bytes) -> bytes:
    """The bytes of one frame on the display pipe."""
    return HEADER.pack(MAGIC, display_id, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int] | None:
    """(id, payload length) of a frame header; None if it is not one."""
    magic, display_id, length = HEADER.unpack(header)
    return None if magic != MAGIC else (display_id, length)


def human_size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"


def encode(
    kind: Kind,
    data: dict[str, Any],
    metadata: dict[str, Any] | None = None,
    *,
    display_id: str | None = None,
    update: bool = False,
    cap: int = BUNDLE_CAP,
) -> bytes | str:
    """What the proc sends for a bundle: the frame's payload, or text to print instead.

    Text instead of a frame when the bundle holds nothing but ``text/plain`` (and is not a
    display that can be updated later): that text is shown like a printed line. Also when the
    payload would be over ``cap``: a note saying what was left out, and why.
    """
    data = {k: v for k, v in data.items() if k not in LEFT_OUT_TYPES}
    text = data.get("text/plain", "")
    if not isinstance(text, str):
        text = str(text)
    if set(data) <= {"text/plain"} and display_id is None:
        return text
    body: Payload = {
        "kind": kind,
        "data": {k: _jsonable(v) for k, v in data.items()},
        "metadata": _metadata(metadata, set(data)),
        "display_id": display_id,
        "update": update,
    }
    try:
        payload = json.dumps(body, ensure_ascii=False, default=repr).encode("utf-8", "backslashreplace")
    except ValueError as exc:  # a NaN in application/json, a circular structure
        return f"[{kind} output left out: it cannot be sent as JSON ({exc}); its text: {_short(text)}]"
    if len(payload) > cap:
        types = ", ".join(sorted(data))
        return (
            f"[{kind} output left out: {human_size(len(payload))} ({types}) is over the limit of "
            f"{human_size(cap)} for one output; its text: {_short(text)}]"
        )
    return payload


def decode(payload: bytes) -> Payload:
    """The bundle in a frame's payload; ValueError if it is not one."""
    body = json.loads(payload.decode("utf-8"))
    if not isinstance(body, dict) or body.get("kind") not in KINDS:
        raise ValueError("not a display bundle")
    data, metadata = body.get("data"), body.get("metadata")
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) for k in data):
        raise ValueError("a display bundle without data")
    if not isinstance(metadata, dict):
        raise ValueError("a display bundle without metadata")
    display_id = body.get("display_id")
    return {
        "kind": body["kind"],
        "data": data,
        "metadata": metadata,
        "display_id": display_id if isinstance(display_id, str) else None,
        "update": body.get("update") is True,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _metadata(metadata: dict[str, Any] | None, types: set[str]) -> dict[str, Any]:
    """The bundle's metadata: top-level keys, and per-type entries of the types it still has."""
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k not in LEFT_OUT_TYPES and (k in types or "/" not in k)}


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
