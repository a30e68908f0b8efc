"""Running a cell's code in a proc: the part of the proc that is about Python, not pipes.

A cell runs in the proc's ``__main__`` module (so classes and functions it defines pickle,
``if __name__ == "__main__":`` blocks run, and tools that look things up in ``__main__``
find them). Like a notebook cell, the value of a final expression is the cell's result,
unless the cell ends in ``;``; top-level ``await`` runs on the proc's own event loop.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import io
import linecache
import sys
import tokenize
import types
from typing import Any


def main_module() -> dict[str, Any]:
    """A fresh ``__main__`` module, installed as ``sys.modules["__main__"]``: its namespace."""
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    return module.__dict__


class Executor:
    """Runs cells in one namespace, with one event loop for their top-level ``await``."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, code: str, filename: str) -> tuple[bool, Any]:
        """Run ``code``; (True, value) when it ends in an expression not followed by ``;``,
        else (False, None)."""
        tree = ast.parse(code, filename, "exec")
        last: ast.Expression | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not _ends_in_semicolon(code):
            last = ast.Expression(tree.body[-1].value)
            tree.body.pop()
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self._run(compile(tree, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True))
        if last is None:
            return False, None
        return True, self._run(compile(last, filename, "eval", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True))

    def _run(self, compiled: types.CodeType) -> Any:
        value = eval(compiled, self.namespace)
        if compiled.co_flags & inspect.CO_COROUTINE:
            # Top-level await: the code object is a coroutine to drive to its end.
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            value = self._loop.run_until_complete(value)
        return value


def _ends_in_semicolon(code: str) -> bool:
    """Whether the last token of ``code`` (comments and newlines aside) is ``;``, which
    silences the cell's result as it does in IPython."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return False
    skip = (tokenize.ENDMARKER, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.DEDENT, tokenize.INDENT)
    for token in reversed(tokens):
        if token.type not in skip:
            return token.type == tokenize.OP and token.string == ";"
    return False
