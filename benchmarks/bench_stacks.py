"""How long ``group.stacks()`` takes with many procs, idle and all holding the GIL in C code
(the worst case: every proc wants a CPU when the signal comes).

    .venv/bin/python benchmarks/bench_stacks.py [N]   # default 64 procs
"""

from __future__ import annotations

import sys
import time

from ipylogfwd import ProcGroup


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    t0 = time.monotonic()
    with ProcGroup(n, sink_factory=lambda ranks, pids, logs: _Quiet()) as group:
        print(f"{n} procs started in {time.monotonic() - t0:.1f} s")
        for label in ("idle", "all holding the GIL"):
            if label != "idle":
                group.submit("sum(range(10**13))")
                time.sleep(2)
            times, groups = [], 0
            for _ in range(5):
                report = group.stacks(timeout=5.0)
                times.append(report.seconds)
                groups = len(report.groups())
                missing = [r for r, text in report.by_rank.items() if text.startswith("no stack dump")]
                assert not missing, f"no dump from {missing}"
            times.sort()
            print(f"{label}: stacks of {n} procs in {times[2] * 1000:.0f} ms median, {times[-1] * 1000:.0f} ms max "
                  f"({groups} group(s) of identical stacks)")


class _Quiet:
    """A sink that shows nothing (the procs print nothing here anyway)."""

    pending = 0

    def accepts(self, rank: int) -> bool:
        return True

    def write(self, rank: int, stream: int, text: str) -> None:
        pass

    def publish(self) -> None:
        pass

    def has_deferred(self) -> bool:
        return False

    def settle(self, rank: int, stream: int) -> bool:
        return False

    def sync(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


if __name__ == "__main__":
    main()
