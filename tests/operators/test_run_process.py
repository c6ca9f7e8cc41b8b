"""AnaplanRunProcessOperator against the emulator over real HTTP: steps, dumps, the row policy, both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_PASSWORD
from airflow_provider_anaplan.exceptions import TaskFailedError
from airflow_provider_anaplan.operators import AnaplanRunProcessOperator
from airflow_provider_anaplan.operators._base import XCOM_OUTCOME_KEY, XCOM_TASK_ID_KEY

from .conftest import (
    EMPLOYEES_ALL_REJECTED,
    EMPLOYEES_IMPORT,
    EMPLOYEES_WITH_BLANK,
    EMPLOYEES_WITH_REJECTS,
    NIGHTLY_LOAD,
    POLL,
    make_context,
    run_deferred,
    tasks_of,
    upload_employees,
)

pytestmark = pytest.mark.usefixtures("anaplan_conn")


def op(**kwargs):
    kwargs.setdefault("task_id", "run_process")
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("process", "Nightly Load")
    return AnaplanRunProcessOperator(**kwargs)


def test_worker_mode_reports_every_step(capfd: pytest.CaptureFixture[str]) -> None:
    context = make_context()
    result = op().execute(context)
    assert result["outcome"] == "success" and result["action_id"] == NIGHTLY_LOAD
    assert [(s["number"], s["object_id"], s["outcome"]) for s in result["steps"]] == [
        (1, "112000000002", "success"),
        (2, EMPLOYEES_IMPORT, "success"),
        (3, "112000000001", "success"),
        (4, "116000000000", "success"),
    ]
    assert context["ti"].xcom[XCOM_TASK_ID_KEY] == result["task_id"]
    out = capfd.readouterr()
    assert "step 4, export 116000000000 'Sales Report.csv': success" in out.out + out.err
    assert len(tasks_of(NIGHTLY_LOAD)) == 1


def test_deferred_mode_with_rejected_rows_saves_the_step_dump_and_fails(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    upload_employees(EMPLOYEES_WITH_REJECTS)
    context = make_context()
    with pytest.raises(TaskFailedError, match="rejected rows fail the task"):
        run_deferred(op(deferrable=True, dump_to=f"{tmp_path}/dumps/"), context)

    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]
    assert outcome["outcome"] == "partial_success" and outcome["rows"]["failed"] == 1
    step = next(s for s in outcome["steps"] if s["object_id"] == EMPLOYEES_IMPORT)
    assert step["outcome"] == "partial_success" and step["failed_rows"] == 1
    [dump] = outcome["dump_paths"]
    assert Path(dump).name == f"anaplan_dump_{outcome['task_id']}_{EMPLOYEES_IMPORT}.csv"
    assert "Alan Turing" in Path(dump).read_text() and "Ada Lovelace" not in Path(dump).read_text()
    out = capfd.readouterr()
    logs = out.out + out.err
    assert "1 rejected row(s)" in logs and "Alan Turing" in logs  # the first rejected rows, in the log
    assert DEFAULT_USER_PASSWORD not in logs


def test_fail_on_never_passes_rejected_rows_and_still_keeps_the_dump(tmp_path: Path) -> None:
    upload_employees(EMPLOYEES_WITH_REJECTS)
    result = op(fail_on="never", dump_to=str(tmp_path / "rejects.csv")).execute(make_context())
    assert result["outcome"] == "partial_success" and result["rows"]["failed"] == 1
    assert result["dump_paths"] == [str(tmp_path / "rejects.csv")]
    assert "Atlantis" in (tmp_path / "rejects.csv").read_text()


def test_fail_on_warnings_fails_on_ignored_rows_that_rejected_lets_through() -> None:
    upload_employees(EMPLOYEES_WITH_BLANK)
    result = op().execute(make_context())
    assert result["outcome"] == "partial_success"
    assert result["rows"]["ignored"] == 1 and result["rows"]["failed"] == 0

    upload_employees(EMPLOYEES_WITH_BLANK)
    with pytest.raises(TaskFailedError, match="fail_on='warnings'"):
        run_deferred(op(fail_on="warnings", deferrable=True), make_context())


def test_a_failing_step_fails_the_process_under_every_policy(tmp_path: Path) -> None:
    upload_employees(EMPLOYEES_ALL_REJECTED)
    context = make_context()
    with pytest.raises(TaskFailedError, match=f"failed at step 2, import {EMPLOYEES_IMPORT}"):
        op(fail_on="never", dump_to=str(tmp_path / "{step}_{object_name}.csv")).execute(context)
    outcome = context["ti"].xcom[XCOM_OUTCOME_KEY]
    assert [s["outcome"] for s in outcome["steps"]] == ["success", "failed"]  # the process stopped there
    [dump] = outcome["dump_paths"]
    assert dump == str(tmp_path / "2_Employees from Employees.csv.csv")
    assert "Edsger Dijkstra" in Path(dump).read_text()
