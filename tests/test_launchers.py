"""Launchers refuse what cannot work with a clear error before starting anything, and a group
whose hosts never come leaves nothing running."""

from __future__ import annotations

import re
import time

import psutil
import pytest

from ipylogfwd import ProcGroup, ProcStartError, UsageError
from ipylogfwd.launchers import CommandLauncher, LocalLauncher
from ipylogfwd.launchers.choose import choose


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CommandLauncher(["a", "b", "a"], "{agent}", per_host=1), "duplicate hosts: a"),
        (lambda: CommandLauncher(["a"], "ssh {host}", per_host=1), "must contain {agent}"),
        (lambda: CommandLauncher(2, "srun {host} {agent}", per_host=1), "cannot use {host}"),
        (lambda: CommandLauncher(["a"], "{agent}", per_host=0), "per_host must be a positive integer"),
        (lambda: LocalLauncher(hosts=0), "hosts must be a positive integer"),
    ],
)
def test_bad_launchers_are_refused_when_made(make: object, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        make()  # type: ignore[operator]


def test_procs_that_do_not_spread_evenly_start_nothing() -> None:
    before = set(psutil.Process().children(recursive=True))
    with pytest.raises(UsageError, match="5 procs cannot be spread 2 per host"):
        ProcGroup(5, launcher=CommandLauncher(["a", "b", "c"], "{agent}", per_host=2, listen="127.0.0.1"))
    with pytest.raises(UsageError, match="need 3 hosts; the launcher has 2"):
        ProcGroup(6, launcher=CommandLauncher(["a", "b"], "{agent}", per_host=2, listen="127.0.0.1"))
    assert set(psutil.Process().children(recursive=True)) == before


def test_a_host_that_never_connects_is_named_and_its_command_stopped() -> None:
    launcher = CommandLauncher(["quiet"], "echo starting >&2; sleep 300; {agent}", per_host=1, listen="127.0.0.1")
    start = time.monotonic()
    with pytest.raises(ProcStartError) as err:
        ProcGroup(1, launcher=launcher, start_timeout=2.0)
    took = time.monotonic() - start
    assert re.search(r"host\(s\) quiet did not connect within 2 s to tcp://127\.0\.0\.1:\d+", str(err.value)), err.value
    assert "starting" in str(err.value), "the command's own output is shown"
    assert took < 10, f"gave up after {took:.1f} s"
    began = time.time() - took - 1
    left = [
        p.pid
        for p in psutil.process_iter(["cmdline", "create_time"])
        if (p.info["cmdline"] or [])[:2] == ["sleep", "300"] and p.info["create_time"] >= began
    ]
    assert not left, f"the launch command was left running: {left}"


def test_launcher_names_in_the_magic_are_checked() -> None:
    with pytest.raises(UsageError, match="use local, ray, or the name of a launcher"):
        choose("nosuch", None, {})
    with pytest.raises(UsageError, match="is a int, not a launcher"):
        choose("x", None, {"x": 3})
    with pytest.raises(UsageError, match="--per-host goes with --launcher"):
        choose(None, 2, {})
    ours = LocalLauncher()
    picked = choose("ours", None, {"ours": ours})
    assert picked is not None and picked.make(4) is ours and picked.key == choose("ours", None, {"ours": ours}).key  # type: ignore[union-attr]
