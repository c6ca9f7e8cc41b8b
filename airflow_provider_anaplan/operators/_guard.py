"""One writer at a time per Anaplan file: a process-wide lock per (model id, file id).

An import reads whatever its source file holds when the import *runs*, not what was there when it was started. Two
tasks that upload into the same file and then import it (mapped tasks, overlapping DAG runs on one connection) can
therefore interleave as upload A, upload B, import A, and import A loads B's data. So an operator holds the guard of
every file it writes **from the start of its upload until the import (or process) that reads the file has ended**::

    with guard_files(model_id, [file_id], logger=self.log):
        upload ...; run the import and wait for it

or ``async with aguard_files(...)`` on an event loop. The locks are plain ``threading.Lock`` objects, so sync and async
holders in any thread or event loop of the process exclude each other; the async form waits by polling with
``asyncio.sleep``, never blocking the loop, and a cancelled waiter never leaves a lock taken. Several files are
locked in sorted order, so two tasks that need overlapping sets cannot deadlock.

**Across workers** a process lock cannot help: use an Airflow pool with one slot per (model, file), created with
``--include-deferred``, and put every task that writes the file in it::

    airflow pools set anaplan_75a40874_113000000001 1 "Anaplan: Sales Actuals.csv of Sales Forecast" --include-deferred

    AnaplanUploadAndImportOperator(..., pool=file_pool_name(MODEL_ID, FILE_ID))

A pool slot is held for the whole task (upload, import and wait), across all DAGs and DAG runs, whatever the executor;
Airflow queues the other tasks until the slot frees. ``--include-deferred`` matters for ``deferrable=True``: without
it a deferred task gives its slot back while its import still runs in Anaplan, and the next upload could overwrite
the file under it. (``max_active_tis_per_dag=1`` serialises one task's mapped instances and runs, but not different
tasks or DAGs writing the same file.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from ..exceptions import ConflictError

log = logging.getLogger(__name__)

#: How often an async waiter looks at a lock again (seconds).
POLL_INTERVAL = 0.05

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_mutex = threading.Lock()


def _key(model_id: str, file_id: str) -> tuple[str, str]:
    if not isinstance(model_id, str) or not model_id.strip() or not isinstance(file_id, str) or not file_id.strip():
        raise ValueError(f"A file guard needs a model id and a file id, got {model_id!r} and {file_id!r}.")
    return model_id.strip().upper(), file_id.strip()


def _lock_for(key: tuple[str, str]) -> threading.Lock:
    with _locks_mutex:
        return _locks.setdefault(key, threading.Lock())


def _keys(model_id: str, file_ids: Iterable[str]) -> list[tuple[str, str]]:
    return sorted({_key(model_id, file_id) for file_id in file_ids})


def _describe(key: tuple[str, str]) -> str:
    return f"file {key[1]} of model {key[0]}"


def _timed_out(key: tuple[str, str], timeout: float) -> ConflictError:
    return ConflictError(
        f"Waited {timeout:g} s for another task in this process to finish writing and importing {_describe(key)}. "
        "Raise the timeout, or serialise the tasks with a one-slot Airflow pool."
    )


def is_file_guarded(model_id: str, file_id: str) -> bool:
    """True while some task of this process holds the guard of the file."""
    return _lock_for(_key(model_id, file_id)).locked()


@contextlib.contextmanager
def guard_files(
    model_id: str,
    file_ids: Iterable[str],
    *,
    timeout: float | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
) -> Iterator[None]:
    """Hold the guards of ``file_ids`` of a model (blocking wait; for ``execute()`` on a worker).

    ``timeout`` (seconds, None: forever) bounds the wait for all of them; running out raises ``ConflictError``.
    """
    logger = logger or log
    deadline = None if timeout is None else time.monotonic() + timeout
    held: list[threading.Lock] = []
    try:
        for key in _keys(model_id, file_ids):
            lock = _lock_for(key)
            if not lock.acquire(blocking=False):
                logger.info("Waiting for another task of this process that is writing %s", _describe(key))
                remaining = -1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
                if not lock.acquire(timeout=remaining):
                    raise _timed_out(key, timeout or 0.0)
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()


@contextlib.asynccontextmanager
async def aguard_files(
    model_id: str,
    file_ids: Iterable[str],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - a bound on the wait for the locks, not on the body
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> AsyncIterator[None]:
    """:func:`guard_files` for an event loop: waits by polling, so the loop never blocks."""
    logger = logger or log
    deadline = None if timeout is None else time.monotonic() + timeout
    held: list[threading.Lock] = []
    try:
        for key in _keys(model_id, file_ids):
            lock = _lock_for(key)
            announced = False
            while not lock.acquire(blocking=False):
                if not announced:
                    logger.info("Waiting for another task of this process that is writing %s", _describe(key))
                    announced = True
                if deadline is not None and time.monotonic() >= deadline:
                    raise _timed_out(key, timeout or 0.0)
                await asyncio.sleep(poll_interval)
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()


def guard_file(model_id: str, file_id: str, **kwargs: Any) -> contextlib.AbstractContextManager[None]:
    """:func:`guard_files` for one file."""
    return guard_files(model_id, [file_id], **kwargs)


def aguard_file(model_id: str, file_id: str, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[None]:
    """:func:`aguard_files` for one file."""
    return aguard_files(model_id, [file_id], **kwargs)


def file_pool_name(model_id: str, file_id: str) -> str:
    """A conventional Airflow pool name for the one-slot pool of a (model, file): ``anaplan_<model 8>_<file id>``.

    The name only has to be the same in every DAG that writes the file; this helper keeps it so.
    """
    model, file = _key(model_id, file_id)
    return "anaplan_" + re.sub(r"[^a-z0-9]+", "_", f"{model[:8]}_{file}".lower())


__all__ = [
    "aguard_file",
    "aguard_files",
    "file_pool_name",
    "guard_file",
    "guard_files",
    "is_file_guarded",
]
