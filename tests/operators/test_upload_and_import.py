"""AnaplanUploadAndImportOperator against the emulator over real HTTP: sources, policies, guard, assets, retries."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_anaplan.assets import anaplan_file_uri
from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.exceptions import InvalidInputError, TaskFailedError
from airflow_provider_anaplan.operators import AnaplanUploadAndImportOperator
from airflow_provider_anaplan.operators._base import XCOM_OUTCOME_KEY, XCOM_TASK_ID_KEY
from airflow_provider_anaplan.operators._guard import is_file_guarded
from airflow_provider_anaplan.triggers.anaplan import AnaplanTaskTrigger

from .conftest import (
    AIRFLOW_3_3,
    EMPLOYEES_FILE,
    EMPLOYEES_IMPORT,
    EMPLOYEES_WITH_BLANK,
    EMPLOYEES_WITH_REJECTS,
    MODEL,
    POLL,
    WORKSPACE,
    FakeStore,
    first_event,
    make_context,
    roundtrip_trigger,
    run_deferred,
    set_task_duration,
    tasks_of,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn", "finalize_earlier_garbage")

GOOD_EMPLOYEES = "Code,Name,Parent,Start Date,Salary\nE201,Barbara Liskov,North,2024-01-01,120000\n"
EMPLOYEES_URI = anaplan_file_uri(WORKSPACE, MODEL, EMPLOYEES_FILE)


def op(**kwargs):
    kwargs.setdefault("task_id", "upload_and_import")
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("import_", "Employees from Employees.csv")
    return AnaplanUploadAndImportOperator(**kwargs)


def stored(emulator: EmulatorApp, file_id: str = EMPLOYEES_FILE) -> bytes:
    return b"".join(engine_for(emulator.state).store.iter_chunks(MODEL, file_id))


def test_worker_mode_uploads_text_into_the_imports_file_and_records_the_asset(emulator: EmulatorApp) -> None:
    operator = op(source=GOOD_EMPLOYEES)
    assert [o for o in operator.outlets if isinstance(o, AssetAlias)] == [
        AssetAlias(name="anaplan_files__upload_and_import")
    ]
    context = make_context(outlet_events=OutletEventAccessors())
    result = operator.execute(context)

    assert result["outcome"] == "success" and result["action_id"] == EMPLOYEES_IMPORT
    assert result["file_id"] == EMPLOYEES_FILE and result["file_name"] == "Employees.csv"  # from importDataSourceId
    assert result["upload"]["bytes"] == len(GOOD_EMPLOYEES.encode()) and result["rows"]["loaded"] == 1
    assert stored(emulator) == GOOD_EMPLOYEES.encode()
    assert result["asset_uri"] == EMPLOYEES_URI and result["deleted_after_import"] is False
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == result["task_id"]
    # The file's Asset is attached to the alias (the ids were only known at run time).
    [alias_event] = context["outlet_events"][AssetAlias(name="anaplan_files__upload_and_import")].asset_alias_events
    assert alias_event.dest_asset_key.uri == EMPLOYEES_URI
    assert alias_event.extra["anaplan_task_id"] == result["task_id"]


def test_deferred_mode_from_a_template_rendered_path(emulator: EmulatorApp, tmp_path: Path) -> None:
    (tmp_path / "employees.csv").write_text(GOOD_EMPLOYEES)
    operator = op(import_="{{ params.import_name }}", source="{{ params.folder }}/employees.csv", deferrable=True)
    context = make_context(params={"import_name": "Employees from Employees.csv", "folder": str(tmp_path)})
    operator.render_template_fields(context)
    assert operator.import_ == "Employees from Employees.csv"
    assert operator.source == f"{tmp_path}/employees.csv"

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, AnaplanTaskTrigger) and trigger.action_id == EMPLOYEES_IMPORT
    assert not is_file_guarded(MODEL, EMPLOYEES_FILE)  # released when the task deferred
    assert DEFAULT_USER_PASSWORD not in repr(trigger.serialize())
    event = first_event(roundtrip_trigger(trigger))

    fresh = op(import_="Employees from Employees.csv", source=f"{tmp_path}/employees.csv", deferrable=True)
    result = fresh.execute_complete(context, event=event.payload)  # a new instance, as after a real deferral
    assert result["outcome"] == "success" and result["file_id"] == EMPLOYEES_FILE
    assert result["upload"]["bytes"] == (tmp_path / "employees.csv").stat().st_size  # carried through the trigger
    assert stored(emulator) == GOOD_EMPLOYEES.encode()


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_an_object_storage_source(
    emulator: EmulatorApp, scheme: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if scheme == "file":
        source = ObjectStoragePath(f"file://{tmp_path}/employees.csv")
    else:
        root = request.getfixturevalue("memory_root")
        source = ObjectStoragePath(f"{str(root).rstrip('/')}/employees.csv")
    source.write_bytes(GOOD_EMPLOYEES.encode())
    result = run_deferred(op(source=source, deferrable=True), make_context())
    assert result["outcome"] == "success"
    assert result["upload"]["bytes"] == len(GOOD_EMPLOYEES.encode())
    assert stored(emulator) == GOOD_EMPLOYEES.encode()


def test_a_missing_source_file_fails_before_anything_is_uploaded(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        op(source=str(tmp_path / "nope.csv")).execute(make_context())
    assert tasks_of(EMPLOYEES_IMPORT) == []


def test_rejected_rows_fail_by_default_and_the_dump_is_saved(tmp_path: Path) -> None:
    context = make_context()
    with pytest.raises(TaskFailedError, match="rejected rows fail the task"):
        op(source=EMPLOYEES_WITH_REJECTS, dump_to=str(tmp_path / "rejects_{task_id}.csv")).execute(context)
    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]
    assert outcome["outcome"] == "partial_success" and outcome["rows"]["failed"] == 1
    [dump] = outcome["dump_paths"]
    assert dump == str(tmp_path / f"rejects_{outcome['task_id']}.csv")
    assert "Alan Turing" in Path(dump).read_text()
    assert outcome["file_id"] == EMPLOYEES_FILE


def test_fail_on_warnings_fails_on_ignored_rows_in_deferred_mode(tmp_path: Path) -> None:
    result = op(source=EMPLOYEES_WITH_BLANK).execute(make_context())  # "rejected" lets an ignored row through
    assert result["rows"]["ignored"] == 1

    with pytest.raises(TaskFailedError, match="fail_on='warnings'"):
        run_deferred(op(source=EMPLOYEES_WITH_BLANK, fail_on="warnings", deferrable=True), make_context())


def test_fail_on_never_passes_and_keeps_the_dump_in_object_storage(memory_root: ObjectStoragePath) -> None:
    result = run_deferred(
        op(source=EMPLOYEES_WITH_REJECTS, fail_on="never", dump_to=memory_root, deferrable=True), make_context()
    )
    assert result["outcome"] == "partial_success" and result["rows"]["failed"] == 1
    [dump] = result["dump_paths"]
    assert dump.startswith("memory://") and dump.endswith(f"anaplan_dump_{result['task_id']}.csv")
    assert "Atlantis" in ObjectStoragePath(dump).read_text()


def test_literal_ids_declare_the_asset_itself_and_delete_after_import(emulator: EmulatorApp) -> None:
    operator = op(
        import_=EMPLOYEES_IMPORT,
        workspace_id=WORKSPACE,
        model_id=MODEL,
        file=EMPLOYEES_FILE,
        source=GOOD_EMPLOYEES,
        delete_after_import=True,
    )
    assert operator.outlets == [Asset(uri=EMPLOYEES_URI, name=EMPLOYEES_URI)]  # known when the DAG is parsed
    context = make_context(outlet_events=OutletEventAccessors())
    result = operator.execute(context)
    assert result["outcome"] == "success" and result["rows"]["loaded"] == 1
    assert result["deleted_after_import"] is True
    assert not engine_for(emulator.state).store.has_content(MODEL, EMPLOYEES_FILE)
    event = context["outlet_events"][Asset(uri=EMPLOYEES_URI, name=EMPLOYEES_URI)]
    assert event.extra["anaplan_task_id"] == result["task_id"]
    assert op(source="x\n", declare_assets=False).outlets == []


def test_an_import_from_another_model_has_no_file() -> None:
    with pytest.raises(InvalidInputError, match="does not read a file"):
        op(import_="Forecast from Sales Forecast DEV", source=GOOD_EMPLOYEES).execute(make_context())


def test_the_file_is_guarded_from_upload_until_the_import_ends(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    errors: list[BaseException] = []
    results: list[dict] = []

    def work() -> None:
        try:
            results.append(op(source=GOOD_EMPLOYEES).execute(make_context()))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    seen = False
    deadline = time.monotonic() + 10
    while worker.is_alive() and time.monotonic() < deadline:
        seen = seen or is_file_guarded(MODEL, EMPLOYEES_FILE)
        time.sleep(0.01)
    worker.join(10)
    assert not errors and results[0]["outcome"] == "success"
    assert seen and not is_file_guarded(MODEL, EMPLOYEES_FILE)


def test_a_retry_reattaches_to_the_running_import_without_uploading_again(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    first = make_context()
    with pytest.raises(TaskDeferred):  # try 1 uploads and starts the import, then its worker dies while deferred
        op(source=GOOD_EMPLOYEES, deferrable=True).execute(first)
    started = first["ti"].xcom[XCOM_TASK_ID_KEY]

    other = GOOD_EMPLOYEES.replace("Barbara Liskov", "Someone Else")
    result = op(source=other).execute(make_context(try_number=2))  # no task state store: XCom of try 1 is gone
    assert result["task_id"] == started and result["upload"] is None
    assert [t.task_id for t in tasks_of(EMPLOYEES_IMPORT)] == [started]  # no second run
    assert stored(emulator) == GOOD_EMPLOYEES.encode()  # and no second upload under the running import


@pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store arrived in Airflow 3.3")
def test_a_retry_on_3_3_reattaches_through_the_task_state_store(emulator: EmulatorApp) -> None:
    set_task_duration(emulator, 0.5)
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        op(source=GOOD_EMPLOYEES, deferrable=True).execute(make_context(store=store))
    started = store.data["anaplan_task_id"]
    result = op(source=GOOD_EMPLOYEES).execute(make_context(try_number=2, store=store))
    assert result["task_id"] == started
    assert [t.task_id for t in tasks_of(EMPLOYEES_IMPORT)] == [started]


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidInputError, match="source_kind"):
        op(source=GOOD_EMPLOYEES, source_kind="csv")
    with pytest.raises(InvalidInputError, match="chunk_size"):
        op(source=GOOD_EMPLOYEES, chunk_size=0)
    with pytest.raises(InvalidInputError, match="source is required"):
        op(source=None)
    assert {"import_", "source", "file", "mapping_parameters", "dump_to", "model_id"} <= set(
        AnaplanUploadAndImportOperator.template_fields
    )
