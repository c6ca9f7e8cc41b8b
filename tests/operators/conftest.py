"""Fixtures for operator, sensor and trigger tests: the emulator over real HTTP, an env-var connection, contexts.

``tests/sensors`` and ``tests/triggers`` import these fixtures from here (``from tests.operators.conftest import …``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach

from airflow_provider_anaplan.client import token_cache
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook, forget_shared_clients
from tests.emulator.conftest import LiveServer

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"
MODEL_NAME = "Sales Forecast"
EMPLOYEES_FILE = "113000000000"
EMPLOYEES_IMPORT = "112000000000"
NIGHTLY_LOAD = "118000000000"
DELETE_ACTION = "117000000000"
SORT_ACTION = "117000000001"
OPTIMIZER_ACTION = "117000000002"
TASK_DURATION = 0.2
POLL = 0.02

try:  # Airflow 3.3+: the trigger's kill hook exists
    from airflow.sdk import ResumableJobMixin as _SDKMixin  # noqa: F401

    AIRFLOW_3_3 = True
except ImportError:
    AIRFLOW_3_3 = False


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """No cached token or shared client crosses tests (each test has its own emulator)."""
    token_cache.clear()
    forget_shared_clients()
    yield
    token_cache.clear()
    forget_shared_clients()


@pytest.fixture
def emulator() -> EmulatorApp:
    """The bundled tenant; every action (and process step) takes TASK_DURATION seconds."""
    app = create_app()
    engine_for(app.state).options.task_duration = TASK_DURATION
    return app


@pytest.fixture
def live(emulator: EmulatorApp) -> Iterator[LiveServer]:
    server = LiveServer(emulator)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def anaplan_conn(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """``anaplan_default`` as an env-var connection to the live emulator; the model given by name."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANAPLAN_DEFAULT",
        json.dumps(
            {
                "conn_type": "anaplan",
                "login": DEFAULT_USER_EMAIL,
                "password": DEFAULT_USER_PASSWORD,
                "extra": {"base_url": live.url, "workspace_id": WORKSPACE, "model_id": MODEL_NAME, "timeout": 10},
            }
        ),
    )
    return live


def set_task_duration(app: EmulatorApp, seconds: float) -> None:
    engine_for(app.state).options.task_duration = seconds


# ---------------------------------------------------------------------------------------------------- contexts
class FakeTI:
    """The slice of a RuntimeTaskInstance the operators touch."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.stats_tags: dict[str, str] = {}
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON
        self.xcom[key] = value


class FakeStore:
    """The task state store of Airflow 3.3 (``context["task_state_store"]``): survives retries, unlike XCom."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        assert value is not None
        self.data[key] = value


class FakeDagRun:
    def __init__(self, start_date: dt.datetime) -> None:
        self.start_date = start_date
        self.run_after = start_date


def make_context(
    try_number: int = 1,
    store: FakeStore | None = None,
    dag_run_start: dt.datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "ti": FakeTI(try_number),
        "dag_run": FakeDagRun(dag_run_start or dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)),
        "params": {},
    }
    if store is not None:
        context["task_state_store"] = store
    context.update(extra)
    return context


# ---------------------------------------------------------------------------------------------------- triggers
def roundtrip_trigger(trigger: Any) -> Any:
    """Serialize a trigger as the scheduler stores it and build it again as the triggerer does.

    Airflow 3.2+ stores trigger kwargs through ``airflow.sdk.serde``; 3.1 re-instantiates from ``serialize()``.
    """
    classpath, kwargs = trigger.serialize()
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow 3.1
        restored = json.loads(json.dumps(kwargs))
    else:
        restored = deserialize(serialize(kwargs))
    assert restored == kwargs
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    again = cls(**restored)
    assert again.serialize() == (classpath, kwargs)
    return again


def first_event(trigger: Any, timeout: float = 30.0) -> Any:
    """Run the trigger's ``run()`` on a fresh loop until its first event."""

    return run_async(_first(trigger, timeout))


async def _first(trigger: Any, limit: float) -> Any:
    agen = trigger.run()
    try:
        return await asyncio.wait_for(agen.__anext__(), limit)
    finally:
        await agen.aclose()


def run_async(coro: Any) -> Any:
    """``asyncio.run`` that closes this loop's HTTP client of the shared Anaplan client afterwards (a triggerer's
    long-lived loop keeps it; a test's loop must not leak its sockets)."""

    async def main() -> Any:
        try:
            return await coro
        finally:
            await (await AnaplanHook("anaplan_default").aget_client()).aclose()

    return asyncio.run(main())


def run_deferred(op: Any, context: dict[str, Any]) -> Any:
    """Execute a deferrable operator: execute → TaskDeferred → trigger round trip → run → execute_complete."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.method_name == "execute_complete"
    trigger = roundtrip_trigger(deferred.value.trigger)
    event = first_event(trigger)
    payload = json.loads(json.dumps(event.payload))  # what the DB keeps
    return getattr(op, deferred.value.method_name)(context, event=payload)


# ---------------------------------------------------------------------------------------------------- Anaplan side
def hook() -> AnaplanHook:
    return AnaplanHook("anaplan_default")


def tasks_of(action_id: str) -> list[Any]:
    return hook().run(lambda c: c.list_tasks(MODEL, action_id, workspace_id=WORKSPACE))


def task_state(action_id: str, task_id: str) -> str | None:
    return hook().run(lambda c: c.get_task(MODEL, action_id, task_id, workspace_id=WORKSPACE)).task_state


def start_task(action_id: str) -> str:
    outcome = hook().run(lambda c: c.run_action(MODEL, action_id, workspace_id=WORKSPACE, wait=False))
    return outcome.task_id


def cancel(action_id: str, task_id: str) -> None:
    hook().run(lambda c: c.cancel_task(MODEL, action_id, task_id, workspace_id=WORKSPACE, poll_interval=0.05))


def upload_employees(text: str) -> None:
    hook().run(lambda c: c.upload_file(MODEL, EMPLOYEES_FILE, text.encode(), workspace_id=WORKSPACE))


#: Employees.csv with one good row, one rejected row (unknown parent) and one blank (ignored) row.
EMPLOYEES_WITH_REJECTS = (
    "Code,Name,Parent,Start Date,Salary\nE101,Ada Lovelace,North,2024-01-01,100000\n"
    "E102,Alan Turing,Atlantis,2024-01-01,90000\n"
)
EMPLOYEES_WITH_BLANK = "Code,Name,Parent,Start Date,Salary\nE103,Grace Hopper,North,2024-01-01,95000\n,,,,\n"
EMPLOYEES_ALL_REJECTED = "Code,Name,Parent,Start Date,Salary\nE104,Edsger Dijkstra,Atlantis,2024-01-01,1\n"


@pytest.fixture(scope="module")
def finalize_earlier_garbage() -> None:
    """Finalize what earlier test modules left for the garbage collector before a module's tests run.

    ``dag.test()`` in ``test_run_action.py`` runs triggers under throw-away event loops whose shared HTTP clients stay
    open (as a real triggerer's must); their sockets are finalized whenever a full collection happens, and pytest would
    blame the ResourceWarning on whichever later test is running. Only ResourceWarnings are dropped here.
    """
    original = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, ResourceWarning):
            original(unraisable)

    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = original


@pytest.fixture(scope="module")
def memory_store() -> None:
    """fsspec's in-memory filesystem under the ``memory://`` scheme of ``ObjectStoragePath``."""
    attach("memory", fs=fsspec.filesystem("memory"))


@pytest.fixture
def memory_root(memory_store: None) -> Iterator[ObjectStoragePath]:
    """A fresh ``memory://`` directory for one test, removed afterwards."""
    root = ObjectStoragePath(f"memory://anaplan-operator-tests/{uuid.uuid4().hex}/")
    root.mkdir(parents=True, exist_ok=True)
    yield root
    root.fs.rm(root.path, recursive=True)
