"""Sets of ranks written compactly, as the page writes them too (``data-ranks``, see
``labextension/src/ranges.ts``): ``[0, 1, 2, 3, 5, 7, 8, 9]`` is "0-3,5,7-9"."""

from __future__ import annotations

from collections.abc import Iterable


def compact_ranks(ranks: Iterable[int]) -> str:
    """The ranks in increasing order, runs of consecutive ones as "first-last", joined by ","."""
    parts: list[str] = []
    ordered = sorted(set(ranks))
    start = None
    for i, r in enumerate(ordered):
        if start is None:
            start = r
        if i + 1 == len(ordered) or ordered[i + 1] != r + 1:
            parts.append(str(start) if start == r else f"{start}-{r}")
            start = None
    return ",".join(parts)
