"""DAGs of tests/reliability/test_secrets_operators.py: every operator and the sensor, one DAG per auth type.

Each DAG runs on the connection ``anaplan_ops_<auth type>`` (the test sets it as an ``AIRFLOW_CONN_…`` variable) and
writes under the ``out`` Param (the test passes its temporary directory in the run's conf). It holds deferrable and
worker paths, templated fields (Params, ``{{ ds }}``, an XCom pull) and two tasks that fail on purpose: an import
whose rows are rejected under ``fail_on="rejected"`` and an action with a misspelt name.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from airflow_provider_anaplan.operators import (
    AnaplanALMSyncOperator,
    AnaplanExportAndDownloadOperator,
    AnaplanRunActionOperator,
    AnaplanRunProcessOperator,
    AnaplanUploadAndImportOperator,
)
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor

AUTH_TYPES = ("basic", "certificate", "token", "oauth-rotating", "oauth-secret")
POLL = 0.05
CLEAN_CSV = "Region,Product,Month,Units,Revenue\nNorth,Laptop,Mar 26,2,2400\nSouth,Monitor,Mar 26,3,900\n"
EMPLOYEES_CSV = "Code,Name,Parent,Start Date,Salary\nE103,Grace Hopper,North,2024-01-01,95000\n"
#: One good row and one the import rejects (its parent is unknown).
REJECTED_CSV = (
    "Code,Name,Parent,Start Date,Salary\nE101,Ada Lovelace,North,2024-01-01,100000\n"
    "E102,Alan Turing,Atlantis,2024-01-01,90000\n"
)
#: Tasks that fail on purpose, and the tasks that defer (each to one trigger).
FAILING = frozenset({"import_rejected_rows", "misspelt_action"})
DEFERRING = frozenset({"upload_and_import", "export_and_download", "run_action", "watch_task", "alm_sync"})


def conn_id_for(auth_type: str) -> str:
    return f"anaplan_ops_{auth_type.replace('-', '_')}"


def dag_id_for(auth_type: str) -> str:
    return f"anaplan_secrets_{auth_type.replace('-', '_')}"


def build(auth_type: str) -> DAG:
    conn_id = conn_id_for(auth_type)
    common = {"anaplan_conn_id": conn_id, "poll_interval": POLL, "timeout": 120}
    where = {"workspace_id": "{{ params.workspace }}", "model_id": "{{ params.model }}"}
    params = {
        "out": Param(os.path.join(tempfile.gettempdir(), "anaplan-secrets-scan"), type="string"),
        "workspace": Param("FP&A Production", type="string"),
        "model": Param("Sales Forecast", type="string"),
        "import": Param("Sales Actuals from Sales Actuals.csv", type="string"),
        "csv": Param(CLEAN_CSV, type="string"),
        "employees": Param(EMPLOYEES_CSV, type="string"),
        "export": Param("Sales Report.csv", type="string"),
        "action": Param("Optimize Territories", type="string"),
        "process": Param("Nightly Load", type="string"),
    }
    with DAG(dag_id_for(auth_type), schedule=None, params=params, default_args={"retries": 0}) as dag:
        AnaplanUploadAndImportOperator(
            task_id="upload_and_import",
            import_="{{ params['import'] }}",
            source="{{ params.csv }}",
            deferrable=True,
            **where,
            **common,
        )
        AnaplanExportAndDownloadOperator(
            task_id="export_and_download",
            export="{{ params.export }}",
            destination="{{ params.out }}/exports/{{ ds }}/",
            deferrable=True,
            **where,
            **common,
        )
        AnaplanRunProcessOperator(  # on the worker: it polls the Anaplan task itself
            task_id="run_process",
            process="{{ params.process }}",
            uploads={"Employees.csv": "{{ params.employees }}"},
            downloads={"Sales Report.csv": "{{ params.out }}/process/"},
            deferrable=False,
            **where,
            **common,
        )
        action = AnaplanRunActionOperator(
            task_id="run_action", action="{{ params.action }}", deferrable=True, **where, **common
        )

        @task
        def start_outside_airflow(params: dict[str, Any] | None = None) -> str:
            """A task for the sensor to watch, started without waiting (as a planner would, in Anaplan)."""
            assert params is not None
            hook = AnaplanHook(conn_id)

            async def start(client: Any) -> str:
                workspace_id, model_id = await hook.aresolve_location(client, params["workspace"], params["model"])
                outcome = await client.run_action(model_id, params["action"], workspace_id=workspace_id, wait=False)
                return outcome.task_id

            return hook.run(start)

        watch = AnaplanTaskStatusSensor(
            task_id="watch_task",
            anaplan_conn_id=conn_id,
            action="{{ params.action }}",
            anaplan_task_id="{{ ti.xcom_pull(task_ids='start_outside_airflow') }}",
            deferrable=True,
            poke_interval=POLL,
            timeout=120,
            **where,
        )
        action >> start_outside_airflow() >> watch
        AnaplanALMSyncOperator(
            task_id="alm_sync",
            source_model="Sales Forecast DEV",
            target_models=["Sales Forecast TEST"],
            new_revision_name="Secrets scan {{ ds }}",
            report_to="{{ params.out }}/alm/{{ ds }}",
            take_offline=True,
            deferrable=True,
            workspace_id="{{ params.workspace }}",
            **common,
        )
        AnaplanUploadAndImportOperator(  # fails: rejected rows under fail_on="rejected" (the dump is kept)
            task_id="import_rejected_rows",
            import_="Employees from Employees.csv",
            source=REJECTED_CSV,
            fail_on="rejected",
            dump_to="{{ params.out }}/dumps/",
            deferrable=False,
            **where,
            **common,
        )
        AnaplanRunActionOperator(  # fails: a misspelt name (the error suggests the right one)
            task_id="misspelt_action", action="{{ params.action }}s", deferrable=True, **where, **common
        )
    return dag


DAGS = {auth_type: build(auth_type) for auth_type in AUTH_TYPES}
