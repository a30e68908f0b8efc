"""What an agent tells the kernel about where it is: its address on the route to the kernel,
the interface that carries it, and a free port (for node 0's ``MASTER_PORT``)."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
from urllib.parse import urlsplit

_SIOCGIFADDR = 0x8915


def route_to(endpoint: str) -> tuple[str, str]:
    """(this host's IPv4 address toward ``endpoint``'s host, the interface that has it).

    A UDP socket "connected" to the kernel makes the kernel pick the route without sending
    anything; the interface is found by address ("" if none matches).
    """
    parts = urlsplit(endpoint)
    if parts.hostname is None:
        raise ValueError(f"no host in endpoint {endpoint!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((parts.hostname, parts.port or 9))
        addr = s.getsockname()[0]
    return addr, interface_of(addr)


def interface_of(addr: str) -> str:
    """The name of the interface that has IPv4 address ``addr``, or ""."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):  # an interface without an IPv4 address
                req = struct.pack("256s", name.encode()[:15])
                got = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)
                if socket.inet_ntoa(got[20:24]) == addr:
                    return name
    return ""


def free_port(addr: str) -> int:
    """A TCP port free on ``addr`` now (it may be taken later: as torchrun does, we take the risk)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])
