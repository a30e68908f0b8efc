"""The per-host agent (``python -m ipylogfwd.agent``): spawns its host's procs, owns their
pipes, frames their output and finds their markers on the host, writes the host's log files,
and streams framed items to the kernel (``link``), as the kernel commands (``host``)."""
