"""In-band markers: how a proc marks points in its own byte streams.

A proc writes a marker on fd 1 and fd 2 to say "everything before this byte belongs before
this event": a barrier served (``B``), the start of a cell's execution (``C``), the end of
a cell's execution (``E``), and, on stdout only, the place of a display bundle (``D``, whose
value is the id of its frame on the proc's display pipe: see ``displays``). The reader finds
markers in the byte stream, wherever the read boundaries fall, and turns them into queue
items behind the data that preceded them.

A marker is a fixed-length APC escape sequence (terminals ignore those), so a leaked marker
is invisible on a terminal::

    ESC _ L F W D <token: 32 hex> : <kind> : <value: 16 hex> ESC \\

The token is a per-proc secret handed over at spawn, never through the environment. Output
that imitates a marker without the token is ordinary text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

PREFIX = b"\x1b_LFWD"
SUFFIX = b"\x1b\\"
TOKEN_HEX = 32
VALUE_HEX = 16
MARKER_LEN = len(PREFIX) + TOKEN_HEX + 1 + 1 + 1 + VALUE_HEX + len(SUFFIX)

MarkerKind = Literal["B", "C", "D", "E"]
KINDS: frozenset[str] = frozenset({"B", "C", "D", "E"})
_HEX_DIGITS = b"0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Marker:
    """A marker found in a stream: its kind and its value (barrier version, cell id or display id)."""

    kind: MarkerKind
    value: int


def new_token() -> bytes:
    """A fresh secret token, as the ASCII hex bytes that markers carry."""
    return secrets.token_hex(TOKEN_HEX // 2).encode("ascii")


def encode(token: bytes, kind: MarkerKind, value: int) -> bytes:
    """The bytes a proc writes to mark ``kind``/``value`` in a stream."""
    if len(token) != TOKEN_HEX:
        raise ValueError(f"token must be {TOKEN_HEX} hex bytes")
    if kind not in KINDS:
        raise ValueError(f"unknown marker kind {kind!r}")
    if not 0 <= value < 16**VALUE_HEX:
        raise ValueError(f"marker value out of range: {value}")
    return b"%s%s:%s:%016x%s" % (PREFIX, token, kind.encode(), value, SUFFIX)


def decode(token: bytes, candidate: bytes) -> Marker | None:
    """The marker in ``candidate`` (exactly MARKER_LEN bytes) if it is a genuine one, else None.

    Genuine means: our prefix and suffix, the right token, a known kind, a hex value.
    """
    if len(candidate) != MARKER_LEN or not candidate.startswith(PREFIX):
        return None
    if not candidate.endswith(SUFFIX):
        return None
    body = candidate[len(PREFIX) : -len(SUFFIX)]
    if not secrets.compare_digest(body[:TOKEN_HEX], token):
        return None
    sep1, kind, sep2, value = (
        body[TOKEN_HEX : TOKEN_HEX + 1],
        body[TOKEN_HEX + 1 : TOKEN_HEX + 2],
        body[TOKEN_HEX + 2 : TOKEN_HEX + 3],
        body[TOKEN_HEX + 3 :],
    )
    if sep1 != b":" or sep2 != b":" or kind.decode("latin-1") not in KINDS:
        return None
    if len(value) != VALUE_HEX or value.strip(_HEX_DIGITS):
        return None  # exactly the digits encode writes: no sign, space, '_' or '0x'
    return Marker(kind.decode("ascii"), int(value, 16))  # type: ignore[arg-type]
