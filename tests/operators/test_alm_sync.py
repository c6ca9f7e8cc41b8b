"""AnaplanALMSyncOperator against the emulator over real HTTP: promotion DEV -> targets, reports, offline/online,
both modes, idempotent retries and clear failures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import ObjectStoragePath

from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator.alm_state import (
    REVISION_CHANNELS,
    REVISION_INITIAL,
    REVISION_REGIONS,
    SALES_FORECAST_DEV,
    AlmState,
    alm_for,
)
from airflow_provider_anaplan.exceptions import (
    AnaplanError,
    AnaplanTimeoutError,
    InvalidInputError,
    ModelStateError,
    TaskFailedError,
)
from airflow_provider_anaplan.operators import AnaplanALMSyncOperator
from airflow_provider_anaplan.operators._base import XCOM_OUTCOME_KEY, XCOM_TASK_ID_KEY
from airflow_provider_anaplan.triggers.anaplan import AnaplanSyncTaskTrigger

from .conftest import (
    AIRFLOW_3_3,
    MODEL,
    POLL,
    FakeStore,
    first_event,
    make_context,
    roundtrip_trigger,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn")

TEST_MODEL = "7E57000000000000000000000000A001"


@pytest.fixture
def alm(emulator: EmulatorApp) -> AlmState:
    """The tenant's ALM state with quick tasks and a TEST copy of DEV at the revision PROD is at."""
    state = alm_for(emulator.state)
    state.options.sync_duration = 0.2
    state.options.report_duration = 0.02
    state.copy_model(SALES_FORECAST_DEV, "Sales Forecast TEST", model_id=TEST_MODEL, revision_id=REVISION_REGIONS)
    return state


def op(**kwargs: Any) -> AnaplanALMSyncOperator:
    kwargs.setdefault("task_id", "promote")
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("source_model", "Sales Forecast DEV")
    kwargs.setdefault("target_models", ["Sales Forecast TEST", MODEL])
    return AnaplanALMSyncOperator(**kwargs)


def run_all_deferrals(make: Callable[[], AnaplanALMSyncOperator], context: dict[str, Any]) -> tuple[Any, int]:
    """execute, then every deferral (one per target that syncs) through the trigger's round trip, each resumed by a
    fresh, freshly rendered instance as after a real deferral; (result, number of deferrals)."""
    deferrals = 0
    operator = make()
    operator.render_template_fields(context)
    call = lambda: operator.execute(context)  # noqa: E731
    while True:
        try:
            return call(), deferrals
        except TaskDeferred as deferred:
            deferrals += 1
            trigger = deferred.trigger
            assert isinstance(trigger, AnaplanSyncTaskTrigger) and deferred.method_name == "execute_complete"
            assert context["ti"].xcom[XCOM_TASK_ID_KEY] == trigger.anaplan_task_id  # pushed before deferring
            assert DEFAULT_USER_PASSWORD not in repr(trigger.serialize())
            event = json.loads(json.dumps(first_event(roundtrip_trigger(trigger)).payload))
            fresh = make()
            fresh.render_template_fields(context)
            call = lambda fresh=fresh, event=event: fresh.execute_complete(context, event=event)  # noqa: E731


def latest(alm: AlmState, model_id: str) -> str:
    found = alm.latest_revision(model_id)
    assert found is not None
    return found[0].id


def test_worker_mode_promotes_dev_into_two_models_with_reports_and_offline_online(
    emulator: EmulatorApp, alm: AlmState, tmp_path: Path
) -> None:
    context = make_context()
    result = op(take_offline=True, report_to=str(tmp_path / "reports")).execute(context)

    assert result["source_model_id"] == SALES_FORECAST_DEV
    assert result["revision_id"] == REVISION_CHANNELS and result["revision_created"] is False
    assert [t["target_model_id"] for t in result["targets"]] == [TEST_MODEL, MODEL]
    for target in result["targets"]:
        assert target["status"] == "synced" and target["target_revision_before"] == REVISION_REGIONS
        assert target["target_revision_after"] == REVISION_CHANNELS == latest(alm, target["target_model_id"])
        assert target["summary"]["created"] > 0
        comparison = Path(target["comparison_report_path"])
        assert comparison.name == f"alm_comparison_{target['target_model_id']}_{REVISION_CHANNELS}.tsv"
        assert "Channel Forecast" in comparison.read_text()
        summary = json.loads(Path(target["summary_report_path"]).read_text())
        assert summary["sourceRevisionId"] == REVISION_CHANNELS and summary["totals"]["created"] > 0
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == result["targets"][-1]["sync_task_id"]
    # Each target was taken offline for its sync and brought back online after.
    counters = emulator.state.counters
    assert counters["alm.online_status.offline"] == 2 and counters["alm.online_status.online"] == 2
    assert emulator.state.models[MODEL].active_state == "PRODUCTION"
    assert emulator.state.models[TEST_MODEL].active_state == "UNLOCKED"

    # Running it again (a retry, or the next DAG run) changes nothing: every target is up to date.
    again = op(take_offline=True).execute(make_context(try_number=2))
    assert [t["status"] for t in again["targets"]] == ["up_to_date", "up_to_date"]
    assert len(alm.sync_tasks(MODEL)) == 2  # the seeded sync and ours
    assert counters["alm.online_status.offline"] == 2


def test_deferred_mode_creates_a_revision_named_from_a_template(
    emulator: EmulatorApp, alm: AlmState, memory_root: ObjectStoragePath
) -> None:
    def make() -> AnaplanALMSyncOperator:
        return op(
            new_revision_name="Release {{ params.release }}",
            new_revision_description="Promoted by Airflow",
            target_models="{{ params.targets }}",
            report_to=memory_root,
            take_offline=True,
            deferrable=True,
        )

    context = make_context(params={"release": "2026.11", "targets": MODEL})
    rendered = make()
    rendered.render_template_fields(context)
    assert rendered.new_revision_name == "Release 2026.11" and rendered.target_models == MODEL

    result, deferrals = run_all_deferrals(make, context)
    assert deferrals == 1
    assert result["revision_name"] == "Release 2026.11" and result["revision_created"] is True
    [target] = result["targets"]
    assert target["status"] == "synced" and target["target_revision_after"] == result["revision_id"]
    assert latest(alm, MODEL) == result["revision_id"] == latest(alm, SALES_FORECAST_DEV)
    assert target["summary_report_path"].startswith("memory://")
    assert json.loads(ObjectStoragePath(target["summary_report_path"]).read_text())["totals"]["created"] >= 1
    assert emulator.state.models[MODEL].active_state == "PRODUCTION"
    assert emulator.state.counters["alm.online_status.online"] == 1

    # A retry finds the revision it created and the target at it: no second revision, no second sync.
    retry = make_context(try_number=2, params=context["params"])
    again, deferrals = run_all_deferrals(make, retry)
    assert deferrals == 0 and again["revision_created"] is False and again["revision_id"] == result["revision_id"]
    assert again["targets"][0]["status"] == "up_to_date"
    assert len([r for r, _ in alm.history(SALES_FORECAST_DEV) if r.name == "Release 2026.11"]) == 1


def test_two_targets_defer_once_each(alm: AlmState) -> None:
    result, deferrals = run_all_deferrals(lambda: op(deferrable=True, revision=REVISION_CHANNELS), make_context())
    assert deferrals == 2
    assert [(t["target_model_id"], t["status"]) for t in result["targets"]] == [
        (TEST_MODEL, "synced"),
        (MODEL, "synced"),
    ]
    assert "comparison_report_path" not in result["targets"][0]  # no report_to: the summary is only logged


def test_a_revision_that_is_not_syncable_fails_clearly(emulator: EmulatorApp, alm: AlmState) -> None:
    context = make_context()
    with pytest.raises(ModelStateError, match="cannot be synced into model") as failed:
        op(revision=REVISION_INITIAL, target_models=MODEL, take_offline=True).execute(context)
    assert REVISION_CHANNELS in str(failed.value)  # the syncable revisions are listed
    assert emulator.state.counters.get("alm.online_status.offline", 0) == 0  # nothing was touched
    assert context["ti"].xcom[XCOM_OUTCOME_KEY]["targets"] == []

    with pytest.raises(AnaplanError, match="revision"):
        op(revision="No Such Revision", target_models=MODEL).execute(make_context())


def test_a_failed_sync_fails_the_task_and_the_target_goes_back_online(emulator: EmulatorApp, alm: AlmState) -> None:
    alm.fail_next_sync(target_model_id=MODEL, message="Disk full")
    context = make_context()
    with pytest.raises(TaskFailedError, match="Disk full"):
        op(take_offline=True).execute(context)
    assert emulator.state.models[MODEL].active_state == "PRODUCTION"
    assert emulator.state.counters["alm.online_status.online"] == 2
    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]
    assert [t["target_model_id"] for t in outcome["targets"]] == [TEST_MODEL]  # the first target was synced
    assert latest(alm, MODEL) == REVISION_REGIONS


def test_a_deferred_timeout_brings_the_target_back_online(emulator: EmulatorApp, alm: AlmState) -> None:
    alm.options.sync_duration = 30
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op(target_models=MODEL, take_offline=True, deferrable=True, timeout=0.5).execute(context)
    assert emulator.state.models[MODEL].active_state == "PRODUCTION_MAINTENANCE"  # offline while it syncs
    event = first_event(roundtrip_trigger(deferred.value.trigger))
    assert event.payload["status"] == "timeout"
    with pytest.raises(AnaplanTimeoutError, match="cannot be cancelled"):
        op(target_models=MODEL, take_offline=True, deferrable=True).execute_complete(context, event=event.payload)
    assert emulator.state.models[MODEL].active_state == "PRODUCTION"


def test_a_retry_below_3_3_reattaches_to_the_running_sync(alm: AlmState) -> None:
    alm.options.sync_duration = 0.6
    first = make_context()
    with pytest.raises(TaskDeferred):
        op(target_models=MODEL, deferrable=True).execute(first)
    started = first["ti"].xcom[XCOM_TASK_ID_KEY]

    result = op(target_models=MODEL).execute(make_context(try_number=2))
    assert result["targets"][0]["sync_task_id"] == started
    assert [t.id for t in alm.sync_tasks(MODEL)].count(started) == 1 and len(alm.sync_tasks(MODEL)) == 2


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
def test_a_retry_on_3_3_reattaches_through_the_task_state_store(alm: AlmState) -> None:
    alm.options.sync_duration = 0.6
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        op(target_models=MODEL, deferrable=True).execute(make_context(store=store))
    started = store.data[f"anaplan_alm_sync_{MODEL}"]
    result = op(target_models=MODEL).execute(make_context(try_number=2, store=store))
    assert result["targets"][0]["sync_task_id"] == started and len(alm.sync_tasks(MODEL)) == 2


@pytest.mark.parametrize(
    "event",
    [None, {"status": "success", "task_id": "A" * 32, "model_id": MODEL}, {"status": "weird", "task_id": "A"}],
)
def test_execute_complete_fails_loudly_on_an_unexpected_event(event: object) -> None:
    with pytest.raises(AnaplanError, match="event"):
        op(deferrable=True).execute_complete(make_context(), event=event)


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="either revision or new_revision_name"):
        op(revision=REVISION_CHANNELS, new_revision_name="x")
    with pytest.raises(InvalidInputError, match="dump_to"):
        op(dump_to="/tmp")
    with pytest.raises(InvalidInputError, match="cannot be a target"):
        op(target_models=["Sales Forecast DEV"]).execute(make_context())
    with pytest.raises(InvalidInputError, match="target_models"):
        op(target_models=[]).execute(make_context())
    assert {"source_model", "target_models", "revision", "new_revision_name", "report_to"} <= set(
        AnaplanALMSyncOperator.template_fields
    )
