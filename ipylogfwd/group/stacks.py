"""Where every proc is: stack dumps (``%procs --stacks``, ``group.stacks()``).

Collecting (``collect``, used by a proc set on its host): each proc has registered
``faulthandler`` for a signal, writing every thread's stack on a private pipe. faulthandler
writes from the signal handler without taking the GIL, so a proc stuck in C code (a
collective that never returns, a loop holding the GIL) answers too. A dump has no end
marker; it is complete when its last line is the bottom frame of a proc's main thread (the
main thread is the oldest, so faulthandler lists it last), or, failing that (a main thread
deeper than faulthandler's 100 frames), once its pipe has been quiet for ``QUIET`` seconds.

Showing (``StacksReport``): the proc's own threads and frames are left out, the cell's frames
are named ``<procs cell N>`` with their source line (from the kernel's copy of the cell),
and ranks whose stacks are the same are shown once ("ranks 1-15: idle").
"""

from __future__ import annotations

import linecache
import os
import re
import selectors
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..ranks import compact_ranks

QUIET = 0.3
_BOTTOM = '  File "<string>", line 1 in <module>\n'  # multiprocessing's spawn bootstrap: `python -c ...`
_FRAME = re.compile(r'^  File "(.*)", line (\d+) in (.*)$')
_HEADER = re.compile(r"^(Current thread|Thread) (0x[0-9a-f]+) \(most recent call first\):$")
_OURS = re.compile(r"[/\\]ipylogfwd[/\\](proc|group|pipeline|wire|sinks)[/\\][^/\\]*\.py$|[/\\]multiprocessing[/\\]")


@dataclass(frozen=True)
class RawStacks:
    """What one proc wrote on its stacks pipe: faulthandler's text; ``complete`` if its end was
    seen, else it is what arrived before the timeout (empty: the proc did not answer)."""

    text: str
    complete: bool


def collect(targets: Mapping[int, tuple[int, int]], signum: int, timeout: float) -> dict[int, RawStacks]:
    """Signal each rank's proc (``targets``: rank -> (pid, read end of its stacks pipe)) and
    read every dump at once; returns within ``timeout`` seconds."""
    for _, fd in targets.values():
        _drain(fd)  # a dump cut short earlier must not be read as the start of this one
    got: dict[int, bytearray] = {}
    last: dict[int, float] = {}
    done: dict[int, RawStacks] = {}
    with selectors.DefaultSelector() as sel:
        for rank, (pid, fd) in targets.items():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                done[rank] = RawStacks("", False)
                continue
            got[rank] = bytearray()
            sel.register(fd, selectors.EVENT_READ, rank)
        deadline = time.monotonic() + timeout
        while len(done) < len(targets):
            now = time.monotonic()
            for rank in [r for r, t in last.items() if r not in done and now - t >= QUIET]:
                done[rank] = RawStacks(got[rank].decode("utf-8", "replace"), False)
                sel.unregister(targets[rank][1])
            if len(done) == len(targets) or now >= deadline:
                break
            for key, _ in sel.select(min(QUIET / 3, deadline - now)):
                rank = key.data
                got[rank] += _drain(key.fd)
                last[rank] = time.monotonic()
                if got[rank].endswith(_BOTTOM.encode()):
                    done[rank] = RawStacks(got[rank].decode("utf-8", "replace"), True)
                    sel.unregister(key.fd)
    for rank in targets:
        if rank not in done:
            done[rank] = RawStacks(bytes(got.get(rank, b"")).decode("utf-8", "replace"), False)
    return done


def _drain(fd: int) -> bytes:
    out = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


# --- showing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    name: str


@dataclass(frozen=True)
class Thread:
    main: bool
    frames: tuple[Frame, ...]  # most recent call last, the proc's own frames left out


def parse(text: str) -> list[Thread]:
    """faulthandler's dump as threads, the main thread first; the proc's own threads (its
    control thread) and frames (the bootstrap, the cell loop) left out."""
    threads: list[tuple[bool, list[Frame]]] = []
    for line in text.splitlines():
        if _HEADER.match(line):
            threads.append((False, []))
        elif (m := _FRAME.match(line)) and threads:
            threads[-1][1].append(Frame(m.group(1), int(m.group(2)), m.group(3)))
    if threads:
        threads[-1] = (True, threads[-1][1])  # the oldest thread is listed last: the main one
    out = []
    for main, frames in threads:
        if any(f.name == "control_loop" and _OURS.search(f.file) for f in frames):
            continue  # the proc's control thread: serving the kernel, never the user's
        kept = list(reversed(frames))
        while kept and (kept[0].file == "<string>" or _OURS.search(kept[0].file)):
            kept.pop(0)  # below the user's code: spawn bootstrap, the proc's cell loop
        out.append(Thread(main, tuple(kept)))
    out.sort(key=lambda t: not t.main)
    return out


def describe(raw: RawStacks, sources: Mapping[str, str], timeout: float) -> str:
    """One rank's stacks as the user reads them ("idle", or its threads' frames)."""
    if not raw.text:
        return f"no stack dump within {timeout:g} s (the proc may be stopped or its stacks pipe full)"
    threads = parse(raw.text)
    main = next((t for t in threads if t.main), None)
    others = [t for t in threads if not t.main and t.frames]
    lines: list[str] = []
    if main is None or not main.frames:
        lines.append("idle")
    else:
        cells = [f.file for f in main.frames if f.file.startswith("<procs cell ")]
        lines.append(f"running cell {cells[0][len('<procs cell ') : -1]}" if cells else "running")
        lines += _frames(main.frames, sources)
    for i, t in enumerate(others, 1):
        lines.append(f"  thread {i} of the user's:")
        lines += ["  " + x for x in _frames(t.frames, sources)]
    if not raw.complete:
        lines.append("  (the dump may be incomplete)")
    return "\n".join(lines)


def _frames(frames: tuple[Frame, ...], sources: Mapping[str, str]) -> list[str]:
    out = []
    for f in frames:
        if f.file in sources:
            out.append(f"  {f.file}, line {f.line}, in {f.name}")
            lines = sources[f.file].splitlines()
            text = lines[f.line - 1].strip() if 0 < f.line <= len(lines) else ""
        else:
            out.append(f'  File "{f.file}", line {f.line}, in {f.name}')
            text = linecache.getline(f.file, f.line).strip()
        if text:
            out.append(f"    {text}")
    return out


def rank_ranges(ranks: list[int]) -> str:
    """``[0, 1, 2, 5]`` as "ranks 0-2, 5" ("rank 3" for one)."""
    return ("rank " if len(ranks) == 1 else "ranks ") + compact_ranks(ranks).replace(",", ", ")


@dataclass(frozen=True)
class StacksReport:
    """Every target proc's stacks (``by_rank``: rank -> what it is doing), ranks doing the
    same shown together; ``seconds``: how long collecting them took."""

    by_rank: dict[int, str]
    seconds: float

    def groups(self) -> list[tuple[list[int], str]]:
        """(ranks, what they do), ranks with the same stacks together, by lowest rank."""
        same: dict[str, list[int]] = {}
        for rank in sorted(self.by_rank):
            same.setdefault(self.by_rank[rank], []).append(rank)
        return sorted(((ranks, text) for text, ranks in same.items()), key=lambda g: g[0][0])

    def __repr__(self) -> str:
        out = []
        for ranks, text in self.groups():
            head, _, rest = text.partition("\n")
            out.append(f"{rank_ranges(ranks)}: {head}" + (" (most recent call last):\n" + rest if rest else ""))
        return "\n".join(out)

    def _repr_pretty_(self, p, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        p.text(repr(self))
