"""Browser tests: a real JupyterLab (this venv) driven by Playwright in Debian's Chromium.

Fixtures:

* ``lab`` (session): a JupyterLab server on 127.0.0.1, a free port, empty token, a private
  settings dir (news off), a private root dir (notebooks are copied or written there), its
  log in ``tests/artifacts/jupyter-server.log``. Default IOPub rate limits.
* ``browser`` (session): headless Chromium from ``/usr/bin/chromium`` (never downloaded).
* ``page`` (function): a fresh browser context and page; at the end every kernel the test
  started is shut down (so procs do not pile up between tests).
* ``nb`` (function): a ``Notebook`` helper factory bound to ``page``.

Every wait has a timeout and its error says what it waited for; nothing sleeps to wait
for state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from .labdriver import LabServer, Notebook



@pytest.fixture(scope="session")
def lab() -> Iterator[LabServer]:
    from .labdriver import start_lab

    with start_lab() as server:
        yield server


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from .labdriver import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: scripts/setup installs it (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, lab: LabServer) -> Iterator[Page]:
    from playwright.sync_api import Error as PlaywrightError

    from .labdriver import ARTIFACTS

    before = set(lab.kernel_ids())
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.on("dialog", lambda d: d.accept())  # e.g. "leave the page?" on reload
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.page_errors = errors  # type: ignore[attr-defined]
    # Arrival times of websocket frames (kernel messages), to measure message rates.
    frames: list[float] = []
    pg.on("websocket", lambda ws: ws.on("framereceived", lambda _f: frames.append(time.monotonic())))
    pg.ws_frames = frames  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shot = ARTIFACTS / f"failure-{request.node.name}.png"
            try:
                pg.screenshot(path=str(shot), timeout=10_000)
                print(f"failure screenshot: {shot}")
            except PlaywrightError as e:  # the page may be what failed
                print(f"no failure screenshot: {e}")
        context.close()
        lab.shutdown_kernels(keep=before)


@pytest.fixture
def nb(page: Page, lab: LabServer) -> Any:
    """``nb(path)``: a Notebook helper for ``path`` in the server's root dir, opened in ``page``."""

    from .labdriver import Notebook

    def open_notebook(path: str) -> Notebook:
        return Notebook(page, lab, path).open()

    return open_notebook
