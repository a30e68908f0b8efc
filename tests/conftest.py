from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from kernel_driver import KernelDriver  # noqa: E402


def _loaded_kernel() -> Iterator[KernelDriver]:
    k = KernelDriver()
    try:
        cell = k.execute("%load_ext ipylogfwd")
        assert cell.status == "ok", cell.stderr
        yield k
    finally:
        k.shutdown()


@pytest.fixture
def kernel() -> Iterator[KernelDriver]:
    """A fresh ipykernel with ipylogfwd loaded."""
    yield from _loaded_kernel()


@pytest.fixture(scope="module")
def shared_kernel() -> Iterator[KernelDriver]:
    """One ipykernel with ipylogfwd loaded, shared by a module's tests that leave it clean."""
    yield from _loaded_kernel()


LINE = re.compile(r"^\[(\d+)\] (.*)$")


def by_rank(text: str) -> dict[int, list[str]]:
    """Split rank-prefixed text into each rank's lines, in order."""
    out: dict[int, list[str]] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        assert m, f"line without a rank prefix: {line!r}"
        out.setdefault(int(m.group(1)), []).append(m.group(2))
    return out
