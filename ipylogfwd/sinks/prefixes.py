"""The lines of text output: each shown with the rank of the proc that printed it (and, with
timestamps on, when the kernel read it), and never shared by two ranks."""

from __future__ import annotations

import time

from ..pipeline.items import STDERR, STDOUT

TIMESTAMPS = ("absolute", "relative")


def prefix_lines(text: str, prefix: str) -> tuple[str, int]:
    """``text`` with ``prefix`` (not empty) after each newline but one that ends it, and how
    many newlines ``text`` holds."""
    ends = text.endswith("\n")
    if text.isascii() and prefix.isascii():
        # bytes.replace finds each newline with memchr where str.replace runs a general
        # search per line, and the length it adds counts the lines: in a kernel under a
        # flood, half the time of str.replace and a count of its own.
        tag = prefix.encode()
        done = text.encode().replace(b"\n", b"\n" + tag)  # (the encoded copy is freed at once)
        lines = (len(done) - len(text)) // len(tag)
        return str(memoryview(done)[: len(done) - len(tag)] if ends else done, "ascii"), lines
    out = text.replace("\n", "\n" + prefix)
    lines = (len(out) - len(text)) // len(prefix)
    return out[: len(out) - len(prefix)] if ends else out, lines


def stamp(at: float, mode: str, started: float) -> str:
    """``at`` as a line's prefix shows it: "14:02:07.123" (absolute) or "+1.250s" (relative)."""
    if mode == "relative":
        return f"+{at - started:.3f}s"
    ms = round(at * 1000)  # at is to the millisecond: not .12699999
    return time.strftime("%H:%M:%S", time.localtime(ms // 1000)) + f".{ms % 1000:03d}"


class Lines:
    """Where each stream of a text output stands: which rank's line is unfinished. Formats
    text to continue it."""

    def __init__(self, timestamps: str | None = None) -> None:
        self.stamps = timestamps if timestamps in TIMESTAMPS else None
        self.started = time.time()
        self.open: dict[int, int | None] = {STDOUT: None, STDERR: None}  # per stream: whose line

    def prefix(self, rank: int, at: float | None) -> str:
        if self.stamps is None or at is None:
            return f"[{rank}] "
        return f"[{rank} {stamp(at, self.stamps, self.started)}] "

    def end(self, stream: int) -> str:
        """What ends the unfinished line on ``stream`` ("\\n", or "" if there is none)."""
        if self.open[stream] is None:
            return ""
        self.open[stream] = None
        return "\n"

    def text(self, rank: int, stream: int, text: str, at: float | None) -> tuple[str, str, int]:
        """``rank``'s ``text`` (read at ``at``) as shown next on ``stream``: what comes before
        it (the end of another rank's line, the first prefix), itself with every further line
        prefixed, and how many newlines it holds."""
        prefix = self.prefix(rank, at)
        head = "" if self.open[stream] == rank else self.end(stream) + prefix
        self.open[stream] = None if text.endswith("\n") else rank
        body, lines = prefix_lines(text, prefix)
        return head, body, lines

    def format(self, rank: int, stream: int, text: str, at: float | None = None) -> str:
        """``text`` as shown next on ``stream``, in one piece."""
        head, body, _ = self.text(rank, stream, text, at)
        return head + body
