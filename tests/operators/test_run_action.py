"""AnaplanRunActionOperator (and the shared policy of _base.py) against the emulator over real HTTP."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.exceptions import (
    AnaplanError,
    AnaplanTimeoutError,
    InvalidInputError,
    TaskCancelledError,
    TaskFailedError,
)
from airflow_provider_anaplan.operators import AnaplanRunActionOperator
from airflow_provider_anaplan.operators._base import (
    DEFER_TIMEOUT_MARGIN,
    XCOM_OUTCOME_KEY,
    XCOM_TASK_ID_KEY,
    AnaplanBaseOperator,
)
from airflow_provider_anaplan.triggers.anaplan import AnaplanTaskTrigger

from .conftest import (
    AIRFLOW_3_3,
    DELETE_ACTION,
    EMPLOYEES_IMPORT,
    EMPLOYEES_WITH_REJECTS,
    MODEL,
    OPTIMIZER_ACTION,
    POLL,
    SORT_ACTION,
    WORKSPACE,
    FakeStore,
    cancel,
    first_event,
    make_context,
    roundtrip_trigger,
    run_deferred,
    set_task_duration,
    start_task,
    task_state,
    tasks_of,
    upload_employees,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn")


def op(**kwargs):
    kwargs.setdefault("task_id", "run_action")
    kwargs.setdefault("poll_interval", POLL)
    return AnaplanRunActionOperator(**kwargs)


def test_worker_mode_runs_an_action_by_name() -> None:
    context = make_context()
    result = op(action="Delete Closed Employees").execute(context)

    assert result["outcome"] == "success"
    assert result["action_id"] == DELETE_ACTION and result["action_name"] == "Delete Closed Employees"
    assert result["model_id"] == MODEL and result["workspace_id"] == WORKSPACE  # the model was given by name
    assert result["rows"]["failed"] == 0 and result["dump_paths"] == []
    assert result["running_seconds"] is not None and result["queued_seconds"] == 0.0
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == result["task_id"]
    assert context["ti"].xcom["anaplan_model"]["model_id"] == MODEL  # for the "Anaplan model" extra link
    assert [t.task_id for t in tasks_of(DELETE_ACTION)] == [result["task_id"]]


def test_deferred_mode_round_trips_the_trigger_and_saves_the_solution_log(tmp_path: Path) -> None:
    context = make_context()
    operator = op(action=OPTIMIZER_ACTION, deferrable=True, timeout=120, solution_log_to=str(tmp_path / "log.txt"))
    started = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)

    trigger = deferred.value.trigger
    assert isinstance(trigger, AnaplanTaskTrigger)
    # The Anaplan task id is in XCom before the task defers (for links and manual clean-up).
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == trigger.anaplan_task_id
    assert "selectedModelId=" + MODEL in context["ti"].xcom["anaplan_model"]["url"]
    # The trigger's own deadline fires before the scheduler's deferral timeout.
    assert started + 120 - 1 <= trigger.end_time <= time.time() + 120
    assert deferred.value.timeout.total_seconds() >= trigger.end_time - time.time() + DEFER_TIMEOUT_MARGIN - 1
    _, kwargs = trigger.serialize()
    assert DEFAULT_USER_PASSWORD not in repr(kwargs)

    event = first_event(roundtrip_trigger(trigger))
    assert event.payload["status"] == "success"
    fresh = op(action=OPTIMIZER_ACTION, deferrable=True, solution_log_to=str(tmp_path / "log.txt"))  # a new process
    result = fresh.execute_complete(context, event=event.payload)
    assert result["outcome"] == "success" and result["task_id"] == trigger.anaplan_task_id
    assert result["solution_log_path"] == str(tmp_path / "log.txt")
    assert "Optimize Territories" in (tmp_path / "log.txt").read_text()
    assert DEFAULT_USER_PASSWORD not in repr(result)


def test_a_template_rendered_action_name() -> None:
    operator = op(action="{{ params.action }}", deferrable=True)
    context = make_context(params={"action": "Sort Products"})
    operator.render_template_fields(context)
    assert operator.action == "Sort Products"
    result = run_deferred(operator, context)
    assert result["action_id"] == SORT_ACTION and result["outcome"] == "success"


def test_policies_for_an_import_with_rejected_rows(tmp_path: Path) -> None:
    upload_employees(EMPLOYEES_WITH_REJECTS)
    context = make_context()
    with pytest.raises(TaskFailedError, match="rejected") as failed:
        op(action=EMPLOYEES_IMPORT, kind="import", dump_to=str(tmp_path)).execute(context)
    assert not isinstance(failed.value, TaskCancelledError)
    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]  # the result is in XCom even though the task failed
    assert outcome["outcome"] == "partial_success" and outcome["rows"]["failed"] == 1
    [dump] = outcome["dump_paths"]
    assert dump == str(tmp_path / f"anaplan_dump_{outcome['task_id']}.csv")
    assert "Atlantis" in Path(dump).read_text()

    upload_employees(EMPLOYEES_WITH_REJECTS)
    result = run_deferred(op(action="Employees from Employees.csv", fail_on="never", deferrable=True), make_context())
    assert result["outcome"] == "partial_success" and result["rows"]["failed"] == 1
    assert result["dump_paths"] == []  # summarised in the log only


def test_worker_timeout_cancels_the_task(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    context = make_context()
    with pytest.raises(AnaplanTimeoutError, match="did not finish within the timeout"):
        op(action=SORT_ACTION, timeout=0.3).execute(context)
    assert task_state(SORT_ACTION, context["ti"].xcom[XCOM_TASK_ID_KEY]) == "CANCELLED"


def test_deferred_timeout_event_cancels_the_task(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op(action=SORT_ACTION, deferrable=True, timeout=0.3).execute(context)
    event = first_event(roundtrip_trigger(deferred.value.trigger))
    assert event.payload["status"] == "timeout"
    with pytest.raises(AnaplanTimeoutError, match="It was cancelled"):
        op(action=SORT_ACTION, deferrable=True, timeout=0.3).execute_complete(context, event=event.payload)
    assert task_state(SORT_ACTION, event.payload["task_id"]) == "CANCELLED"


def test_on_kill_cancels_the_task_on_the_worker(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 30)
    context = make_context()
    operator = op(action=SORT_ACTION)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            operator.execute(context)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while XCOM_TASK_ID_KEY not in context["ti"].xcom and time.monotonic() < deadline:
        time.sleep(0.01)
    operator.on_kill()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(errors[0], TaskCancelledError)  # the poll loop sees the cancellation and ends
    assert task_state(SORT_ACTION, context["ti"].xcom[XCOM_TASK_ID_KEY]) == "CANCELLED"


def test_a_retry_below_3_3_adopts_the_running_task_of_an_earlier_try(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    first = make_context()
    with pytest.raises(TaskDeferred):  # try 1 starts the task, then dies while deferred
        op(action=SORT_ACTION, deferrable=True).execute(first)
    started = first["ti"].xcom[XCOM_TASK_ID_KEY]

    retry = make_context(try_number=2)  # no task state store: XCom of try 1 is gone
    result = op(action=SORT_ACTION).execute(retry)
    assert result["task_id"] == started
    assert [t.task_id for t in tasks_of(SORT_ACTION)] == [started]  # no second run

    # A first try never adopts someone else's running task; nor does a retry adopt one older than its DAG run.
    other = start_task(SORT_ACTION)
    old_run = make_context(try_number=2, dag_run_start=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5))
    assert op(action=SORT_ACTION).execute(old_run)["task_id"] != other


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
def test_a_retry_on_3_3_reattaches_through_the_task_state_store(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        op(action=SORT_ACTION, deferrable=True).execute(make_context(store=store))
    started = store.data["anaplan_task_id"]

    # The retry runs on the worker: ResumableJobMixin reads the store and reconnects.
    result = op(action=SORT_ACTION).execute(make_context(try_number=2, store=store))
    assert result["task_id"] == started
    # A later deferrable retry finds the task already succeeded and does not run it again.
    again = op(action=SORT_ACTION, deferrable=True).execute(make_context(try_number=3, store=store))
    assert again["task_id"] == started
    assert [t.task_id for t in tasks_of(SORT_ACTION)] == [started]

    # A task that ended without success is not reattached: the next try starts a new one.
    set_task_duration(emulator, 30)
    cancelled = start_task(SORT_ACTION)
    cancel(SORT_ACTION, cancelled)
    store.data["anaplan_task_id"] = cancelled
    set_task_duration(emulator, 0.2)
    result = op(action=SORT_ACTION).execute(make_context(try_number=4, store=store))
    assert result["task_id"] not in (started, cancelled)
    assert store.data["anaplan_task_id"] == result["task_id"]


@pytest.mark.parametrize(
    "event", [None, "text", {"status": "weird", "task_id": "A", "model_id": "B"}, {"status": "success"}]
)
def test_execute_complete_fails_loudly_on_an_unexpected_event(event: object) -> None:
    with pytest.raises(AnaplanError, match="event"):
        op(action=SORT_ACTION, deferrable=True).execute_complete(make_context(), event=event)


def test_an_error_event_fails_the_task() -> None:
    event = {"status": "error", "task_id": "A" * 32, "model_id": MODEL, "action_id": SORT_ACTION, "message": "boom"}
    with pytest.raises(AnaplanError, match="boom"):
        op(action=SORT_ACTION, deferrable=True).execute_complete(make_context(), event=event)


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="fail_on"):
        op(action=SORT_ACTION, fail_on="sometimes")
    with pytest.raises(InvalidInputError, match="kind"):
        op(action=SORT_ACTION, kind="dashboard")
    with pytest.raises(InvalidInputError, match="poll_interval"):
        op(action=SORT_ACTION, poll_interval=0)
    assert op(action=SORT_ACTION, timeout=dt.timedelta(minutes=2)).timeout == 120.0
    assert {"anaplan_conn_id", "workspace_id", "model_id", "action", "dump_to"} <= set(
        AnaplanRunActionOperator.template_fields
    )
    assert issubclass(AnaplanRunActionOperator, AnaplanBaseOperator)


# ---------------------------------------------------------------------------------------------------- end to end
DAGS = Path(__file__).parent / "dags"


@pytest.mark.slow
# dag.test() runs the trigger under a throw-away asyncio.run(); the shared HTTP client of that loop is left open, as
# a real triggerer (one long-lived loop, clients shared by many triggers) must leave it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
# Airflow 3.1.8 only: its in-process execution API uses a status name that newer starlette deprecates (not our code).
@pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated")
def test_end_to_end_with_dag_test(
    emulator: EmulatorApp, airflow_db: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A real task runner: templated names, a deferral run inline (trigger kwargs through serde), a deferrable
    sensor on the upstream XCom, and a retry that reattaches to the Anaplan task its crashed first try started."""
    import importlib.util
    import json

    bundles = [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "anaplan-operator-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(DAGS)},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    set_task_duration(emulator, 1.0)
    spec = importlib.util.spec_from_file_location("anaplan_operators_e2e", DAGS / "anaplan_operators_e2e.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The crashing task's Anaplan task must still run when the retry comes (dag.test() on 3.1 takes ~3 s to retry).
    slow = 2.0 if AIRFLOW_3_3 else 6.0
    monkeypatch.setattr(module.CrashingFirstTry, "before_first_start", lambda: set_task_duration(emulator, slow))

    try:
        dag_run = module.dag.test()
    finally:
        # Collect the throw-away loop's client here, under this test's filter, so that its unclosed sockets do not
        # surface as an unraisable-exception warning in whichever test happens to run next.
        import gc

        gc.collect()

    states = {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}
    assert dag_run.state == "success", states
    assert states["sort"] == ("success", 2)
    assert len(tasks_of(OPTIMIZER_ACTION)) == 1
    assert len(tasks_of(SORT_ACTION)) == 1  # the retry reattached: no second run
    logs = capfd.readouterr()
    text = logs.out + logs.err
    assert "simulated worker crash" in text
    if AIRFLOW_3_3:  # ResumableJobMixin found the task id in the task state store
        assert "Reconnecting to existing job" in text
    else:  # no store: the newest unfinished task of the action since the DAG run began
        assert "reattaching to Anaplan task" in text
    assert DEFAULT_USER_PASSWORD not in text
