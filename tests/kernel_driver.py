"""A minimal frontend on jupyter_client: runs cells in a real ipykernel and records IOPub.

Every IOPub message is kept, grouped by the request that caused it, so a test can check
that output landed in the cell that produced it and nowhere else.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Cell:
    msg_id: str
    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    def stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"] for m in self.messages if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    @property
    def stderr(self) -> str:
        return self.stream("stderr")

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    @property
    def error(self) -> dict[str, Any] | None:
        for m in self.messages:
            if m["msg_type"] == "error":
                return m["content"]
        # IPython reports a UsageError only in the reply (and as text on stderr).
        if self.reply["content"]["status"] == "error":
            return self.reply["content"]
        return None

    def result_text(self) -> str | None:
        for m in self.messages:
            if m["msg_type"] == "execute_result":
                return m["content"]["data"]["text/plain"]
        return None

    def stream_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] == "stream"]


def _kernel_manager(python: str | None, specs: Path) -> KernelManager:
    """A manager for this venv's kernel, or for an ipykernel installed under ``python`` (its
    kernelspec written under ``specs``)."""
    if python is None:
        return KernelManager(kernel_name="python3")
    import json

    from jupyter_client.kernelspec import KernelSpecManager

    (specs / "other").mkdir()
    argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (specs / "other" / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "other", "language": "python"})
    )
    return KernelManager(kernel_name="other", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]))


class KernelDriver:
    def __init__(self, extra_env: dict[str, str] | None = None, python: str | None = None) -> None:
        self._specs = Path(tempfile.mkdtemp(prefix="ipylogfwd-kernelspec-"))  # removed at shutdown
        self.km = _kernel_manager(python, self._specs)
        env = None
        if extra_env or python:
            import os

            env = {**os.environ, **(extra_env or {})}
            if python:
                # The other interpreter imports ipylogfwd from this checkout.
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
        self.km.start_kernel(env=env) if env else self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.by_parent: dict[str, list[dict[str, Any]]] = defaultdict(list)

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid  # type: ignore[union-attr]

    def _pump(self, timeout: float) -> dict[str, Any] | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            return None
        self.by_parent[msg["parent_header"].get("msg_id", "")].append(msg)
        return msg

    def execute(self, code: str, timeout: float = 120.0) -> Cell:
        """Run ``code`` as one cell; return once its reply and its idle status are in."""
        msg_id = self.kc.execute(code)
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell did not go idle within {timeout} s: {code[:80]!r}")
            msg = self._pump(min(left, 1.0))
            if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
                idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
        return Cell(msg_id, reply, self.by_parent[msg_id])

    def start(self, code: str) -> str:
        """Send a cell without waiting for it; its msg_id."""
        return self.kc.execute(code)

    def wait_idle(self, msg_id: str, timeout: float = 60.0) -> Cell:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.by_parent.get(msg_id, []):
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
                    while reply["parent_header"].get("msg_id") != msg_id:
                        reply = self.kc.get_shell_msg(timeout=max(1.0, deadline - time.monotonic()))
                    return Cell(msg_id, reply, self.by_parent[msg_id])
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell {msg_id} did not go idle within {timeout} s")
            self._pump(min(left, 0.5))

    def wait_for_output(self, msg_id: str, text: str, timeout: float = 60.0) -> None:
        """Wait until the cell's streams contain ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            got = "".join(
                m["content"].get("text", "") for m in self.by_parent.get(msg_id, []) if m["msg_type"] == "stream"
            )
            if text in got:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r} did not appear in the cell's output within {timeout} s")
            self._pump(min(left, 0.5))

    def drain(self, seconds: float) -> None:
        """Record IOPub messages for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.2))

    def executed_stdout(self, msg_id: str, name: str = "stdout") -> str:
        """All ``name`` stream text recorded so far for the cell ``msg_id``."""
        return "".join(
            m["content"]["text"]
            for m in self.by_parent.get(msg_id, [])
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
        finally:
            shutil.rmtree(self._specs, ignore_errors=True)
