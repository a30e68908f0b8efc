"""A text sink for tests that keeps what a cell published, per stream."""

from __future__ import annotations

from ipylogfwd.sinks.elision import TextBudget
from ipylogfwd.sinks.text import TextSink


class RecordingSink(TextSink):
    """Keeps every text a cell published, per stream name ("stdout", "stderr"); with a
    ``budget``, text past it is left out (and noted) as in a kernel."""

    def __init__(self, budget: TextBudget | None = None) -> None:
        super().__init__(budget)
        self.published: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def _emit(self, name: str, text: str) -> None:
        self.published[name].append(text)

    def text(self, name: str = "stdout") -> str:
        return "".join(self.published[name])

    def lines(self, rank: int, name: str = "stdout") -> list[str]:
        """``rank``'s lines on stream ``name``, without their rank prefix."""
        prefix = f"[{rank}] "
        return [ln[len(prefix) :] for ln in self.text(name).splitlines() if ln.startswith(prefix)]
