"""Unit tests for in-band markers: ``markers.encode``/``decode`` and ``framing.MarkerScanner``."""

from __future__ import annotations

import re
import string
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipylogfwd.pipeline.framing import MarkerScanner
from ipylogfwd.wire import markers
from ipylogfwd.wire.markers import MARKER_LEN, PREFIX, SUFFIX, Marker

TOKEN = b"0123456789abcdef" * 2
OTHER = b"fedcba9876543210" * 2
HEX = b"0123456789abcdef"
KINDS = ("B", "C", "D", "E")
MAX_VALUE = 16**markers.VALUE_HEX - 1

# Offsets of the fields inside a marker.
TOK_AT = len(PREFIX)
SEP1_AT = TOK_AT + markers.TOKEN_HEX
KIND_AT = SEP1_AT + 1
SEP2_AT = KIND_AT + 1
VALUE_AT = SEP2_AT + 1
SUFFIX_AT = VALUE_AT + markers.VALUE_HEX

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

tokens = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(str.encode)
kinds = st.sampled_from(KINDS)
values = st.one_of(st.integers(0, MAX_VALUE), st.sampled_from([0, 1, 15, 16, 2**32, 2**63, MAX_VALUE]))


def with_byte(b: bytes, at: int, byte: int) -> bytes:
    return b[:at] + bytes([byte]) + b[at + 1 :]


# ----------------------------------------------------------------------------- encode


def test_marker_len_matches_layout() -> None:
    assert MARKER_LEN == 6 + 32 + 1 + 1 + 1 + 16 + 2 == 59
    assert SUFFIX_AT + len(SUFFIX) == MARKER_LEN


def test_encode_exact_bytes() -> None:
    assert markers.encode(TOKEN, "B", 0x1F) == (b"\x1b_LFWD" + TOKEN + b":B:000000000000001f" + b"\x1b\\")
    assert markers.encode(TOKEN, "C", 0) == b"\x1b_LFWD" + TOKEN + b":C:" + b"0" * 16 + b"\x1b\\"
    assert markers.encode(TOKEN, "E", MAX_VALUE) == (b"\x1b_LFWD" + TOKEN + b":E:" + b"f" * 16 + b"\x1b\\")


@FAST
@given(token=tokens, kind=kinds, value=values)
def test_encode_decode_round_trip(token: bytes, kind: str, value: int) -> None:
    m = markers.encode(token, kind, value)  # type: ignore[arg-type]
    assert len(m) == MARKER_LEN
    assert m.startswith(PREFIX) and m.endswith(SUFFIX)
    assert m[TOK_AT:SEP1_AT] == token
    assert m[VALUE_AT:SUFFIX_AT] == b"%016x" % value
    assert markers.decode(token, m) == Marker(kind, value)  # type: ignore[arg-type]


@FAST
@given(token=tokens, other=tokens, kind=kinds, value=values)
def test_decode_rejects_another_token(token: bytes, other: bytes, kind: str, value: int) -> None:
    m = markers.encode(token, kind, value)  # type: ignore[arg-type]
    assert markers.decode(other, m) == (Marker(kind, value) if other == token else None)  # type: ignore[arg-type]


@pytest.mark.parametrize("token", [b"", TOKEN[:-1], TOKEN + b"0", b"0" * 64])
def test_encode_rejects_bad_token_length(token: bytes) -> None:
    with pytest.raises(ValueError):
        markers.encode(token, "B", 1)


@pytest.mark.parametrize("kind", ["", "b", "c", "e", "X", "BB", "F", ":"])
def test_encode_rejects_unknown_kind(kind: str) -> None:
    with pytest.raises(ValueError):
        markers.encode(TOKEN, kind, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, -(2**64), MAX_VALUE + 1, 2**100])
def test_encode_rejects_out_of_range_value(value: int) -> None:
    with pytest.raises(ValueError):
        markers.encode(TOKEN, "B", value)


def test_new_token_is_fresh_lowercase_hex() -> None:
    seen = set()
    for _ in range(20):
        t = markers.new_token()
        assert isinstance(t, bytes)
        assert len(t) == markers.TOKEN_HEX
        assert set(t) <= set(HEX)
        seen.add(t)
        assert markers.decode(t, markers.encode(t, "E", 7)) == Marker("E", 7)
    assert len(seen) == 20


# ----------------------------------------------------------------------------- decode rejects

GOOD = markers.encode(TOKEN, "B", 0x123456789ABCDEF0)


def test_good_candidate_is_accepted() -> None:
    # The base for the mutation tests below really is genuine.
    assert markers.decode(TOKEN, GOOD) == Marker("B", 0x123456789ABCDEF0)


@pytest.mark.parametrize(
    "candidate",
    [
        b"",
        PREFIX,
        GOOD[:-1],
        GOOD[1:],
        GOOD + b"x",
        b"x" + GOOD,
        GOOD + GOOD,
        GOOD[:-2],  # no suffix at all
    ],
)
def test_decode_rejects_wrong_length(candidate: bytes) -> None:
    assert markers.decode(TOKEN, candidate) is None


def test_decode_rejects_any_changed_prefix_or_suffix_byte() -> None:
    for at in [*range(len(PREFIX)), *range(SUFFIX_AT, MARKER_LEN)]:
        for byte in range(256):
            if byte == GOOD[at]:
                continue
            assert markers.decode(TOKEN, with_byte(GOOD, at, byte)) is None, (at, byte)


def test_decode_rejects_any_changed_token_byte() -> None:
    for at in range(TOK_AT, SEP1_AT):
        for byte in range(256):
            if byte == GOOD[at]:
                continue
            assert markers.decode(TOKEN, with_byte(GOOD, at, byte)) is None, (at, byte)


def test_decode_rejects_wrong_separators() -> None:
    for at in (SEP1_AT, SEP2_AT):
        for byte in range(256):
            if byte == ord(":"):
                continue
            assert markers.decode(TOKEN, with_byte(GOOD, at, byte)) is None, (at, byte)


def test_decode_rejects_every_unknown_kind() -> None:
    for byte in range(256):
        candidate = with_byte(GOOD, KIND_AT, byte)
        got = markers.decode(TOKEN, candidate)
        if chr(byte) in KINDS:
            assert got == Marker(chr(byte), 0x123456789ABCDEF0)  # type: ignore[arg-type]
        else:
            assert got is None, byte


def test_decode_rejects_any_non_hex_value_byte() -> None:
    # GOOD's value starts with "1", so no position can form a "0x" prefix here; that case has
    # its own test below.
    hexdigits = set(string.hexdigits.encode())
    for at in range(VALUE_AT, SUFFIX_AT):
        for byte in range(256):
            if byte in hexdigits:
                continue
            assert markers.decode(TOKEN, with_byte(GOOD, at, byte)) is None, (at, byte)


@pytest.mark.parametrize(
    "value",
    [
        b" 00000000000001f",  # int() skips whitespace
        b"00000000000001f ",
        b"\t00000000000001f",
        b"+00000000000001f",  # int() takes a sign
        b"-00000000000001f",
        b"0000_0000_00001f",  # int() takes underscores
        b"000000000000001g",
        b"zzzzzzzzzzzzzzzz",
        b"\x00" + b"00000000000001f",  # NUL then 15 hex digits
    ],
)
def test_decode_rejects_values_int_would_parse_or_non_hex(value: bytes) -> None:
    assert len(value) == markers.VALUE_HEX
    candidate = GOOD[:VALUE_AT] + value + SUFFIX
    assert len(candidate) == MARKER_LEN
    assert markers.decode(TOKEN, candidate) is None


@pytest.mark.parametrize("value", [b"0x0000000000001f", b"0X0000000000001f"])
def test_decode_rejects_0x_prefixed_value(value: bytes) -> None:
    # "0x1f" is not 16 hex digits: encode never writes it, so it must not be genuine.
    candidate = GOOD[:VALUE_AT] + value + SUFFIX
    assert len(candidate) == MARKER_LEN
    assert markers.decode(TOKEN, candidate) is None


MARKER_RE = re.compile(
    re.escape(PREFIX) + re.escape(TOKEN) + rb":([BCDE]):([0-9a-fA-F]{16})" + re.escape(SUFFIX),
    re.DOTALL,
)


@FAST
@given(
    kind=kinds,
    value=values,
    edits=st.lists(
        st.tuples(
            st.integers(0, MARKER_LEN - 1),
            # x/X excluded: the "0x" case is its own test above.
            st.one_of(st.integers(0, 255), st.sampled_from(list(b"0123456789abcdefABCDEF:BCE\x1b\\_"))).filter(
                lambda b: b not in b"xX"
            ),
        ),
        max_size=3,
    ),
)
def test_decode_agrees_with_the_format(kind: str, value: int, edits: list[tuple[int, int]]) -> None:
    candidate = markers.encode(TOKEN, kind, value)  # type: ignore[arg-type]
    for at, byte in edits:
        candidate = with_byte(candidate, at, byte)
    got = markers.decode(TOKEN, candidate)
    m = MARKER_RE.fullmatch(candidate)
    if m is None:
        assert got is None
    elif m.group(2) == m.group(2).lower():
        assert got == Marker(m.group(1).decode(), int(m.group(2), 16))  # type: ignore[arg-type]
    else:
        # Upper-case hex: never written by encode; either reading is acceptable, but not a
        # different value.
        assert got in (None, Marker(m.group(1).decode(), int(m.group(2), 16)))  # type: ignore[arg-type]


@FAST
@given(candidate=st.binary(min_size=MARKER_LEN, max_size=MARKER_LEN))
def test_decode_random_bytes_are_not_markers(candidate: bytes) -> None:
    assert markers.decode(TOKEN, candidate) is None


# ----------------------------------------------------------------------------- MarkerScanner


def scan(chunks: list[bytes], token: bytes = TOKEN) -> tuple[list[bytes | Marker], bytes]:
    """Feed ``chunks``; the items (adjacent data merged) and what ``finish`` returned."""
    s = MarkerScanner(token)
    out: list[bytes | Marker] = []
    for c in chunks:
        for seg in s.feed(c):
            assert not (isinstance(seg, bytes) and seg == b""), "empty data segment"
            if isinstance(seg, bytes) and out and isinstance(out[-1], bytes):
                out[-1] += seg
            else:
                out.append(seg)
        assert len(s._held) < MARKER_LEN
    rest = s.finish()
    assert s._held == b""
    return out, rest


def flat(out: list[bytes | Marker], rest: bytes) -> list[bytes | Marker]:
    if rest:
        if out and isinstance(out[-1], bytes):
            return [*out[:-1], out[-1] + rest]
        return [*out, rest]
    return out


def test_scanner_plain_data_passes_through_unheld() -> None:
    s = MarkerScanner(TOKEN)
    assert s.feed(b"hello\nworld") == [b"hello\nworld"]
    assert s._held == b""
    assert s.feed(b"") == []
    assert s.finish() == b""


def test_scanner_whole_marker() -> None:
    m = markers.encode(TOKEN, "B", 5)
    s = MarkerScanner(TOKEN)
    assert s.feed(m) == [Marker("B", 5)]
    assert s._held == b""
    assert s.finish() == b""


def test_scanner_marker_mid_data() -> None:
    m = markers.encode(TOKEN, "E", 9)
    s = MarkerScanner(TOKEN)
    assert s.feed(b"abc" + m + b"def") == [b"abc", Marker("E", 9), b"def"]
    assert s.finish() == b""


def test_scanner_adjacent_markers() -> None:
    m1 = markers.encode(TOKEN, "E", 1)
    m2 = markers.encode(TOKEN, "C", 2)
    s = MarkerScanner(TOKEN)
    assert s.feed(m1 + m2) == [Marker("E", 1), Marker("C", 2)]
    assert s.feed(b"x" + m1 + m1 + b"y") == [b"x", Marker("E", 1), Marker("E", 1), b"y"]


@pytest.mark.parametrize("k", range(1, len(PREFIX)))
def test_scanner_holds_partial_prefix_at_end(k: int) -> None:
    s = MarkerScanner(TOKEN)
    assert s.feed(b"abc" + PREFIX[:k]) == [b"abc"]
    assert s._held == PREFIX[:k]
    assert s.finish() == PREFIX[:k]
    assert s.finish() == b""


@pytest.mark.parametrize("tail", [b"\x1bX", b"_", b"\x1b_X", b"LFWD", b"\x1b_LFW\x1b\\", b"\\"])
def test_scanner_does_not_hold_what_cannot_start_a_marker(tail: bytes) -> None:
    s = MarkerScanner(TOKEN)
    assert s.feed(b"abc" + tail) == [b"abc" + tail]
    assert s._held == b""


@pytest.mark.parametrize("k", range(1, MARKER_LEN))
def test_scanner_marker_split_in_two_reads(k: int) -> None:
    m = markers.encode(TOKEN, "C", 0xABC)
    s = MarkerScanner(TOKEN)
    first = s.feed(b"before" + m[:k])
    assert first == [b"before"]
    assert s._held == m[:k]
    assert s.feed(m[k:] + b"after") == [Marker("C", 0xABC), b"after"]
    assert s.finish() == b""


def test_scanner_marker_byte_by_byte() -> None:
    m = markers.encode(TOKEN, "B", 77)
    data = b"x\n" + m + b"y"
    out, rest = scan([data[i : i + 1] for i in range(len(data))])
    assert flat(out, rest) == [b"x\n", Marker("B", 77), b"y"]


@pytest.mark.parametrize("k", range(1, MARKER_LEN))
def test_scanner_truncated_marker_at_eof_is_data(k: int) -> None:
    m = markers.encode(TOKEN, "B", 3)
    s = MarkerScanner(TOKEN)
    out = s.feed(b"a" + m[:k])
    assert out == [b"a"] or out == [b"a" + m[:k]]
    got = b"".join(x for x in out if isinstance(x, bytes)) + s.finish()
    assert got == b"a" + m[:k]


def fakes() -> list[bytes]:
    g = markers.encode(TOKEN, "B", 0x10)
    return [
        markers.encode(OTHER, "B", 0x10),  # another proc's token
        with_byte(g, KIND_AT, ord("X")),  # wrong kind
        with_byte(g, KIND_AT, ord("b")),
        with_byte(g, VALUE_AT + 7, ord("g")),  # non-hex value
        with_byte(g, SEP1_AT, ord(";")),
        with_byte(g, MARKER_LEN - 1, ord("/")),  # wrong suffix
        PREFIX + TOKEN.upper() + g[SEP1_AT:],  # token compare is exact
    ]


@pytest.mark.parametrize("fake", fakes())
def test_scanner_look_alike_is_data(fake: bytes) -> None:
    assert len(fake) == MARKER_LEN
    data = b"pre " + fake + b" post\n"
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data[:10], data[10:]]):
        out, rest = scan(chunks)
        assert flat(out, rest) == [data]


@pytest.mark.parametrize("fake", fakes())
def test_scanner_look_alike_then_genuine(fake: bytes) -> None:
    m = markers.encode(TOKEN, "E", 4)
    data = fake + m + b"z"
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        out, rest = scan(chunks)
        assert flat(out, rest) == [fake, Marker("E", 4), b"z"]


@pytest.mark.parametrize("junk", [b"", b"x", b"\x1b", b"\x1b_LF", PREFIX, PREFIX + TOKEN[:20]])
def test_scanner_genuine_inside_a_look_alike_window(junk: bytes) -> None:
    # A prefix whose MARKER_LEN window overlaps the genuine marker must not hide it.
    m = markers.encode(TOKEN, "B", 8)
    data = PREFIX + junk + m + b"!"
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        out, rest = scan(chunks)
        assert flat(out, rest) == [PREFIX + junk, Marker("B", 8), b"!"]


def test_scanner_other_token_scanner_sees_no_marker() -> None:
    m = markers.encode(TOKEN, "B", 1)
    out, rest = scan([b"a" + m + b"b"], token=OTHER)
    assert flat(out, rest) == [b"a" + m + b"b"]


# Property: markers in arbitrary data at arbitrary read boundaries.

data_alphabet = st.sampled_from(
    [
        b"\x1b",
        b"_",
        b"L",
        b"F",
        b"W",
        b"D",
        b"\\",
        b"\x1b_LF",
        PREFIX,
        b"\n",
        b"\r",
        b"\x00",
        b"\xff",
        b"a",
        b":",
        b"B",
        b"0",
    ]
)
data_parts = st.one_of(
    st.binary(max_size=20),
    st.lists(data_alphabet, max_size=12).map(b"".join),
)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[str, bytes, object]], bytes]:
    """Parts ("data"|"fake"|"marker", bytes, Marker|None), ending optionally with a truncated one."""
    parts: list[tuple[str, bytes, object]] = []
    for _ in range(draw(st.integers(0, 8))):
        what = draw(st.sampled_from(["data", "data", "marker", "fake", "cut"]))
        if what == "data":
            parts.append(("data", draw(data_parts), None))
        elif what == "marker":
            kind, value = draw(kinds), draw(values)
            parts.append(("marker", markers.encode(TOKEN, kind, value), Marker(kind, value)))  # type: ignore[arg-type]
        elif what == "fake":
            parts.append(("data", draw(st.sampled_from(fakes())), None))
        else:
            # A truncated genuine marker, broken for good by a newline.
            m = markers.encode(TOKEN, draw(kinds), draw(values))  # type: ignore[arg-type]
            parts.append(("data", m[: draw(st.integers(1, MARKER_LEN - 1))] + b"\n", None))
    if draw(st.booleans()):
        m = markers.encode(TOKEN, draw(kinds), draw(values))  # type: ignore[arg-type]
        parts.append(("data", m[: draw(st.integers(1, MARKER_LEN - 1))], None))  # truncated at EOF
    stream = b"".join(p[1] for p in parts)
    return parts, stream


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    n = len(data)
    if n and draw(st.integers(0, 4)) == 0:
        return [data[i : i + 1] for i in range(n)]
    points = sorted(draw(st.lists(st.integers(0, n), max_size=12)))
    bounds = [0, *points, n]
    return [data[a:b] for a, b in pairwise(bounds)]


def stripped_prefix(parts: list[tuple[str, bytes, object]], p: int) -> bytes:
    """The first ``p`` stream bytes with every complete genuine marker removed."""
    out = []
    pos = 0
    for what, b, _ in parts:
        end = pos + len(b)
        if what == "marker" and end <= p:
            pass
        else:
            out.append(b[: max(0, p - pos)])
        pos = end
        if pos >= p:
            break
    return b"".join(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_scanner_property(data: st.DataObject) -> None:
    parts, stream = data.draw(streams())
    chunks = data.draw(cuts(stream))
    s = MarkerScanner(TOKEN)
    out: list[bytes | Marker] = []
    fed = 0
    for c in chunks:
        segs = s.feed(c)
        fed += len(c)
        assert all(not (isinstance(x, bytes) and x == b"") for x in segs)
        out.extend(segs)
        held = s._held
        assert len(held) <= MARKER_LEN - 1
        assert stream[:fed].endswith(held)
        assert held == b"" or PREFIX.startswith(held) or held.startswith(PREFIX)
        # Nothing but the held bytes is kept back: data so far + held == stream so far, minus
        # complete markers.
        emitted = b"".join(x for x in out if isinstance(x, bytes))
        assert emitted + held == stripped_prefix(parts, fed)
    held = s._held
    rest = s.finish()
    assert rest == held
    assert s.finish() == b""

    expected_markers = [m for what, _, m in parts if what == "marker"]
    assert [x for x in out if isinstance(x, Marker)] == expected_markers
    assert b"".join(x for x in out if isinstance(x, bytes)) + rest == b"".join(
        b for what, b, _ in parts if what != "marker"
    )
    # Position: the data between consecutive markers is exactly the data parts between them.
    groups: list[bytes] = [b""]
    for x in out:
        if isinstance(x, Marker):
            groups.append(b"")
        else:
            groups[-1] += x
    groups[-1] += rest
    want: list[bytes] = [b""]
    for what, b, _ in parts:
        if what == "marker":
            want.append(b"")
        else:
            want[-1] += b
    assert groups == want
