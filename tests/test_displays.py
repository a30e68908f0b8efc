"""Display bundles below the kernel: the wire format (``wire/displays.py``), the display pipe
and the reader's join at ``D`` markers (``pipeline/displays.py``, ``pipeline/reader.py``) on
real pipes, the widget tails' bounds (``sinks/tails.py``) and the text sink's order."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipylogfwd.pipeline.displays import DisplayFrames
from ipylogfwd.pipeline.items import Display, Item, Log
from ipylogfwd.pipeline.queues import Mailboxes
from ipylogfwd.pipeline.reader import Reader, make_pipe
from ipylogfwd.sinks.tails import Tail
from ipylogfwd.sinks.text import TextSink
from ipylogfwd.wire import displays, markers
from ipylogfwd.wire.view_messages import DISPLAY

TOKEN = b"0123456789abcdef" * 2
OTHER = b"fedcba9876543210" * 2


def payload(html: str, **extra: object) -> bytes:
    out = displays.encode("display", {"text/html": html, "text/plain": "<HTML>"}, {}, **extra)  # type: ignore[arg-type]
    assert isinstance(out, bytes)
    return out


# --- the wire format -----------------------------------------------------------------------------


def test_encode_sends_rich_bundles_and_prints_the_rest() -> None:
    body = json.loads(payload("<b>x</b>"))
    assert body == {
        "kind": "display",
        "data": {"text/html": "<b>x</b>", "text/plain": "<HTML>"},
        "metadata": {},
        "display_id": None,
        "update": False,
    }
    assert displays.encode("display", {"text/plain": "42"}) == "42"  # text only: a printed line
    png = json.loads(
        displays.encode("result", {"image/png": b"\x89PNG", "text/plain": "fig"}, {"image/png": {"width": 3}})
    )  # type: ignore[arg-type]
    assert png["data"]["image/png"] == "iVBORw==" and png["metadata"] == {"image/png": {"width": 3}}
    # A widget view refers to a model in the proc: left out (here nothing rich is left).
    assert (
        displays.encode("display", {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "w"})
        == "w"
    )
    # Text that can be updated later is sent as a bundle.
    assert isinstance(displays.encode("display", {"text/plain": "0%"}, display_id="abc"), bytes)


def test_encode_replaces_a_bundle_over_the_cap_with_a_note() -> None:
    note = displays.encode("display", {"text/html": "x" * 3000, "text/plain": "the text"}, cap=1000)
    assert note == (
        "[display output left out: 3.1 KiB (text/html, text/plain) is over the limit of 1000 bytes for one output; "
        "its text: the text]"
    )


def test_frames_round_trip_and_decode_refuses_what_is_not_a_bundle() -> None:
    frame = displays.frame(7, b"{}")
    assert displays.parse_header(frame[: displays.HEADER_LEN]) == (7, 2)
    assert displays.parse_header(b"x" * displays.HEADER_LEN) is None
    for bad in (
        b"[]",
        b'{"kind": "x", "data": {"a": 1}, "metadata": {}}',
        b'{"kind": "display", "data": {}, "metadata": {}}',
        b"\xff",
    ):
        with pytest.raises(ValueError):
            displays.decode(bad)


# --- the display pipe ------------------------------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = make_pipe()
    yield r, w
    for fd in (r, w):
        with contextlib.suppress(OSError):  # the test closed it already
            os.close(fd)


def test_take_reads_a_frame_still_in_the_pipe_and_drops_frames_whose_markers_never_came(pipe: tuple[int, int]) -> None:
    r, w = pipe
    frames = DisplayFrames(r)
    os.write(w, displays.frame(1, payload("one")) + displays.frame(2, payload("two")))
    got = frames.take(2, 1)  # not read yet: read at once; frame 1 is dropped
    assert isinstance(got, Display) and got.data["text/html"] == "two" and got.stream == 1
    assert frames.ahead == 0
    os.close(w)
    frames.read()
    assert frames.eof
    missing = frames.take(3, 1)
    assert isinstance(missing, Log) and missing.text == "[display output not shown: its data never arrived]\n"


def test_a_frame_over_the_cap_is_skipped_without_being_kept(pipe: tuple[int, int]) -> None:
    r, w = pipe
    frames = DisplayFrames(r, cap=1000)
    big = b"x" * 50_000
    writer = threading.Thread(target=lambda: os.write(w, displays.frame(1, big) + displays.frame(2, payload("ok"))))
    writer.start()
    held = 0
    while 2 not in frames._ready:
        frames.read()
        held = max(held, frames.ahead)
    writer.join()
    assert held < 2000, f"{held} bytes of an over-long frame were kept"
    note = frames.take(1, 1)
    assert (
        isinstance(note, Log)
        and note.text == "[display output not shown: 48.8 KiB is over the limit of 1000 bytes for one output]\n"
    )
    ok = frames.take(2, 1)
    assert isinstance(ok, Display) and ok.data["text/html"] == "ok"


def test_a_pipe_that_carries_no_frames_is_read_and_dropped(pipe: tuple[int, int]) -> None:
    r, w = pipe
    frames = DisplayFrames(r)
    os.write(w, b"not a frame at all, and more bytes than a header")
    frames.read()
    os.write(w, displays.frame(1, payload("late")))
    frames.read()
    assert frames.ahead == 0
    note = frames.take(1, 1)
    assert isinstance(note, Log) and "carried something other than display frames" in note.text


def test_reading_stops_while_too_many_bundles_wait_for_their_markers(pipe: tuple[int, int]) -> None:
    r, w = pipe
    frames = DisplayFrames(r, ahead_budget=5000)
    for i in range(1, 4):
        os.write(w, displays.frame(i, payload("y" * 2000)))
    frames.read()
    assert frames.held_back
    frames.take(1, 1)
    frames.take(2, 1)
    assert not frames.held_back


# --- the reader: bundles in their place --------------------------------------------------------------


def _drain_until(boxes: Mailboxes, texts: list[str], timeout: float = 10.0) -> list[Item]:
    """Items read until each of ``texts`` was in some line (either stream)."""
    items: list[Item] = []
    deadline = time.monotonic() + timeout
    while not all(any(isinstance(i, Log) and t in i.text for i in items) for t in texts):
        assert time.monotonic() < deadline, f"{texts!r} not all read within {timeout} s: {items[-3:]!r}"
        boxes.wait(0.05)
        for _, got in boxes.drain():
            items += got
    return items


def test_the_reader_puts_each_bundle_at_its_marker_among_the_lines(tmp_path: Path) -> None:
    boxes = Mailboxes()
    reader = Reader(boxes, idle_release=0.05)
    (out_r, out_w), (err_r, err_w), (disp_r, disp_w) = make_pipe(), make_pipe(), make_pipe()
    try:
        reader.add(0, out_r, err_r, TOKEN, tmp_path, disp_r)
        # As a proc writes: frame first, then its marker behind the text before it. A marker
        # with another proc's token, and one on stderr, are not bundles.
        os.write(out_w, b"line 1\npartial ")
        os.write(disp_w, displays.frame(1, payload("<b>1</b>")))
        os.write(out_w, markers.encode(TOKEN, "D", 1) + b"line 2\n")
        os.write(out_w, markers.encode(OTHER, "D", 2) + b"\n")
        os.write(err_w, markers.encode(TOKEN, "D", 3) + b"err\n")
        os.write(disp_w, displays.frame(4, payload("<b>4</b>")))
        os.write(out_w, markers.encode(TOKEN, "D", 4) + b"done\n")
        items = _drain_until(boxes, ["done", "err"])
        stdout = "".join(
            f"[{i.data['text/html']}]" if isinstance(i, Display) else i.text
            for i in items
            if isinstance(i, Display | Log) and i.stream == 1
        )
        other = markers.encode(OTHER, "D", 2).decode()
        assert stdout == f"line 1\npartial [<b>1</b>]line 2\n{other}\n[<b>4</b>]done\n"
        assert [i.text for i in items if isinstance(i, Log) and i.stream == 2] == ["err\n"]
        # The log file has the text, not the bundles.
        reader.stop()
        log = (tmp_path / "rank0.stdout.log").read_bytes()
        assert b"<b>1</b>" not in log and b"line 2\n" in log
    finally:
        for fd in (out_w, err_w, disp_w):
            os.close(fd)
        reader.stop()


# --- the widget tails ----------------------------------------------------------------------------


def piece(name: str, display_id: str | None = None, update: bool = False) -> dict[str, object]:
    return {"kind": "display", "data": {"text/html": name}, "metadata": {}, "display_id": display_id, "update": update}


def names(tail: Tail) -> list[str]:
    return [c[1]["data"]["text/html"] if c[0] == DISPLAY else c[1] for c in tail.chunks]


def test_a_tail_keeps_bundles_within_their_budget_and_the_newest_always() -> None:
    tail = Tail(limit=100, max_display_bytes=250)
    tail.add_display(piece("a"), 100)
    tail.add(1, "x\n", 1)
    tail.add_display(piece("b"), 100)
    tail.add(1, "y\n", 1)
    assert names(tail) == ["a", "x\n", "b", "y\n"]
    tail.add_display(piece("c"), 100)
    assert names(tail) == ["x\n", "b", "y\n", "c"] and tail.dropped == 1 and tail.display_bytes == 200
    tail.add_display(piece("huge"), 1000)
    assert names(tail) == ["huge"] and tail.display_bytes == 1000 and tail.lines == 1
    # Lines count bundles as one line each.
    small = Tail(limit=2)
    for name in "abc":
        small.add_display(piece(name), 10)
    small.trim()
    assert names(small) == ["b", "c"] and small.dropped == 1


def test_a_tail_applies_an_update_in_place_and_drops_one_of_a_bundle_gone_from_a_backlog() -> None:
    tail = Tail(limit=100)
    tail.add_display(piece("v1", "id"), 10)
    tail.add(1, "after\n", 1)
    tail.add_display(piece("v2", "id", update=True), 12)
    assert names(tail) == ["v2", "after\n"] and tail.chunks[0][1]["update"] is False and tail.display_bytes == 12
    tail.add_display(piece("?", "other", update=True), 5, keep_orphan_update=False)
    assert names(tail) == ["v2", "after\n"]
    tail.add_display(piece("?", "other", update=True), 5)  # pending: the view may have it
    assert names(tail) == ["v2", "after\n", "?"]


# --- the text sink ---------------------------------------------------------------------------------


class Recording(TextSink):
    def __init__(self) -> None:
        super().__init__()
        self.out: list[object] = []

    def _emit(self, name: str, text: str) -> None:
        self.out.append((name, text))

    def _emit_display(self, rank: int, bundle: Display) -> None:
        self.out.append(("display", rank, bundle.data["text/html"]))


def bundle(html: str, kind: str = "display", update: bool = False) -> Display:
    return Display(1, kind, {"text/html": html}, {}, 10, "id" if update else None, update)


def test_the_text_sink_shows_a_bundle_after_its_rank_label_in_its_place() -> None:
    sink = Recording()
    sink.write(0, 1, "a\npart")
    sink.display(0, bundle("<b>0</b>"))
    sink.write(1, 1, "b\n")
    sink.display(1, bundle("<t/>", kind="result"))
    sink.display(1, bundle("<t2/>", update=True))
    sink.write(0, 1, "c\n")
    sink.publish()
    assert sink.out == [
        ("stdout", "[0] a\n[0] part\n[0] display:\n"),
        ("display", 0, "<b>0</b>"),
        ("stdout", "[1] b\n[1] Out:\n"),
        ("display", 1, "<t/>"),
        ("display", 1, "<t2/>"),  # an update: no label, it replaces an earlier output
        ("stdout", "[0] c\n"),
    ]


# --- through real procs --------------------------------------------------------------------------


class BundleCounter(TextSink):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[object] = []

    def _emit(self, name: str, text: str) -> None:
        self.events.append(text)

    def _emit_display(self, rank: int, bundle: Display) -> None:
        self.events.append((rank, bundle.data["text/html"][:20]))


def test_an_interrupt_amid_large_displays_leaves_the_display_pipe_whole() -> None:
    """SIGINT while procs write 4 MB frames: each frame and its marker are written whole (the
    interrupt is raised after them), so every later bundle still arrives, in place."""
    from ipylogfwd import ProcGroup, ProcsError

    with ProcGroup(2, sink_factory=lambda ranks, pids, logs: BundleCounter()) as group:
        sink = BundleCounter()
        job = group.submit(
            "from IPython.display import display, HTML\n"
            "for i in range(10**6):\n    display(HTML(f'<i>{i}</i>' + 'x' * 4_000_000))\n",
            sink=sink,
        )
        deadline = time.monotonic() + 60
        while sum(isinstance(e, tuple) for e in list(sink.events)) < 20:
            assert time.monotonic() < deadline, "20 large bundles did not arrive within 60 s"
            time.sleep(0.01)
        group.interrupt()
        with pytest.raises(ProcsError, match="KeyboardInterrupt"):
            job.wait(30)
        after = BundleCounter()
        group.submit(
            "from IPython.display import display, HTML\nprint('a')\ndisplay(HTML('<b>ok</b>'))\nprint('b')", sink=after
        ).wait(30)
        shown: list[tuple[int, str]] = []
        for e in after.events:
            if isinstance(e, tuple):
                shown.append(e)
            else:
                shown += [(int(line[1 : line.index("]")]), line[line.index("]") + 2 :]) for line in str(e).splitlines()]
        for rank in (0, 1):
            assert [x for r, x in shown if r == rank] == ["a", "display:", "<b>ok</b>", "b"], after.events
