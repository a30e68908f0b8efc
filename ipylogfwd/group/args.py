"""Checks of what a user asks for, shared by ``ProcGroup`` and the magics: each rule lives
here once, and every check raises ``UsageError`` before anything is started."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable

from ..errors import UsageError

MAX_PROCS = 256


def check_size(n: object, force: bool = False) -> int:
    """``n`` as a number of procs: a positive int, at most ``MAX_PROCS`` unless ``force``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise UsageError(f"the number of procs must be a positive integer, not {n!r}")
    if n > MAX_PROCS and not force:
        raise UsageError(f"{n} procs is more than {MAX_PROCS}; pass force=True (--force) if you mean it")
    return n


def check_timeout(timeout: object, what: str = "timeout") -> float:
    """``timeout`` as a positive, finite number of seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise UsageError(f"{what} must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


TIMESTAMP_MODES = ("absolute", "relative")


def check_timestamps(mode: object) -> str | None:
    """``mode`` as a timestamps setting: "absolute" or "relative", or None ("off", None)."""
    if mode is None or mode == "off":
        return None
    if mode not in TIMESTAMP_MODES:
        raise UsageError(f"timestamps must be 'absolute', 'relative' or 'off' (None), not {mode!r}")
    return str(mode)


VIEWS = ("merged", "procs")


def check_view(view: object) -> str | None:
    """``view`` as the widgets' first view: "merged", "procs", or None (merged from 8 procs on)."""
    if view is None or view == "auto":
        return None
    if view not in VIEWS:
        raise UsageError(f"view must be 'merged', 'procs' or None (from 8 procs on, merged), not {view!r}")
    return str(view)


def check_targets(targets: Iterable[int] | None, size: int) -> list[int]:
    """The sorted ranks in ``targets`` (all ``size`` ranks for None); each must be a rank."""
    if targets is None:
        return list(range(size))
    given = list(targets)
    ranks = sorted(set(given))
    bad = [r for r in ranks if not (isinstance(r, int) and not isinstance(r, bool) and 0 <= r < size)]
    if bad or not ranks:
        raise UsageError(f"targets must be ranks in 0..{size - 1}, got {given!r}")
    return ranks


def parse_targets(spec: str, size: int) -> list[int]:
    """Ranks named by ``spec``: ``all``, ``2``, ``0,2``, ``1:3`` (1 and 2), ``:2,5``."""
    spec = spec.strip()
    if spec == "all":
        return list(range(size))
    ranks: set[int] = set()
    for part in spec.split(","):
        lo_s, colon, hi_s = part.strip().partition(":")
        try:
            lo = int(lo_s) if lo_s.strip() or not colon else 0
            hi = (int(hi_s) if hi_s.strip() else size) if colon else lo + 1
        except ValueError:
            raise UsageError(f"bad --targets {spec!r}: use ranks like 0,2 or ranges like 1:3") from None
        if lo >= hi:
            raise UsageError(f"empty rank range {part.strip()!r} in --targets {spec!r}")
        ranks.update(range(lo, hi))
    bad = sorted(r for r in ranks if not 0 <= r < size)
    if bad:
        raise UsageError(f"--targets {spec!r} names rank(s) {bad} outside 0..{size - 1}")
    return sorted(ranks)


def check_name(name: object) -> str:
    """``name`` as the name of a variable in a proc's namespace."""
    if not isinstance(name, str) or not name.isidentifier():
        raise UsageError(f"a variable name must be a Python identifier, not {name!r}")
    return name


def check_sequence(seq: object) -> None:
    """``seq`` can be cut into parts: it has a length and slices."""
    if not (hasattr(seq, "__len__") and hasattr(seq, "__getitem__")) or isinstance(seq, dict):
        raise UsageError(f"scatter needs a sequence that has a length and slices, not a {type(seq).__name__}")


def check_code(code: str, filename: str = "<procs cell>") -> None:
    """``code`` must be Python a proc can run (top-level ``await`` included). IPython syntax
    (``%magic``, ``!command``) is not: a ``SyntaxError`` says so in one line."""
    try:
        compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        line = _ipython_line(code)
        if line is None:
            raise
        lineno, text = line
        raise SyntaxError(
            f"{text.strip()!r} is IPython syntax: procs run plain Python (no magics, no ! commands); "
            "use time.perf_counter() to time code, subprocess.run([...]) to run commands",
            (filename, lineno, 1, text, lineno, len(text) + 1),
        ) from exc


def _ipython_line(code: str) -> tuple[int, str] | None:
    """(line number, line) of the first line IPython would rewrite (a magic, a ``!`` command,
    ``x?``), if the cell is valid IPython; None otherwise."""
    from IPython.core.inputtransformer2 import TransformerManager

    transformed = TransformerManager().transform_cell(code)  # type: ignore[no-untyped-call]
    try:
        compile(transformed, "<ipython>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError:
        return None
    before, after = code.splitlines(), transformed.splitlines()
    for i, (a, b) in enumerate(zip(before, after, strict=False)):
        if a != b:
            return i + 1, a
    return None
