"""AnaplanRunProcessOperator with ``uploads`` before and ``downloads`` after, against the emulator over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_anaplan.assets import anaplan_file_uri
from airflow_provider_anaplan.emulator import EmulatorApp
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.exceptions import InvalidInputError, TaskFailedError
from airflow_provider_anaplan.operators import AnaplanRunProcessOperator
from airflow_provider_anaplan.operators._base import XCOM_OUTCOME_KEY

from .conftest import (
    EMPLOYEES_FILE,
    EMPLOYEES_IMPORT,
    EMPLOYEES_WITH_REJECTS,
    MODEL,
    NIGHTLY_LOAD,
    POLL,
    WORKSPACE,
    make_context,
    run_deferred,
    tasks_of,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn", "finalize_earlier_garbage")

GOOD_EMPLOYEES = "Code,Name,Parent,Start Date,Salary\nE301,Frances Allen,North,2024-01-01,110000\n"
SALES_REPORT = "116000000000"


def op(**kwargs):
    kwargs.setdefault("task_id", "run_process")
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("process", "Nightly Load")
    return AnaplanRunProcessOperator(**kwargs)


def test_worker_mode_uploads_runs_and_downloads(emulator: EmulatorApp, tmp_path: Path) -> None:
    context = make_context(outlet_events=OutletEventAccessors())
    operator = op(uploads={"Employees.csv": GOOD_EMPLOYEES}, downloads={"Sales Report.csv": f"{tmp_path}/"})
    result = operator.execute(context)

    assert result["outcome"] == "success" and result["action_id"] == NIGHTLY_LOAD
    [upload] = result["uploads"]
    assert upload["file_id"] == EMPLOYEES_FILE and upload["bytes"] == len(GOOD_EMPLOYEES.encode())
    assert upload["asset_uri"] == anaplan_file_uri(WORKSPACE, MODEL, EMPLOYEES_FILE)
    assert b"".join(engine_for(emulator.state).store.iter_chunks(MODEL, EMPLOYEES_FILE)) == GOOD_EMPLOYEES.encode()
    step = next(s for s in result["steps"] if s["object_id"] == EMPLOYEES_IMPORT)
    assert step["outcome"] == "success"
    [download] = result["downloads"]
    path = tmp_path / "Sales Report.csv"
    assert download == {
        "export_id": SALES_REPORT,
        "name": "Sales Report.csv",
        "path": str(path),
        "size": path.stat().st_size,
        "row_count": path.read_text().count("\n") - 1,
    }
    assert download["row_count"] > 0
    [alias] = [o for o in operator.outlets if isinstance(o, AssetAlias)]
    [event] = context["outlet_events"][alias].asset_alias_events
    assert event.dest_asset_key.uri == upload["asset_uri"]


def test_deferred_mode_with_object_storage_source_and_destination(memory_root: ObjectStoragePath) -> None:
    source = ObjectStoragePath(f"{str(memory_root).rstrip('/')}/in/employees.csv")
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(GOOD_EMPLOYEES)
    target = ObjectStoragePath(f"{str(memory_root).rstrip('/')}/out/sales.csv")
    operator = op(
        process=NIGHTLY_LOAD,
        workspace_id=WORKSPACE,
        model_id=MODEL,
        uploads={EMPLOYEES_FILE: source},
        downloads={SALES_REPORT: target},
        deferrable=True,
    )
    employees_uri = anaplan_file_uri(WORKSPACE, MODEL, EMPLOYEES_FILE)
    sales_uri = anaplan_file_uri(WORKSPACE, MODEL, SALES_REPORT)
    assert operator.outlets == [Asset(uri=employees_uri, name=employees_uri)]  # literal ids: the Assets themselves
    assert operator.inlets == [Asset(uri=sales_uri, name=sales_uri)]

    context = make_context(outlet_events=OutletEventAccessors())
    result = run_deferred(operator, context)
    assert result["outcome"] == "success"
    assert result["uploads"][0]["bytes"] == len(GOOD_EMPLOYEES.encode())  # carried through the deferral
    [download] = result["downloads"]
    assert download["path"] == str(target) and target.read_text().count("\n") == download["row_count"] + 1
    assert context["outlet_events"][Asset(uri=employees_uri, name=employees_uri)].extra["process_id"] == NIGHTLY_LOAD


def test_template_rendered_uploads_and_downloads(tmp_path: Path) -> None:
    (tmp_path / "employees.csv").write_text(GOOD_EMPLOYEES)
    operator = op(
        process="{{ params.process }}",
        uploads={"Employees.csv": "{{ params.folder }}/employees.csv"},
        downloads={"Sales Report.csv": "{{ params.folder }}/report_{{ params.process | replace(' ', '_') }}.csv"},
    )
    context = make_context(params={"process": "Nightly Load", "folder": str(tmp_path)})
    operator.render_template_fields(context)
    assert operator.downloads == {"Sales Report.csv": f"{tmp_path}/report_Nightly_Load.csv"}
    result = operator.execute(context)
    assert result["downloads"][0]["path"] == str(tmp_path / "report_Nightly_Load.csv")
    assert result["uploads"][0]["bytes"] == len(GOOD_EMPLOYEES.encode())


def test_a_step_with_rejected_rows_fails_with_its_dump_saved(tmp_path: Path) -> None:
    context = make_context()
    with pytest.raises(TaskFailedError, match="rejected rows fail the task"):
        op(
            uploads={"Employees.csv": EMPLOYEES_WITH_REJECTS},
            downloads={"Sales Report.csv": str(tmp_path / "sales.csv")},
            dump_to=f"{tmp_path}/dumps/",
        ).execute(context)
    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]
    [dump] = outcome["dump_paths"]
    assert "Alan Turing" in Path(dump).read_text()
    assert outcome["uploads"][0]["file_id"] == EMPLOYEES_FILE
    # The process itself succeeded (partially), so its export was still downloaded.
    assert outcome["downloads"][0]["path"] == str(tmp_path / "sales.csv")

    result = op(uploads={"Employees.csv": EMPLOYEES_WITH_REJECTS}, fail_on="never").execute(make_context())
    assert result["outcome"] == "partial_success" and "downloads" not in result


def test_uploads_and_downloads_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="uploads must be a dict"):
        op(uploads=[("Employees.csv", "x")])
    with pytest.raises(InvalidInputError, match="export's file"):
        op(uploads={SALES_REPORT: "a,b\n"}).execute(make_context())
    with pytest.raises(InvalidInputError, match="named twice"):
        op(uploads={EMPLOYEES_FILE: "a\n", "Employees.csv": "b\n"}).execute(make_context())
    with pytest.raises(InvalidInputError, match="does not exist"):
        op(uploads={"Employees.csv": str(tmp_path / "missing.csv")}).execute(make_context())
    assert tasks_of(NIGHTLY_LOAD) == []  # nothing was started
    assert {"uploads", "downloads", "process"} <= set(AnaplanRunProcessOperator.template_fields)
