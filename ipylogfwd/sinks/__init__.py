"""Where a cell's output is shown: rank-prefixed ``text`` (with ``elision`` past a rate), or
one widget per proc (``widget_sink`` and its ``tails``, the ``widgets``, the views' ``acks``);
``kernel`` finds the running kernel, ``factory`` picks the kind of sink for a cell."""
