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
    assert "".join(t for _, t in chunks) == "l7\nl8\nl9\n"


def test_tail_cuts_inside_a_chunk_and_continues_partial_lines() -> None:
    tail = Tail(limit=2)
    tail.add(1, "a\nb\nc\nd", 3)  # "d" is a partial line
    tail.add(1, "e\n", 1)  # ...which this completes
    tail.add(2, "x\n", 1)
    tail.trim()
    dropped, chunks = tail.take()
    assert dropped == 3
    assert chunks == [[1, "de\n"], [2, "x\n"]]


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
    text = "".join(t for _, t in chunks)
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
    assert sent[1][1]["chunks"] == [[1, "b\n"]] and sent[2][1]["version"] == 7
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
    assert lines["dropped"] + "".join(t for _, t in lines["chunks"]).count("\n") == 1000
    assert "".join(t for _, t in lines["chunks"]).endswith("999\n")
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
    assert sent[-1][1]["type"] == "replay" and sent[-1][1]["chunks"] == [[1, "x\n"]] and sent[-1][1]["seq"] == 2


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
