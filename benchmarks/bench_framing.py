"""Micro-benchmark of the reader's framing (``StreamFramer``) on ordinary short lines.

Run from the project root::

    .venv/bin/python benchmarks/bench_framing.py            # ~32 MB per case
    .venv/bin/python benchmarks/bench_framing.py --quick

Feeds rank-style lines (``f"{rank} {i:09d} " + payload``) through a ``StreamFramer`` the way
the reader does, in reads of a given size, and prints throughput and how many reads went
through ``LineFramer._decode_splitting`` (the per-line path meant for lines longer than
``max_line``). Reads of the full ``READ_SIZE`` are what the reader gets when it falls behind
(the pipe holds more than one read); half-size reads are what it gets when it keeps up.
"""

from __future__ import annotations

import argparse
import time

from ipylogfwd.pipeline.framing import DEFAULT_MAX_LINE, StreamFramer
from ipylogfwd.pipeline.items import STDOUT, Log
from ipylogfwd.pipeline.reader import READ_SIZE
from ipylogfwd.wire import markers


def run(data: bytes, read: int, expected_lines: int) -> tuple[float, int, int, float, int]:
    framer = StreamFramer(STDOUT, markers.new_token())
    lines = framer._lines
    calls = [0, 0.0]
    inner = lines._decode_splitting

    def counted(chunk: bytes) -> str:
        t = time.perf_counter()
        try:
            return inner(chunk)
        finally:
            calls[0] += 1
            calls[1] += time.perf_counter() - t

    lines._decode_splitting = counted  # type: ignore[method-assign]
    texts: list[str] = []  # counted after the timing: the framer does not count lines
    reads = 0
    t0 = time.perf_counter()
    for i in range(0, len(data), read):
        reads += 1
        texts += [item.text for item in framer.feed(data[i : i + read]) if isinstance(item, Log)]
    texts += [item.text for item in framer.finish() if isinstance(item, Log)]
    dt = time.perf_counter() - t0
    n = sum(t.count("\n") for t in texts)
    assert n == expected_lines, (n, expected_lines)
    return dt, reads, int(calls[0]), float(calls[1]), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=32.0, help="MB of lines per case (default 32)")
    ap.add_argument("--quick", action="store_true", help="4 MB per case")
    ap.add_argument("--payloads", default="0,4,50", help="payload lengths to try (default 0,4,50)")
    args = ap.parse_args()
    mb = 4.0 if args.quick else args.mb
    print(f"READ_SIZE {READ_SIZE}, DEFAULT_MAX_LINE {DEFAULT_MAX_LINE}")
    print(f"{'line bytes':>10} {'read size':>10} {'MB/s':>8} {'M lines/s':>10} {'reads':>6} "
          f"{'per-line path':>14} {'time in it':>11}")
    for payload in (int(p) for p in args.payloads.split(",")):
        line_len = len(f"0 {0:09d} ") + payload + 1
        count = int(mb * 1e6 / line_len)
        data = "".join(f"0 {i:09d} " + "x" * payload + "\n" for i in range(count)).encode()
        for read in (READ_SIZE, READ_SIZE // 2):
            dt, reads, calls, t_split, _ = run(data, read, count)
            print(f"{line_len:>10} {read:>10} {len(data) / dt / 1e6:>8.0f} {count / dt / 1e6:>10.2f} {reads:>6} "
                  f"{calls:>14} {t_split:>10.2f}s")


if __name__ == "__main__":
    main()
