"""Where independent cells run: a local process pool, a Dask cluster or any executor.

:func:`lthbook.runner.run_figure` sends the uncached cells that belong to no chain (the
Algorithm 1 cells of Figures 2-5) to a :class:`concurrent.futures.Executor` and collects
their results in the parent *as they complete* (:func:`for_each_result`). This module
chooses and opens that executor (:func:`open_executor`):

* ``"local"`` (default) -- a :class:`~concurrent.futures.ProcessPoolExecutor` of
  ``workers`` processes (:func:`local_context`: forked from a clean ``forkserver`` process
  that has imported lthbook once, so a pool starts in a fraction of a second after the
  first; ``spawn`` where there is no ``forkserver``). Forking the caller itself is unsafe
  once its torch/OpenMP thread pools run. As with every ``spawn``/``forkserver`` pool, a
  *script* that calls :func:`~lthbook.runner.run_figure` must do so under
  ``if __name__ == "__main__":``, since the workers import the script
  (``python -m lthbook`` and notebooks need nothing);
* ``"dask"`` -- a ``dask.distributed`` client: to the scheduler at ``scheduler``
  (``tcp://host:8786``), or to a ``LocalCluster`` of ``workers`` single-threaded worker
  processes without a dashboard (:func:`dask_client`). ``dask[distributed]`` is optional
  (``pip install 'lthbook[dask]'``); without it :class:`DaskMissingError` is raised;
* an executor object the caller owns (a :class:`concurrent.futures.Executor`, or a dask
  ``Client``, whose ``get_executor()`` is used): used as it is and never shut down.

On an interrupt or an error the pending tasks are cancelled and a local pool's worker
processes are stopped at once (:func:`stop_local_pool`); results that arrived before stay
with the caller, who has already stored them. If the caller dies without that clean-up
(``kill -9``, the out-of-memory killer, a notebook kernel restarted), each worker ends on
its own as soon as it sees the caller gone (:func:`exit_with_parent`), instead of finishing
its cell and then waiting for ever.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import threading
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ._validation import check_int

#: The executors :func:`open_executor` knows by name.
EXECUTOR_NAMES = ("local", "dask")

#: How to install the optional Dask support.
DASK_INSTALL = "pip install 'lthbook[dask]'"


class DaskMissingError(ImportError):
    """``executor="dask"`` was asked for but ``dask.distributed`` is not installed."""


class SchedulerError(OSError):
    """The Dask scheduler named by ``scheduler`` could not be reached."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else
    :func:`os.cpu_count`); at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``workers`` validated (an integer >= 1); ``None`` means one per core (:func:`available_cores`)."""
    return available_cores() if workers is None else check_int("workers", workers, 1)


def worker_threads(threads: int | None, workers: int) -> int:
    """Torch threads of each worker: ``threads // workers`` (at least 1) when ``threads`` is
    given, else 1, so that the workers together use no more threads than asked for."""
    return 1 if threads is None else max(1, threads // workers)


def is_executor(value: Any) -> bool:
    """Whether ``value`` is an executor object (not a name): a :class:`concurrent.futures.Executor`
    or something with ``get_executor()`` (a dask ``Client``)."""
    return isinstance(value, cf.Executor) or callable(getattr(value, "get_executor", None))


def check_executor(executor: Any, scheduler: Any) -> None:
    """Validate the ``executor``/``scheduler`` pair of :func:`lthbook.runner.run_figure`:
    ``TypeError`` for a wrong type, ``ValueError`` for a bad value."""
    if executor is not None and not is_executor(executor):
        if not isinstance(executor, str):
            raise TypeError(f"executor must be None, 'local', 'dask' or a concurrent.futures.Executor (or a dask "
                            f"Client), got {type(executor).__name__}")
        if executor not in EXECUTOR_NAMES:
            raise ValueError(f"executor must be one of {', '.join(map(repr, EXECUTOR_NAMES))} or an executor "
                             f"object, got {executor!r}")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise TypeError(f"scheduler must be a Dask scheduler address such as 'tcp://host:8786', "
                            f"got {scheduler!r}")
        if executor != "dask":
            raise ValueError(f"scheduler={scheduler!r} needs executor='dask' (got executor={executor!r})")


def import_distributed() -> Any:
    """The ``distributed`` module, or :class:`DaskMissingError` saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise DaskMissingError(f"the dask executor needs dask.distributed, which is not installed: "
                               f"{DASK_INSTALL}") from None
    return distributed


@contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: connected to ``scheduler`` if given, else to a new
    ``LocalCluster`` of ``workers`` worker processes with one thread each and no dashboard.
    Both are closed on exit (a remote cluster itself keeps running)."""
    distributed = import_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def stop_local_pool(pool: cf.ProcessPoolExecutor) -> None:
    """Cancel the pending tasks of ``pool`` and stop its worker processes now, without
    waiting for the running tasks (which may take hours at the paper scale)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:  # pragma: no cover - newer Python
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def exit_with_parent() -> None:
    """Initializer of the local pool's workers: a daemon thread waits on
    ``multiprocessing.parent_process()`` (for ``forkserver`` and ``spawn`` workers, the
    process that opened the pool, whose end closes a pipe the worker holds) and ends this
    worker with exit status 1 when it is gone. Nothing is lost that was not lost already:
    only the caller stores results. Does nothing in a process without a parent process."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - only ever called in a pool worker
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="lthbook-exit-with-parent", daemon=True).start()


#: What the ``forkserver`` process imports before it forks workers (``__main__`` is Python's default).
_PRELOAD = ["__main__", "lthbook.runner"]


def local_context() -> multiprocessing.context.BaseContext:
    """The start method of the local pool: ``forkserver`` preloading lthbook (``_PRELOAD``),
    or ``spawn`` on platforms without ``forkserver`` (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # takes effect when the server starts (once per process)
    return context


@contextmanager
def open_executor(executor: Any, scheduler: str | None, workers: int) -> Iterator[cf.Executor]:
    """The executor named by ``executor`` (see the module docstring), opened for ``workers``
    workers and closed on exit. An executor object is passed through and left open."""
    if isinstance(executor, cf.Executor):
        yield executor
    elif is_executor(executor):  # a dask Client owned by the caller
        yield executor.get_executor(pure=False)
    elif executor == "dask":
        with dask_client(workers, scheduler) as client:
            pool = client.get_executor(pure=False)
            try:
                yield pool
            finally:
                pool.shutdown(wait=False)
    else:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=local_context(), initializer=exit_with_parent)
        try:
            yield pool
        except BaseException:
            stop_local_pool(pool)
            raise
        pool.shutdown(wait=True)


def for_each_result(pool: cf.Executor, task: Callable[[Any], Any], items: Sequence[Any],
                    on_result: Callable[[int, Any], None]) -> None:
    """Submit ``task(item)`` for every item to ``pool`` and call ``on_result(index, result)``
    in this process as each task finishes (in completion order, not submission order).

    When a task raises, or anything (Ctrl-C, ``on_result``) interrupts the loop, the tasks
    not yet started are cancelled and the exception propagates; results passed to
    ``on_result`` before that are the caller's to keep. A local pool whose worker died
    raises ``RuntimeError`` naming the usual cause (an unguarded script).
    """
    futures = {pool.submit(task, item): i for i, item in enumerate(items)}
    try:
        for future in cf.as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise RuntimeError(
                    "a worker process of the local pool stopped abruptly. If run_figure is called from a script, "
                    "call it under `if __name__ == \"__main__\":` (the workers import the script), or pass "
                    "workers=1 (--workers 1) to compute in this process") from exc
            on_result(futures[future], result)
    finally:
        for future in futures:
            future.cancel()


__all__ = ["EXECUTOR_NAMES", "DASK_INSTALL", "DaskMissingError", "SchedulerError", "available_cores",
           "resolve_workers", "worker_threads", "is_executor", "check_executor", "import_distributed",
           "dask_client", "exit_with_parent", "local_context", "stop_local_pool", "open_executor", "for_each_result"]
