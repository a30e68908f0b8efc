"""The pipeline that carries every proc's output, stage by stage, in one order per proc:

pipes -> ``reader`` (one thread; writes ``logfiles``, frames bytes with ``framing`` into
``items``) -> ``queues`` (one FIFO per proc) -> ``dispatcher`` (one thread; routes items to
each cell's ``sink`` and reports barriers to the ``barrier`` tracker)."""
