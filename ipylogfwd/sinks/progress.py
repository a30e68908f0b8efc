"""Progress bars in text output: lines a proc redraws with ``\\r``.

A frontend shows a stream's ``\\r`` by dropping what came before it on the line, which would
drop the rank label too, and lines of several ranks' bars would pile up under each other. So
the text sinks take such lines out of the stream: ``Bars.split`` separates a rank's text into
plain text and the states of its bar (what a terminal would show: the text after the last
``\\r``). A sink shows each bar once, labelled, and redraws it in place where its frontend can
(``IOPubTextSink``: a display with an id, updated), else prints its latest state at most once
a second (``TextSink``). A bar ends with its line's ``\\n``; its last state stays shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Piece = tuple[Literal["text", "bar", "end"], str]


def latest(line: str) -> str:
    """What a terminal shows of ``line`` (no ``\\n``): the last non-empty run after a ``\\r``."""
    for run in reversed(line.split("\r")):
        if run:
            return run
    return ""


class Bars:
    """Which (rank, stream) lines are being redrawn now, and their text so far."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int], str] = {}  # key -> "\r" + latest state

    def live(self, key: tuple[int, int]) -> bool:
        return key in self._open

    def split(self, key: tuple[int, int], text: str) -> list[Piece]:
        """``text`` of one rank and stream, in order, as plain text, a bar's new state, and a
        bar's last state (``end``, its line ended)."""
        out: list[Piece] = []
        parts = text.replace("\r\n", "\n").split("\n")
        for i, part in enumerate(parts):
            if i < len(parts) - 1:
                line = self._open.pop(key, "") + part
                if "\r" in line:
                    out.append(("end", latest(line)))
                else:
                    out.append(("text", part + "\n"))
            elif part:
                if key in self._open or "\r" in part:
                    # Only the state matters: keep it short however long the redraws run.
                    state = latest(self._open.get(key, "") + part)
                    self._open[key] = "\r" + state
                    out.append(("bar", state))
                else:
                    out.append(("text", part))
        merged: list[Piece] = []
        for kind, s in out:
            if kind == "text" and merged and merged[-1][0] == "text":
                merged[-1] = ("text", merged[-1][1] + s)
            else:
                merged.append((kind, s))
        return merged


@dataclass
class Bar:
    """One bar as a sink shows it."""

    rank: int
    stream: int
    number: int  # the how-manieth bar of the sink, for its display id
    state: str = ""
    shown: str | None = None  # the state last shown, None: not shown yet
    shown_at: float = 0.0
    ended: bool = False

    @property
    def due(self) -> bool:
        return self.shown != self.state
