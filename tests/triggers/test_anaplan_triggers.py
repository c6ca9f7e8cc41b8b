"""AnaplanTaskTrigger and AnaplanSyncTaskTrigger: serialization, events against the live emulator, kill vs cleanup."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.triggers.base import BaseTrigger

from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator.alm_state import REVISION_CHANNELS, alm_for
from airflow_provider_anaplan.exceptions import AnaplanTimeoutError
from airflow_provider_anaplan.operators import AnaplanRunActionOperator
from airflow_provider_anaplan.triggers import AnaplanSyncTaskTrigger, AnaplanTaskTrigger
from airflow_provider_anaplan.triggers.anaplan import TaskTiming
from tests.operators import conftest as shared
from tests.operators.conftest import (
    AIRFLOW_3_3,
    MODEL,
    POLL,
    SORT_ACTION,
    WORKSPACE,
    first_event,
    hook,
    make_context,
    roundtrip_trigger,
    run_async,
    set_task_duration,
    start_task,
    task_state,
)

DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"

# The shared fixtures of tests/operators/conftest.py.
_fresh_clients, anaplan_conn, emulator, live = shared._fresh_clients, shared.anaplan_conn, shared.emulator, shared.live

pytestmark = pytest.mark.usefixtures("anaplan_conn")


def task_trigger(task_id: str, **kwargs) -> AnaplanTaskTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return AnaplanTaskTrigger(
        anaplan_conn_id="anaplan_default",
        model_id=MODEL,
        action_id=SORT_ACTION,
        task_id=task_id,
        workspace_id=WORKSPACE,
        **kwargs,
    )


def test_serialize_is_exact_survives_serde_and_holds_no_secret() -> None:
    trigger = task_trigger("A" * 32, end_time=1_800_000_000.5, echo={"action_name": "Sort Products"})
    assert trigger.serialize() == (
        "airflow_provider_anaplan.triggers.anaplan.AnaplanTaskTrigger",
        {
            "anaplan_conn_id": "anaplan_default",
            "model_id": MODEL,
            "task_id": "A" * 32,
            "poll_interval": POLL,
            "end_time": 1_800_000_000.5,
            "timing": {"created_at": None, "queued_until": None, "ended_at": None},
            "echo": {"action_name": "Sort Products"},
            "action_id": SORT_ACTION,
            "workspace_id": WORKSPACE,
            "cancel_on_kill": True,
        },
    )
    again = roundtrip_trigger(trigger)
    assert DEFAULT_USER_PASSWORD not in repr(again.serialize())
    sync = AnaplanSyncTaskTrigger(anaplan_conn_id="anaplan_default", model_id=MODEL, task_id="B" * 32)
    assert roundtrip_trigger(sync).serialize() == sync.serialize()
    with pytest.raises(ValueError, match="poll_interval"):
        task_trigger("A" * 32, poll_interval=0)


def test_success_event_with_counts_and_timing() -> None:
    task_id = start_task(SORT_ACTION)
    event = first_event(roundtrip_trigger(task_trigger(task_id)))
    payload = event.payload
    assert payload["status"] == "success" and payload["task_id"] == task_id
    assert payload["action_id"] == SORT_ACTION and payload["model_id"] == MODEL
    assert payload["failed_rows"] == 0 and "completed successfully" in payload["message"]
    timing = TaskTiming.from_dict(payload["timing"])
    assert timing.running_seconds is not None and timing.running_seconds >= 0


def test_the_triggerer_attaching_its_task_instance_keeps_the_anaplan_task_id() -> None:
    # A real triggerer sets trigger.task_instance; on Airflow 3.3 that setter overwrites trigger.task_id with the
    # Airflow task's id, so the Anaplan id must live elsewhere (dag.test() never calls the setter).
    task_id = start_task(SORT_ACTION)
    trigger = roundtrip_trigger(task_trigger(task_id))
    trigger.task_instance = type("FakeTaskInstance", (), {"task_id": "run_import"})()
    assert trigger.anaplan_task_id == task_id and trigger.serialize()[1]["task_id"] == task_id
    event = first_event(trigger)
    assert event.payload["status"] == "success" and event.payload["task_id"] == task_id


def test_queued_time_behind_another_task_on_the_model(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    start_task(SORT_ACTION)
    second = start_task(SORT_ACTION)  # waits for the model lock
    payload = first_event(task_trigger(second)).payload
    timing = TaskTiming.from_dict(payload["timing"])
    assert payload["status"] == "success"
    assert timing.queued_seconds is not None and timing.queued_seconds >= 0.2
    assert "queued" in timing.describe()


def test_still_running_yields_nothing_then_the_deadline_yields_timeout(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    task_id = start_task(SORT_ACTION)

    async def still_running() -> bool:
        pending = asyncio.ensure_future(task_trigger(task_id).run().__anext__())
        await asyncio.sleep(0.3)
        done = pending.done()
        pending.cancel()
        return done

    assert run_async(still_running()) is False
    started = time.time()
    payload = first_event(task_trigger(task_id, end_time=time.time() + 0.2)).payload
    assert payload["status"] == "timeout" and time.time() - started < 5
    assert task_state(SORT_ACTION, task_id) == "IN_PROGRESS"  # the trigger never cancels on its own


def test_an_unknown_task_yields_an_error_event() -> None:
    payload = first_event(task_trigger("F" * 32)).payload
    assert payload["status"] == "error" and "F" * 32 in payload["message"]


def test_cleanup_never_cancels_and_on_kill_does(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    task_id = start_task(SORT_ACTION)
    trigger = roundtrip_trigger(task_trigger(task_id))

    async def state() -> str | None:
        return (await hook().arun(lambda c: c.get_task(MODEL, SORT_ACTION, task_id))).task_state

    async def scenario() -> None:
        agen = trigger.run()
        pending = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0.2)
        pending.cancel()
        await trigger.cleanup()
        assert await state() == "IN_PROGRESS"
        await trigger.on_kill()
        assert await state() in ("CANCELLING", "CANCELLED")

    run_async(scenario())
    assert task_state(SORT_ACTION, task_id) == "CANCELLED"
    # A watcher's trigger (the sensor's) leaves the task alone even on kill.
    other = start_task(SORT_ACTION)
    run_async(task_trigger(other, cancel_on_kill=False).on_kill())
    assert task_state(SORT_ACTION, other) in ("NOT_STARTED", "IN_PROGRESS")


def test_on_kill_is_a_trigger_hook_only_from_airflow_3_3() -> None:
    assert hasattr(BaseTrigger, "on_kill") is AIRFLOW_3_3


@pytest.mark.skipif(AIRFLOW_3_3, reason="below 3.3 Airflow gives triggers no kill hook")
def test_below_3_3_a_killed_deferred_task_is_cancelled_at_its_deadline(emulator: EmulatorApp) -> None:
    """Documented behaviour: the trigger keeps polling after the kill; at the deadline it yields timeout, and the
    operator (resuming) cancels the Anaplan task."""
    set_task_duration(emulator, 30)
    from airflow.providers.common.compat.sdk import TaskDeferred

    context = make_context()
    operator = AnaplanRunActionOperator(
        task_id="t", action=SORT_ACTION, deferrable=True, timeout=0.3, poll_interval=POLL
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    payload = first_event(roundtrip_trigger(deferred.value.trigger)).payload
    assert payload["status"] == "timeout"
    with pytest.raises(AnaplanTimeoutError):
        operator.execute_complete(context, event=payload)
    assert task_state(SORT_ACTION, payload["task_id"]) == "CANCELLED"


def test_sync_trigger_follows_an_alm_sync(emulator: EmulatorApp) -> None:
    alm = alm_for(emulator.state)
    alm.options.sync_duration = 0.3
    task = hook().run(lambda c: c.sync_model(MODEL, DEV, REVISION_CHANNELS, wait=False))
    trigger = roundtrip_trigger(
        AnaplanSyncTaskTrigger(
            anaplan_conn_id="anaplan_default", model_id=MODEL, task_id=task.task_id, poll_interval=POLL
        )
    )
    payload = first_event(trigger).payload
    assert payload["status"] == "success" and payload["task_id"] == task.task_id
    assert payload["source_revision_id"] == REVISION_CHANNELS

    alm.fail_next_sync(title="Sync interrupted", message="The model was busy.")
    failing = hook().run(lambda c: c.sync_model(MODEL, DEV, REVISION_CHANNELS, wait=False))
    trigger = AnaplanSyncTaskTrigger(
        anaplan_conn_id="anaplan_default", model_id=MODEL, task_id=failing.task_id, poll_interval=POLL
    )
    payload = first_event(trigger).payload
    assert payload["status"] == "failed" and "Sync interrupted" in payload["message"]
    run_async(trigger.on_kill())  # cannot cancel an ALM task: only logs

    alm.options.sync_duration = 30
    slow = hook().run(lambda c: c.sync_model(MODEL, DEV, REVISION_CHANNELS, wait=False))
    trigger = AnaplanSyncTaskTrigger(
        anaplan_conn_id="anaplan_default",
        model_id=MODEL,
        task_id=slow.task_id,
        poll_interval=POLL,
        end_time=time.time() + 0.2,
    )
    assert first_event(trigger).payload["status"] == "timeout"
