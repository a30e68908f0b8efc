"""Procs on other hosts, seen from the kernel: the ``router`` thread and its links to each
host's agent (``link``, ``zap``), the ``cluster`` of agents a launcher started for a group,
and ``remoteprocs``, the proc set of one host for one generation."""
