"""The frontend side of benchmarks/compare.py: a recording jupyter_client frontend, the line
checks, and a replay of jupyter_server's IOPub rate limiter.

The recorder keeps what a notebook would show: stream text per cell and stream, and for
display outputs (ipyparallel's ``%%px`` streams through ``display_data`` and then
``update_display_data`` carrying the whole output so far) only the latest text of each
display id. It also logs every IOPub message's arrival time, type and size, which is what
the rate-limit replay needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from bench_core import Frontend

# A workload line as written by compare_workload.line(), possibly after a prefix the system
# adds (ipylogfwd "[r] ", Monarch "[vm …] [r] ", ipyparallel "[stdout:r] " on a display's
# first line); it must end the line.
TOKEN_START = re.compile(r"Q\d\d[oe]\d")


def line_pattern(payload: int) -> re.Pattern[str]:
    """Matches one intact workload line (rank, stream letter, sequence) ending at a newline."""
    return re.compile(r"Q(\d\d)([oe])(\d{7}) x{%d}(?=\n|$)" % payload)  # noqa: UP031 - the regex's braces stay single


@dataclass
class Traffic:
    """One IOPub message as the frontend saw it (for the rate-limit replay and counts)."""

    at: float  # time.time() on arrival
    msg_type: str
    parent: str
    idle: bool = False
    msg: dict[str, Any] | None = None  # the message itself, until measure() has sized it
    nbytes: int = 0  # JSON size of header, parent header, metadata and content
    lines: int = 0  # newlines in a stream message's text (what a drop of it would cost)

    def measure(self) -> None:
        """Fill in ``nbytes`` and ``lines`` (after the run: sizing every message as it came
        would take a cpu from the procs being measured, on a machine with two)."""
        msg, self.msg = self.msg, None
        if msg is None:
            return
        parts = ("header", "parent_header", "metadata", "content")
        self.nbytes = sum(len(json.dumps(msg[k], default=str)) for k in parts)
        self.lines = msg["content"]["text"].count("\n") if self.msg_type == "stream" else 0


@dataclass
class Recording:
    """Everything the frontend received, by parent cell."""

    streams: dict[str, dict[str, list[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    displays: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # id -> (parent, stream, text)
    traffic: list[Traffic] = field(default_factory=list)
    last_output_at: dict[str, float] = field(default_factory=dict)  # parent -> last workload output

    def measure(self) -> None:
        """Size every message recorded (see ``Traffic.measure``)."""
        for t in self.traffic:
            t.measure()


def record_message(rec: Recording, msg: dict[str, Any], now: float) -> bool:
    """Add one IOPub message to ``rec`` as a notebook would show it; True if it is an idle status."""
    parent = msg["parent_header"].get("msg_id", "")
    mtype = msg["msg_type"]
    content = msg["content"]
    idle = mtype == "status" and content.get("execution_state") == "idle"
    rec.traffic.append(Traffic(now, mtype, parent, idle, msg))
    if mtype == "stream":
        rec.streams[parent][content["name"]].append(content["text"])
        if TOKEN_START.search(content["text"]):
            rec.last_output_at[parent] = now
    elif mtype in ("display_data", "update_display_data"):
        did = (content.get("transient") or {}).get("display_id")
        text = content.get("data", {}).get("text/plain", "")
        if did:
            first_parent = rec.displays.get(did, (parent, "", ""))[0]
            stream = "stderr" if did.endswith("-stderr") else "stdout"
            rec.displays[did] = (first_parent, stream, text)
            if TOKEN_START.search(text):
                rec.last_output_at[parent] = now
    return idle


class Recorder(Frontend):
    """bench_core's Frontend (its own thread drains IOPub as fast as it comes), recording what
    a notebook would show into ``rec`` instead of counting lines.

    The kernel gets ``env`` (plus a marker variable, so every process it starts, however
    detached, can be found and killed by ``kill_tree``); its own stdout and stderr, where some
    systems echo the procs' output too, are discarded, as a notebook server does not pay for a
    terminal there.
    """

    def __init__(self, env: dict[str, str], marker: str) -> None:
        self.marker = marker
        self.rec = Recording()  # before the pump thread starts
        env = {**env, "COMPARE_RUN_MARKER": marker}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # Frontend starts the kernel with this process's environment
        try:
            super().__init__(keep_text=False, log=Path(os.devnull))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def reset(self) -> None:
        """Forget what was recorded (between runs)."""
        with self._cond:
            self.rec = Recording()

    def _on_msg(self, msg: dict[str, Any]) -> None:
        if record_message(self.rec, msg, time.time()):
            with self._cond:
                self._idle.add(msg["parent_header"].get("msg_id", ""))
                self._cond.notify_all()

    def send(self, code: str) -> str:
        """Queue one cell; its msg_id."""
        return self.kc.execute(code, store_history=False, user_expressions={"r": "_bench"} if "_bench" in code else {})

    def wait_idle(self, msg_id: str, timeout: float, what: str) -> None:
        """Block until the cell ``msg_id`` has gone idle on IOPub; TimeoutError names ``what``."""
        def idle() -> bool:
            if self.pump_error is not None:  # the pump notifies when it dies
                raise RuntimeError("IOPub pump failed") from self.pump_error
            return msg_id in self._idle

        with self._cond:
            if not self._cond.wait_for(idle, timeout):
                raise TimeoutError(f"{what}: the cell did not go idle within {timeout:.0f} s")

    def reply(self, msg_id: str, timeout: float, what: str) -> dict[str, Any]:
        """The execute_reply of ``msg_id``; raises RuntimeError with the error if the cell failed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: no execute_reply within {timeout:.0f} s")
            try:
                msg = self.kc.get_shell_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                c = msg["content"]
                if c["status"] != "ok":
                    raise RuntimeError(f"{what}: cell failed: {c.get('ename')}: {c.get('evalue')}")
                return msg

    def run(self, code: str, timeout: float, what: str) -> Any:
        """Run one cell to the end; the JSON value of its ``_bench`` variable if it sets one."""
        msg_id = self.send(code)
        rep = self.reply(msg_id, timeout, what)
        self.wait_idle(msg_id, timeout, what)
        return bench_value(rep, what)

    def quiet(self, seconds: float, limit: float) -> None:
        """Wait until no IOPub message arrived for ``seconds`` (at most ``limit`` s in all)."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            last = self.rec.traffic[-1].at if self.rec.traffic else 0.0
            if time.time() - last >= seconds:
                return
            time.sleep(min(seconds / 4, 0.1))

    def kill_tree(self) -> list[int]:
        """Shut the kernel down and kill every process started under it; the pids killed late."""
        with contextlib.suppress(Exception):  # the kernel may be gone already; the sweep below still runs
            self.shutdown()
        return kill_marked(self.marker)


def kill_marked(marker: str) -> list[int]:
    """SIGKILL every process whose environment carries COMPARE_RUN_MARKER=marker; their pids."""
    killed = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            env = p.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("COMPARE_RUN_MARKER") == marker:
            try:
                os.kill(p.pid, signal.SIGKILL)
                killed.append(p.pid)
            except OSError:
                pass
    return killed


def bench_value(reply: dict[str, Any], what: str) -> Any:
    """The ``_bench`` user expression of an execute_reply, decoded from JSON (None if absent)."""
    ue = reply["content"].get("user_expressions", {}).get("r")
    if ue is None:
        return None
    if ue.get("status") != "ok":
        raise RuntimeError(f"{what}: _bench not readable: {ue.get('ename')}: {ue.get('evalue')}")
    import ast

    return json.loads(ast.literal_eval(ue["data"]["text/plain"]))


# ---------------------------------------------------------------------------------------------
# Line checks
# ---------------------------------------------------------------------------------------------


@dataclass
class LineCheck:
    """What the frontend shows of one run, against what the procs wrote."""

    expected: int = 0
    intact: int = 0  # intact workload lines seen anywhere (copies included)
    lost: int = 0  # lines never seen intact, and not counted in a note of the system's
    noted: int = 0  # lines never seen, but counted in the system's own "N lines not shown" notes
    duplicated: int = 0  # extra intact copies
    out_of_order: int = 0  # lines seen after a later line of the same proc and stream
    mangled: int = 0  # line starts that did not make an intact line (split or merged lines)
    wrong_stream: int = 0  # a stdout line shown as stderr or the reverse
    wrong_cell: int = 0  # intact lines attributed to the next cell
    elsewhere: int = 0  # intact lines attributed to any other cell


def texts_by_parent(rec: Recording) -> list[tuple[str, str, str]]:
    """(parent, stream name, text) for every cell's streams and every display's final text."""
    out = [(parent, name, "".join(chunks)) for parent, by in rec.streams.items() for name, chunks in by.items()]
    out += [(parent, stream, text) for parent, stream, text in rec.displays.values()]
    return out


# ipylogfwd's note for text it left out to stay under a server's limits
ELIDED_NOTE = re.compile(r"^\[(\d+)\] … ([\d,]+) lines? not shown ", re.M)


def check_lines(rec: Recording, nprocs: int, lines: int, payload: int, cell: str, next_cell: str,
                only_prefixed: str | None = None) -> LineCheck:
    """Count lost, duplicated, out-of-order, mangled and misattributed lines.

    ``only_prefixed``: count only lines whose token is right behind this regex (to look at one
    delivery path of a system that shows each line twice).
    """
    pat = line_pattern(payload)
    # the prefix must end right before the token (what comes before it on the line may be
    # another path's unterminated fragment glued on)
    pre = re.compile(f"(?:{only_prefixed})$") if only_prefixed else None
    seen = {(r, s): bytearray(lines) for r in range(nprocs) for s in "oe"}
    last = dict.fromkeys(seen, -1)
    notes = dict.fromkeys(seen, 0)
    chk = LineCheck(expected=2 * nprocs * lines)
    for parent, name, text in texts_by_parent(rec):
        for m in ELIDED_NOTE.finditer(text):
            key = (int(m.group(1)), "o" if name == "stdout" else "e")
            if key in notes and parent == cell:
                notes[key] += int(m.group(2).replace(",", ""))
        starts = len(TOKEN_START.findall(text))
        matched = 0
        for m in pat.finditer(text):
            if pre is not None:
                bol = text.rfind("\n", 0, m.start()) + 1
                if not pre.search(text, bol, m.start()):
                    continue
            matched += 1
            key = (int(m.group(1)), m.group(2))
            seq = int(m.group(3))
            if key not in seen or seq >= lines:
                continue
            chk.intact += 1
            if seen[key][seq]:
                chk.duplicated += 1
            else:
                seen[key][seq] = 1
                if seq < last[key]:
                    chk.out_of_order += 1
                last[key] = max(last[key], seq)
            if (key[1] == "o") != (name == "stdout"):
                chk.wrong_stream += 1
            if parent == next_cell:
                chk.wrong_cell += 1
            elif parent != cell:
                chk.elsewhere += 1
        if pre is None:
            chk.mangled += max(0, starts - matched)
    for key, b in seen.items():
        missing = b.count(0)
        chk.noted += min(missing, notes[key])
        chk.lost += missing - min(missing, notes[key])
    return chk


# ---------------------------------------------------------------------------------------------
# jupyter_server's IOPub rate limiter, replayed
# ---------------------------------------------------------------------------------------------


@dataclass
class RateReplay:
    msgs: int = 0  # messages the limiter looked at (all but status, comm_open, execute_input)
    dropped: int = 0
    dropped_output: int = 0  # of which stream / display messages
    dropped_lines: int = 0  # newlines in the dropped stream messages
    msg_limit_hit: bool = False
    data_limit_hit: bool = False


def replay_rate_limits(traffic: list[Traffic], msg_rate: float = 1000.0, data_rate: float = 1e6,
                       window: float = 3.0) -> RateReplay:
    """Replay jupyter_server's default IOPub limits over recorded arrival times and sizes.

    Same bookkeeping as the server's channel handler: a sliding ``window`` of counted
    messages (bytes only for streams), limits checked as count/window, a limit lifts below
    80 % of it, every idle status resets the window, and while a limit holds the message is
    not forwarded (and leaves the window). Sizes are the JSON of the four message dicts (the server counts the raw
    frames, a few bytes more).
    """
    out = RateReplay()
    q: list[tuple[float, int]] = []
    head = 0
    count = nbytes = 0
    msgs_over = data_over = False
    for t in traffic:
        if t.idle:
            q, head, count, nbytes, msgs_over, data_over = [], 0, 0, 0, False, False
        if t.msg_type in ("status", "comm_open", "execute_input"):
            continue
        while head < len(q) and t.at >= q[head][0]:
            count -= 1
            nbytes -= q[head][1]
            head += 1
        b = t.nbytes if t.msg_type == "stream" else 0
        count += 1
        nbytes += b
        q.append((t.at + window, b))
        out.msgs += 1
        if count / window > msg_rate:
            msgs_over = True
            out.msg_limit_hit = True
        elif msgs_over and count / window < 0.8 * msg_rate:
            msgs_over = False
        if nbytes / window > data_rate:
            data_over = True
            out.data_limit_hit = True
        elif data_over and nbytes / window < 0.8 * data_rate:
            data_over = False
        if msgs_over or data_over:
            # a message not forwarded leaves the window again
            count -= 1
            nbytes -= b
            q.pop()
            out.dropped += 1
            out.dropped_lines += t.lines
            if t.msg_type in ("stream", "display_data", "update_display_data"):
                out.dropped_output += 1
    return out
