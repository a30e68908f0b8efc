"""Unit tests for framing: ``LineFramer`` and ``StreamFramer`` (bytes -> queue items)."""

from __future__ import annotations

import codecs
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ipylogfwd.pipeline.framing import DEFAULT_MAX_LINE, LineFramer, StreamFramer, split_mark
from ipylogfwd.pipeline.items import STDERR, STDOUT, Barrier, CellStart, Eof, Item, Log
from ipylogfwd.wire import markers
from ipylogfwd.wire.markers import MARKER_LEN, PREFIX

TOKEN = b"0123456789abcdef" * 2
OTHER = b"fedcba9876543210" * 2
MAX_VALUE = 16**markers.VALUE_HEX - 1

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies

PIECES = [
    b"\n",
    b"\n",
    b"\r",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\x80",
    b"\xfe",
    b"a",
    b"xyz",
    b" ",
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    "中文".encode(),
    b"\xe2\x82",  # truncated sequences
    b"\xf0\x9f\x98",
    b"\xc3",
    b"\xed\xa0\x80",  # surrogate
    b"\xc0\xaf",  # overlong
    b"\xf4\x90\x80\x80",  # > U+10FFFF
    b"\x1b[0m",
    b"\x1b",
    b"\t",
]

byte_streams = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join),
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), max_size=40).map(b"".join),
)


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary read boundaries (sometimes one byte per read)."""
    n = len(data)
    if n and draw(st.integers(0, 4)) == 0:
        return [data[i : i + 1] for i in range(n)]
    points = sorted(draw(st.lists(st.integers(0, n), max_size=20)))
    bounds = [0, *points, n]
    return [data[a:b] for a, b in pairwise(bounds)]


def utf8(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def incomplete_tail(b: bytes) -> bool:
    """Whether ``b`` ends inside a (so far valid) multi-byte UTF-8 sequence."""
    d = codecs.getincrementaldecoder("utf-8")("replace")
    d.decode(b)
    return d.getstate()[0] != b""


def text_of(items: list[Item]) -> str:
    return "".join(i.text for i in items if isinstance(i, Log))


def model(data: bytes, max_line: int) -> str:
    """What a stream's concatenated text must be: each line cut into max_line-byte pieces,
    each piece but the last followed by the split mark; bytes decoded in order."""
    mark = split_mark(max_line)
    d = codecs.getincrementaldecoder("utf-8")("replace")
    out = []
    lines = data.split(b"\n")
    for idx, line in enumerate(lines):
        while len(line) > max_line:
            out.append(d.decode(line[:max_line]) + mark)
            line = line[max_line:]
        out.append(d.decode(line + (b"\n" if idx < len(lines) - 1 else b"")))
    out.append(d.decode(b"", final=True))
    return "".join(out)


def expected_marks(data: bytes, max_line: int) -> int:
    return sum((len(line) - 1) // max_line for line in data.split(b"\n") if line)


def check_logs(items: list[Item], stream: int) -> None:
    for it in items:
        assert it.stream == stream
        if isinstance(it, Log):
            assert it.text != ""


# ----------------------------------------------------------------------------- split_mark


def test_split_mark_shape() -> None:
    m = split_mark(100)
    assert m.endswith("\n") and m.count("\n") == 1
    assert "100" in m
    assert split_mark(100) != split_mark(101)


# ----------------------------------------------------------------------------- LineFramer


@pytest.mark.parametrize("max_line", [-1, 0, 1, 2, 3])
def test_line_framer_rejects_tiny_max_line(max_line: int) -> None:
    with pytest.raises(ValueError):
        LineFramer(max_line)


def test_line_framer_defaults() -> None:
    lf = LineFramer()
    assert lf.max_line == DEFAULT_MAX_LINE
    assert LineFramer(4).max_line == 4


def test_line_framer_complete_and_partial_lines() -> None:
    lf = LineFramer()
    assert lf.feed(b"one\ntwo\nthr") == "one\ntwo\n"
    assert lf.has_partial
    assert lf.feed(b"ee") == ""
    assert lf.feed(b"\nfour") == "three\n"
    assert lf.finish() == "four"
    assert not lf.has_partial
    assert lf.finish() == ""


def test_line_framer_keeps_control_characters() -> None:
    lf = LineFramer()
    assert lf.feed(b"a\rb\r\n\x00\x1b[1m\t\x07\n") == "a\rb\r\n\x00\x1b[1m\t\x07\n"
    assert lf.feed(b"50%\r") == ""
    assert lf.finish() == "50%\r"


@pytest.mark.parametrize("ch", ["é", "€", "😀", "中"])
def test_line_framer_multibyte_split_across_reads_decodes_whole(ch: str) -> None:
    b = ch.encode()
    for k in range(1, len(b)):
        lf = LineFramer()
        assert lf.feed(b"<" + b[:k]) == ""
        assert lf.feed(b[k:] + b">\n") == f"<{ch}>\n"
        # Also when the read boundary is right before the newline and the char ends a line.
        lf = LineFramer()
        assert lf.feed(b"x\n" + b[:k]) == "x\n"
        assert lf.feed(b[k:]) == ""
        assert lf.feed(b"\n") == f"{ch}\n"
        assert lf.finish() == ""


def test_line_framer_invalid_utf8_replaced() -> None:
    lf = LineFramer()
    data = b"\xff\xfe ok \xe2\x82\n\xc0\xaf\xed\xa0\x80\n\xf0\x9f"
    got = lf.feed(data) + lf.finish()
    assert got == utf8(data)
    assert got.startswith("\ufffd\ufffd ok \ufffd\n")
    assert got.endswith("\ufffd")


def test_line_framer_take_partial_once() -> None:
    lf = LineFramer()
    assert lf.take_partial() == ""
    assert lf.feed(b"done\nhalf") == "done\n"
    assert lf.take_partial() == "half"
    assert not lf.has_partial
    assert lf.take_partial() == ""
    assert lf.feed(b" more\n") == " more\n"  # not repeated
    assert lf.feed(b"\r") == ""
    assert lf.take_partial() == "\r"
    assert lf.finish() == ""


def test_line_framer_take_partial_with_split_char() -> None:
    lf = LineFramer()
    e = "€".encode()
    assert lf.feed(b"ab" + e[:2]) == ""
    assert lf.take_partial() == "ab"
    assert lf.feed(e[2:] + b"\n") == "€\n"
    assert lf.feed(e[:1]) == ""
    assert lf.finish() == "\ufffd"


def test_line_framer_overlong_exact() -> None:
    mark = split_mark(4)
    lf = LineFramer(4)
    assert lf.feed(b"abcdefghij\nxy\n") == "abcd" + mark + "efgh" + mark + "ij\nxy\n"
    assert lf.feed(b"abcd\n") == "abcd\n"  # exactly max_line: not split
    assert lf.feed(b"abcde\n") == "abcd" + mark + "e\n"
    assert lf.feed(b"abcdefgh\n") == "abcd" + mark + "efgh\n"
    assert lf.finish() == ""


def test_line_framer_overlong_partial_is_bounded() -> None:
    mark = split_mark(4)
    lf = LineFramer(4)
    assert lf.feed(b"abcd") == ""
    assert len(lf._pending) == 4
    assert lf.feed(b"e") == "abcd" + mark
    assert bytes(lf._pending) == b"e"
    assert lf.feed(b"fghijklmn") == "efgh" + mark + "ijkl" + mark
    assert bytes(lf._pending) == b"mn"
    assert lf.feed(b"\nab") == "mn\n"
    assert lf.finish() == "ab"


def test_line_framer_overlong_split_char_survives_the_cut() -> None:
    mark = split_mark(4)
    lf = LineFramer(4)
    # "€" is 3 bytes: the cut after 4 bytes falls inside the second one.
    # Pieces: [€, 1st byte of €] [2 bytes of €, 2 bytes of €] [last byte of €, \n]
    assert lf.feed("€€€".encode() + b"\n") == "€" + mark + "€" + mark + "€\n"


@FAST
@given(st.data())
def test_line_framer_read_boundaries_do_not_matter(data: st.DataObject) -> None:
    stream = data.draw(byte_streams)
    max_line = data.draw(st.sampled_from([4, 5, 7, 16, DEFAULT_MAX_LINE]))
    chunks = data.draw(cuts(stream))
    lf = LineFramer(max_line)
    out = []
    for c in chunks:
        t = lf.feed(c)
        assert t == "" or t.endswith("\n")
        assert len(lf._pending) <= max_line
        out.append(t)
    out.append(lf.finish())
    assert not lf.has_partial and len(lf._pending) == 0
    text = "".join(out)
    assert text == model(stream, max_line)
    mark = split_mark(max_line)
    assert text.count(mark) == expected_marks(stream, max_line)
    assert "".join(text.split(mark)) == utf8(stream)


@FAST
@given(st.data())
def test_line_framer_ascii_pieces_exact(data: st.DataObject) -> None:
    stream = data.draw(st.lists(st.sampled_from([b"a", b"b", b"\n", b"\r", b"\x00"]), max_size=120).map(b"".join))
    max_line = data.draw(st.integers(4, 12))
    lf = LineFramer(max_line)
    text = "".join(lf.feed(c) for c in data.draw(cuts(stream))) + lf.finish()
    mark = split_mark(max_line)
    # Every piece before a mark is exactly max_line characters of one line.
    pieces = text.split(mark)
    for p in pieces[:-1]:
        assert len(p.rsplit("\n", 1)[-1]) == max_line
    for line in text.replace(mark, "\x01").split("\n"):
        for seg in line.split("\x01"):
            assert len(seg) <= max_line


@FAST
@given(st.data())
def test_line_framer_take_partial_property(data: st.DataObject) -> None:
    stream = data.draw(byte_streams)
    chunks = data.draw(cuts(stream))
    takes = data.draw(st.lists(st.booleans(), min_size=len(chunks), max_size=len(chunks)))
    lf = LineFramer()
    out = []
    for c, take in zip(chunks, takes, strict=True):
        out.append(lf.feed(c))
        if take:
            out.append(lf.take_partial())
            assert not lf.has_partial
            assert lf.take_partial() == ""
    out.append(lf.finish())
    assert "".join(out) == utf8(stream)


# ----------------------------------------------------------------------------- StreamFramer


def run(
    chunks: list[bytes], stream: int = STDOUT, max_line: int = DEFAULT_MAX_LINE, token: bytes = TOKEN
) -> tuple[list[Item], bytes]:
    logged: list[bytes] = []
    f = StreamFramer(stream, token, max_line, log=logged.append)
    items: list[Item] = []
    for c in chunks:
        items += f.feed(c)
    items += f.finish()
    return items, b"".join(logged)


def test_stream_framer_plain_lines() -> None:
    items, logged = run([b"a\nb", b"c\n", b"tail"], stream=STDERR)
    assert items == [
        Log(STDERR, "a\n"),
        Log(STDERR, "bc\n"),
        Log(STDERR, "tail"),
        Eof(STDERR),
    ]
    assert logged == b"a\nbc\ntail"


def test_stream_framer_empty_stream() -> None:
    items, logged = run([])
    assert items == [Eof(STDOUT)]
    assert logged == b""
    items, logged = run([b"", b""])
    assert items == [Eof(STDOUT)]


def test_stream_framer_without_log_callback() -> None:
    f = StreamFramer(STDOUT, TOKEN)
    m = markers.encode(TOKEN, "B", 1)
    assert f.feed(b"x\ny" + m) == [Log(STDOUT, "x\n"), Log(STDOUT, "y"), Barrier(STDOUT, ("flush", 1))]
    assert f.finish() == [Eof(STDOUT)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_stream_framer_plain_property(data: st.DataObject) -> None:
    stream = data.draw(byte_streams)
    assume(PREFIX not in stream)
    longest = max(len(line) for line in stream.split(b"\n"))
    # A max_line no line exceeds, sometimes exactly the longest line.
    max_line = data.draw(st.sampled_from([DEFAULT_MAX_LINE, max(4, longest), max(4, longest) + 1]))
    chunks = data.draw(cuts(stream))
    sid = data.draw(st.sampled_from([STDOUT, STDERR]))
    logged: list[bytes] = []
    f = StreamFramer(sid, TOKEN, max_line, log=logged.append)
    items: list[Item] = []
    for c in chunks:
        items += f.feed(c)
        assert len(f._lines._pending) <= max_line
        assert len(f._scanner._held) < MARKER_LEN
    assert not any(isinstance(i, Eof) for i in items)
    items += f.finish()

    check_logs(items, sid)
    assert items[-1] == Eof(sid)
    assert all(isinstance(i, Log) for i in items[:-1])
    logs = items[:-1]
    assert text_of(logs) == utf8(stream)
    assert b"".join(logged) == stream
    for it in logs[:-1]:
        assert it.text.endswith("\n")
    # Complete lines are not held back: everything up to the last newline came out of feed.
    if b"\n" in stream:
        fed_text = text_of([i for i in logs if i.text.endswith("\n")])
        assert fed_text == utf8(stream[: stream.rfind(b"\n") + 1])


@FAST
@given(st.data())
def test_stream_framer_overlong_property(data: st.DataObject) -> None:
    stream = data.draw(byte_streams)
    assume(PREFIX not in stream)
    max_line = data.draw(st.integers(4, 16))
    chunks = data.draw(cuts(stream))
    logged: list[bytes] = []
    f = StreamFramer(STDOUT, TOKEN, max_line, log=logged.append)
    items: list[Item] = []
    for c in chunks:
        items += f.feed(c)
        assert len(f._lines._pending) <= max_line
    items += f.finish()
    check_logs(items, STDOUT)
    assert items[-1] == Eof(STDOUT)
    text = text_of(items)
    mark = split_mark(max_line)
    assert text == model(stream, max_line)
    assert text.count(mark) == expected_marks(stream, max_line)
    assert "".join(text.split(mark)) == utf8(stream)
    assert b"".join(logged) == stream
    for it in items[:-2]:
        assert isinstance(it, Log) and it.text.endswith("\n")


def test_stream_framer_overlong_exact() -> None:
    mark = split_mark(5)
    items, logged = run([b"0123456789abc\nok\n"], max_line=5)
    assert text_of(items) == "01234" + mark + "56789" + mark + "abc\nok\n"
    assert logged == b"0123456789abc\nok\n"
    # Byte by byte, the same pieces.
    data = b"0123456789abc\nok\n"
    items2, _ = run([data[i : i + 1] for i in range(len(data))], max_line=5)
    assert text_of(items2) == text_of(items)


# Markers in the stream.


@pytest.mark.parametrize("sid", [STDOUT, STDERR])
@pytest.mark.parametrize(
    ("kind", "value", "item"),
    [
        ("B", 0, lambda s: Barrier(s, ("flush", 0))),
        ("B", 42, lambda s: Barrier(s, ("flush", 42))),
        ("E", 7, lambda s: Barrier(s, ("cell", 7))),
        ("E", MAX_VALUE, lambda s: Barrier(s, ("cell", MAX_VALUE))),
        ("C", 3, lambda s: CellStart(s, 3)),
        ("C", MAX_VALUE, lambda s: CellStart(s, MAX_VALUE)),
    ],
)
def test_marker_kinds_to_items(sid: int, kind: str, value: int, item) -> None:
    m = markers.encode(TOKEN, kind, value)  # type: ignore[arg-type]
    items, logged = run([b"line\n" + m + b"next\n"], stream=sid)
    assert items == [Log(sid, "line\n"), item(sid), Log(sid, "next\n"), Eof(sid)]
    assert logged == b"line\nnext\n"
    for it in items:
        if isinstance(it, Barrier):
            assert it.weak is False


def test_marker_mid_line_releases_partial_line_first() -> None:
    m = markers.encode(TOKEN, "B", 1)
    items, logged = run([b"x\nabc" + m + b"def\n"])
    assert items == [
        Log(STDOUT, "x\n"),
        Log(STDOUT, "abc"),
        Barrier(STDOUT, ("flush", 1)),
        Log(STDOUT, "def\n"),
        Eof(STDOUT),
    ]
    assert logged == b"x\nabcdef\n"


def test_marker_right_after_newline_releases_nothing_extra() -> None:
    m = markers.encode(TOKEN, "E", 2)
    items, _ = run([b"abc\n" + m])
    assert items == [Log(STDOUT, "abc\n"), Barrier(STDOUT, ("cell", 2)), Eof(STDOUT)]


def test_adjacent_markers_and_leading_marker() -> None:
    e, c = markers.encode(TOKEN, "E", 1), markers.encode(TOKEN, "C", 2)
    items, logged = run([e + c + b"out\n" + e + e])
    assert items == [
        Barrier(STDOUT, ("cell", 1)),
        CellStart(STDOUT, 2),
        Log(STDOUT, "out\n"),
        Barrier(STDOUT, ("cell", 1)),
        Barrier(STDOUT, ("cell", 1)),
        Eof(STDOUT),
    ]
    assert logged == b"out\n"


@pytest.mark.parametrize("k", range(1, MARKER_LEN))
def test_marker_split_across_two_reads(k: int) -> None:
    m = markers.encode(TOKEN, "B", 0x99)
    f = StreamFramer(STDOUT, TOKEN)
    first = f.feed(b"done\npart" + m[:k])
    assert first == [Log(STDOUT, "done\n")]
    second = f.feed(m[k:] + b"ial\n")
    assert second == [Log(STDOUT, "part"), Barrier(STDOUT, ("flush", 0x99)), Log(STDOUT, "ial\n")]
    assert f.finish() == [Eof(STDOUT)]


def test_marker_byte_by_byte() -> None:
    m = markers.encode(TOKEN, "C", 5)
    data = b"a\nb" + m + b"c\n"
    items, logged = run([data[i : i + 1] for i in range(len(data))])
    assert items == [
        Log(STDOUT, "a\n"),
        Log(STDOUT, "b"),
        CellStart(STDOUT, 5),
        Log(STDOUT, "c\n"),
        Eof(STDOUT),
    ]
    assert logged == b"a\nbc\n"


def test_marker_releases_the_unsplit_rest_of_an_overlong_line() -> None:
    mark = split_mark(4)
    m = markers.encode(TOKEN, "B", 1)
    items, logged = run([b"abcdefg" + m + b"hi\n"], max_line=4)
    assert items == [
        Log(STDOUT, "abcd" + mark),
        Log(STDOUT, "efg"),
        Barrier(STDOUT, ("flush", 1)),
        Log(STDOUT, "hi\n"),
        Eof(STDOUT),
    ]
    assert logged == b"abcdefghi\n"


def test_multibyte_char_split_across_reads_around_a_marker() -> None:
    # Reads split the characters; the marker sits between whole characters.
    m = markers.encode(TOKEN, "B", 1)
    e = "€".encode()
    data = b"x" + e + m + e + b"\n"
    for cut in range(1, len(data)):
        items, logged = run([data[:cut], data[cut:]])
        assert items == [
            Log(STDOUT, "x€"),
            Barrier(STDOUT, ("flush", 1)),
            Log(STDOUT, "€\n"),
            Eof(STDOUT),
        ], cut
        assert logged == b"x" + e + e + b"\n"


def test_incomplete_char_before_a_marker_stays_before_it() -> None:
    # A cell's output ends with a truncated UTF-8 sequence, then the cell ends (E) and the next
    # starts (C). Everything before the E marker belongs before the cell's barrier, so the
    # truncated bytes must show (as U+FFFD) before it, not leak into the next cell's text.
    e, c = markers.encode(TOKEN, "E", 1), markers.encode(TOKEN, "C", 2)
    items, logged = run([b"out\xe2\x82" + e + c + b"x\n"])
    assert logged == b"out\xe2\x82x\n"
    assert items == [
        Log(STDOUT, utf8(b"out\xe2\x82")),  # "out\ufffd"
        Barrier(STDOUT, ("cell", 1)),
        CellStart(STDOUT, 2),
        Log(STDOUT, "x\n"),
        Eof(STDOUT),
    ]


# Fake markers are text.


def _fakes() -> list[bytes]:
    g = markers.encode(TOKEN, "B", 0x10)
    k = len(PREFIX) + markers.TOKEN_HEX + 1  # offset of the kind
    v = k + 2  # offset of the value
    return [
        markers.encode(OTHER, "B", 0x10),  # another proc's token
        g[:k] + b"X" + g[k + 1 :],  # wrong kind
        g[:k] + b"e" + g[k + 1 :],
        g[:v] + b"000000000000001z" + g[v + 16 :],  # non-hex value
        g[:-1] + b"/",  # wrong suffix
        PREFIX + TOKEN[:-1] + b"0" + g[len(PREFIX) + markers.TOKEN_HEX :],  # token off by one
    ]


@pytest.mark.parametrize("fake", _fakes())
def test_fake_marker_is_text(fake: bytes) -> None:
    assert len(fake) == MARKER_LEN
    data = b"pre " + fake + b" post\nend"
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data[:7], data[7:30], data[30:]]):
        items, logged = run(chunks)
        assert all(isinstance(i, Log) for i in items[:-1]), items
        assert items[-1] == Eof(STDOUT)
        assert text_of(items) == utf8(data)
        assert logged == data


def test_genuine_marker_of_another_proc_is_text() -> None:
    m = markers.encode(OTHER, "E", 1)
    items, logged = run([b"a" + m + b"b\n"], token=TOKEN)
    assert items == [Log(STDOUT, "a" + m.decode("ascii") + "b\n"), Eof(STDOUT)]
    assert logged == b"a" + m + b"b\n"


@pytest.mark.parametrize("k", range(1, MARKER_LEN))
def test_truncated_marker_at_eof_is_text(k: int) -> None:
    m = markers.encode(TOKEN, "E", 1)
    items, logged = run([b"tail " + m[:k]])
    assert [i for i in items if not isinstance(i, Log)] == [Eof(STDOUT)]
    assert items[-1] == Eof(STDOUT)
    assert text_of(items) == "tail " + m[:k].decode("ascii")
    assert logged == b"tail " + m[:k]


# release_partial


def test_release_partial_once_and_keeps_carriage_returns() -> None:
    logged: list[bytes] = []
    f = StreamFramer(STDOUT, TOKEN, log=logged.append)
    assert f.release_partial() == []
    assert f.feed(b"10%\r") == []
    assert f.has_partial
    assert f.release_partial() == [Log(STDOUT, "10%\r")]
    assert not f.has_partial
    assert f.release_partial() == []
    assert f.feed(b"20%\r") == []
    assert f.release_partial() == [Log(STDOUT, "20%\r")]
    assert f.feed(b"done\n") == [Log(STDOUT, "done\n")]
    assert f.release_partial() == []
    assert f.feed(b"x") == []
    assert f.release_partial() == [Log(STDOUT, "x")]
    assert f.finish() == [Eof(STDOUT)]
    assert b"".join(logged) == b"10%\r20%\rdone\nx"


def test_release_partial_keeps_order_with_held_escape() -> None:
    f = StreamFramer(STDOUT, TOKEN)
    items = f.feed(b"abc\x1b")  # ESC may start a marker: the scanner may hold it
    items += f.release_partial()
    items += f.feed(b"[0m\n")
    items += f.finish()
    assert text_of(items) == "abc\x1b[0m\n"
    assert items[-1] == Eof(STDOUT)


# The full property: data, genuine and fake markers, read boundaries, idle releases.


@st.composite
def marked_streams(draw: st.DrawFn) -> list[tuple[str, bytes, object]]:
    parts: list[tuple[str, bytes, object]] = []
    for _ in range(draw(st.integers(0, 8))):
        what = draw(st.sampled_from(["data", "data", "data", "marker", "marker", "fake", "cut"]))
        if what == "data":
            seg = draw(byte_streams)
            assume(PREFIX not in seg)
            if incomplete_tail(seg):
                seg += b"."  # incomplete chars before a marker: see the dedicated test
            parts.append(("data", seg, None))
        elif what == "marker":
            kind = draw(st.sampled_from(["B", "C", "E"]))
            value = draw(st.one_of(st.integers(0, MAX_VALUE), st.integers(0, 20)))
            m = markers.encode(TOKEN, kind, value)  # type: ignore[arg-type]
            parts.append(("marker", m, (kind, value)))
        elif what == "fake":
            parts.append(("data", draw(st.sampled_from(_fakes())), None))
        else:
            m = markers.encode(TOKEN, "B", draw(st.integers(0, MAX_VALUE)))
            parts.append(("data", m[: draw(st.integers(1, MARKER_LEN - 1))] + b"\n", None))
    if draw(st.booleans()):
        m = markers.encode(TOKEN, "E", draw(st.integers(0, MAX_VALUE)))
        parts.append(("data", m[: draw(st.integers(1, MARKER_LEN - 1))], None))
    return parts


def marker_item(sid: int, kind: str, value: int) -> Item:
    if kind == "C":
        return CellStart(sid, value)
    return Barrier(sid, ("flush" if kind == "B" else "cell", value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_stream_framer_markers_property(data: st.DataObject) -> None:
    parts = data.draw(marked_streams())
    stream = b"".join(p[1] for p in parts)
    chunks = data.draw(cuts(stream))
    releases = data.draw(st.lists(st.booleans(), min_size=len(chunks), max_size=len(chunks)))
    sid = data.draw(st.sampled_from([STDOUT, STDERR]))

    logged: list[bytes] = []
    f = StreamFramer(sid, TOKEN, log=logged.append)
    items: list[Item] = []
    for c, rel in zip(chunks, releases, strict=True):
        items += f.feed(c)
        assert len(f._scanner._held) < MARKER_LEN
        if rel:
            got = f.release_partial()
            assert all(isinstance(i, Log) and "\n" not in i.text for i in got)
            items += got
            assert not f.has_partial
            assert f.release_partial() == []
    items += f.finish()

    check_logs(items, sid)
    assert items[-1] == Eof(sid)
    assert sum(isinstance(i, Eof) for i in items) == 1

    # Exactly one item per genuine marker, in order.
    want_items = [marker_item(sid, *p[2]) for p in parts if p[0] == "marker"]  # type: ignore[misc]
    assert [i for i in items[:-1] if not isinstance(i, Log)] == want_items

    # Between consecutive items, exactly the text of the data between those markers.
    got_groups: list[str] = [""]
    for it in items[:-1]:
        if isinstance(it, Log):
            got_groups[-1] += it.text
        else:
            got_groups.append("")
    want_bytes: list[bytes] = [b""]
    for what, b, _ in parts:
        if what == "marker":
            want_bytes.append(b"")
        else:
            want_bytes[-1] += b
    assert got_groups == [utf8(b) for b in want_bytes]

    # The raw log sees exactly the data, never a genuine marker.
    data_bytes = b"".join(b for what, b, _ in parts if what != "marker")
    assert b"".join(logged) == data_bytes
    all_text = text_of(items)
    for what, b, _ in parts:
        if what == "marker":
            assert b.decode("ascii") not in all_text

    # With no idle release, a Log before a marker item that does not end in "\n" is the partial
    # line the marker released: the last Log before that item.
    if not any(releases):
        for a, b in pairwise(items):
            if isinstance(a, Log) and not a.text.endswith("\n"):
                assert not isinstance(b, Log)
