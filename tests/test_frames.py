"""The kernel<->agent frame codec: items round-trip exactly, and anything malformed is a
FrameError (never a crash, never an item made up)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipylogfwd.pipeline.items import Barrier, CellStart, Display, Eof, Item, Log
from ipylogfwd.pipeline.queues import Mailboxes
from ipylogfwd.wire import frames
from ipylogfwd.wire.frames import FrameError

streams = st.sampled_from([1, 2])
items = st.one_of(
    st.builds(lambda s, t: Log(s, t), streams, st.text()),
    st.builds(
        lambda s, k, v, w: Barrier(s, (k, v), w),
        streams,
        st.sampled_from(["flush", "cell", "stop"]),
        st.integers(0, 2**64 - 1),
        st.booleans(),
    ),
    st.builds(CellStart, streams, st.integers(0, 2**64 - 1)),
    st.builds(
        Display,
        streams,
        st.sampled_from(["display", "result"]),
        st.dictionaries(st.sampled_from(["text/html", "image/png", "text/plain"]), st.text(), min_size=1),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=2),
        st.integers(0, 2**32 - 1),
        st.none() | st.text(min_size=1, max_size=8),
        st.booleans(),
    ),
    st.builds(Eof, streams),
)


@given(st.lists(items, max_size=50))
def test_items_round_trip(sample: list[Item]) -> None:
    assert frames.decode_items(frames.encode_items(sample)) == sample


@given(st.lists(items, min_size=1, max_size=10), st.data())
def test_truncated_or_corrupted_items_raise_frame_error(sample: list[Item], data: st.DataObject) -> None:
    raw = frames.encode_items(sample)
    cut = data.draw(st.integers(0, len(raw) - 1))
    try:
        decoded = frames.decode_items(raw[:cut])
    except FrameError:
        return
    # A cut that falls between items is a shorter, well-formed sequence.
    assert decoded == sample[: len(decoded)]


@given(st.binary(max_size=200))
def test_garbage_is_a_frame_error_or_valid_items(garbage: bytes) -> None:
    try:
        decoded = frames.decode_items(garbage)
    except FrameError:
        return
    # Bytes that happen to decode are real items: they encode back to the same bytes.
    assert frames.encode_items(decoded) == garbage


def test_headers_are_checked() -> None:
    msg = frames.encode({"t": "ping"})
    assert frames.decode(msg, frames.KERNEL_TYPES)[0]["t"] == "ping"
    with pytest.raises(FrameError, match="unknown message type"):
        frames.decode(msg, frames.AGENT_TYPES)
    with pytest.raises(FrameError, match="wire version"):
        frames.decode([b'{"v": 99, "t": "ping"}', b""], frames.KERNEL_TYPES)
    with pytest.raises(FrameError, match="not JSON"):
        frames.decode([b"\xff\x00", b""], frames.KERNEL_TYPES)
    with pytest.raises(FrameError, match="2 frames"):
        frames.decode([b"{}"], frames.KERNEL_TYPES)
    with pytest.raises(FrameError, match="does not unpickle"):
        frames.ctl_message(b"not a pickle")


@given(st.lists(st.integers(1, 1000), max_size=40), st.integers(1, 3000))
def test_mailbox_take_respects_the_budget_and_counts_what_it_took(sizes: list[int], budget: int) -> None:
    boxes = Mailboxes()
    boxes.put(0, [Log(1, "x" * n) for n in sizes])
    taken = boxes.take(0, budget)
    total = sum(len(i.text) for i in taken if isinstance(i, Log))
    assert total <= budget or len(taken) == 1, "over budget by more than the first item"
    assert [len(i.text) for i in taken if isinstance(i, Log)] == sizes[: len(taken)]
    assert boxes.drained(0) == total
    assert boxes.queued(0) == sum(sizes) - total
