"""A frontend without the ipylogfwd extension, behind a real jupyter_server.

The server runs on 127.0.0.1 with its default IOPub limits (1000 msgs/s, 1 MB/s of stream
data over 3 s: past them it drops output and tells the client so on stderr). The kernel is
started through the REST API and read over its websocket, as a browser would; nothing here
answers widget messages, so ipylogfwd falls back to text output.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import websocket  # websocket-client, which jupyter_server depends on


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFrontend:
    """jupyter_server, one kernel, and a thread recording that kernel's IOPub by parent."""

    def __init__(self, workdir: Path, start_timeout: float = 120.0, server_args: tuple[str, ...] = ()) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the server's stdout until close()
        root = workdir / "root"
        root.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--ip=127.0.0.1", f"--port={self.port}", "--no-browser",
             "--allow-root", "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
             f"--ServerApp.root_dir={root}", "--ServerApp.disable_check_xsrf=True", *server_args],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.streams: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"stdout": [], "stderr": []})
        self._replies: dict[str, dict[str, Any]] = {}
        self._idle: set[str] = set()
        self._cond = threading.Condition()  # guards the three above: written by the pump thread
        self.ws: Any = None
        try:
            self._await_server(start_timeout)
            self.kernel_id = self._post("/api/kernels", {"name": "python3"})["id"]
            self.session = uuid.uuid4().hex
            self.ws = websocket.create_connection(
                f"ws://127.0.0.1:{self.port}/api/kernels/{self.kernel_id}/channels?session_id={self.session}",
                timeout=1.0,
            )
        except BaseException:
            self.close()
            raise
        self._stopping = False
        # The pump thread: the only reader of the websocket; records IOPub and replies.
        self._pump_thread = threading.Thread(target=self._pump, name="server-frontend-ws", daemon=True)
        self._pump_thread.start()
        self.execute("pass", timeout=start_timeout)

    def _await_server(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.base + "/api/status", timeout=2).read()
                return
            except OSError as exc:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"jupyter server exited ({self.proc.returncode}); see {self.log_path}") from exc
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jupyter server: /api/status did not answer within {timeout:g} s") from exc
                time.sleep(0.2)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def _pump(self) -> None:
        while not self._stopping:
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            except (OSError, websocket.WebSocketException):
                return  # closed
            parent = msg.get("parent_header", {}).get("msg_id", "")
            kind = msg.get("msg_type") or msg["header"]["msg_type"]
            with self._cond:
                if msg.get("channel") == "iopub" and kind == "stream":
                    self.streams[parent][msg["content"]["name"]].append(msg["content"]["text"])
                elif msg.get("channel") == "iopub" and kind == "status":
                    if msg["content"]["execution_state"] == "idle":
                        self._idle.add(parent)
                elif msg.get("channel") == "shell":
                    self._replies[parent] = msg
                self._cond.notify_all()

    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": "test", "session": self.session, "msg_type": msg_type,
                  "version": "5.3", "date": dt.datetime.now(dt.timezone.utc).isoformat()}  # fmt: skip
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "metadata": {}, "content": content,
                                 "channel": "shell", "buffers": []}))  # fmt: skip
        return msg_id

    def _await(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{what}: not within {timeout:g} s")
                self._cond.wait(min(left, 0.5))

    def execute(self, code: str, timeout: float = 60.0) -> str:
        """Run ``code`` and wait for its reply and idle; its msg_id (the key of ``streams``)."""
        msg_id = self._send(
            "execute_request",
            {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
             "stop_on_error": True},
        )  # fmt: skip
        self._await(lambda: msg_id in self._replies and msg_id in self._idle, timeout, f"reply to {code[:60]!r}")
        reply = self._replies[msg_id]["content"]
        if reply["status"] != "ok":
            raise AssertionError(f"{code[:60]!r} failed: {reply.get('ename')}: {reply.get('evalue')}")
        return msg_id

    def text(self, msg_id: str, name: str) -> str:
        with self._cond:
            return "".join(self.streams[msg_id][name])

    def server_log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Shut the kernel down through the server, then stop the server (bounded waits)."""
        self._stopping = True
        if self.ws is not None:
            try:
                req = urllib.request.Request(f"{self.base}/api/kernels/{self.kernel_id}", method="DELETE")
                urllib.request.urlopen(req, timeout=20).read()
            except OSError:
                pass  # the server's own shutdown below stops the kernel too
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()
