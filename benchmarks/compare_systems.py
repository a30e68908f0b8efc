"""The four systems benchmarks/compare.py runs, as the cells a notebook user would write.

Each system gives, as kernel code: ``setup(n)`` (start n procs and keep them), ``workload``
(the procs run compare_workload.write_lines, then the system's own flush; the cell sets
``_bench`` to a JSON string of the procs' timings and the kernel time when the flush
returned), ``flush`` (one flush with idle procs, to be timed in a loop) and ``teardown``.
``guarantee`` says what the flush promises when it returns; ``about`` says which API it is.
"""

from __future__ import annotations

from dataclasses import dataclass

# Shared tail of every workload cell: procs' results (rank -> 4-tuple) and the flush time.
_BENCH_JSON = (
    "import json as _json\n"
    "_bench = _json.dumps({'flushed': _t_flushed, 'procs': {str(k): list(v) for k, v in _res.items()}})\n"
)


@dataclass(frozen=True)
class System:
    name: str
    about: str  # how the procs' output reaches the cell, and what the flush is
    guarantee: str  # what the flush guarantees when it returns
    setup_code: str  # format fields: n
    workload_code: str  # format fields: n, lines, payload, start_at
    flush_code: str  # one flush, procs idle
    teardown_code: str
    # lines of one delivery path only (a regex for the text before the token), see check_lines
    primary_prefix: str | None = None
    needs: str | None = None  # an importable module the system needs in the kernel
    server_setup_code: str | None = None  # setup when a jupyter_server stands between, if different

    def setup(self, n: int, through_server: bool = False) -> str:
        code = self.server_setup_code if through_server and self.server_setup_code else self.setup_code
        return code.format(n=n)

    def workload(self, n: int, lines: int, payload: int, start_at: float) -> str:
        return self.workload_code.format(n=n, lines=lines, payload=payload, start_at=start_at) + _BENCH_JSON


IPYLOGFWD = System(
    name="ipylogfwd",
    about="`%%procs N` (blocking), then `%logflush`; text output (no widget frontend on a jupyter_client driver), "
    "its limit off in direct runs and at its default through the server",
    guarantee="per proc: everything the proc wrote before the barrier (Python and C buffers flushed, in-band "
    "marker behind the data on stdout and stderr) has been published to IOPub, in order per proc and stream, "
    "in the cell that produced it",
    # Direct runs have no server between kernel and frontend (as with nbconvert): the text
    # limit, there for a server's IOPub limits, is off. Through a server it is left at its default.
    setup_code="%load_ext ipylogfwd\nimport ipylogfwd as _lf\n_lf.set_text_limit(None)\n"
    "get_ipython().run_cell_magic('procs', '{n}', 'import compare_workload as _W')\n",
    server_setup_code="%load_ext ipylogfwd\n"
    "get_ipython().run_cell_magic('procs', '{n}', 'import compare_workload as _W')\n",
    workload_code=(
        "import time as _time\n"
        "_ip = get_ipython()\n"
        "_res = _ip.run_cell_magic('procs', '{n}', "
        "'_W.write_lines(int(__import__(\"os\").environ[\"RANK\"]), {lines}, {payload}, {start_at!r})')\n"
        "_rep = _ip.run_line_magic('logflush', '--timeout 600')\n"
        "_t_flushed = _time.time()\n"
        "assert _rep.ok, _rep\n"
    ),
    flush_code="_rep = get_ipython().run_line_magic('logflush', '')\n",
    teardown_code="get_ipython().run_line_magic('procs', '--shutdown')\n",
)

IPYPARALLEL = System(
    name="ipyparallel",
    about="local `ipyparallel.Cluster` of N engines, `%%px --block` (streams engine output into the cell as "
    "`display_data` + `update_display_data` carrying each engine stream's whole text so far)",
    guarantee="no flush call: a blocking `%%px` returns after the engines' replies and waits (at most 1 s "
    "past the result, by default) for their output; it covers that `%%px` cell only, not output of earlier "
    "non-blocking work; per engine and stream the text is in order",
    setup_code=(
        "import ipyparallel as _ipp, time as _time\n"
        "_cluster = _ipp.Cluster(n={n}, log_level=40)\n"
        "_rc = _cluster.start_and_connect_sync(activate=True)\n"
        "_rc.wait_for_engines({n}, timeout=120)\n"
        "_dv = _rc[:]\n"
        "for _i, _eid in enumerate(sorted(_rc.ids)):\n"
        "    _rc[_eid].push({{'_rank': _i}}, block=True)\n"
        "_dv.execute('import compare_workload as _W', block=True)\n"
    ),
    workload_code=(
        "get_ipython().run_cell_magic('px', '--block', "
        "'_r = _W.write_lines(_rank, {lines}, {payload}, {start_at!r})')\n"
        "_t_flushed = _time.time()\n"
        "_res = {{r: v for r, v in zip(_dv.pull('_rank', block=True), _dv.pull('_r', block=True))}}\n"
    ),
    flush_code="get_ipython().run_cell_magic('px', '--block', 'pass')\n",
    teardown_code="_rc.close()\n_cluster.stop_cluster_sync()\n",
    needs="ipyparallel",
)

MULTIPROCESSING = System(
    name="multiprocessing",
    about="`multiprocessing` spawn `Pool(N)` from the cell (warm), `pool.map`, then `sys.stdout.flush()` and "
    "`sys.stderr.flush()`; ipykernel forwards the children's fd 1/2 into the current cell",
    guarantee="nothing about the children: the kernel's flush empties its own buffers; children's output still "
    "in the capture pipe or in the children's own buffers is published later, into whatever cell runs then; "
    "no per-proc framing (8 KiB writes from different children may interleave mid-line)",
    setup_code=(
        "import multiprocessing as _mp, sys as _sys, time as _time, compare_workload as _W\n"
        "_pool = _mp.get_context('spawn').Pool({n})\n"
        "_pool.map(abs, range({n}), chunksize=1)\n"
    ),
    workload_code=(
        "_res = dict(_pool.map(_W.pool_task, [(_r, {lines}, {payload}, {start_at!r}) for _r in range({n})], "
        "chunksize=1))\n"
        "_sys.stdout.flush()\n_sys.stderr.flush()\n"
        "_t_flushed = _time.time()\n"
    ),
    flush_code="_sys.stdout.flush()\n_sys.stderr.flush()\n",
    teardown_code="_pool.terminate()\n_pool.join()\n",
)

MONARCH = System(
    name="monarch",
    about="torchmonarch `this_host().spawn_procs(per_host={'procs': N})`, `logging_option(stream_to_client=True, "
    "aggregate_window_sec=None)` (the default window of 3 s aggregates similar lines), one actor per proc; "
    "flush = the LoggingMeshClient barrier that Monarch runs after every cell (`ProcMesh._logging_manager`), "
    "awaited without its 3 s cap",
    guarantee="per proc: the client has received every log line that reached the proc's forwarder before the "
    "barrier marker, in order per stream; output the proc process still buffers is not flushed by the barrier; "
    "the notebook hook gives up silently after 3 s",
    setup_code=(
        "import time as _time, compare_workload as _W\n"
        "from monarch.actor import this_host as _this_host\n"
        "_pm = _this_host().spawn_procs(per_host={{'procs': {n}}})\n"
        "await _pm.logging_option(stream_to_client=True, aggregate_window_sec=None)\n"
        "_w = _pm.spawn('writer', _W.Writer)\n"
        "_w.ping.call().get()\n"
    ),
    workload_code=(
        "_vals = _w.write.call({lines}, {payload}, {start_at!r}).get()\n"
        "_pm._logging_manager._new_flush_handle().get(timeout=600)\n"
        "_t_flushed = _time.time()\n"
        "_res = dict(_v for _pt, _v in _vals.items())\n"
    ),
    flush_code="_pm._logging_manager._new_flush_handle().get(timeout=30)\n",
    teardown_code="_pm.stop().get()\n",
    # Monarch's forwarded copy carries "[<proc address>] [<rank>] "; the local host also tees each
    # proc's raw output to the kernel's own stdout, which ipykernel shows too.
    primary_prefix=r"\[[^\]]*\] \[\d+\] ",
    needs="monarch",
)

SYSTEMS: dict[str, System] = {s.name: s for s in (IPYLOGFWD, IPYPARALLEL, MULTIPROCESSING, MONARCH)}
