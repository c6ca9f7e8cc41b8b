"""Client ALM calls against the emulator: revisions, syncs and reports with waiting, online status, and promote."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime

import pytest
import pytest_asyncio

from airflow_provider_anaplan.client import (
    AlmTaskState,
    AnaplanClient,
    AnaplanTimeoutError,
    BasicAuth,
    InvalidInputError,
    ModelStateError,
    NameNotFoundError,
    NewRevision,
    NotFoundError,
    PermissionDeniedError,
    PromotionError,
    ServerError,
    TaskCancelledError,
    TaskFailedError,
)
from airflow_provider_anaplan.client.settings import ClientSettings
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator.alm_state import (
    REVISION_CHANNELS,
    REVISION_INITIAL,
    REVISION_REGIONS,
    AlmState,
    alm_for,
)
from tests.emulator.conftest import FakeClock, LiveServer

from .conftest import FAST_RETRIES, make_settings

WS = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
WS_HR = "8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d"
PROD = "75A40874E6B64FA3AE0743278996850F"
DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"
HR = "3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"
POLL = 0.5


class ClockSleep:
    """Stands in for ``asyncio.sleep`` while waiting for ALM tasks: moves the shared fake clock instead of sleeping,
    so emulated tasks progress and a wait costs no time; ``hook`` runs before each sleep (to act mid-wait)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self.hook: Callable[[], None] | None = None

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hook is not None:
            self.hook()
        self.clock.advance(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeper(clock: FakeClock) -> ClockSleep:
    return ClockSleep(clock)


@pytest.fixture
def alm(app: EmulatorApp) -> AlmState:
    state = alm_for(app.state)
    state.options.sync_duration = 3.0
    state.options.report_duration = 1.0
    return state


@pytest_asyncio.fixture
async def client(app: EmulatorApp, clock: FakeClock, sleeper: ClockSleep) -> AsyncIterator[AnaplanClient]:
    settings = make_settings(app, clock, sleep=sleeper)
    async with AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings) as c:
        yield c


# --------------------------------------------------------------------------------------------------- revisions
@pytest.mark.asyncio
async def test_revisions_latest_and_applied_to_models(client: AnaplanClient, clock: FakeClock) -> None:
    revisions = await client.list_revisions(DEV)
    assert [r.id for r in revisions] == [REVISION_INITIAL, REVISION_REGIONS, REVISION_CHANNELS]
    assert revisions[0].name == "Initial build" and revisions[0].applied_on and revisions[0].created_by
    today = datetime.fromtimestamp(clock(), UTC).date()
    recent = await client.list_revisions(DEV, applied_after=date.fromordinal(today.toordinal() - 4))
    assert [r.id for r in recent] == [REVISION_REGIONS, REVISION_CHANNELS]
    older = await client.list_revisions(DEV, applied_before=f"{date.fromordinal(today.toordinal() - 5).isoformat()}")
    assert [r.id for r in older] == [REVISION_INITIAL]
    assert next(r.id for r in await client.list_revisions(DEV, sort="-appliedOn")) == REVISION_CHANNELS
    for bad in ({"applied_after": "yesterday"}, {"applied_before": "2026-02-30"}, {"applied_after": 3}):
        with pytest.raises(InvalidInputError):
            await client.list_revisions(DEV, **bad)  # type: ignore[arg-type]

    latest = await client.get_latest_revision(PROD)
    assert latest is not None and latest.id == REVISION_REGIONS
    assert await client.get_latest_revision(HR) is None

    applied = await client.list_applied_to_models(PROD, REVISION_REGIONS)
    assert [(a.model_id, a.applied_method) for a in applied] == [(DEV, "CREATE"), (PROD, "SYNC")]
    assert applied[0].model_name == "Sales Forecast DEV" and applied[0].model_deleted is False
    with pytest.raises(NotFoundError):
        await client.list_applied_to_models(PROD, REVISION_CHANNELS)
    with pytest.raises(InvalidInputError):
        await client.list_applied_to_models(PROD, "not-a-revision")


@pytest.mark.asyncio
async def test_create_revision_checks_limits_before_the_call(client: AnaplanClient, alm: AlmState) -> None:
    for name, description in (("x" * 61, None), ("", None), ("ok", "d" * 251)):
        with pytest.raises(InvalidInputError):
            await client.create_revision(DEV, name, description)
    revision = await client.create_revision(DEV, "n" * 60, "d" * 250)
    assert revision.name == "n" * 60 and revision.description == "d" * 250 and revision.applied_on
    assert (await client.get_latest_revision(DEV)).id == revision.id  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError) as raised:  # Anaplan's 400: nothing changed since the latest revision
        await client.create_revision(DEV, "again")
    assert raised.value.status == 400 and "no structural changes" in (raised.value.anaplan_message or "")

    syncable = await client.list_syncable_revisions(PROD, DEV)
    assert [r.id for r in syncable] == [revision.id, REVISION_CHANNELS]
    assert await client.list_syncable_revisions(HR, DEV) == []


# --------------------------------------------------------------------------------------------------- tasks
@pytest.mark.asyncio
async def test_sync_without_and_with_waiting(client: AnaplanClient, alm: AlmState, sleeper: ClockSleep) -> None:
    started = await client.sync_model(PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS, wait=False)
    assert started.task_state == AlmTaskState.IN_PROGRESS and started.task_url and not started.is_terminal
    assert isinstance(started.creation_time, int)
    running = await client.get_sync_task(PROD, started.task_id)
    assert running.current_step and running.result is None
    done = await client.wait_for_alm_task("sync", PROD, started.task_id, poll_interval=POLL)
    assert done.succeeded and done.result is not None
    assert done.result.source_revision_id == REVISION_CHANNELS and done.result.target_revision_id == REVISION_REGIONS
    assert sleeper.delays and all(d <= POLL for d in sleeper.delays)
    assert (await client.get_latest_revision(PROD)).id == REVISION_CHANNELS  # type: ignore[union-attr]
    listed = await client.list_sync_tasks(PROD)
    assert listed[0].task_id == started.task_id and listed[0].task_state == AlmTaskState.COMPLETE

    new = await client.create_revision(DEV, "Margin")
    finished = await client.sync_model(PROD, DEV, new.id, poll_interval=POLL)  # target revision read first
    assert finished.task_state == AlmTaskState.COMPLETE and finished.succeeded
    assert (await client.get_latest_revision(PROD)).id == new.id  # type: ignore[union-attr]
    with pytest.raises(ModelStateError, match="no revision"):
        await client.sync_model(HR, DEV, new.id)
    with pytest.raises(InvalidInputError):
        await client.wait_for_alm_task("imports", PROD, started.task_id)
    with pytest.raises(InvalidInputError):
        await client.sync_model(PROD, DEV, new.id, REVISION_REGIONS, poll_interval=-1)


@pytest.mark.asyncio
async def test_failed_cancelled_and_slow_syncs_end_the_wait(
    client: AnaplanClient, alm: AlmState, sleeper: ClockSleep
) -> None:
    alm.fail_next_sync(title="Sync interrupted", message="The model was busy.")
    with pytest.raises(TaskFailedError) as failed:
        await client.sync_model(PROD, DEV, REVISION_CHANNELS, poll_interval=POLL)
    assert not isinstance(failed.value, TaskCancelledError)
    assert "Sync interrupted" in str(failed.value) and failed.value.anaplan_message == "The model was busy."

    with pytest.raises(TaskFailedError, match="Revision not syncable"):  # going backwards is not syncable
        await client.sync_model(PROD, DEV, REVISION_INITIAL, poll_interval=POLL)

    def cancel_running() -> None:
        for task in alm.tasks.values():
            if task.state in ("NOT_STARTED", "IN_PROGRESS"):
                alm.cancel_task(task.id)

    sleeper.hook = cancel_running
    with pytest.raises(TaskCancelledError, match="cancelled"):
        await client.sync_model(PROD, DEV, REVISION_CHANNELS, poll_interval=POLL)
    sleeper.hook = None
    assert (await client.get_latest_revision(PROD)).id == REVISION_REGIONS  # type: ignore[union-attr]

    alm.options.sync_duration = 1_000.0
    with pytest.raises(AnaplanTimeoutError, match="get_sync_task"):
        await client.sync_model(PROD, DEV, REVISION_CHANNELS, poll_interval=10, timeout=25)
    assert sleeper.delays[-3:] == [10, 10, 5]  # the last wait stops at the deadline


@pytest.mark.asyncio
async def test_reports(client: AnaplanClient, alm: AlmState) -> None:
    comparison = await client.create_comparison_report(
        PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS, poll_interval=POLL
    )
    assert comparison.succeeded and comparison.result and comparison.result.report_file_url
    assert (await client.get_comparison_report_task(PROD, comparison.task_id)).task_id == comparison.task_id
    text = await client.get_comparison_report(PROD, REVISION_REGIONS, REVISION_CHANNELS)
    assert "Revenue.Revenue\tformula\tUnits * Price\tUnits * Price * (1 - Discount %)" in text

    pending = await client.create_summary_report(PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS, wait=False)
    assert pending.task_state == AlmTaskState.IN_PROGRESS
    done = await client.wait_for_alm_task("summary", PROD, pending.task_id, poll_interval=POLL)
    assert done.succeeded and (await client.get_summary_report_task(PROD, done.task_id)).succeeded
    summary = await client.get_summary_report(PROD, REVISION_REGIONS, REVISION_CHANNELS)
    assert (summary.totals.created, summary.totals.modified, summary.totals.deleted) == (4, 1, 0)
    assert summary.differences["lineItems"].created == 2 and summary.differences["lineItems"].modified == 1
    assert summary.has_changes and summary.differences["modules"].total == 1

    with pytest.raises(TaskFailedError, match="Revision not found"):
        await client.create_comparison_report(PROD, DEV, "A" * 32, REVISION_REGIONS, poll_interval=POLL)
    with pytest.raises(NotFoundError):
        await client.get_summary_report(PROD, REVISION_INITIAL, REVISION_CHANNELS)
    with pytest.raises(InvalidInputError) as refused:  # the report needs Accept: application/octet-stream
        await client.transport.request(
            "GET", f"models/{PROD}/alm/comparisonReports/{REVISION_REGIONS}/{REVISION_CHANNELS}"
        )
    assert refused.value.status == 406


@pytest.mark.asyncio
async def test_online_status_archived_models_and_roles(client: AnaplanClient, alm: AlmState, app: EmulatorApp) -> None:
    await client.set_model_online(PROD, False)
    assert (await client.get_model(PROD)).active_state == "PRODUCTION_MAINTENANCE"
    await client.set_model_online(PROD, True)
    assert (await client.get_model(PROD)).active_state == "PRODUCTION"

    alm.archive(PROD)
    with pytest.raises(ModelStateError) as archived:
        await client.sync_model(PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS)
    assert archived.value.status == 422
    with pytest.raises(ModelStateError):
        await client.set_model_online(PROD, False)
    alm.archive(PROD, False)

    alm.set_workspace_admin(DEFAULT_USER_EMAIL, WS, admin=False)
    with pytest.raises(PermissionDeniedError) as forbidden:
        await client.list_revisions(PROD)
    assert forbidden.value.status == 403
    with pytest.raises(PermissionDeniedError) as report_forbidden:
        await client.create_summary_report(PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS)
    assert report_forbidden.value.status == 424


@pytest.mark.asyncio
async def test_starting_a_sync_is_never_retried_blindly(client: AnaplanClient, app: EmulatorApp) -> None:
    app.faults.add_rule("server_error", method="POST", path="/alm/syncTasks$", status=503)
    with pytest.raises(ServerError, match="may or may not have started"):
        await client.sync_model(PROD, DEV, REVISION_CHANNELS, REVISION_REGIONS)
    assert app.state.counters.get("faults.server_error") == 1
    assert app.state.counters.get("alm.sync_tasks", 0) == 0  # one attempt, refused before the handler


# --------------------------------------------------------------------------------------------------- promote
@pytest.mark.asyncio
async def test_promotion_dev_to_test_to_prod(client: AnaplanClient, alm: AlmState, app: EmulatorApp) -> None:
    test = alm.copy_model(DEV, "Sales Forecast TEST", workspace_id=WS_HR, revision_id=REVISION_REGIONS)

    first = await client.promote(
        "Sales Forecast DEV",
        "Sales Forecast TEST",
        revision=NewRevision(name="Margin", description="Margin % on revenue"),
        poll_interval=POLL,
    )
    assert first.revision_created and first.revision.name == "Margin"
    assert first.source_model_id == DEV and first.target_model_id == test.id
    assert first.target_revision is not None and first.target_revision.id == REVISION_REGIONS
    assert [r.id for r in first.syncable_revisions] == [first.revision.id, REVISION_CHANNELS]
    assert first.summary_report is not None and first.summary_report.totals.created == 5  # channels + margin
    assert first.comparison_report is not None and "Revenue.Margin %" in first.comparison_report
    assert first.comparison_report_task is not None and first.comparison_report_task.succeeded
    assert first.sync_task is not None and first.sync_task.succeeded
    assert first.target_revision_after is not None and first.target_revision_after.id == first.revision.id

    second = await client.promote(test.id, PROD, take_offline=True, poll_interval=POLL)  # TEST's latest revision
    assert second.revision.id == first.revision.id and not second.revision_created
    assert second.target_revision is not None and second.target_revision.id == REVISION_REGIONS
    assert second.sync_task is not None and second.sync_task.succeeded
    assert app.state.counters.get("alm.online_status.offline") == 1
    assert app.state.counters.get("alm.online_status.online") == 1
    assert (await client.get_model(PROD)).active_state == "PRODUCTION"
    assert alm.structure(PROD) == alm.structure(test.id) == alm.structure(DEV)

    applied = await client.list_applied_to_models(PROD, first.revision.id)
    assert [(a.model_id, a.applied_method) for a in applied] == [(DEV, "CREATE"), (test.id, "SYNC"), (PROD, "SYNC")]
    dumped = second.model_dump(mode="json", by_alias=True)
    assert dumped["summaryReport"]["totals"]["created"] == 5 and dumped["syncTask"]["taskState"] == "COMPLETE"

    again = await client.promote(test.id, PROD, poll_interval=POLL)  # an Airflow retry after success: nothing to do
    assert again.up_to_date and again.sync_task is None and again.comparison_report is None


@pytest.mark.asyncio
async def test_promotion_refuses_what_cannot_be_synced(client: AnaplanClient, alm: AlmState) -> None:
    with pytest.raises(ModelStateError, match="has no revision"):
        await client.promote(DEV, HR, poll_interval=POLL)
    await client.create_revision(HR, "Unrelated")
    with pytest.raises(ModelStateError, match="cannot be synced") as raised:
        await client.promote(DEV, HR, poll_interval=POLL)
    assert "Syncable revisions: none" in str(raised.value)
    with pytest.raises(ModelStateError, match="cannot be synced"):  # backwards, by name
        await client.promote(DEV, PROD, revision="Initial build", poll_interval=POLL)
    with pytest.raises(NameNotFoundError, match="Initial build"):
        await client.promote(DEV, PROD, revision="Initial buld", poll_interval=POLL)
    with pytest.raises(InvalidInputError, match="same model"):
        await client.promote(DEV, "Sales Forecast DEV")
    with pytest.raises(ModelStateError, match="no revision to promote"):
        await client.promote(_copy_without_history(alm), PROD, poll_interval=POLL)
    assert alm.structure(PROD) == alm.revisions[REVISION_REGIONS].structure  # nothing was synced


def _copy_without_history(alm: AlmState) -> str:
    """A fresh model with no revision at all (a copy of a model that has none)."""
    fresh = alm.copy_model(HR, "Scratch", model_id="ABCDEF0123456789ABCDEF0123456789")
    alm.model(fresh.id).history.clear()
    return fresh.id


@pytest.mark.asyncio
async def test_a_failed_promotion_keeps_its_reports_and_brings_the_model_back_online(
    client: AnaplanClient, alm: AlmState
) -> None:
    dry = await client.promote(DEV, PROD, revision=REVISION_CHANNELS, dry_run=True, poll_interval=POLL)
    assert dry.dry_run and dry.sync_task is None and dry.summary_report is not None
    assert (await client.get_latest_revision(PROD)).id == REVISION_REGIONS  # type: ignore[union-attr]

    alm.fail_next_sync(target_model_id=PROD, title="Sync interrupted", message="Try again later.")
    with pytest.raises(PromotionError) as raised:
        await client.promote(DEV, PROD, take_offline=True, poll_interval=POLL)
    error = raised.value
    assert isinstance(error, TaskFailedError) and not error.cancelled
    assert "Sync interrupted" in str(error)
    result = error.result
    assert result is not None and result.summary_report is not None and result.comparison_report
    assert result.sync_task is not None and result.sync_task.result is not None
    assert result.sync_task.result.error is not None and result.sync_task.result.error.title == "Sync interrupted"
    assert (await client.get_model(PROD)).active_state == "PRODUCTION"  # back online although the sync failed
    assert (await client.get_latest_revision(PROD)).id == REVISION_REGIONS  # type: ignore[union-attr]

    # Already offline before: promote leaves it offline.
    await client.set_model_online(PROD, False)
    done = await client.promote(DEV, PROD, take_offline=True, poll_interval=POLL)
    assert done.sync_task is not None and done.sync_task.succeeded
    assert (await client.get_model(PROD)).active_state == "PRODUCTION_MAINTENANCE"


@pytest.mark.asyncio
async def test_promotion_over_real_http(
    app: EmulatorApp, clock: FakeClock, live_server: LiveServer, sleeper: ClockSleep
) -> None:
    alm_for(app.state).options.sync_duration = 2.0
    settings = ClientSettings(base_url=live_server.url, clock=clock, timeout=5.0, sleep=sleeper, **FAST_RETRIES)
    async with AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=settings) as c:
        result = await c.promote(DEV, PROD, revision=NewRevision(name="Over HTTP"), poll_interval=1.0)
    assert result.sync_task is not None and result.sync_task.succeeded
    assert result.target_revision_after is not None and result.target_revision_after.name == "Over HTTP"


@pytest.mark.asyncio
async def test_a_cancelled_sync_ends_a_promotion(client: AnaplanClient, alm: AlmState, sleeper: ClockSleep) -> None:
    def cancel_syncs() -> None:
        for task in list(alm.tasks.values()):
            if task.kind == "sync" and task.state in ("NOT_STARTED", "IN_PROGRESS"):
                alm.cancel_task(task.id)

    sleeper.hook = cancel_syncs
    with pytest.raises(PromotionError) as raised:
        await client.promote(DEV, PROD, poll_interval=POLL)
    assert raised.value.cancelled and "cancelled" in str(raised.value)
    assert isinstance(raised.value.__cause__, TaskCancelledError)
    result = raised.value.result
    assert result is not None and result.sync_task is not None
    assert result.sync_task.task_state == AlmTaskState.CANCELLED and result.summary_report is not None
