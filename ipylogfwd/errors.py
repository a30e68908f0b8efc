"""Exceptions, one per situation a user must tell apart.

Those a notebook user meets render compactly in IPython (``_render_traceback_``): the
message, which names what to do next, without the kernel-side frames, which are ipylogfwd's,
not the user's.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")


class IpylogfwdError(Exception):
    """Base of every ipylogfwd error."""


class _Compact:
    """Shown by IPython as one red line: the class name and the message."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class UsageError(IpylogfwdError, ValueError):
    """Bad arguments: nothing was started."""


class ProcStartError(_Compact, IpylogfwdError):
    """A proc did not come up (it died or did not say hello in time)."""


class ProcsBusyError(_Compact, IpylogfwdError):
    """The targeted procs are still running an earlier cell (for example a ``--bg`` one)."""


class ProcsError(IpylogfwdError):
    """The cell raised in one or more procs. ``errors`` maps rank -> traceback text."""

    def __init__(self, errors: dict[int, str], error_types: dict[int, str], results: dict[int, object]) -> None:
        self.errors = errors
        self.error_types = error_types
        self.results = results
        ranks = ", ".join(str(r) for r in sorted(errors))
        kinds = sorted(set(error_types.values()))
        super().__init__(f"cell failed on rank{'s' if len(errors) > 1 else ''} {ranks}: {', '.join(kinds)}")

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of the kernel-side stack, which is ours, not the user's:
        # each proc's own traceback was already shown with its rank in the output.
        lines = [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
        for rank in sorted(self.errors):
            last = self.errors[rank].rstrip().splitlines()[-1:] or [self.error_types[rank]]
            lines.append(f"  rank {rank}: {last[0]}")
        lines += self.hints(_kernel_namespace())
        return lines

    def hints(self, kernel_names: Any) -> list[str]:
        """What to do about errors the user's setup explains: a name the procs lack that the
        kernel (``kernel_names``, its namespace) has."""
        names = sorted({m.group(1) for text in self.errors.values() for m in _NAME_ERROR.finditer(text)})
        return [
            f"  {name!r} is defined in the kernel, not in the procs: each proc has its own namespace. "
            f"Send it with group.push(dict({name}={name})) (group = ipylogfwd.current_group()), "
            "or define it in a %%procs cell"
            for name in names
            if kernel_names is not None and name in kernel_names
        ]


class ProcTimeoutError(_Compact, IpylogfwdError, TimeoutError):
    """A cell did not finish on every target within its ``--timeout``; those procs were
    interrupted (and killed and replaced if that did not stop them)."""

    def __init__(self, message: str, pending: list[int]) -> None:
        super().__init__(message)
        self.pending = pending


class CellSyntaxError(IpylogfwdError):
    """A ``%%procs`` cell does not parse: shown as Python shows a syntax error, without the
    magic's own frames. ``error`` is the ``SyntaxError``."""

    def __init__(self, error: SyntaxError) -> None:
        super().__init__(str(error))
        self.error = error

    def _render_traceback_(self) -> list[str]:
        return [line.rstrip("\n") for line in traceback.format_exception_only(type(self.error), self.error)]


class ProcDiedError(_Compact, IpylogfwdError):
    """A proc exited while it was running the cell."""


class FlushWarning(UserWarning):
    """A flush returned without every proc reaching the full barrier (see its report)."""


class LogFileWarning(UserWarning):
    """A proc's log file could not be written (directory unwritable, disk full): the file stops
    there, and forwarding to the notebook goes on."""


class TransferError(IpylogfwdError):
    """Values could not be moved between the kernel and the procs (``push``, ``pull``,
    ``scatter``, ``gather``): an object that cannot be pickled or unpickled, or a name a proc
    does not have. ``errors`` maps rank -> what went wrong there, naming the object; ``kernel``
    says what went wrong in the kernel before anything was sent."""

    def __init__(self, what: str, errors: dict[int, str], kernel: str = "") -> None:
        self.errors = errors
        self.kernel = kernel
        if kernel:
            lines = [f"{what} failed in the kernel, nothing was sent: {kernel}"]
        else:
            ranks = ", ".join(str(r) for r in sorted(errors))
            lines = [f"{what} failed on rank{'s' if len(errors) > 1 else ''} {ranks}:"]
            by_text: dict[str, list[int]] = {}
            for rank in sorted(errors):
                by_text.setdefault(errors[rank], []).append(rank)
            for text, where in by_text.items():  # the same error on many ranks is said once
                s = "s" if len(where) > 1 else ""
                lines.append(f"  rank{s} {', '.join(map(str, where))}: {text}")
        super().__init__("\n".join(lines))

    def _render_traceback_(self) -> list[str]:
        first, *rest = str(self).splitlines()
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {first}", *rest]


def _kernel_namespace() -> dict[str, Any] | None:
    """The interactive namespace of the IPython shell this runs in, if any."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return None if shell is None else shell.user_ns
