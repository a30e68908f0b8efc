"""The widget sink without a kernel: tails, budgets, and the order of what it sends."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ipylogfwd.sinks import tails
from ipylogfwd.sinks.tails import MessageBudget, Tail
from ipylogfwd.sinks.widget_sink import WidgetSink


def test_tail_keeps_the_last_lines_and_counts_the_rest() -> None:
    tail = Tail(limit=3)
    for i in range(10):
        tail.add(1, f"l{i}\n", 1)
    tail.trim()
    dropped, chunks = tail.take()
    assert dropped == 7
    assert "".join(c[1] for c in chunks) == "l7\nl8\nl9\n"


def test_tail_cuts_inside_a_chunk_and_continues_partial_lines() -> None:
    tail = Tail(limit=2)
    tail.add(1, "a\nb\nc\nd", 3)  # "d" is a partial line
    tail.add(1, "e\n", 1)  # ...which this completes
    tail.add(2, "x\n", 1)
    tail.trim()
    dropped, chunks = tail.take()
    assert dropped == 3
    assert [c[:2] for c in chunks] == [[1, "de\n"], [2, "x\n"]]


def test_tail_chunks_keep_when_they_were_read_and_a_continued_line_keeps_its_start() -> None:
    tail = Tail(limit=100)
    tail.add(1, "a\nb", 1, 10.0)  # "b" is a partial line, read at 10
    tail.add(1, "c\nd\ne\n", 3, 11.0)  # completes "bc"; "d" and "e" were read at 11
    tail.add(2, "x\n", 1, 12.0)
    _, chunks = tail.take()
    assert chunks == [[1, "a\nbc\n", 10.0], [1, "d\ne\n", 11.0], [2, "x\n", 12.0]]


def test_messages_carry_when_the_kernel_read_each_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, sent = _sink(monkeypatch, MessageBudget())
    sink.write_at(0, 1, "early\n", 1000.0001)
    sink.write_at(0, 2, "later\n", 1001.25)
    sink.publish()
    (rank, msg), = sent
    assert rank == 0 and msg["chunks"] == [[1, "early\n", 1000.0], [2, "later\n", 1001.25]]
    assert sink.panel.started > 0 and sink.panel.timestamps == "off"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tail_bounds_characters_dropping_whole_lines_first() -> None:
    tail = Tail(limit=100, max_chars=1000)
    for i in range(10):
        tail.add(1, f"{i}" * 299 + "\n", 1)
        assert tail.chars <= 2000
    tail.trim()
    dropped, chunks = tail.take()
    text = "".join(c[1] for c in chunks)
    # The newest whole lines that fit, the others counted as dropped.
    assert text == "".join(f"{i}" * 299 + "\n" for i in range(7, 10))
    assert dropped == 7


def test_tail_held_back_through_a_long_flood_keeps_its_newest_lines_contiguous() -> None:
    # Short lines held back for a long time (no budget): trimming by lines must keep the
    # character count true, or a later trim by characters drops lines it should keep and
    # the view shows a gap (it did, with 4 procs x 2.5M lines on a loaded machine).
    rnd = random.Random(3)
    tail = Tail(limit=2000, max_chars=1 << 20)
    i = 0
    while i < 400_000:
        n = rnd.randrange(1, 1500)
        tail.add(1, "".join(f"{j}\n" for j in range(i, i + n)), n)
        i += n
        assert tail.chars == sum(len(c[1]) for c in tail.chunks)
    dropped, chunks = tail.take()
    lines = "".join(c[1] for c in chunks).splitlines()
    assert lines == [str(j) for j in range(i - len(lines), i)] and len(lines) >= 2000
    assert dropped + len(lines) == i


def test_tail_keeps_the_end_of_a_line_redrawn_forever() -> None:
    tail = Tail(limit=100, max_chars=1000)
    for i in range(100_000):
        tail.add(1, f"\r{i}", 0)
        assert tail.chars <= 2000 + 7
    tail.trim()
    dropped, chunks = tail.take()
    assert dropped == 0 and len(chunks) == 1
    text = chunks[0][1]
    assert text.startswith("\r") and text.endswith("\r99998\r99999") and len(text) <= 1000


def test_budget_limits_characters() -> None:
    budget = MessageBudget(rate=1000, burst=1000, line_rate=1e6, line_burst=1e6, char_rate=100, char_burst=1000)
    assert budget.take(1, 600)
    assert not budget.take(1, 600), "the character burst is spent"
    assert budget.take(1, 300)


def test_budget_limits_messages_and_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(tails.time, "monotonic", clock)
    budget = MessageBudget(rate=10, burst=2, line_rate=100, line_burst=100)
    assert budget.take(10) and budget.take(10)
    assert not budget.take(1), "the message burst is spent"
    clock.now += 0.15  # one message (and 15 lines) back
    assert budget.take(80)
    clock.now += 0.15  # one message, 15 lines back: 15 + 15 = 30 lines < 80
    assert not budget.take(80)
    clock.now += 1.0
    assert budget.take(10_000), "a batch larger than the line burst goes when the bucket is full"


class Hub:
    """Stands in for the AckHub: no views, route 'comm'."""

    route = "comm"
    live_seen = False

    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.forgotten: list[str] = []

    def watch(self, model_ids: list[str], listener: Any) -> None:
        self.listeners.append(listener)

    def unwatch(self, model_ids: list[str]) -> None:
        self.listeners.pop()
        self.forgotten += model_ids


def _sink(
    monkeypatch: pytest.MonkeyPatch, budget: MessageBudget
) -> tuple[WidgetSink, list[tuple[int, dict[str, Any]]]]:
    sent: list[tuple[int, dict[str, Any]]] = []
    sink = WidgetSink(
        [0, 1],
        Hub(),  # type: ignore[arg-type]
        pids={0: 10, 1: 11},
        log_paths={},
        max_lines=5,
        display=lambda w: None,
        budget=budget,
    )
    for rank, w in sink.widgets.items():
        monkeypatch.setattr(w, "send", lambda content, rank=rank: sent.append((rank, content)))
    return sink, sent


def test_barrier_follows_the_data_even_without_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = MessageBudget(rate=0.0001, burst=1, line_rate=1, line_burst=1000)
    sink, sent = _sink(monkeypatch, budget)
    sink.write(0, 1, "a\n")
    sink.write(1, 1, "b\n")
    sink.publish()  # one message of budget: rank 0 goes, rank 1 waits
    assert [(r, m["type"]) for r, m in sent] == [(0, "lines")]
    assert sink.has_deferred()
    sink.barrier(1, 7)  # the barrier pushes rank 1's text out first, then itself
    assert [(r, m["type"]) for r, m in sent] == [(0, "lines"), (1, "lines"), (1, "barrier")]
    assert [c[:2] for c in sent[1][1]["chunks"]] == [[1, "b\n"]] and sent[2][1]["version"] == 7
    assert [m["seq"] for r, m in sent if r == 1] == [1, 2]


def test_held_back_text_is_bounded_and_its_loss_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    budget = MessageBudget(rate=0.0001, burst=0, line_rate=1, line_burst=1000)
    sink, sent = _sink(monkeypatch, budget)
    for i in range(1000):
        sink.write(0, 1, f"{i}\n")
        sink.publish()
    assert sent == []
    sink.barrier(0, 1)
    lines = sent[0][1]
    assert lines["dropped"] + "".join(c[1] for c in lines["chunks"]).count("\n") == 1000
    assert "".join(c[1] for c in lines["chunks"]).endswith("999\n")
    assert len(lines["chunks"][0][1].splitlines()) <= 2 * 5


def test_a_hello_behind_the_kernel_asks_for_a_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, sent = _sink(monkeypatch, MessageBudget())
    asked: list[bool] = []
    sink.attach(lambda: asked.append(True))
    sink.write(0, 1, "x\n")
    sink.publish()
    model = sink.model_id(0)
    assert model is not None
    sink._on_hello(model, 1)  # up to date: nothing to do
    assert asked == []
    sink._on_hello(model, 0)  # a reloaded page: replay, in order with the rest
    assert asked == [True]
    sink.publish()
    last = sent[-1][1]
    assert last["type"] == "replay" and [c[:2] for c in last["chunks"]] == [[1, "x\n"]] and last["seq"] == 2


def test_a_closed_sink_lets_go_of_its_backlog_and_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    sink, sent = _sink(monkeypatch, MessageBudget())
    hub = sink.hub
    sink.write(0, 1, "x\n" * 3)
    sink.publish()
    assert len(hub.listeners) == 1  # type: ignore[attr-defined]
    sink.close()
    sink.close()  # idempotent
    assert hub.listeners == []  # type: ignore[attr-defined]
    assert sorted(hub.forgotten) == sorted(str(w.model_id) for w in sink.widgets.values())  # type: ignore[attr-defined]
    assert not sink.has_deferred()
    before = len(sent)
    sink._send_replay(0)  # a late replay request finds nothing kept
    assert sent[before][1]["chunks"] == []


class _KernelForHub:
    """What AckHub needs of a kernel: a comm manager and the control handlers."""

    class _Comms:
        def register_target(self, name: str, handler: Any) -> None:
            pass

        def unregister_target(self, name: str, handler: Any) -> None:
            pass

    def __init__(self) -> None:
        self.comm_manager = self._Comms()
        self.control_handlers: dict[str, Any] = {}


def test_a_hello_that_comes_before_its_sink_watches_the_widget_is_not_lost() -> None:
    """A widget's comm opens when it is made, so its view can say hello (on the control
    thread) before the sink making the widgets calls watch(): that view still counts."""
    import threading

    from ipylogfwd.sinks.acks import AckHub
    from ipylogfwd.wire.view_messages import VIEW_PROTOCOL_VERSION

    hub = AckHub(_KernelForHub())
    hello = {"protocol": VIEW_PROTOCOL_VERSION, "type": "hello", "model_id": "m1", "view_id": "v1", "seq": 0}
    on_control = threading.Thread(target=hub._receive, args=(hello,))  # off the main thread: live
    on_control.start()
    on_control.join()
    assert not hub.wait_live_view("m1", 0.0)  # not watched yet
    hub.watch(["m1"], lambda model_id, seq: None)
    assert hub.wait_live_view("m1", 0.0)
    assert hub.model_count() == 1
    hub.unwatch(["m1"])
    assert hub.model_count() == 0
