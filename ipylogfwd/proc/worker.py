"""The proc side: what runs inside each worker process.

A proc is started by ``multiprocessing`` (spawn) with ``main`` as its target. It has:

* fds 1 and 2 pointing at pipes whose read ends the kernel's reader owns, so Python, C and
  child-process output are all captured, and bytes written before a crash stay in the pipe;
* a main thread that executes cell bodies, one at a time, in one persistent namespace, and
  marks the start (``C``) and end (``E``) of each cell in-band on both streams;
* rich output (``display()``, rich results, matplotlib figures; ``display.RichOutput``): each
  bundle as one frame on a third pipe, the display pipe, and a ``D`` marker on stdout in its
  place (``wire.displays`` explains why the bundle does not go in stdout itself);
* a control thread ("ipylogfwd-proc-control") that receives requests from the kernel, serves
  flush barriers (``B`` markers) and ``push``/``pull`` of values even while a cell runs,
  flushes stdout's buffer every ``flush_interval`` so output is live, and sends heartbeats.

How stdout and stderr buffer (stderr is line-buffered except under a flood) is ``stdio``'s
concern; the control thread flushes them every ``flush_interval``.

Markers are written on private duplicates of the two pipes, so a cell that closes fd 1 or 2
(or points them elsewhere) leaves the proc's barriers and cell ends working. A third private
pipe takes stack dumps: ``faulthandler`` writes every thread's stack there on
``STACKS_SIGNAL`` without needing the GIL, so even a proc stuck in C code can say where it
is. The proc is its descendants' subreaper (``tree``), so it can take down, when it stops,
children that left its process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from ..wire import displays, markers, proc_messages
from . import execute, tree
from .display import RichOutput
from .execute import Executor, main_module
from .stdio import StdStreams

HEARTBEAT_INTERVAL = 0.5
MAX_REPR = 10_000
_PR_SET_PDEATHSIG = 1
STACKS_SIGNAL = signal.SIGRTMIN + 4
"""Makes a proc dump every thread's stack on its stacks pipe (a real-time signal: no library
is likely to use it for anything else)."""


class _Worker:
    def __init__(
        self,
        conn: Connection,
        token: bytes,
        flush_interval: float,
        mark_fds: tuple[int, int],
        display_fd: int,
        streams: StdStreams,
    ) -> None:
        self.conn = conn
        self.token = token
        self.flush_interval = flush_interval
        self.mark_fds = mark_fds  # private duplicates of fds 1 and 2: markers survive os.close(1)
        self.display_fd = display_fd
        self.streams = streams
        self._display_id = 0  # under _mark_lock
        self.jobs: queue.SimpleQueue[proc_messages.Exec | None] = queue.SimpleQueue()
        self.executor = Executor(main_module())
        self.busy_cell: int | None = None
        # Both threads send on the one connection; a send must not interleave with another.
        self._send_lock = threading.Lock()
        # Flush-then-write of a marker must not interleave with another marker's (nor a
        # display frame and its marker with anything).
        self._mark_lock = threading.Lock()
        self._libc = _libc()
        self.rich: RichOutput | None = None  # made in main(), once stdout is set up

    def send(self, msg: proc_messages.FromProc) -> None:
        with self._send_lock:
            self.conn.send(msg)

    def flush_output(self) -> None:
        """Push Python's and C's buffered output into fds 1 and 2."""
        self.streams.flush()
        if self._libc is not None:
            self._libc.fflush(None)

    def mark(self, kind: markers.MarkerKind, value: int) -> None:
        """Write a marker on both streams behind everything written so far."""
        data = markers.encode(self.token, kind, value)
        with self._mark_lock:
            self.flush_output()
            for fd in self.mark_fds:
                _write_all(fd, data)

    def display(self, payload: bytes) -> None:
        """Show one bundle in its place: its frame on the display pipe, then its marker on
        stdout behind everything written so far. Both are written whole: an interrupt that
        comes meanwhile is raised after them (a torn frame would garble every later one)."""
        with self._mark_lock:
            self.flush_output()
            self._display_id += 1
            frame = displays.frame(self._display_id, payload)
            marker = markers.encode(self.token, "D", self._display_id)
            with _interrupts_deferred():
                _write_all(self.display_fd, frame)
                _write_all(self.mark_fds[0], marker)

    # --- control thread -------------------------------------------------------------------
    def control_loop(self) -> None:
        last_beat = 0.0
        while True:
            try:
                ready = self.conn.poll(self.flush_interval)
                msg = self.conn.recv() if ready else None
            except (EOFError, OSError):
                _die_with_kernel()
                return
            if msg is not None:
                proc_messages.check(msg, "to_proc")
                if msg["type"] == "exec":
                    self.jobs.put(msg)
                elif msg["type"] == "flush":
                    self.mark("B", msg["version"])
                    try:
                        self.send(proc_messages.flushed(msg["version"]))
                    except (EOFError, OSError):
                        _die_with_kernel()
                        return
                elif msg["type"] == "shutdown":
                    self.jobs.put(None)
                elif msg["type"] in ("push", "pull"):
                    try:
                        self.send(self.serve_data(msg))
                    except (EOFError, OSError):
                        _die_with_kernel()
                        return
            else:
                self.streams.tick()
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_INTERVAL:
                last_beat = now
                try:
                    self.send(proc_messages.heartbeat(self.busy_cell))
                except (EOFError, OSError):
                    _die_with_kernel()
                    return

    def serve_data(self, msg: proc_messages.Push | proc_messages.Pull) -> proc_messages.Data:
        """Set or read names of the namespace, at once (a running cell sees a push from its
        next lookup of the name; a pull reads the value as it is at that moment)."""
        values: dict[str, bytes] = {}
        errors: dict[str, str] = {}
        if msg["type"] == "push":
            for name, blob in msg["values"].items():
                try:
                    self.executor.namespace[name] = pickle.loads(blob)
                except Exception as exc:  # noqa: BLE001 - whatever unpickling raised is the answer
                    errors[name] = f"cannot unpickle it here: {type(exc).__name__}: {exc}"
            return proc_messages.data(msg["req"], values, errors)
        for name in msg["names"]:
            if name not in self.executor.namespace:
                errors[name] = f"name {name!r} is not defined in this proc"
                continue
            value = self.executor.namespace[name]
            try:
                values[name] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - whatever pickling raised is the answer
                errors[name] = f"cannot pickle it (a {type(value).__name__}): {type(exc).__name__}: {exc}"
        return proc_messages.data(msg["req"], values, errors)

    # --- main thread ----------------------------------------------------------------------
    def main_loop(self) -> None:
        while True:
            try:
                job = self.jobs.get()
            except KeyboardInterrupt:
                continue  # an interrupt while idle has nothing to stop
            if job is None:
                break
            self.run_cell(job)
        self.flush_output()

    def run_cell(self, job: proc_messages.Exec) -> None:
        cell = job["cell"]
        self.busy_cell = cell
        self.mark("C", cell)
        self.send(proc_messages.started(cell))
        try:
            try:
                try:
                    if self.rich is not None:
                        self.rich.pre_execute()
                    has_value, value = self.executor.run(job["code"], job["filename"])
                    if has_value and self.rich is not None:
                        self.rich.result(value)
                finally:
                    if self.rich is not None:
                        self.rich.post_execute()  # figures the cell drew, also when it failed
                reply = _pack(cell, value) if has_value else proc_messages.result(cell)
            except BaseException as exc:  # noqa: BLE001 - the user's error, whatever it is, is the result
                text = _format_exception(exc)
                with contextlib.suppress(Exception):  # a broken user stderr: the kernel still gets the text
                    sys.stderr.write(text)
                reply = proc_messages.result(cell, error=text, error_type=type(exc).__name__)
            self.mark("E", cell)
        except KeyboardInterrupt:
            # Interrupted while reporting: still end the cell so the kernel is not left waiting.
            self.mark("E", cell)
            reply = proc_messages.result(cell, error="KeyboardInterrupt\n", error_type="KeyboardInterrupt")
        self.busy_cell = None
        self.send(reply)


def main(
    env: dict[str, str],
    cwd: str,
    out_fd: int,
    err_fd: int,
    display_fd: int,
    stacks_fd: int,
    conn: Connection,
    token: bytes,
    flush_interval: float,
    die_with_parent: bool,
) -> None:
    """Entry point of a proc (the ``multiprocessing`` target). Returns when told to shut down.

    ``env`` becomes the environment (the kernel's, with ``group.environment``'s variables) and
    ``cwd`` the working directory, first; ``out_fd`` and
    ``err_fd`` become fds 1 and 2 and stay open, private, for the markers; ``display_fd``
    carries display bundles (``wire.displays``); ``stacks_fd`` takes stack dumps."""
    os.environ.clear()
    os.environ.update(env)
    with contextlib.suppress(OSError):  # gone since: the proc starts where it is
        os.chdir(cwd)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    for fd in (out_fd, err_fd, display_fd, stacks_fd):
        os.set_inheritable(fd, False)  # private: no child process gets them
    # Own process group: the kernel forwards SIGINT itself and can kill the proc's children.
    os.setpgid(0, 0)
    libc = _libc()
    tree.become_subreaper(libc)
    if die_with_parent:
        _set_parent_death_signal(libc)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    streams = StdStreams()
    streams.install()
    faulthandler.enable(file=sys.stderr)
    # A full stacks pipe (nobody asked for so long) must cut a dump short, not block the proc.
    os.set_blocking(stacks_fd, False)
    faulthandler.register(STACKS_SIGNAL, file=stacks_fd, all_threads=True, chain=False)
    proc = _Worker(conn, token, flush_interval, (out_fd, err_fd), display_fd, streams)
    proc.rich = RichOutput(proc.display)
    proc.send(proc_messages.hello(os.getpid()))
    # The control thread serves flushes and heartbeats while the main thread runs cells.
    threading.Thread(target=proc.control_loop, name="ipylogfwd-proc-control", daemon=True).start()
    proc.main_loop()
    # Told to stop: what this proc started goes with it, even what left its process group.
    tree.kill_descendants(os.getpid())


def _pack(cell: int, value: Any) -> proc_messages.Result:
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a user's __repr__ may raise anything; say so instead
        text = f"<unrepresentable {type(value).__name__}: {exc!r}>"
    if len(text) > MAX_REPR:
        text = text[:MAX_REPR] + "..."
    try:
        data: bytes | None = pickle.dumps(value)
    except Exception:  # noqa: BLE001 - unpicklable in any way: the repr stands in
        data = None
    return proc_messages.result(cell, value=data, value_repr=text)


def _format_exception(exc: BaseException) -> str:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, execute.__file__):
        tb = tb.tb_next  # hide the proc's own frames: the user's code is what failed
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """In the main thread, hold a SIGINT that arrives inside the block until its end."""
    if threading.current_thread() is not threading.main_thread():
        yield  # KeyboardInterrupt is only ever raised in the main thread
        return
    came: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
        if came:
            signal.raise_signal(signal.SIGINT)


def _libc() -> Any:
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _set_parent_death_signal(libc: Any) -> None:
    if libc is not None and sys.platform.startswith("linux"):
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _die_with_kernel() -> None:
    """The control channel closed: the kernel is gone. Take this proc and its children down."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        try:
            tree.kill_descendants(os.getpid())
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(1)
