"""Sinks are released: a kernel that runs many widget cells keeps its listeners and its memory
flat, and shutting the procs down releases the rest.

A fake widget frontend (views say hello to every widget) and one kernel cell that runs 1,000
cells through the API, each printing 200 lines of 500 characters on each of 2 procs: every
sink's backlog (200 kB a cell) is worth keeping, so sinks that are never released show in the
kernel's RSS (160 MiB over 800 cells). What stays is what ipywidgets keeps of every widget
shown (about 17 KiB for a cell's panel and two proc widgets), as for any widget.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest
from conftest import loaded_frontend
from fake_frontend import FakeFrontend

CELLS = 1000
MARKS = (200, 600, CELLS)


@pytest.fixture
def frontend() -> Iterator[FakeFrontend]:
    yield from loaded_frontend()


def test_a_thousand_widget_cells_keep_listeners_and_memory_flat(frontend: FakeFrontend, record_figure: object) -> None:
    assert frontend.execute("%procs 2").status == "ok"
    cell = frontend.execute(
        "import gc, psutil, ipylogfwd\n"
        "from ipylogfwd.sinks.acks import hub_for\n"
        "from ipylogfwd.sinks.kernel import current_kernel\n"
        "g, hub, me = ipylogfwd.current_group(), hub_for(current_kernel()), psutil.Process()\n"
        "marks = {}\n"
        f"for i in range(1, {CELLS + 1}):\n"
        "    g.run(\"print(('x' * 499 + '\\\\n') * 200, end='')\")\n"
        f"    if i in {MARKS!r}:\n"
        "        g.flush()  # every view is up to date: nothing is held for a hello in flight\n"
        "        gc.collect()\n"
        "        marks[i] = (hub.listener_count(), hub.model_count(), me.memory_info().rss)\n"
        "print(marks)\n",
        timeout=600,
    )
    assert cell.status == "ok", cell.error
    marks = ast.literal_eval(cell.stdout.strip().splitlines()[-1])
    listeners = [marks[m][0] for m in MARKS]
    models = [marks[m][1] for m in MARKS]
    rss = [marks[m][2] for m in MARKS]
    growth = (rss[-1] - rss[0]) / (1 << 20)
    record_figure(  # type: ignore[operator]
        f"kernel RSS from widget cell {MARKS[0]} to {CELLS}, 2 procs x 100 kB each",
        f"{growth:+.1f} MiB; hello listeners {listeners}, tracked widget models {models}",
    )
    # The newest cells keep their sinks (a reloaded page can replay them); older ones go.
    assert max(listeners) <= 25 and listeners[0] == listeners[-1], listeners
    assert max(models) <= 2 * 25 + 1, models
    # Released sinks: about ipywidgets' own 17 KiB a cell (13 MiB); kept ones: 160 MiB more.
    assert growth < 40, f"kernel RSS grew {growth:.1f} MiB over {CELLS - MARKS[0]} widget cells"

    cell = frontend.execute(
        "%procs --shutdown\n"
        "import gc; gc.collect()\n"
        "print(hub.listener_count(), hub.model_count())\n"
    )
    assert cell.status == "ok", cell.error
    listeners_left, models_left = map(int, cell.stdout.split())
    assert listeners_left == 0 and models_left <= 1, (
        f"after shutdown: {listeners_left} listeners, {models_left} models (the probe may stay)"
    )
