"""The server extension (``ipylogfwd/serverext.py``): installed and enabled with the package,
it makes the server's end of every kernel websocket send small messages at once."""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
from server_frontend import ServerFrontend

_SYS_PIDFD_GETFD = 438  # Linux >= 5.6, every architecture


def _server_side_nodelay(fe: ServerFrontend) -> bool:
    """TCP_NODELAY on the server's end of ``fe``'s kernel websocket (read through a copy of
    the server's descriptor: pidfd_getfd, as root)."""
    port = fe.ws.sock.getsockname()[1]
    conns = [c for c in psutil.Process(fe.proc.pid).net_connections(kind="tcp") if c.raddr and c.raddr.port == port]
    assert len(conns) == 1, f"the server's end of the websocket from port {port}: {conns}"
    pidfd = os.pidfd_open(fe.proc.pid)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.syscall(_SYS_PIDFD_GETFD, pidfd, conns[0].fd, 0)
        assert fd >= 0, f"pidfd_getfd: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(pidfd)
    with socket.socket(fileno=fd) as sock:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


def test_the_extension_is_enabled_where_the_package_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True, text=True, timeout=120
    )
    text = out.stdout + out.stderr
    assert "ipylogfwd \x1b[32menabled" in text or "ipylogfwd enabled" in text, text
    assert "ipylogfwd 0" in text and "OK" in text.split("ipylogfwd 0", 1)[1].splitlines()[0], text


def test_kernel_websockets_send_small_messages_at_once(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this test reads the server's socket through pidfd_getfd: run it as root (CI does)"
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    fe = ServerFrontend(tmp_path / "on")
    try:
        assert _server_side_nodelay(fe), "Nagle's algorithm is on: small messages wait for the browser's ack"
    finally:
        fe.close()
    # Without the extension the server leaves Nagle's algorithm on: what the test reads is real.
    fe = ServerFrontend(tmp_path / "off", server_args=("--ServerApp.jpserver_extensions=ipylogfwd=False",))
    try:
        assert not _server_side_nodelay(fe)
    finally:
        fe.close()
