"""The items that travel through the pipeline: what the reader makes of a proc's bytes.

A proc's two streams become, in read order, ``Log`` text and the in-band events found
between it: a ``Barrier`` passed, a ``CellStart``, a ``Display`` bundle in its place (joined
from the proc's display pipe, see ``wire.displays``), the stream's ``Eof``. Every later stage
(queues, dispatcher, barrier tracker) works on these, never on bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

STDOUT = 1
STDERR = 2
STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}

BarrierKey = tuple[str, int]
"""("flush", version) for %logflush barriers, ("cell", id) for the end of a cell."""


@dataclass(slots=True)
class Log:
    """Text from one stream: complete lines, or a partial line released at a flush point.
    ``at`` is when the kernel read it (``time.time()``: by the reader for this machine's
    procs, when its frame arrived for a host's), the timestamp its lines show."""

    stream: int
    text: str
    at: float = field(default_factory=time.time, compare=False)


@dataclass(slots=True)
class Barrier:
    """Everything before this on ``stream`` precedes the barrier ``key``.

    ``weak`` barriers are placed by the reader itself (all bytes read so far) when the proc
    did not serve the request in time.
    """

    stream: int
    key: BarrierKey
    weak: bool = False


@dataclass(slots=True)
class CellStart:
    """The proc started executing ``cell``: output after this on ``stream`` belongs to it."""

    stream: int
    cell: int


@dataclass(slots=True)
class Display:
    """A mime bundle the proc displayed here in ``stream`` (``wire.displays.Payload``):
    ``display()`` output, or the rich form of a cell's last expression (``kind`` "result").
    ``size`` is its payload's size in bytes."""

    stream: int
    kind: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    size: int
    display_id: str | None = None
    update: bool = False
    at: float = field(default_factory=time.time, compare=False)

    @property
    def text(self) -> str:
        """Its ``text/plain`` form, for places that show only text."""
        text = self.data.get("text/plain", "")
        return text if isinstance(text, str) else str(text)


@dataclass(slots=True)
class Eof:
    """The stream's pipe closed: nothing more will come."""

    stream: int


Item = Log | Barrier | CellStart | Display | Eof


def item_size(item: Item) -> int:
    """What an item counts against its queue's budget (characters of text, bytes of a
    bundle, else 1)."""
    if isinstance(item, Log):
        return len(item.text)
    return item.size if isinstance(item, Display) else 1
