"""The proc widgets at the kernel level, with a fake widget frontend on jupyter_client.

Run against each supported ipykernel: this venv's (7.x: acks over a subshell comm) and 6.29
(acks over the control channel), from ``.venv-ipk6`` which ``scripts/setup`` creates.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_frontend import FakeFrontend

REPO = Path(__file__).resolve().parent.parent
IPK6 = REPO / ".venv-ipk6" / "bin" / "python"


def _kernel_version(python: str | None) -> str:
    if python is None:
        from importlib.metadata import version

        return version("ipykernel")
    out = subprocess.run(
        [python, "-c", "import ipykernel; print(ipykernel.__version__)"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@pytest.fixture(params=["ipykernel-7", "ipykernel-6.29"])
def kernel_python(request: pytest.FixtureRequest) -> str | None:
    if request.param == "ipykernel-6.29":
        assert IPK6.exists(), f"{IPK6} is missing: run scripts/setup, which creates it"
        assert _kernel_version(str(IPK6)).startswith("6.29."), _kernel_version(str(IPK6))
        return str(IPK6)
    assert _kernel_version(None).startswith("7."), _kernel_version(None)
    return None


def _frontend(python: str | None, **kwargs: object) -> FakeFrontend:
    fe = FakeFrontend(python=python, **kwargs)  # type: ignore[arg-type]
    cell = fe.execute("%load_ext ipylogfwd")
    assert cell.status == "ok", cell.stderr
    return fe


@pytest.fixture
def frontend(kernel_python: str | None) -> Iterator[FakeFrontend]:
    fe = _frontend(kernel_python)
    try:
        yield fe
    finally:
        fe.shutdown()


def _expected_route(python: str | None) -> str:
    return "control" if python else "comm"


def test_each_proc_gets_a_widget_with_every_line_in_order(frontend: FakeFrontend, kernel_python: str | None) -> None:
    cell = frontend.execute(
        "%%procs 3\nimport os, sys\nr = os.environ['RANK']\n"
        "for i in range(900):\n    print(f'out {r} {i}')\n    print(f'err {r} {i}', file=sys.stderr)\n"
    )
    assert cell.status == "ok", cell.error
    # Lines went to the widgets, not to the cell's text output.
    assert cell.stdout == "" and cell.stderr == ""
    report = frontend.execute("%logflush").result_text() or ""
    assert report.startswith("FlushReport(barrier 1: ok)"), report
    models = frontend.proc_models()
    assert sorted(models) == [0, 1, 2]
    for r, m in models.items():
        assert m.state["ack_route"] == _expected_route(kernel_python)
        assert m.stream_lines(1) == [f"out {r} {i}" for i in range(900)]
        assert m.stream_lines(2) == [f"err {r} {i}" for i in range(900)]
        assert m.dropped == 0
        assert re.search(rf"rank +{r}  rendered ", report), report
    # The header's counts follow, and the group's status counts the same lines.
    frontend.wait_until(
        lambda: all(m.state.get("stdout_lines") == 900 for m in models.values()), 10, "line counts in the headers"
    )
    counts = frontend.execute(
        "import ipylogfwd\n[(s.stdout_lines, s.stderr_lines) for s in ipylogfwd.current_group().status().procs]"
    ).result_text()
    assert counts == "[(900, 900), (900, 900), (900, 900)]"


def test_logflush_waits_for_the_views_while_procs_print(frontend: FakeFrontend, tmp_path: Path) -> None:
    frontend.execute(
        "%%procs 2 --bg\nimport os, time\nr = os.environ['RANK']\n"
        "for i in range(300):\n    print(f'line {i}', flush=True)\n    time.sleep(0.002)\n"
        f"open(os.path.join({str(tmp_path)!r}, 'done' + r), 'w').close()\n"
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("done*"))) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    report = frontend.execute("%logflush --timeout 20").result_text() or ""
    assert len(re.findall(r"rank +\d+  rendered ", report)) == 2, report
    # "rendered" means the view had every line before the barrier when it acked.
    for r, m in frontend.proc_models().items():
        acked_at = next(i for i, msg in enumerate(m.messages) if msg["type"] == "barrier")
        shown = sum(
            msg["chunks"][j][1].count("\n")
            for msg in m.messages[:acked_at]
            if msg["type"] == "lines"
            for j in range(len(msg["chunks"]))
        )
        assert shown == 300, f"rank {r}: {shown} lines were in the view at the ack"


def test_a_late_view_and_a_reloaded_page_catch_up_in_order(kernel_python: str | None) -> None:
    fe = _frontend(kernel_python, views=False)
    try:
        fe.execute("%%procs 2\nfor i in range(50):\n    print(f'early {i}')\n")
        models = fe.proc_models()
        for model_id in [m.model_id for m in models.values()]:
            fe.open_view(model_id)  # a view created after the lines arrived
        report = fe.execute("%logflush").result_text() or ""
        assert len(re.findall(r"rank +\d+  rendered ", report)) == 2, report
        for m in fe.proc_models().values():
            assert m.stream_lines(1) == [f"early {i}" for i in range(50)]
        # Reload: the models start empty; their views say hello with seq 0 and are replayed.
        for model_id in [m.model_id for m in models.values()]:
            fe.forget(model_id)
        fe.wait_until(
            lambda: all(len(m.stream_lines(1)) == 50 for m in fe.proc_models().values()), 10, "replay after reload"
        )
        for m in fe.proc_models().values():
            assert m.stream_lines(1) == [f"early {i}" for i in range(50)]
            assert m.messages[-1]["type"] == "replay"
    finally:
        fe.shutdown()


def test_the_backlog_is_bounded_and_counts_what_it_dropped(frontend: FakeFrontend) -> None:
    frontend.execute("%%procs 1\nfor i in range(20000):\n    print(f'n {i}')\n")
    frontend.execute("%logflush")
    m = frontend.proc_models()[0]
    got = m.stream_lines(1)
    # Everything not sent is counted; what was sent is the tail, in order.
    assert len(got) + m.dropped == 20000
    assert got == [f"n {i}" for i in range(20000 - len(got), 20000)]
    # A reload gets the bounded backlog: the last max_lines lines, the rest counted.
    frontend.forget(m.model_id)
    frontend.wait_until(lambda: frontend.proc_models()[0].seq > 0, 10, "replay")
    m = frontend.proc_models()[0]
    assert len(m.stream_lines(1)) == m.state["max_lines"]
    assert m.dropped == 20000 - m.state["max_lines"]
    assert m.stream_lines(1)[-1] == "n 19999"


def test_views_that_never_answer_do_not_hang_logflush(kernel_python: str | None) -> None:
    fe = _frontend(kernel_python, acks=False)
    try:
        fe.execute("%%procs 2\nprint('x')")
        t0 = time.monotonic()
        cell = fe.execute("%logflush --timeout 2")
        assert time.monotonic() - t0 < 5
        report = cell.result_text() or ""
        assert len(re.findall(r"rank +\d+  published ", report)) == 2 and (
            "not rendered: its view did not acknowledge before the flush's timeout" in report
        ), report
    finally:
        fe.shutdown()


def test_a_kernel_without_widget_frontend_falls_back_to_text(kernel_python: str | None) -> None:
    fe = _frontend(kernel_python, extension=False)
    try:
        cell = fe.execute("%%procs 2\nprint('as text')")
        assert sorted(cell.stdout.splitlines()) == ["[0] as text", "[1] as text"]
        assert fe.proc_models() == {}
        report = fe.execute("%logflush").result_text() or ""
        assert "not rendered: text output, no widget frontend" in report, report
        assert len(re.findall(r"rank +\d+  published ", report)) == 2, report
    finally:
        fe.shutdown()


def test_async_logflush(frontend: FakeFrontend) -> None:
    frontend.execute("%%procs 2\nprint('hi')")
    cell = frontend.execute("import ipylogfwd\nr = await ipylogfwd.alogflush()\nprint(r.outcomes)")
    assert cell.status == "ok", cell.error
    assert cell.stdout.strip() == "{0: 'rendered', 1: 'rendered'}"


def test_lines_carry_when_the_kernel_read_them_and_the_panel_says_how_to_show_them(frontend: FakeFrontend) -> None:
    started = time.time()
    cell = frontend.execute(
        "%%procs 2 --timestamps relative\nimport time\nprint('a', flush=True)\ntime.sleep(0.4)\nprint('b')\n"
    )
    assert cell.status == "ok", cell.error
    frontend.execute("%logflush")
    ended = time.time()
    for r, m in frontend.proc_models().items():
        assert m.stream_lines(1) == ["a", "b"]
        a, b = m.times
        assert started <= a < b <= ended and b - a >= 0.35, f"rank {r}: read at {a}, {b}"
    (panel,) = frontend.panels.values()
    models = {f"IPY_MODEL_{m.model_id}" for m in frontend.proc_models().values()}
    assert set(panel["children"]) == models
    assert panel["mode"] == "procs" and panel["timestamps"] == "relative"
    assert started <= panel["started"] <= ended


def test_eight_procs_or_more_start_with_the_merged_view_unless_asked(frontend: FakeFrontend) -> None:
    assert frontend.execute("%%procs 8\nprint('x')").status == "ok"
    (panel,) = frontend.panels.values()
    assert panel["mode"] == "merged" and len(panel["children"]) == 8 and panel["timestamps"] == "off"
    assert frontend.execute("%%procs 8 --view procs\nprint('x')").status == "ok"
    assert frontend.execute("%procs --view auto").status == "ok"
    assert frontend.execute("%%procs 2 --view merged\nprint('x')").status == "ok"
    assert [p["mode"] for p in frontend.panels.values()] == ["merged", "procs", "merged"]
