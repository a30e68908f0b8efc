"""Drive a real JupyterLab (this venv) from Playwright: the server, notebooks, cells, widgets.

Used by ``conftest.py`` (fixtures) and the browser tests. Every wait has a timeout and its
error says what it waited for; nothing sleeps to wait for state.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
NOTEBOOKS = REPO / "notebooks"
CHROMIUM = Path(os.environ.get("IPYLOGFWD_CHROMIUM", "/usr/bin/chromium"))
VENV_BIN = Path(sys.executable).parent
IPK6_KERNEL = "ipk6"
IPK6_PYTHON = REPO / ".venv-ipk6" / "bin" / "python"

# From /work/shared/TOOLCHAIN.md: flags that keep Chromium quiet on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

SERVER_START_TIMEOUT = 60.0
KERNEL_IDLE_TIMEOUT = 60_000  # ms
CELL_TIMEOUT = 90_000  # ms


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


# True once cell [i] has a new execution count (> floor) and its prompt shows [N]; throws
# (with its text) if a dialog opened, e.g. "Select Kernel", instead of waiting on it.
CELL_DONE_JS = """([i, floor]) => {
                 const dialog = document.querySelector('.jp-Dialog');
                 if (dialog) throw new Error('a dialog opened: ' + dialog.innerText.replace(/\\s+/g, ' '));
                 const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
                 const n = cell.model.executionCount;
                 const p = cell.node.querySelector('.jp-InputArea-prompt');
                 return n != null && n > floor && p && /\\[\\d+\\]/.test(p.textContent);
               }"""


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT
    root: Path  # the server's root dir (notebooks live here)
    log_path: Path
    proc: subprocess.Popen[bytes]

    # --- REST ---------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def kernel_ids(self) -> list[str]:
        return [k["id"] for k in self.api("GET", "/api/kernels")]

    def shutdown_kernels(self, keep: set[str] | None = None) -> None:
        for kid in self.kernel_ids():
            if keep and kid in keep:
                continue
            try:
                self.api("DELETE", f"/api/kernels/{kid}", timeout=30)
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise

    # --- the log --------------------------------------------------------------------------------
    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    # --- notebooks ------------------------------------------------------------------------------
    def copy_notebook(self, src: Path, name: str | None = None) -> str:
        dest = self.root / (name or src.name)
        shutil.copy(src, dest)
        return dest.name

    def write_notebook(self, name: str, cells: list[str], kernel: str = "python3") -> str:
        """A notebook of code cells (no outputs) in the root dir; returns its path there."""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, str(self.root / name))
        return name


@contextlib.contextmanager
def start_lab(extra_args: tuple[str, ...] = ()) -> Iterator[LabServer]:
    """Run JupyterLab for the tests (``extra_args`` added to its command line); yields the
    running server, stops it afterwards."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ipylogfwd-browser-"))
    root = tmp / "root"
    settings = tmp / "settings"
    workspaces = tmp / "workspaces"
    for d in (root, settings, workspaces):
        d.mkdir()
    # No news pop-up, no update check (TOOLCHAIN.md).
    _write_json(
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    # Isolate from the user's ~/.jupyter (config, runtime files); data dirs still include the
    # venv's share/jupyter, where the labextensions and the kernelspec are.
    env = dict(os.environ)
    env["JUPYTER_CONFIG_DIR"] = str(tmp / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp / "runtime")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("JUPYTER_TOKEN", None)
    # A second kernel, "ipk6": ipykernel 6.29 from .venv-ipk6 (scripts/setup makes it), with
    # ipylogfwd imported from this checkout; the views ack over the control channel there.
    data = tmp / "data"
    _write_json(
        data / "kernels" / IPK6_KERNEL / "kernel.json",
        {
            "argv": [str(IPK6_PYTHON), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel 6.29)",
            "language": "python",
            "env": {"PYTHONPATH": str(REPO)},
        },
    )
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data), env.get("JUPYTER_PATH", "")]))

    port = _free_port()
    log_path = ARTIFACTS / "jupyter-server.log"
    cmd = [
        str(VENV_BIN / "jupyter"),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        # window.jupyterapp, for app.commands (run cells, change the theme, save).
        "--LabApp.expose_app_in_browser=True",
        # Default iopub_msg_rate_limit / iopub_data_rate_limit / rate_limit_window: untouched.
        *extra_args,
    ]
    with open(log_path, "wb") as log_file:  # the server keeps its own descriptor
        log_file.write(("$ " + " ".join(cmd) + "\n").encode())
        log_file.flush()
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True
        )
    server = LabServer(url=f"http://127.0.0.1:{port}", root=root, log_path=log_path, proc=proc)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        last_error: Exception | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {proc.returncode} before answering /api/status; "
                    f"log: {log_path}\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                server.api("GET", "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError) as e:
                last_error = e
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"JupyterLab did not answer {server.url}/api/status within {SERVER_START_TIMEOUT:g} s "
                    f"(last error: {last_error}); log: {log_path}"
                )
            time.sleep(0.1)  # polling interval of a wait on the server's state, not a wait itself
        yield server
    finally:
        try:
            server.shutdown_kernels()
        except (urllib.error.URLError, OSError) as e:
            print(f"could not shut the kernels down through the server: {e}")
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Notebook:
    """A notebook open in the page; cells are addressed by index (0-based)."""

    page: Page
    lab: LabServer
    path: str
    _seen: int = field(default=0)

    # --- opening ----------------------------------------------------------------------------
    def open(self, timeout: float = KERNEL_IDLE_TIMEOUT) -> Notebook:
        # ?reset: start from an empty workspace, so notebooks of earlier tests do not reopen.
        self.page.goto(f"{self.lab.url}/lab/tree/{self.path}?reset")
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = KERNEL_IDLE_TIMEOUT) -> None:
        _wait_for_function(
            self.page,
            "(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " return !!w && !!w.content && !!w.context && w.context.path === path && w.context.isReady; }",
            timeout,
            f"JupyterLab to start and show {self.path} as the current widget (notebook context ready)",
            arg=self.path,
        )
        _wait_for_function(
            self.page,
            """() => { const ctx = window.jupyterapp.shell.currentWidget.sessionContext;
                       const k = ctx && ctx.session && ctx.session.kernel;
                       return ctx.isReady && !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }""",
            timeout,
            f"the kernel of {self.path} to be started, connected and idle (sessionContext)",
        )
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = KERNEL_IDLE_TIMEOUT) -> None:
        _wait_for_selector(
            self.page,
            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]',
            timeout,
            f"the kernel of {self.path} to be idle (.jp-Notebook-ExecutionIndicator[data-status=idle])",
        )

    # --- cells ------------------------------------------------------------------------------
    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea").first

    def prompts(self) -> list[str]:
        return self.page.evaluate(
            """() => window.jupyterapp.shell.currentWidget.content.widgets.map(
                   c => c.model.type === 'code' ? String(c.model.executionCount ?? '') : '-')"""
        )

    def _max_count(self) -> int:
        nums = [int(p) for p in self.prompts() if p.isdigit()]
        return max([*nums, self._seen])

    def clear_outputs(self) -> None:
        self.command("notebook:clear-all-cell-outputs")
        _wait_for_function(
            self.page,
            """() => window.jupyterapp.shell.currentWidget.content.widgets.every(
                   c => c.model.type !== 'code' || (c.model.executionCount == null && c.model.outputs.length === 0))""",
            10_000,
            "every cell's outputs and execution count to be cleared",
        )

    def run_cell(self, index: int, timeout: float = CELL_TIMEOUT) -> int:
        """Run cell ``index``; wait until its prompt shows a new ``[N]``; return N."""
        floor = self.start_cell(index)
        return self.wait_cell_done(index, floor, timeout)

    def start_cell(self, index: int) -> int:
        """Start running cell ``index``; return the floor to give ``wait_cell_done``."""
        floor = self._max_count()
        self.page.evaluate(
            """(i) => { const nb = window.jupyterapp.shell.currentWidget.content;
                        nb.activeCellIndex = i; nb.deselectAll(); }""",
            index,
        )
        self.command("notebook:run-cell", wait=False)
        return floor

    def wait_cell_done(self, index: int, floor: int, timeout: float = CELL_TIMEOUT) -> int:
        prompt = self.cell(index).locator(".jp-InputArea-prompt")
        _wait_for_function(
            self.page,
            CELL_DONE_JS,
            timeout,
            f"cell {index} of {self.path} to finish (prompt [N] with N > {floor})",
            arg=[index, floor],
        )
        text = prompt.text_content() or ""
        n = int(re.search(r"\[(\d+)\]", text).group(1))  # type: ignore[union-attr]
        self._seen = max(self._seen, n)
        return n

    def run_all(self, timeout: float = CELL_TIMEOUT) -> None:
        """Run every cell; wait until every code cell shows a new ``[N]`` and the kernel is idle."""
        floor = self._max_count()
        self.command("notebook:run-all-cells", wait=False)
        _wait_for_function(
            self.page,
            """(floor) => {
               const dialog = document.querySelector('.jp-Dialog');
               if (dialog) throw new Error('a dialog opened: ' + dialog.innerText.replace(/\\s+/g, ' '));
               return window.jupyterapp.shell.currentWidget.content.widgets.every(c => {
                 if (c.model.type !== 'code') return true;
                 const n = c.model.executionCount;
                 const p = c.node.querySelector('.jp-InputArea-prompt');
                 return n != null && n > floor && p && /\\[\\d+\\]/.test(p.textContent);
               }); }""",
            timeout,
            f"every code cell of {self.path} to finish (prompts [N] with N > {floor}); prompts now: see page",
            arg=floor,
        )
        self._seen = self._max_count()
        self.wait_idle()

    def command(self, name: str, args: dict[str, Any] | None = None, wait: bool = True) -> Any:
        """Execute a JupyterLab command; with ``wait``, await its promise (bounded by the
        page's default timeout)."""
        if not wait:
            self.page.evaluate(
                "([name, args]) => { window.jupyterapp.commands.execute(name, args)"
                ".catch(e => console.error('command', name, e)); }",
                [name, args or {}],
            )
            return None
        return self.page.evaluate(
            "async ([name, args]) => { const r = await window.jupyterapp.commands.execute(name, args);"
            " return r === undefined || r === null ? null : String(r); }",
            [name, args or {}],
        )

    def save(self) -> None:
        self.command("docmanager:save")
        _wait_for_function(
            self.page,
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
            15_000,
            f"{self.path} to be saved (model not dirty)",
        )

    # --- outputs ------------------------------------------------------------------------------
    def outputs_json(self, index: int | None = None) -> Any:
        """The notebook model's outputs (nbformat JSON) of one cell, or of all cells."""
        return self.page.evaluate(
            """(i) => { const cells = window.jupyterapp.shell.currentWidget.content.widgets;
                        const one = c => c.model.type === 'code' ? c.model.outputs.toJSON() : [];
                        return i === null ? cells.map(one) : one(cells[i]); }""",
            index,
        )

    def output_text(self, index: int) -> str:
        """The text of a cell's outputs from the notebook model: streams, text/plain results,
        error tracebacks (ANSI codes removed). Independent of what is scrolled into view."""
        parts = []
        for o in self.outputs_json(index):
            kind = o.get("output_type")
            if kind == "stream":
                parts.append("".join(o.get("text", "")))
            elif kind in ("execute_result", "display_data"):
                parts.append("".join(o.get("data", {}).get("text/plain", "")))
            elif kind == "error":
                parts.append("\n".join(o.get("traceback", [])))
        return ANSI.sub("", "\n".join(parts))

    # --- ipylogfwd widgets --------------------------------------------------------------------
    def procs(self, index: int) -> Any:
        """The cell's proc widget roots."""
        return self.cell(index).locator(".ipylogfwd-proc")

    def proc(self, index: int, rank: int) -> Any:
        return self.cell(index).locator(f'.ipylogfwd-proc[data-rank="{rank}"]')

    def wait_procs(self, index: int, count: int, timeout: float = 30_000) -> None:
        _wait_for_function(
            self.page,
            """([i, n]) => {
                 const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                 return c.node.querySelectorAll('.ipylogfwd-panel .ipylogfwd-proc[data-rank]').length === n;
               }""",
            timeout,
            f"{count} proc widget views (.ipylogfwd-panel .ipylogfwd-proc[data-rank]) in cell {index}",
            arg=[index, count],
        )

    def lines(self, index: int) -> dict[int, dict[str, list[str]]]:
        """Per rank, per stream, the texts of the ``.ipylogfwd-line`` elements, in DOM order."""
        raw = self.page.evaluate(
            """(i) => {
                 const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
                 const out = {};
                 for (const p of c.node.querySelectorAll('.ipylogfwd-proc[data-rank]')) {
                   const per = {stdout: [], stderr: []};
                   for (const l of p.querySelectorAll('.ipylogfwd-line')) {
                     (per[l.dataset.stream] ??= []).push(l.textContent);
                   }
                   out[p.dataset.rank] = per;
                 }
                 return out;
               }""",
            index,
        )
        return {int(r): v for r, v in raw.items()}

    # --- the merged view ------------------------------------------------------------------------
    def panel(self, index: int) -> Any:
        """The cell's panel (header, toolbar, merged view or widgets)."""
        return self.cell(index).locator(".ipylogfwd-panel").first

    def merged(self, index: int) -> Any:
        return self.cell(index).locator("[data-ipylogfwd-merged]")

    def merged_rows(self, index: int) -> list[dict[str, Any]]:
        """The merged view's rows in DOM order, as a user reads them: ranks (``data-ranks``),
        count ("\u00d716"), kind, stream, severity, text (a traceback's lines, a progress row's
        bars as "rank text" lines), whether it is visible, and its timestamp (the ``::before``
        of its text, "" when none)."""
        return self.page.evaluate(MERGED_ROWS_JS, index)  # type: ignore[no-any-return]

    def wait_merged(self, index: int, expression: str, what: str, timeout: float = 30_000) -> None:
        """Wait until ``expression`` (JS, a function of the rows as ``merged_rows`` gives them)
        is true of cell ``index``'s merged view."""
        _wait_for_function(
            self.page,
            f"(i) => {{ const rows = ({MERGED_ROWS_JS})(i); return rows !== null && ({expression})(rows); }}",
            timeout,
            what,
            arg=index,
        )

    # --- look -----------------------------------------------------------------------------------
    def set_theme(self, name: str) -> None:
        light = "false" if "Dark" in name else "true"
        self.command("apputils:change-theme", {"theme": name})
        _wait_for_selector(
            self.page,
            f'body[data-jp-theme-name="{name}"][data-jp-theme-light="{light}"]',
            15_000,
            f"the theme to become {name!r} (body[data-jp-theme-name])",
        )
        # The theme's CSS is loaded when the attribute is set; wait for it to apply.
        _wait_for_function(
            self.page,
            """(light) => {
                 const bg = getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim();
                 const probe = document.createElement('div'); probe.style.color = bg;
                 document.body.appendChild(probe);
                 const m = getComputedStyle(probe).color.match(/\\d+/g).map(Number); probe.remove();
                 const lum = (m[0] + m[1] + m[2]) / 3;
                 return light ? lum > 128 : lum < 128;
               }""",
            15_000,
            f"the {name!r} theme's colours to apply (--jp-layout-color0)",
            arg=light == "true",
        )

    def screenshot(self, locator: Any, name: str) -> Path:
        path = ARTIFACTS / name
        locator.scroll_into_view_if_needed()
        locator.screenshot(path=str(path), animations="disabled")
        return path


MERGED_ROWS_JS = """(i) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const m = c.node.querySelector('[data-ipylogfwd-merged]');
  if (!m) return null;
  const stamp = el => { const v = getComputedStyle(el, '::before').content;
                        return v && v !== 'none' && v !== 'normal' ? v.replace(/^"|"$/g, '') : ''; };
  return [...m.querySelectorAll('.ipylogfwd-mrow')].map(r => {
    const kind = r.dataset.kind;
    const own = r.querySelector(':scope > .ipylogfwd-mtext');
    const text = kind === 'block'
      ? [...r.querySelectorAll('.ipylogfwd-mline')].map(l => l.textContent).join('\\n')
      : kind === 'progress'
      ? [...r.querySelectorAll('.ipylogfwd-mbar')].map(
          b => b.dataset.rank + ' ' + b.querySelector('.ipylogfwd-mtext').textContent).join('\\n')
      : own.textContent;
    return {ranks: r.dataset.ranks, count: r.querySelector('.ipylogfwd-mcount').textContent, kind,
            stream: r.dataset.stream, severity: r.dataset.severity || '', text,
            visible: r.checkVisibility(), time: own ? stamp(own) : ''};
  });
}"""


def _wait_for_function(page: Page, expression: str, timeout: float, what: str, arg: Any = None) -> None:
    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout, polling=50)
    except PlaywrightTimeoutError as e:
        raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for {what}") from e


def _wait_for_selector(page: Page, selector: str, timeout: float, what: str) -> None:
    try:
        page.wait_for_selector(selector, timeout=timeout, state="attached")
    except PlaywrightTimeoutError as e:
        raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for {what}") from e


def peak_rate(times: list[float], start: float, end: float, window: float = 3.0) -> float:
    """The highest number of events per second over any ``window`` seconds in [start, end]
    (the server's rate limit averages over a 3 s window)."""
    ts = sorted(t for t in times if start <= t <= end)
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best / window


def wait_for(page: Page, expression: str, what: str, timeout: float = 30_000, arg: Any = None) -> None:
    """Wait until the JS ``expression`` (a function of ``arg``) is truthy in the page."""
    _wait_for_function(page, expression, timeout, what, arg)
