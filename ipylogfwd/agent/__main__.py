"""``python -m ipylogfwd.agent`` (or ``ipylogfwd-agent``): the agent of one host.

It reads what it needs to join (the kernel's endpoint and public key, and the one-time join
key or its own keypair: ``wire.admission.AgentSecrets`` as JSON) from its standard input, or
from a file given as ``@PATH`` (which must not be readable by others), never from its command
line. Launchers start it; a user need not.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import stat
import sys

from ..wire.admission import AgentSecrets

_PR_SET_PDEATHSIG = 1


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ipylogfwd-agent", description="The ipylogfwd agent of one host.")
    p.add_argument("secrets", nargs="?", default="-", help="@PATH of a 0600 JSON file, or - (default) for stdin")
    p.add_argument("--host", default="", help="this host's name in the group (default: its hostname)")
    p.add_argument("--lease", type=float, default=30.0, help="give up after this long without word from the kernel")
    p.add_argument("--die-with-parent", action="store_true", help="exit when the process that started it exits")
    return p.parse_args(argv)


def read_secrets(source: str) -> AgentSecrets:
    if source == "-":
        return AgentSecrets.loads(sys.stdin.readline())
    if not source.startswith("@"):
        raise SystemExit("ipylogfwd-agent: secrets come from stdin (-) or a file (@PATH), never the command line")
    path = source[1:]
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SystemExit(f"ipylogfwd-agent: {path} is readable by others (chmod 600 it)")
    with open(path, encoding="utf-8") as f:
        return AgentSecrets.loads(f.read())


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.die_with_parent and sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # A kernel interrupt reaches procs through the kernel's own request, never by a signal
    # to the agent's terminal group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    secrets = read_secrets(args.secrets)
    from .host import HostAgent  # after the secrets: a bad invocation fails fast and light

    agent = HostAgent(secrets, host=args.host or socket.gethostname(), lease=args.lease)
    signal.signal(signal.SIGTERM, lambda *_: agent.give_up("terminated by SIGTERM", 143))
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
