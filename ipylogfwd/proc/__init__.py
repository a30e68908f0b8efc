"""What runs outside the kernel on the procs' side: the worker process itself (``worker``)
and the watchdog that takes the procs down if the kernel dies (``watchdog``)."""
