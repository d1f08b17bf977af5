"""Cells over processes and clusters (issue 15): a local process pool and a 2-worker Dask
``LocalCluster`` give the numbers of the serial run, an interrupted parallel run resumes from
the cache to the same result, and bad ``--workers``/``--executor``/``--scheduler`` end in
exit status 2 without a traceback.

The Ctrl-C test of ``tests/test_cli_robustness.py`` covers the default local pool when the
parent process is interrupted by a signal.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import json
import sys
import threading

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from lthbook import __main__ as cli  # noqa: E402
from lthbook import executors, registry, runner  # noqa: E402
from lthbook.cache import ResultCache  # noqa: E402

distributed = pytest.importorskip("distributed", reason="the dask extra: pip install 'lthbook[dask]'")

#: Keys that record when and how long a run took: the only ones that may differ between runs.
TIMING_KEYS = ("wall_time_s", "cell_time_s", "created")
#: Figure 4 with a few cheap cells of one trial each (so that a run can stop between cells).
SMALL = {"K": 2, "d": 10, "r_values": [2, 4], "N_values": [8, 16, 30], "trials": 2, "chunk": 1, "max_iter": 300}


def numbers(result: dict) -> dict:
    """A result without its timing keys (what must not depend on the executor)."""
    return {k: v for k, v in result.items() if k not in TIMING_KEYS}


def reproduce(tmp_path, tag: str, *flags: str) -> dict:
    """``python -m lthbook reproduce fig4 --scale ci --seed 0 --no-cache FLAGS`` (in this process)."""
    out = tmp_path / tag
    status = cli.main(["reproduce", "fig4", "--scale", "ci", "--seed", "0", "--no-cache", "--out", str(out), *flags])
    assert status in (0, 1)
    return json.loads((out / "fig4.json").read_text())


@pytest.fixture(scope="module")
def client():
    """A 2-worker Dask LocalCluster (one thread per worker) shared by the tests of this file."""
    with executors.dask_client(2) as dask_client:
        yield dask_client


def small(**kwargs) -> dict:
    return runner.run_figure("fig4", "ci", 0, progress=False, overrides=SMALL, **kwargs)


@pytest.fixture(scope="module")
def small_serial() -> dict:
    return small(cache=False, workers=1)


# --------------------------------------------------------------------------- same numbers


def test_fig4_ci_workers_and_dask_equal_the_serial_run(tmp_path):
    """The issue's Done-when: ``reproduce fig4 --scale ci`` with ``--workers 2`` and with
    ``--executor dask`` (a 2-worker LocalCluster) writes the numbers of ``--workers 1``."""
    serial = reproduce(tmp_path, "serial", "--workers", "1", "--no-progress")
    pool = reproduce(tmp_path, "pool", "--workers", "2")  # with the progress bar
    dask = reproduce(tmp_path, "dask", "--workers", "2", "--executor", "dask", "--no-progress")
    assert serial["cells"] > 2 and serial["cells_from_cache"] == 0
    assert numbers(pool) == numbers(serial)
    assert numbers(dask) == numbers(serial)


def test_completion_order_does_not_change_the_result(small_serial, tmp_path):
    """Cells that finish last-first (a caller's executor) are still assembled by cell index,
    and each is cached by this process."""

    class LastFirst(cf.Executor):
        """Holds the tasks until ``expected`` are submitted, then runs them last-first in a thread."""

        def __init__(self, expected: int):
            self.expected, self.tasks, self.order = expected, [], []

        def submit(self, fn, *args, **kwargs):
            future = cf.Future()
            self.tasks.append((future, fn, args))
            if len(self.tasks) == self.expected:
                threading.Thread(target=self._run_last_first).start()
            return future

        def _run_last_first(self):
            for k in reversed(range(len(self.tasks))):
                future, fn, args = self.tasks[k]
                self.order.append(k)
                future.set_result(fn(*args))

    pool = LastFirst(small_serial["cells"])
    result = small(cache_dir=tmp_path, executor=pool)
    assert pool.order == list(reversed(range(small_serial["cells"])))
    assert numbers(result) == numbers(small_serial)
    assert len(list((tmp_path / "fig4").glob("*.json"))) == result["cells"]


def test_chained_cells_never_go_to_an_executor(monkeypatch, tmp_path):
    """Figures 6-7: IMP levels depend on the level before; they run in order in this process."""

    def refuse(*args, **kwargs):
        raise AssertionError("a chained cell was sent to an executor")

    monkeypatch.setattr(runner, "open_executor", refuse)
    tiny6 = {"N_values": [60], "trials": 1, "levels": 2, "steps": 20, "test_size": 50}
    result = runner.run_figure("fig6", "ci", 0, cache_dir=tmp_path, progress=False, overrides=tiny6, workers=2)
    assert result["cells"] == 2 and len(result["raw"]["test_error"][0][0]) == 2


# --------------------------------------------------------------------------- interrupted runs resume


@pytest.mark.parametrize("where", ["local", "dask"])
def test_interrupted_parallel_run_resumes_from_the_cache(where, client, small_serial, tmp_path, monkeypatch):
    """Ctrl-C after three results: the pending cells are cancelled, the three stay in the
    cache, and the rerun computes only the rest and gives the uninterrupted numbers."""
    executor = client if where == "dask" else None
    real_put = ResultCache.put
    stored = []

    def put_then_interrupt(store, config, payload):
        path = real_put(store, config, payload)
        stored.append(path)
        if len(stored) == 3:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(ResultCache, "put", put_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        small(cache_dir=tmp_path, workers=2, executor=executor)
    monkeypatch.setattr(ResultCache, "put", real_put)
    assert len(list((tmp_path / "fig4").glob("*.json"))) == 3
    resumed = small(cache_dir=tmp_path, workers=2, executor=executor)
    assert resumed["cells_from_cache"] == 3 and resumed["cells"] > 3
    assert numbers({**resumed, "cells_from_cache": 0}) == numbers(small_serial)


def test_a_failing_cell_cancels_the_rest_and_keeps_what_finished(client, small_serial, tmp_path):
    """An exception in a worker reaches the caller; results that arrived before it are cached."""
    inner = client.get_executor(pure=False)

    class FailsOnFourth(cf.Executor):
        def __init__(self):
            self.count = 0

        def submit(self, fn, *args, **kwargs):
            self.count += 1
            if self.count == 4:  # the same task for a figure that does not exist: fails in the worker
                fn = functools.partial(runner.compute_cell, "fig9", **fn.keywords)
            return inner.submit(fn, *args, **kwargs)

    with pytest.raises(ValueError, match="figure name must be one of"):
        small(cache_dir=tmp_path, executor=FailsOnFourth())
    kept = len(list((tmp_path / "fig4").glob("*.json")))
    assert kept < small_serial["cells"]
    resumed = small(cache_dir=tmp_path, workers=1)
    assert resumed["cells_from_cache"] == kept
    assert numbers({**resumed, "cells_from_cache": 0}) == numbers(small_serial)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "argument --workers: workers must be an integer in [1, 4096], got 0"),
    (["--workers", "two"], "argument --workers: workers must be an integer in [1, 4096], got 'two'"),
    (["--executor", "ray"], "invalid choice: 'ray'"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "needs --executor dask"),
    (["--scheduler", ""], "--scheduler needs the address"),
    (["--scheduler", "nonsense"], "cannot reach the Dask scheduler at nonsense"),
])
def test_bad_executor_arguments_exit_2_in_one_line(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "fig4", "--scale", "ci", "--no-cache", "--out", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error:" in line]) == 1


@pytest.mark.parametrize("flags", [["--executor", "dask"], ["--scheduler", "tcp://127.0.0.1:8786"]])
def test_dask_requested_but_not_installed_says_how_to_install_it(flags, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "fig4", "--scale", "ci", "--no-cache", "--out", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "pip install 'lthbook[dask]'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(executors.DaskMissingError, match=r"pip install 'lthbook\[dask\]'"):
        small(cache=False, executor="dask")


def test_more_workers_than_cores_warns(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "reproduce", lambda *args, **kwargs: True)
    cores = executors.available_cores()
    assert cli.main(["reproduce", "fig4", "--scale", "ci", "--no-cache", "--out", str(tmp_path),
                     "--workers", str(cores + 1)]) == 0
    assert f"--workers {cores + 1} is more than the {cores} CPU cores" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, message", [
    ({"workers": 0}, ValueError, "workers"),
    ({"workers": 1.5}, TypeError, "workers"),
    ({"executor": "ray"}, ValueError, "executor must be one of 'local', 'dask'"),
    ({"executor": 3}, TypeError, "executor must be None"),
    ({"scheduler": "tcp://127.0.0.1:8786"}, ValueError, "needs executor='dask'"),
    ({"executor": "dask", "scheduler": 8786}, TypeError, "scheduler must be a Dask scheduler address"),
])
def test_run_figure_names_the_bad_parameter(kwargs, error, message):
    with pytest.raises(error, match=message):
        small(cache=False, **kwargs)


def test_compute_cell_refuses_a_chained_cell():
    settings = registry.figure_settings("fig6", "ci")
    cell = registry.get("fig6").experiment.plan("fig6", settings, 0, "cpu")[0]
    with pytest.raises(ValueError, match="independent cells only"):
        runner.compute_cell("fig6", cell, settings=settings, seed=0, device="cpu", threads=1)


def test_worker_threads_split_the_threads_asked_for():
    assert executors.worker_threads(None, 4) == 1
    assert executors.worker_threads(8, 2) == 4 and executors.worker_threads(3, 4) == 1
    assert executors.resolve_workers(None) == executors.available_cores() >= 1
