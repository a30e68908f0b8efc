"""The reader: one thread that owns the read ends of every proc's stdout and stderr pipes.

The "ipylogfwd-reader" thread waits on all pipes at once (a selector, plus a wake pipe for
commands, as wurlitzer does), reads whatever is there, writes the data bytes to the log
files, frames them (``framing``) and puts the items on the proc's queue (``queues``) in read
order. It is the only thread that touches the pipes, the framers and the log files.

* Back-pressure: a proc whose queue is over budget is not read until the dispatcher drains
  it; its pipe fills and its writes block. Memory stays bounded; no byte is dropped.
* A partial line held for ``idle_release`` seconds is released, so a prompt or a progress
  bar redrawn with ``\\r`` shows (and moves) without waiting for its ``\\n`` (``BLOCK_HOLD``
  when the line was cut by a full buffer rather than left open by the proc).
* Weak barriers: on request, read what is in the pipe now and queue a barrier behind it,
  for a proc that did not serve a flush in time (it "got everything read so far").
* Retiring a rank whose proc was killed: read what is in its pipes now, queue each stream's
  end and close them, even if a process that escaped the kill still holds a pipe open; the
  rank's next proc then gets new pipes (``add``) and its log files continue the old ones.
* Display bundles: each proc's third pipe carries its bundles as frames (``displays``); the
  stdout framer takes each one at its ``D`` marker, so it is queued in its place among the
  lines. That pipe is read along with the proc's streams (paused with them), and also held
  back while too many bundles wait for their markers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import selectors
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .displays import DisplayFrames
from .framing import DEFAULT_MAX_LINE, StreamFramer
from .items import STDERR, STDOUT, Barrier, BarrierKey, Item, Log
from .logfiles import LogFile, log_path
from .queues import Mailboxes

READ_SIZE = 1 << 18
PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
WEAK_DRAIN_LIMIT = 16 << 20
FLOOD_READ = 1 << 15
FLOOD_PAUSE = 0.002
"""After a round of reads that got at least ``FLOOD_READ`` bytes, the reader waits
``FLOOD_PAUSE`` seconds before it looks again: procs that flood fill their pipes meanwhile
(1 MiB each holds far more than that pause's output), and the next round takes it in a few
large reads instead of one wake-up, read and queue handoff per block a proc flushes."""
BLOCK_READ = 4096
"""A read at least this big that ends mid-line came from a buffer that filled (a proc's
stdio flushing a block), not from a prompt: the rest of the line is still in the proc's
buffer, and comes with its next flush."""
BLOCK_HOLD = 1.0
"""How long a partial line left by such a read is held before it is released anyway. A
proc that floods its output on a busy machine can wait longer than ``idle_release`` for a
cpu between two blocks; releasing then would show the line cut in two."""


def make_pipe() -> tuple[int, int]:
    """A pipe for one proc stream: (non-blocking read end, write end), enlarged when allowed."""
    r, w = os.pipe()
    with contextlib.suppress(OSError):  # a smaller pipe only means more, smaller reads
        fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
    os.set_blocking(r, False)
    return r, w


@dataclass
class _Stream:
    rank: int
    stream: int
    fd: int
    framer: StreamFramer
    log: LogFile
    partial_since: float | None = None  # when the partial line now held began to be held
    partial_hold: float = 0.0  # how long that line may be held before it is released
    open: bool = True


@dataclass
class _ProcPipes:
    rank: int
    streams: dict[int, _Stream] = field(default_factory=dict)
    paused: bool = False
    frames: DisplayFrames | None = None
    frames_registered: bool = False


@dataclass
class _Add:
    rank: int
    fds: dict[int, int]
    token: bytes
    logdir: Path
    display_fd: int | None


@dataclass
class _Weak:
    key: BarrierKey
    ranks: list[int]
    done: threading.Event


@dataclass
class _Retire:
    ranks: list[int]
    done: threading.Event


@dataclass
class _Stop:
    pass


_Command = _Add | _Weak | _Retire | _Stop


class _LogErrors:
    """Why log files failed: they fail on the reader thread and are asked for by callers, so
    the table is guarded by a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._errors: dict[tuple[int, int], str] = {}

    def recorder(self, rank: int, stream: int) -> Callable[[str], None]:
        """What ``rank``'s log file of ``stream`` calls when it fails."""

        def failed(error: str) -> None:
            with self._lock:
                self._errors[(rank, stream)] = error

        return failed

    def snapshot(self) -> dict[tuple[int, int], str]:
        with self._lock:
            return dict(self._errors)


class Reader:
    """Reads every proc's pipes into the mailboxes. Methods are safe to call from any thread."""

    def __init__(
        self,
        mailboxes: Mailboxes,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        idle_release: float = 0.1,
    ) -> None:
        self._mailboxes = mailboxes
        self._max_line = max_line
        self._idle_release = idle_release
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._procs: dict[int, _ProcPipes] = {}  # reader thread only
        self._logs: list[LogFile] = []  # reader thread only; kept after EOF, closed at stop
        self._log_errors = _LogErrors()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._last_idle_check = 0.0
        self.error: BaseException | None = None
        # The reader thread: owns every pipe read end, framer and log file (see module doc).
        self._thread = threading.Thread(target=self._run, name="ipylogfwd-reader", daemon=True)
        self._thread.start()

    # --- requests from other threads ------------------------------------------------------
    def add(
        self, rank: int, out_fd: int, err_fd: int, token: bytes, logdir: Path, display_fd: int | None = None
    ) -> None:
        """Start reading a proc's pipes (the reader closes them at EOF)."""
        self._send(_Add(rank, {STDOUT: out_fd, STDERR: err_fd}, token, logdir, display_fd))

    def weak_barrier(self, key: BarrierKey, ranks: list[int], timeout: float) -> bool:
        """Queue ``key`` behind everything readable now on ``ranks``; False if not done in time."""
        done = threading.Event()
        self._send(_Weak(key, list(ranks), done))
        return done.wait(timeout)

    def retire(self, ranks: list[int], timeout: float) -> bool:
        """Queue the end of ``ranks``' streams behind everything readable from them now, and
        close their pipes and log files; False if that was not done within ``timeout``."""
        done = threading.Event()
        self._send(_Retire(list(ranks), done))
        return done.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading (after this, nothing more is queued) and close every fd and log."""
        if self._thread.is_alive():
            self._send(_Stop())
            self._thread.join(timeout)

    def log_errors(self) -> dict[tuple[int, int], str]:
        """(rank, stream) -> why that log file stopped, for every log file that failed."""
        return self._log_errors.snapshot()

    def _send(self, cmd: _Command) -> None:
        self._commands.put(cmd)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # --- the reader thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported through .error and the group's status
            self.error = exc
            raise
        finally:
            self._close_all()

    def _loop(self) -> None:
        while True:
            paused = any(p.paused for p in self._procs.values())
            events = self._sel.select(0.01 if paused else self._idle_release / 2)
            got = 0
            for key, _ in events:
                if key.data is None:
                    if self._handle_commands():
                        return
                elif isinstance(key.data, _Stream):
                    got += self._read(key.data)
                else:
                    self._read_frames(key.data)  # a proc's display pipe
            self._resume_drained()
            self._release_idle()
            if got >= FLOOD_READ:
                time.sleep(FLOOD_PAUSE)

    def _handle_commands(self) -> bool:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return False
            if isinstance(cmd, _Stop):
                return True
            if isinstance(cmd, _Add):
                self._add(cmd)
            elif isinstance(cmd, _Retire):
                self._retire(cmd)
            else:
                self._weak(cmd)

    def _add(self, cmd: _Add) -> None:
        proc = _ProcPipes(cmd.rank)
        self._mailboxes.add(cmd.rank)
        if cmd.display_fd is not None:
            proc.frames = DisplayFrames(cmd.display_fd)
        for stream, fd in cmd.fds.items():
            log = LogFile(log_path(cmd.logdir, cmd.rank, stream), self._log_errors.recorder(cmd.rank, stream))
            self._logs.append(log)
            takes = proc.frames.take if proc.frames is not None and stream == STDOUT else None
            framer = StreamFramer(stream, cmd.token, self._max_line, log.write, takes)
            st = _Stream(cmd.rank, stream, fd, framer, log)
            proc.streams[stream] = st
            self._sel.register(fd, selectors.EVENT_READ, st)
        self._procs[cmd.rank] = proc
        self._sync_frames(proc)

    def _read(self, st: _Stream) -> int:
        """Read what ``st``'s pipe holds (one read) and queue its items; the bytes read."""
        try:
            data = os.read(st.fd, READ_SIZE)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""  # treat a broken pipe as its end: the proc side is gone
        if data:
            items = st.framer.feed(data)
            if not st.framer.has_partial:
                st.partial_since = None
            elif st.partial_since is None or b"\n" in data:
                # A partial line begins here (or the held one ended and another began): the
                # age that releases it counts from now, not from the first of a run of them.
                st.partial_since = time.monotonic()
                st.partial_hold = BLOCK_HOLD if len(data) >= BLOCK_READ else self._idle_release
        else:
            items = st.framer.finish()
            self._close(st)
        if any(not isinstance(i, Log) for i in items):
            st.log.flush()  # past a barrier or cell end, the log file is complete too
        self._mailboxes.put(st.rank, items)
        proc = self._procs.get(st.rank)
        if proc is not None and not proc.paused and self._mailboxes.over_budget(st.rank):
            self._pause(proc)
        if proc is not None and proc.frames is not None:
            self._sync_frames(proc)  # markers taken bundles: the display pipe may be read again
        return len(data)

    def _read_frames(self, proc: _ProcPipes) -> None:
        if proc.frames is not None:
            proc.frames.read()
            self._sync_frames(proc)

    def _sync_frames(self, proc: _ProcPipes) -> None:
        """Read the display pipe while its proc is read and few bundles wait; close it at its
        end (bundles already read stay until the stdout stream ends too)."""
        frames = proc.frames
        if frames is None or not frames.open:
            return
        want = not frames.eof and not proc.paused and not frames.held_back
        if want and not proc.frames_registered:
            self._sel.register(frames.fd, selectors.EVENT_READ, proc)
        elif not want and proc.frames_registered:
            self._sel.unregister(frames.fd)
        proc.frames_registered = want
        if frames.eof:
            os.close(frames.fd)
            frames.open = False

    def _pause(self, proc: _ProcPipes) -> None:
        proc.paused = True
        for st in proc.streams.values():
            if st.open:
                self._sel.unregister(st.fd)
        self._sync_frames(proc)

    def _resume_drained(self) -> None:
        for proc in self._procs.values():
            if proc.paused and self._mailboxes.below(proc.rank, 0.5):
                self._resume(proc)

    def _resume(self, proc: _ProcPipes) -> None:
        proc.paused = False
        for st in proc.streams.values():
            if st.open:
                self._sel.register(st.fd, selectors.EVENT_READ, st)
        self._sync_frames(proc)

    def _release_idle(self) -> None:
        now = time.monotonic()
        if now - self._last_idle_check < self._idle_release / 2:
            return  # keep this scan off the per-read hot path
        self._last_idle_check = now
        for proc in self._procs.values():
            for st in proc.streams.values():
                # By age, not by quiet: a progress bar redrawing with \r every few ms never
                # goes quiet, and must still be shown as it moves. But not while the rest of
                # the line may be waiting unread: the proc is paused (its pipe is full), or
                # this thread fell behind (read the pipe first), or the proc's buffer filled
                # mid-line (see BLOCK_READ), else a busy machine shows the line cut in two.
                if st.partial_since is not None and now - st.partial_since >= st.partial_hold:
                    if st.open and not proc.paused:
                        self._read(st)
                    if st.partial_since is not None and not proc.paused:
                        self._mailboxes.put(st.rank, st.framer.release_partial())
                        st.partial_since = None
                st.log.flush()

    def _weak(self, cmd: _Weak) -> None:
        for rank in cmd.ranks:
            proc = self._procs.get(rank)
            if proc is None:
                continue
            for st in list(proc.streams.values()):
                if not st.open:
                    continue  # EOF already queued: the dispatcher completes the barrier there
                items = self._drain(st, to_end=False)
                if st.open:
                    items += st.framer.release_partial()
                    items.append(Barrier(st.stream, cmd.key, weak=True))
                st.log.flush()
                self._mailboxes.put(rank, items)
        cmd.done.set()

    def _retire(self, cmd: _Retire) -> None:
        for rank in cmd.ranks:
            proc = self._procs.get(rank)
            if proc is None:
                continue
            if proc.paused:
                self._resume(proc)  # _close unregisters what is registered
            for st in proc.streams.values():
                self._mailboxes.put(rank, self._drain(st, to_end=True))
                st.log.close()
                if st.log in self._logs:
                    self._logs.remove(st.log)
            # Only now: closing its stdout (above) closes its display pipe through the record.
            del self._procs[rank]
        cmd.done.set()

    def _drain(self, st: _Stream, *, to_end: bool) -> list[Item]:
        """The items of what ``st``'s pipe holds now (up to ``WEAK_DRAIN_LIMIT`` bytes). At the
        pipe's end, or with ``to_end`` once nothing more is readable now (a killed proc: past the
        limit, what comes is a process that escaped the kill), the stream ends and is closed."""
        items: list[Item] = []
        drained = 0
        while st.open:
            data: bytes | None
            try:
                data = os.read(st.fd, READ_SIZE) if drained < WEAK_DRAIN_LIMIT else None
            except BlockingIOError:
                data = None
            except OSError:
                data = b""  # a broken pipe is its end: the proc side is gone
            if data is None and not to_end:
                break  # everything there now is taken; the stream goes on
            if not data:
                items += st.framer.finish()
                self._close(st)
                break
            drained += len(data)
            items += st.framer.feed(data)
        return items

    def _close(self, st: _Stream) -> None:
        st.open = False
        proc = self._procs.get(st.rank)
        if proc is None or not proc.paused:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(st.fd)
        os.close(st.fd)
        st.log.flush()
        if proc is not None and proc.frames is not None and st.stream == STDOUT:
            # No marker can follow: the bundles still held can never be shown.
            if proc.frames_registered:
                self._sel.unregister(proc.frames.fd)
                proc.frames_registered = False
            proc.frames.close()

    def _close_all(self) -> None:
        for proc in self._procs.values():
            for st in proc.streams.values():
                if st.open:
                    st.open = False
                    os.close(st.fd)
            if proc.frames is not None:
                proc.frames.close()
        for log in self._logs:
            log.close()
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
