"""Templated values that render to something unusable, run by a real task runner (``dag.test()`` in
tests/reliability/test_bad_input.py against the emulator). Every task fails; its error is kept by
``tests.reliability._rendered.record`` for the test to check."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_anaplan.operators import (
    AnaplanExportAndDownloadOperator,
    AnaplanRunActionOperator,
    AnaplanUploadAndImportOperator,
)
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor


def _record(context):
    from tests.reliability._rendered import record

    record(context)


PARAMS = {
    "model": "",  # e.g. a Variable or conf value that is not set
    "conn": "",
    "mapping": {"Version": "Actual"},  # a dict, rendered by a plain (text) Jinja template
    "export": "Sales Reprot.csv",  # misspelt
}

with DAG(
    "anaplan_bad_input",
    schedule=None,
    params=PARAMS,
    default_args={"on_failure_callback": _record},
) as dag:
    AnaplanRunActionOperator(
        task_id="empty_model", action="Sort Products", model_id="{{ params.model }}", poll_interval=0.01
    )
    AnaplanRunActionOperator(
        task_id="empty_conn", action="Sort Products", anaplan_conn_id="{{ params.conn }}", poll_interval=0.01
    )
    AnaplanUploadAndImportOperator(
        task_id="mapping_as_text",
        import_="Employees from Employees.csv",
        source="Code,Name,Parent,Start Date,Salary\nE1,Ada,North,2024-01-01,1\n",
        mapping_parameters="{{ params.mapping }}",
        poll_interval=0.01,
    )
    AnaplanExportAndDownloadOperator(  # nothing is written: the export is not found
        task_id="misspelt_export",
        export="{{ params.export }}",
        destination="/tmp/anaplan-bad-input/{{ run_id }}/",
        poll_interval=0.01,
    )
    AnaplanTaskStatusSensor(  # task_ids misspelt: the pull finds nothing and renders "None"
        task_id="watch",
        action="Sort Products",
        anaplan_task_id="{{ ti.xcom_pull(task_ids='laod', key='anaplan_task_id') }}",
        poke_interval=0.01,
        timeout=5,
    )
