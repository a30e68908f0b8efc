"""The reader thread on real pipes: when a partial line is shown, and when it must wait."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import wait_until

from ipylogfwd.pipeline.items import Log
from ipylogfwd.pipeline.queues import DEFAULT_BUDGET, Mailboxes
from ipylogfwd.pipeline.reader import Reader, make_pipe

TOKEN = b"0123456789abcdef" * 2


def _texts_until(boxes: Mailboxes, needle: str, timeout: float) -> list[str]:
    """Drain rank 0's stdout texts until one contains ``needle``."""
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(needle in t for t in texts):
        assert time.monotonic() < deadline, f"{needle!r} not read within {timeout} s: {texts[-3:]!r}"
        boxes.wait(0.05)
        for _, items in boxes.drain():
            texts += [i.text for i in items if isinstance(i, Log) and i.stream == 1]
    return texts


@contextlib.contextmanager
def _reading(tmp_path: Path, budget: int = DEFAULT_BUDGET) -> Iterator[tuple[Mailboxes, int]]:
    """A reader (partial lines released after 0.05 s) on rank 0's fresh pipes: yields the
    mailboxes it fills and the write end of the proc's stdout; closes and stops it all after."""
    boxes = Mailboxes(budget)
    reader = Reader(boxes, idle_release=0.05)
    (out_r, out_w), (err_r, err_w) = make_pipe(), make_pipe()
    try:
        reader.add(0, out_r, err_r, TOKEN, tmp_path)
        yield boxes, out_w
    finally:
        os.close(out_w), os.close(err_w)
        reader.stop()


def test_a_partial_line_shows_after_a_while(tmp_path: Path) -> None:
    with _reading(tmp_path) as (boxes, out_w):
        os.write(out_w, b"loading...")
        assert _texts_until(boxes, "loading", 5) == ["loading..."]


def test_a_partial_line_waits_while_the_proc_is_paused(tmp_path: Path) -> None:
    # A queue over its budget pauses the proc: the rest of the line may be in its pipe.
    with _reading(tmp_path, budget=1000) as (boxes, out_w):
        os.write(out_w, b"x" * 2000 + b"\nhead")
        wait_until(lambda: boxes.over_budget(0), 5, "the reader read the first line")
        os.write(out_w, b"tail\n")
        time.sleep(0.3)  # many release periods pass while the proc stays paused
        texts = _texts_until(boxes, "tail", 5)
        assert "".join(texts) == "x" * 2000 + "\nheadtail\n"
        assert "head" not in texts, "the partial line was released while the proc was paused"


def test_a_stream_of_lines_cut_by_reads_is_never_shown_cut(tmp_path: Path) -> None:
    # Every write ends mid-line and the next completes it: a proc flooding on a busy machine.
    # The held line is a new one each time, so it must never be released as a line of its own,
    # however long the run of such writes lasts.
    with _reading(tmp_path) as (boxes, out_w):
        os.write(out_w, b"line 0 head")
        for i in range(1, 16):  # 0.48 s of writes 30 ms apart: many release periods
            time.sleep(0.03)
            os.write(out_w, b"tail\nline %d head" % i)
        os.write(out_w, b"tail\n")
        texts = _texts_until(boxes, "line 15 headtail", 5)
        assert "".join(texts) == "".join(f"line {i} headtail\n" for i in range(16))
        assert all(t.endswith("\n") for t in texts), f"a line was shown cut: {texts!r}"


def test_a_line_cut_by_a_full_buffer_waits_longer_than_a_prompt(tmp_path: Path) -> None:
    # A block of 8 KiB that ends mid-line comes from a stdio buffer that filled; its rest comes
    # with the proc's next write, which a busy machine can delay past ``idle_release``.
    with _reading(tmp_path) as (boxes, out_w):
        os.write(out_w, b"x" * 8190 + b"\nhe")
        time.sleep(0.4)  # eight release periods of a prompt, less than BLOCK_HOLD
        os.write(out_w, b"ad\n")
        texts = _texts_until(boxes, "head", 5)
        assert texts == ["x" * 8190 + "\n", "head\n"]
