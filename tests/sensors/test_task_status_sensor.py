"""AnaplanTaskStatusSensor against the emulator over real HTTP: poke and deferrable modes, CANCELLED, soft_fail."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_anaplan.emulator import EmulatorApp
from airflow_provider_anaplan.exceptions import TaskCancelledError, TaskFailedError
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor
from airflow_provider_anaplan.sensors.anaplan import AnaplanTaskCancelledSensorError
from airflow_provider_anaplan.triggers.anaplan import AnaplanTaskTrigger
from tests.operators import conftest as shared
from tests.operators.conftest import (
    EMPLOYEES_IMPORT,
    EMPLOYEES_WITH_REJECTS,
    POLL,
    SORT_ACTION,
    cancel,
    first_event,
    make_context,
    roundtrip_trigger,
    set_task_duration,
    start_task,
    upload_employees,
)

# The shared fixtures of tests/operators/conftest.py.
_fresh_clients, anaplan_conn, emulator, live = shared._fresh_clients, shared.anaplan_conn, shared.emulator, shared.live

pytestmark = pytest.mark.usefixtures("anaplan_conn")


def sensor(**kwargs):
    kwargs.setdefault("task_id", "watch")
    kwargs.setdefault("poke_interval", POLL)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("action", "Sort Products")
    return AnaplanTaskStatusSensor(**kwargs)


def test_poke_mode_waits_for_the_given_task_and_returns_its_summary() -> None:
    task_id = start_task(SORT_ACTION)
    result = sensor(anaplan_task_id=task_id).execute(make_context())
    assert result["task_id"] == task_id and result["outcome"] == "success"


def test_without_a_task_id_the_newest_task_of_the_action_is_watched() -> None:
    start_task(SORT_ACTION)
    newest = start_task(SORT_ACTION)
    assert sensor().execute(make_context())["task_id"] == newest


def test_deferrable_round_trip(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 1.0)  # still running when the sensor first looks
    task_id = start_task(SORT_ACTION)
    context = make_context()
    watcher = sensor(anaplan_task_id=task_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        watcher.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, AnaplanTaskTrigger) and trigger.cancel_on_kill is False  # it only watches
    event = first_event(roundtrip_trigger(trigger))
    result = sensor(anaplan_task_id=task_id, deferrable=True).resume_execution(
        "execute_complete", {"event": event.payload}, context
    )
    assert result["task_id"] == task_id and result["outcome"] == "success"


def test_a_task_that_ends_cancelled_fails_the_sensor_or_skips_it_with_soft_fail(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    task_id = start_task(SORT_ACTION)
    cancel(SORT_ACTION, task_id)

    with pytest.raises(AnaplanTaskCancelledSensorError, match="was cancelled") as failed:
        sensor(anaplan_task_id=task_id).execute(make_context())
    # An Anaplan twin, final (no retry can change a finished task), and an AirflowException.
    assert isinstance(failed.value, TaskCancelledError)
    assert isinstance(failed.value, AirflowFailException) and isinstance(failed.value, AirflowException)

    with pytest.raises(AirflowSkipException):
        sensor(anaplan_task_id=task_id, soft_fail=True).execute(make_context())

    # Deferred: the trigger's CANCELLED event, resumed with soft_fail, skips too.
    running = start_task(SORT_ACTION)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(anaplan_task_id=running, deferrable=True, soft_fail=True).execute(context)
    cancel(SORT_ACTION, running)
    event = first_event(roundtrip_trigger(deferred.value.trigger))
    assert event.payload["status"] == "cancelled"
    with pytest.raises(AirflowSkipException):
        sensor(anaplan_task_id=running, deferrable=True, soft_fail=True).resume_execution(
            "execute_complete", {"event": event.payload}, context
        )


def test_the_same_row_policy_as_the_operators() -> None:
    upload_employees(EMPLOYEES_WITH_REJECTS)
    task_id = start_task(EMPLOYEES_IMPORT)
    with pytest.raises(TaskFailedError, match="rejected rows fail the task"):
        sensor(action=EMPLOYEES_IMPORT, anaplan_task_id=task_id).execute(make_context())
    result = sensor(action=EMPLOYEES_IMPORT, anaplan_task_id=task_id, fail_on="never").execute(make_context())
    assert result["outcome"] == "partial_success" and result["rows"]["failed"] == 1


def test_a_deferred_sensor_times_out_without_cancelling_the_task(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    task_id = start_task(SORT_ACTION)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(anaplan_task_id=task_id, deferrable=True, timeout=0.2).execute(context)
    started = time.monotonic()
    event = first_event(roundtrip_trigger(deferred.value.trigger))
    assert event.payload["status"] == "timeout" and time.monotonic() - started < 5
    with pytest.raises(AirflowSensorTimeout):
        sensor(anaplan_task_id=task_id, deferrable=True, timeout=0.2).resume_execution(
            "execute_complete", {"event": event.payload}, context
        )
    from tests.operators.conftest import task_state

    assert task_state(SORT_ACTION, task_id) == "IN_PROGRESS"
