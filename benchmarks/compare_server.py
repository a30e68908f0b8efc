"""A real jupyter_server between the kernel and the frontend, for benchmarks/compare.py.

The server runs on 127.0.0.1 with its default IOPub rate limits; the kernel is started
through its REST API and the frontend reads the kernel's websocket, as JupyterLab does. What
arrives is checked like the direct runs, and the server's own notices ("IOPub message rate
exceeded", "IOPub data rate exceeded", sent to the client as stderr) are counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websocket  # websocket-client, a jupyter_server dependency
from compare_frontend import Recording, bench_value, check_lines, kill_marked, record_message
from compare_systems import System


@dataclass
class ServerCheck:
    """One workload run through a real server."""

    system: str
    n: int
    lines: int
    expected: int = 0
    lost: int = 0
    noted: int = 0  # lines the system left out itself and counted in a note
    mangled: int = 0
    rate_notices: int = 0  # "IOPub … rate exceeded" messages the client received
    resumed_in_log: int = 0  # "iopub messages resumed" warnings in the server log
    failure: str | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFrontend:
    """jupyter_server + one kernel + a websocket reader thread recording IOPub."""

    def __init__(self, env: dict[str, str], marker: str, logdir: Path) -> None:
        self.marker = marker
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = logdir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the server's stdout until close()
        self.root = tempfile.mkdtemp(prefix="compare-server-root-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--ip=127.0.0.1", f"--port={self.port}", "--no-browser",
             "--allow-root", "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={self.root}",
             "--ServerApp.port_retries=0",
             # no token on loopback, so no XSRF cookie either: the REST calls here carry none
             "--ServerApp.disable_check_xsrf=True"],
            env={**os.environ, **env, "COMPARE_RUN_MARKER": marker}, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.rec = Recording()
        self._idle: set[str] = set()
        self._replies: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._wait_status(120)
        self.kernel_id = self._post("/api/kernels", {"name": "python3"})["id"]
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/kernels/{self.kernel_id}/channels?session_id={self.session}", timeout=60
        )
        self._stop = False
        self._thread = threading.Thread(target=self._pump, name="compare-ws", daemon=True)
        self._thread.start()
        self._wait_ready(60)

    def _wait_status(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.base + "/api/status", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"jupyter server exited with {self.proc.returncode}; see {self.log_path}"
                    ) from None  # the refused connection says nothing more than that
                time.sleep(0.2)
        raise TimeoutError(f"jupyter server: /api/status did not answer within {timeout:.0f} s")

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def _pump(self) -> None:
        while not self._stop:
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001 - closed: the run is over
                return
            msg = json.loads(raw)
            now = time.time()
            if msg.get("channel") == "iopub":
                idle = record_message(self.rec, msg, now)
                if idle:
                    with self._cond:
                        self._idle.add(msg["parent_header"].get("msg_id", ""))
                        self._cond.notify_all()
            elif msg.get("channel") == "shell":
                with self._cond:
                    self._replies[msg["parent_header"].get("msg_id", "")] = msg
                    self._cond.notify_all()

    def _wait_ready(self, timeout: float) -> None:
        """A kernel_info round trip, so the kernel is listening before the first cell."""
        msg_id = self._send("kernel_info_request", {})
        self._wait(lambda: msg_id in self._replies, timeout, "kernel_info_reply through the server")

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": "bench", "session": self.session, "msg_type": msg_type,
                  "version": "5.3", "date": dt.datetime.now(dt.timezone.utc).isoformat()}
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                 "channel": "shell", "buffers": []}))
        return msg_id

    def send(self, code: str) -> str:
        """Queue one cell; its msg_id."""
        ue = {"r": "_bench"} if "_bench" in code else {}
        return self._send("execute_request", {"code": code, "silent": False, "store_history": False,
                                              "user_expressions": ue, "allow_stdin": False, "stop_on_error": True})

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what}: not within {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    def finish(self, msg_id: str, timeout: float, what: str) -> Any:
        """Wait for the cell's reply and idle; its ``_bench`` value."""
        self._wait(lambda: msg_id in self._replies and msg_id in self._idle, timeout, what)
        rep = self._replies[msg_id]
        if rep["content"]["status"] != "ok":
            raise RuntimeError(f"{what}: {rep['content'].get('ename')}: {rep['content'].get('evalue')}")
        return bench_value(rep, what)

    def run(self, code: str, timeout: float, what: str) -> Any:
        return self.finish(self.send(code), timeout, what)

    def close(self) -> None:
        """Shut down the kernel through the server, stop the server, kill what is left."""
        self._stop = True
        with contextlib.suppress(Exception):  # a failed shutdown is fine: the kill below still cleans up
            req = urllib.request.Request(f"{self.base}/api/kernels/{self.kernel_id}", method="DELETE")
            urllib.request.urlopen(req, timeout=20).read()
        with contextlib.suppress(Exception):  # broken or closed already: the server is stopped below
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()
        kill_marked(self.marker)
        shutil.rmtree(self.root, ignore_errors=True)


def server_check(system: System, n: int, lines: int, payload: int, timeout: float) -> ServerCheck:
    """Run one workload row through a real jupyter_server with its default limits."""
    out = ServerCheck(system.name, n, lines, expected=2 * n * lines)
    marker = uuid.uuid4().hex
    here = str(Path(__file__).resolve().parent)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH", "")]))}
    logdir = Path(tempfile.mkdtemp(prefix="compare-server-"))
    fe: ServerFrontend | None = None
    try:
        fe = ServerFrontend(env, marker, logdir)
        fe.run(system.setup(n, through_server=True), 180, f"{system.name}: setup through the server")
        fe.rec = Recording()
        cell = fe.send(system.workload(n, lines, payload, time.time() + 1.0 + 0.05 * n))
        nxt = fe.send("print('next')")
        fe.finish(cell, timeout, f"{system.name}: workload through the server")
        fe.finish(nxt, 60, f"{system.name}: the next cell through the server")
        time.sleep(1.0)  # late output
        chk = check_lines(fe.rec, n, lines, payload, cell, nxt)
        out.lost, out.noted, out.mangled = chk.lost, chk.noted, chk.mangled
        out.rate_notices = sum(
            "".join(chunks).count("rate exceeded") for by in fe.rec.streams.values() for chunks in by.values()
        )
        with contextlib.suppress(Exception):  # a failed teardown is fine: close() kills it anyway
            fe.run(system.teardown_code, 30, f"{system.name}: teardown through the server")
    except Exception as exc:  # noqa: BLE001 - reported in the table
        out.failure = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        if fe is not None:
            fe.close()
            out.resumed_in_log = fe.log_path.read_text(errors="replace").count("iopub messages resumed")
        kill_marked(marker)
        shutil.rmtree(logdir, ignore_errors=True)
    return out
