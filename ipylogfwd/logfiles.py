"""Per-proc log files: every data byte a proc writes, complete and in read order.

One file per proc and stream (``rank0.stdout.log``, ``rank0.stderr.log``) under the group's
log directory. Markers are not data and are not logged. A file that cannot be written (disk
full, directory gone) is closed with its error recorded, and forwarding to the notebook goes on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from .queues import STREAM_NAMES


def default_logdir() -> Path:
    """A fresh private directory for one group's logs."""
    return Path(tempfile.mkdtemp(prefix=f"ipylogfwd-{os.getpid()}-"))


def log_path(logdir: Path, rank: int, stream: int) -> Path:
    return logdir / f"rank{rank}.{STREAM_NAMES[stream]}.log"


class LogFile:
    """An append-only log file that degrades to nothing, with a reason, when writes fail."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._file: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "ab", buffering=1 << 16)
        except OSError as exc:
            self.error = f"cannot open {path}: {exc}"

    def write(self, data: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(data)
        except OSError as exc:
            self._fail(exc)

    def flush(self) -> None:
        if self._file is None:
            return
        try:
            self._file.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self.error = self.error or f"writing {self.path}: {exc}"
            self._file = None

    def _fail(self, exc: OSError) -> None:
        self.error = f"writing {self.path}: {exc}"
        try:
            assert self._file is not None
            self._file.close()
        except OSError:
            pass
        self._file = None
