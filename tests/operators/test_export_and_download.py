"""AnaplanExportAndDownloadOperator against the emulator over real HTTP: destinations, both modes, assets, retries."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_anaplan.assets import anaplan_file_uri
from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.exceptions import InvalidInputError
from airflow_provider_anaplan.operators import AnaplanExportAndDownloadOperator
from airflow_provider_anaplan.operators._base import XCOM_TASK_ID_KEY

from .conftest import (
    MODEL,
    POLL,
    WORKSPACE,
    first_event,
    make_context,
    roundtrip_trigger,
    set_task_duration,
    tasks_of,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn")

SALES_REPORT = "116000000000"
EMPLOYEES_GRID = "116000000001"


def op(**kwargs):
    kwargs.setdefault("task_id", "export_and_download")
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("export", "Sales Report.csv")
    return AnaplanExportAndDownloadOperator(**kwargs)


def data_rows(text: str) -> int:
    return len(list(csv.reader(io.StringIO(text)))) - 1


def test_worker_mode_by_name_into_a_local_directory(tmp_path: Path) -> None:
    context = make_context()
    result = op(destination=f"{tmp_path}/out/").execute(context)

    path = tmp_path / "out" / "Sales Report.csv"  # a directory gets the export's name
    assert result["outcome"] == "success" and result["action_id"] == SALES_REPORT
    assert result["path"] == str(path) and result["file_id"] == SALES_REPORT
    text = path.read_text()
    assert result["size"] == path.stat().st_size > 0
    assert result["row_count"] == data_rows(text) > 0
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == result["task_id"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Sales Report.csv"]  # no partial file left


def test_deferred_mode_by_id_into_memory_object_storage(memory_root: ObjectStoragePath, tmp_path: Path) -> None:
    target = ObjectStoragePath(f"{str(memory_root).rstrip('/')}/reports/sales.csv")
    context = make_context()
    operator = op(export=SALES_REPORT, destination=target, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    assert DEFAULT_USER_PASSWORD not in repr(deferred.value.trigger.serialize())
    event = first_event(roundtrip_trigger(deferred.value.trigger))
    result = op(export=SALES_REPORT, destination=target, deferrable=True).execute_complete(context, event=event.payload)

    assert result["path"] == str(target) and result["outcome"] == "success"
    downloaded = target.read_text()
    assert result["size"] == len(downloaded.encode()) and result["row_count"] == data_rows(downloaded)
    local = op(export=SALES_REPORT, destination=str(tmp_path / "sales.csv")).execute(make_context())
    assert (tmp_path / "sales.csv").read_text() == downloaded
    assert local["row_count"] == result["row_count"]


def test_a_template_rendered_file_url_destination(tmp_path: Path) -> None:
    operator = op(export="{{ params.export }}", destination="file://{{ params.folder }}/{{ params.export }}")
    context = make_context(params={"export": "Employees Grid.csv", "folder": str(tmp_path)})
    operator.render_template_fields(context)
    assert operator.destination == f"file://{tmp_path}/Employees Grid.csv"
    result = operator.execute(context)
    assert result["action_id"] == EMPLOYEES_GRID
    assert (tmp_path / "Employees Grid.csv").read_text().count("\n") >= 1
    assert result["row_count"] == data_rows((tmp_path / "Employees Grid.csv").read_text())


def test_count_rows_can_be_turned_off(tmp_path: Path) -> None:
    result = op(destination=str(tmp_path / "sales.data"), count_rows=False).execute(make_context())
    assert result["row_count"] is None and result["size"] > 0
    result = op(destination=str(tmp_path / "sales.data"), count_rows=True, header_rows=0).execute(make_context())
    assert result["row_count"] == data_rows((tmp_path / "sales.data").read_text()) + 1


def test_the_exports_file_is_an_inlet_when_its_ids_are_literal(tmp_path: Path) -> None:
    uri = anaplan_file_uri(WORKSPACE, MODEL, SALES_REPORT)
    literal = op(export=SALES_REPORT, workspace_id=WORKSPACE, model_id=MODEL, destination=str(tmp_path))
    assert literal.inlets == [Asset(uri=uri, name=uri)] and literal.outlets == []
    assert op(destination=str(tmp_path)).inlets == []  # by name: only known at run time
    assert op(export=SALES_REPORT, model_id=MODEL, destination=str(tmp_path)).inlets == []  # workspace unknown


def test_a_retry_reattaches_to_the_running_export(emulator: EmulatorApp, tmp_path: Path) -> None:
    set_task_duration(emulator, 0.5)
    first = make_context()
    with pytest.raises(TaskDeferred):
        op(destination=str(tmp_path), deferrable=True).execute(first)
    started = first["ti"].xcom[XCOM_TASK_ID_KEY]
    result = op(destination=str(tmp_path)).execute(make_context(try_number=2))
    assert result["task_id"] == started and Path(result["path"]).exists()
    assert [t.task_id for t in tasks_of(SALES_REPORT)] == [started]


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="destination is required"):
        op(destination=None)
    with pytest.raises(InvalidInputError, match="header_rows"):
        op(destination=str(tmp_path), header_rows=-1)
    with pytest.raises(InvalidInputError, match="export"):
        op(export="112000000000", destination=str(tmp_path)).execute(make_context())
    assert {"export", "destination", "model_id", "workspace_id"} <= set(
        AnaplanExportAndDownloadOperator.template_fields
    )
