"""Exceptions, one per situation a user must tell apart."""

from __future__ import annotations


class IpylogfwdError(Exception):
    """Base of every ipylogfwd error."""


class UsageError(IpylogfwdError, ValueError):
    """Bad arguments: nothing was started."""


class ProcStartError(IpylogfwdError):
    """A proc did not come up (it died or did not say hello in time)."""


class ProcsBusyError(IpylogfwdError):
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
        return lines


class ProcTimeoutError(IpylogfwdError, TimeoutError):
    """A cell did not finish on every target within its ``--timeout``; those procs were interrupted."""

    def __init__(self, message: str, pending: list[int]) -> None:
        super().__init__(message)
        self.pending = pending

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class ProcDiedError(IpylogfwdError):
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
