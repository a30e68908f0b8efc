"""Moving values between the kernel and the procs (``ProcGroup.push/pull/scatter/gather``,
``group/data.py``), with real procs, from plain Python: what arrives, and the errors that name
the object and the rank when something cannot be moved."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import proc_group

from ipylogfwd import ProcDiedError, ProcGroup, ProcTimeoutError, TransferError, UsageError
from ipylogfwd.group.data import join, split
from ipylogfwd.sinks.text import TextSink


class QuietSink(TextSink):
    def _emit(self, name: str, text: str) -> None:
        pass


@pytest.fixture(scope="module")
def group() -> Iterator[ProcGroup]:
    yield from proc_group(3, lambda ranks, pids, logs: QuietSink())


def test_push_then_the_procs_use_the_values_and_pull_brings_them_back(group: ProcGroup) -> None:
    group.push({"x": 5, "table": {"a": [1, 2]}})
    assert group.run("x * 10 + len(table['a'])") == {0: 52, 1: 52, 2: 52}
    group.run("import os\nmine = int(os.environ['RANK']) ** 2")
    assert group.pull("mine") == {0: 0, 1: 1, 2: 4}
    group.push({"x": -1}, targets=[2])
    assert group.pull("x") == {0: 5, 1: 5, 2: -1}
    assert group.pull("x", targets=[0, 2]) == {0: 5, 2: -1}


def test_scatter_cuts_in_rank_order_and_gather_puts_back_together(group: ProcGroup) -> None:
    group.scatter("xs", list(range(10)))
    assert group.pull("xs") == {0: [0, 1, 2, 3], 1: [4, 5, 6], 2: [7, 8, 9]}
    group.run("ys = [v * v for v in xs]")
    assert group.gather("ys") == [v * v for v in range(10)]
    group.scatter("word", "abcdefgh", targets=[1, 2])
    assert group.pull("word", targets=[1, 2]) == {1: "abcd", 2: "efgh"}
    assert group.gather("word", targets=[1, 2]) == "abcdefgh"
    group.run("import os\nscalar = int(os.environ['RANK']) + 100")
    assert group.gather("scalar") == [100, 101, 102]  # not sequences: one element per rank


def test_numpy_arrays_scatter_and_gather_as_arrays(group: ProcGroup) -> None:
    import numpy as np

    group.scatter("arr", np.arange(7))
    parts = group.pull("arr")
    assert [p.tolist() for p in parts.values()] == [[0, 1, 2], [3, 4], [5, 6]]
    group.run("arr = arr * 2")
    gathered = group.gather("arr")
    assert isinstance(gathered, np.ndarray) and gathered.tolist() == [0, 2, 4, 6, 8, 10, 12]


def test_what_cannot_be_pickled_in_the_kernel_is_named_and_nothing_is_sent(group: ProcGroup) -> None:
    group.push({"untouched": "before"})
    with pytest.raises(TransferError) as info:
        group.push({"untouched": "after", "lock": threading.Lock()})
    text = str(info.value)
    assert "push('untouched', 'lock') failed in the kernel, nothing was sent" in text
    assert "cannot pickle 'lock', a lock: TypeError" in text
    assert group.pull("untouched") == dict.fromkeys(range(3), "before")
    with pytest.raises(TransferError, match=r"scatter\('gens'\).*cannot pickle 'gens' \(its part for rank 0\)"):
        group.scatter("gens", [(i for i in range(2)), 1, 2])


def test_what_a_proc_cannot_pickle_or_does_not_have_is_named_with_its_rank(group: ProcGroup) -> None:
    group.run(
        "import os\nif os.environ['RANK'] == '1':\n    sometimes = (i for i in range(3))\nelse:\n    sometimes = 7"
    )
    with pytest.raises(TransferError) as info:
        group.pull("sometimes")
    assert info.value.errors.keys() == {1}
    assert "cannot pickle it (a generator): TypeError: cannot pickle 'generator' object" in info.value.errors[1]
    assert str(info.value).startswith("pull('sometimes') failed on rank 1:")
    with pytest.raises(TransferError) as info:
        group.pull("never_defined", targets=[0, 2])
    assert info.value.errors == dict.fromkeys(
        [0, 2], "'never_defined': name 'never_defined' is not defined in this proc"
    )
    with pytest.raises(TransferError, match=r"gather\('never_defined'\)|pull\('never_defined'\)"):
        group.gather("never_defined")


def test_what_the_procs_or_the_kernel_cannot_unpickle_is_named(group: ProcGroup) -> None:
    # A class that exists only in the procs: pickled there by reference to a module the kernel
    # does not have.
    group.run(
        "import sys, types\nmod = types.ModuleType('procs_only_mod')\nexec('class Thing: pass', mod.__dict__)\n"
        "sys.modules['procs_only_mod'] = mod\nthing = mod.Thing()"
    )
    with pytest.raises(TransferError) as info:
        group.pull("thing", targets=[0])
    assert info.value.errors[0] == (
        "'thing': cannot unpickle it in the kernel: ModuleNotFoundError: No module named 'procs_only_mod' "
        "(a class or function defined in a %%procs cell exists only in the procs)"
    )
    # A value the procs cannot rebuild: named per rank, the other names still set.
    with pytest.raises(TransferError) as info:
        group.push({"fine": 1, "broken": _Unbuildable()}, targets=[1, 2])
    assert info.value.errors.keys() == {1, 2}
    assert info.value.errors[1].startswith("'broken': cannot unpickle it here: ValueError: invalid literal for int()")
    assert group.pull("fine", targets=[1, 2]) == {1: 1, 2: 1}


class _Unbuildable:
    """Pickles fine; rebuilding it raises (as a class the procs cannot import would)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (int, ("not a number",))


def test_values_move_while_a_cell_runs(group: ProcGroup) -> None:
    job = group.submit(
        "import time\nstep = 0\nwhile not globals().get('stop'):\n    step += 1\n    time.sleep(0.01)\nstep"
    )

    def steps() -> dict[int, int]:
        try:
            return group.pull("step")
        except TransferError:  # not defined yet: the cell has not started everywhere
            return {}

    deadline = time.monotonic() + 30
    while not (len(got := steps()) == 3 and all(v > 0 for v in got.values())):
        assert time.monotonic() < deadline, "the running cell's counter never moved"
    group.push({"stop": True})
    results = job.wait(30)
    assert all(v > 0 for v in results.values())


def test_bad_arguments_start_nothing(group: ProcGroup) -> None:
    with pytest.raises(UsageError, match="identifier"):
        group.push({"not a name": 1})
    with pytest.raises(UsageError, match="identifier"):
        group.pull("1x")
    with pytest.raises(UsageError, match="targets"):
        group.pull("x", targets=[7])
    with pytest.raises(UsageError, match="sequence"):
        group.scatter("xs", (i for i in range(3)))
    with pytest.raises(UsageError, match="timeout"):
        group.pull("x", timeout=0)


def test_a_proc_holding_the_gil_times_out_by_name_and_a_dead_one_is_named(tmp_path: Path) -> None:
    g = ProcGroup(2, sink_factory=lambda ranks, pids, logs: QuietSink())
    try:
        g.push({"x": 1})
        entered = tmp_path / "entered"
        g.submit(f"open({str(entered)!r}, 'w').close()\nsum(range(10**13))", targets=[1])
        deadline = time.monotonic() + 30
        while not entered.exists():
            assert time.monotonic() < deadline, "rank 1 did not reach its loop"
            time.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(ProcTimeoutError) as info:
            g.pull("x", timeout=2)
        assert time.monotonic() - start < 5
        assert info.value.pending == [1]
        assert "pull('x'): rank(s) 1 did not answer within 2 s" in str(info.value)
        assert g.pull("x", targets=[0]) == {0: 1}
        g.restart()
        g.submit("import os; os._exit(3)", targets=[1])
        deadline = time.monotonic() + 30
        while g.status()[1].state != "exited":
            assert time.monotonic() < deadline, "rank 1 did not exit"
            time.sleep(0.05)
        with pytest.raises(ProcDiedError, match=r"rank\(s\) \[1\] have exited"):
            g.push({"x": 2})
    finally:
        g.shutdown()


def test_split_and_join() -> None:
    assert split(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert split([1], 3) == [[1], [], []]
    assert split((1, 2, 3), 3) == [(1,), (2,), (3,)]
    assert join([[1], [], [2, 3]]) == [1, 2, 3]
    assert join([(1,), (2,)]) == (1, 2)
    assert join([b"a", b"b"]) == b"ab"
    assert join([{"a": 1}, {"b": 2}]) == [{"a": 1}, {"b": 2}]
    assert join([]) == []
