"""Rich output from procs through a real ipykernel: ``display()``, IPython display objects,
``_repr_*_`` methods and matplotlib figures reach the notebook as mime bundles, in their place
among each proc's printed lines: as ``display_data`` after a rank label in text mode, inside the
proc's widget in widget mode (a fake widget frontend on jupyter_client). Also: the barrier after
a display, the size cap, and moving values (``push``/``pull``) with their errors, in a kernel."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LINE, loaded_frontend
from fake_frontend import FakeFrontend
from kernel_driver import Cell, KernelDriver

RICH_CELL = """%%procs 2
from IPython.display import display, HTML
import matplotlib.pyplot as plt
print('before')
display(HTML('<b>bold</b>'))
print('between')
display(42)
plt.plot([1, 2, 3])
plt.show()
print('after')
class Table:
    def _repr_html_(self):
        return '<table><tr><td>cell</td></tr></table>'
Table()
"""

# What each proc shows, in order: lines, and bundles as <kind: mime types>.
RICH_IN_WIDGETS = [
    "before",
    "<display: text/html, text/plain>",
    "between",
    "42",
    "<display: image/png, text/plain>",
    "after",
    "<result: text/html, text/plain>",
]
# In text mode each bundle follows a line with its rank: "[r] display:" or "[r] Out:".
RICH_AS_TEXT = [
    "before",
    "display:",
    "<display: text/html, text/plain>",
    "between",
    "42",
    "display:",
    "<display: image/png, text/plain>",
    "after",
    "Out:",
    "<result: text/html, text/plain>",
]


def shown_per_rank(cell: Cell) -> dict[int, list[str]]:
    """Per rank, in the order the cell got them: its stdout lines and its bundles."""
    out: dict[int, list[str]] = {}
    for m in cell.messages:
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout":
            for line in m["content"]["text"].splitlines():
                match = LINE.match(line)
                assert match, f"a line without its rank: {line!r}"
                out.setdefault(int(match.group(1)), []).append(match.group(2))
        elif m["msg_type"] == "display_data":
            tag = m["content"]["metadata"]["ipylogfwd"]
            types = ", ".join(sorted(m["content"]["data"]))
            out.setdefault(tag["rank"], []).append(f"<{tag['kind']}: {types}>")
    return out


def bundles(cell: Cell, rank: int) -> list[dict[str, Any]]:
    return [
        m["content"]
        for m in cell.messages
        if m["msg_type"] in ("display_data", "update_display_data")
        and m["content"]["metadata"]["ipylogfwd"]["rank"] == rank
    ]


def assert_png(b64: str) -> None:
    assert base64.b64decode(b64).startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG image"


# --- text mode ----------------------------------------------------------------------------------


def test_text_mode_shows_bundles_as_display_data_in_place_with_their_rank(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(RICH_CELL)
    assert cell.status == "ok", cell.error
    assert shown_per_rank(cell) == {0: RICH_AS_TEXT, 1: RICH_AS_TEXT}
    assert "IPython.core.display.HTML object" not in cell.stdout  # the defect of issue 12
    for rank in (0, 1):
        html, png, result = bundles(cell, rank)
        assert html["data"]["text/html"] == "<b>bold</b>"
        assert_png(png["data"]["image/png"])
        assert result["data"]["text/html"] == "<table><tr><td>cell</td></tr></table>"
        assert result["metadata"]["ipylogfwd"] == {"rank": rank, "kind": "result"}
    # The cell's value is still {rank: value}.
    assert (cell.result_text() or "").startswith("{0: <__main__.Table object at ")


def test_figures_a_cell_leaves_open_and_a_figure_as_last_expression(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2 --targets 1\n"
        "import matplotlib.pyplot as plt\n"
        "plt.figure()\n"
        "plt.plot([1, 2])\n"  # left open: shown when the cell ends, as in a kernel
        "fig, ax = plt.subplots()\n"
        "ax.plot([3, 1, 2])\n"
        "plt.close(fig)\n"
        "print('last line')\n"
        "fig\n"
    )
    assert cell.status == "ok", cell.error
    assert shown_per_rank(cell) == {
        1: ["last line", "Out:", "<result: image/png, text/plain>", "display:", "<display: image/png, text/plain>"]
    }
    for b in bundles(cell, 1):
        assert_png(b["data"]["image/png"])


def test_many_bundles_keep_their_order_among_the_lines(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2\nfrom IPython.display import display, Markdown\n"
        "for i in range(150):\n    print(f'line {i}')\n    display(Markdown(f'*md {i}*'))\n"
    )
    assert cell.status == "ok", cell.error
    want = [x for i in range(150) for x in (f"line {i}", "display:", "<display: text/markdown, text/plain>")]
    assert shown_per_rank(cell) == {0: want, 1: want}
    assert [b["data"]["text/markdown"] for b in bundles(cell, 0)] == [f"*md {i}*" for i in range(150)]


def test_an_update_by_display_id_reaches_the_same_output(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2 --targets 0\nfrom IPython.display import display, HTML\n"
        "h = display(HTML('<i>v1</i>'), display_id=True)\nh.update(HTML('<i>v2</i>'))\n"
    )
    assert cell.status == "ok", cell.error
    first, update = bundles(cell, 0)
    kinds = [m["msg_type"] for m in cell.messages if m["msg_type"].endswith("display_data")]
    assert kinds == ["display_data", "update_display_data"]
    assert first["transient"]["display_id"] == update["transient"]["display_id"] != ""
    assert update["data"]["text/html"] == "<i>v2</i>"


def test_a_bundle_over_the_cap_is_a_note_in_its_place(shared_kernel: KernelDriver) -> None:
    cell = shared_kernel.execute(
        "%%procs 2 --targets 0\nfrom IPython.display import display\nprint('before')\n"
        "display({'text/html': '<p>' + 'x' * (9 << 20) + '</p>', 'text/plain': 'big'}, raw=True)\n"
        "print('after')\ndisplay({'text/html': '<p>small</p>'}, raw=True)\n"
    )
    assert cell.status == "ok", cell.error
    assert shown_per_rank(cell) == {
        0: [
            "before",
            "[display output left out: 9.0 MiB (text/html, text/plain) is over the limit of 8.0 MiB for one output; "
            "its text: big]",
            "after",
            "display:",
            "<display: text/html>",
        ]
    }


def test_logflush_after_display_returns_once_the_bundle_is_published(kernel: KernelDriver, tmp_path: Path) -> None:
    # Each proc displays 200 bundles of 64 KiB (more than the kernel queues per proc, so the
    # last ones are still on their way when the flush starts), says so in a file, and waits.
    stop = tmp_path / "stop"
    started = kernel.start(
        "%%procs 2 --bg\nimport os, time\nfrom IPython.display import display, HTML\n"
        "for i in range(200):\n    display(HTML(f'<i>{i}</i>' + ' ' * 65536))\n"
        f"open(os.path.join({str(tmp_path)!r}, 'displayed' + os.environ['RANK']), 'w').close()\n"
        f"while not os.path.exists({str(stop)!r}):\n    time.sleep(0.01)\n"
    )
    kernel.wait_idle(started)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("displayed*"))) < 2:
        assert time.monotonic() < deadline, "the procs did not display within 60 s"
        time.sleep(0.01)
    report = kernel.execute("%logflush --timeout 30").result_text() or ""
    assert report.startswith("FlushReport(barrier 1: ok"), report
    assert len(re.findall(r"rank +\d+  published ", report)) == 2, report
    # IOPub is one ordered channel: everything the flush waited for came before its reply.
    for rank in (0, 1):
        shown = [b["data"]["text/html"].split("</i>")[0] for b in _bundles_of(kernel.by_parent[started], rank)]
        assert shown == [f"<i>{i}" for i in range(200)], f"rank {rank}: {len(shown)} bundles at the flush's return"
    stop.touch()


def _bundles_of(messages: list[dict[str, Any]], rank: int) -> list[dict[str, Any]]:
    return [
        m["content"]
        for m in messages
        if m["msg_type"] == "display_data" and m["content"]["metadata"]["ipylogfwd"]["rank"] == rank
    ]


# --- widget mode --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frontend() -> Iterator[FakeFrontend]:
    yield from loaded_frontend()


def test_widgets_show_bundles_inside_each_procs_widget_in_place(frontend: FakeFrontend) -> None:
    cell = frontend.execute(RICH_CELL)
    assert cell.status == "ok", cell.error
    assert cell.stdout == "" and not [
        m for m in cell.messages if m["msg_type"] == "display_data" and "ipylogfwd" in m["content"]["metadata"]
    ]
    report = frontend.execute("%logflush").result_text() or ""
    assert len(re.findall(r"rank +\d+  rendered ", report)) == 2, report
    models = frontend.proc_models()
    for rank in (0, 1):
        assert models[rank].stdout_and_displays() == RICH_IN_WIDGETS
        html, png, result = models[rank].displays()
        assert html["data"]["text/html"] == "<b>bold</b>" and html["kind"] == "display"
        assert_png(png["data"]["image/png"])
        assert result["kind"] == "result" and "<table>" in result["data"]["text/html"]


def test_widget_updates_replace_in_place_and_a_reloaded_page_gets_bundles_back(frontend: FakeFrontend) -> None:
    cell = frontend.execute(
        "%%procs 2\nfrom IPython.display import display, HTML\nprint('a')\n"
        "h = display(HTML('<i>v1</i>'), display_id=True)\nprint('b')\nh.update(HTML('<i>v2</i>'))\n"
    )
    assert cell.status == "ok", cell.error
    frontend.execute("%logflush")
    models = frontend.proc_models()
    for m in models.values():
        assert m.stdout_and_displays() == ["a", "<display: text/html, text/plain>", "b"]
        assert m.displays()[0]["data"]["text/html"] == "<i>v2</i>"
    # A reloaded page: the model starts empty and is replayed the kernel's backlog, bundles
    # included, in order, with the update applied.
    model_id = models[0].model_id
    frontend.forget(model_id)
    frontend.wait_until(lambda: len(frontend.models[model_id].lines) == 3, 10, "the replay after a reload")
    replayed = frontend.models[model_id]
    assert replayed.stdout_and_displays() == ["a", "<display: text/html, text/plain>", "b"]
    assert replayed.displays()[0]["data"]["text/html"] == "<i>v2</i>"


# --- moving values in a kernel --------------------------------------------------------------------


def test_push_pull_in_a_kernel_and_errors_that_name_object_and_rank(shared_kernel: KernelDriver) -> None:
    k = shared_kernel
    assert k.execute("%procs 2").status == "ok"
    assert k.execute("import ipylogfwd\ngroup = ipylogfwd.current_group()\ngroup.push({'x': 21})").status == "ok"
    assert k.execute("%%procs 2\nx * 2").result_text() == "{0: 42, 1: 42}"
    assert k.execute("group.pull('x')").result_text() == "{0: 21, 1: 21}"
    bad = k.execute("import threading\ngroup.push({'lock': threading.Lock()})")
    assert bad.error is not None
    tb = "\n".join(bad.error["traceback"])
    assert (
        "TransferError" in tb and "cannot pickle 'lock', a lock: TypeError: cannot pickle '_thread.lock' object" in tb
    )
    assert "File " not in tb, "a compact error, without the kernel-side stack"
    k.execute("%%procs 2 --targets 1\ngen = (i for i in range(3))")
    bad = k.execute("group.pull('gen', targets=[1])")
    assert bad.error is not None
    tb = "\n".join(bad.error["traceback"])
    assert "pull('gen') failed on rank 1" in tb and "'gen': cannot pickle it (a generator)" in tb
