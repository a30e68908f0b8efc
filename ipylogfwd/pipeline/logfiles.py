"""Per-proc log files: every data byte a proc writes, complete and in read order.

One file per proc and stream (``rank0.stdout.log``, ``rank0.stderr.log``) under the group's
log directory. Markers are not data and are not logged. A file that cannot be written (disk
full, directory gone) is closed with its error recorded, and forwarding to the notebook goes on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .items import STDERR, STDOUT, STREAM_NAMES


def default_logdir() -> Path:
    """A fresh private directory for one group's logs."""
    return Path(tempfile.mkdtemp(prefix=f"ipylogfwd-{os.getpid()}-"))


def log_path(logdir: Path, rank: int, stream: int) -> Path:
    return logdir / f"rank{rank}.{STREAM_NAMES[stream]}.log"


def copy_logs(logdir: Path, ranks: list[int], dest: Path) -> list[Path]:
    """Copy ``ranks``' log files from ``logdir`` into ``dest`` (created if need be); the
    files written."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for rank in ranks:
        for stream in (STDOUT, STDERR):
            src = log_path(logdir, rank, stream)
            if src.exists():
                out.append(Path(shutil.copy2(src, dest / src.name)))
    return out


class LogFile:
    """An append-only log file that degrades to nothing, with a reason, when writes fail."""

    def __init__(self, path: Path, on_error: Callable[[str], None] | None = None) -> None:
        """Open ``path`` for appending; ``on_error(reason)`` is called once if it fails."""
        self.path = path
        self.error: str | None = None
        self._on_error = on_error
        self._file: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "ab", buffering=1 << 16)  # noqa: SIM115 (held open for the proc's life)
        except OSError as exc:
            self._set_error(f"cannot open {path}: {exc}")

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
                self._set_error(f"writing {self.path}: {exc}")
            self._file = None

    def _fail(self, exc: OSError) -> None:
        self._set_error(f"writing {self.path}: {exc}")
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # the write already failed; that is the error
                file.close()

    def _set_error(self, error: str) -> None:
        if self.error is None:
            self.error = error
            if self._on_error is not None:
                self._on_error(error)
