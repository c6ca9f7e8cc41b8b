"""Example 3: a process with files: upload its sources, run it, download its export, keep the failing step's dump.

The "Nightly Load" process of the emulator's "Sales Forecast" model runs four steps: the Products, Employees and
Sales Actuals imports, then the "Sales Report.csv" export. This DAG

1. writes the two source files the process reads (``write_sources``; one employee row names a region the model does
   not have, so the Employees step rejects it);
2. runs the process with ``AnaplanRunProcessOperator``: ``uploads`` (Anaplan file -> source) are uploaded before the
   process starts, ``downloads`` (export -> destination) are downloaded after it succeeded. Every step's outcome and
   row counts go to the log and to XCom; the failure dump of the step that rejected rows is saved under ``output``.
   ``fail_on="never"`` keeps the run green on rejected rows (the dump is saved whatever the policy); the default,
   ``"rejected"``, would fail it;
3. ``report`` prints every step and the files written.

Upload to existing files only: Anaplan answers an unknown file id by creating a new, unused file; the operators look
files up by name or id first and refuse one the model does not have.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_anaplan.operators import AnaplanRunProcessOperator

#: The Anaplan files the process's imports read, and the export it runs: the keys of ``uploads``/``downloads``
#: (operator arguments, not templated: change them here for your tenant).
EMPLOYEES_FILE = "Employees.csv"
SALES_FILE = "Sales Actuals.csv"
REPORT_EXPORT = "Sales Report.csv"

#: Seconds between status polls; Anaplan advises 5. The demo and the tests lower it for the emulator.
POLL_INTERVAL = float(os.environ.get("ANAPLAN_EXAMPLE_POLL_INTERVAL", "5"))

EMPLOYEES_CSV = (
    "Code,Name,Parent,Start Date,Salary\n"
    "E101,Katherine Johnson,North,2026-01-05,97000\n"
    "E102,Dorothy Vaughan,South,2026-01-12,94000\n"
    "E103,Mary Jackson,Atlantis,2026-01-19,91000\n"  # no region "Atlantis": this row is rejected
)
SALES_ACTUALS_CSV = (
    "Region,Product,Month,Units,Revenue\n"
    "North,Laptop,Mar 26,20,24000\n"
    "South,Monitor,Mar 26,35,7000\n"
    "West,Support Plan,Mar 26,30,6000\n"
)

with DAG(
    dag_id="anaplan_process_with_files",
    description="Upload files, run an Anaplan process, download its export and the failing step's dump",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["anaplan", "example"],
    params={
        "workspace": Param("FP&A Production", type="string", description="Workspace name or id"),
        "model": Param("Sales Forecast", type="string", description="Model name or id"),
        "process": Param("Nightly Load", type="string", description="Process name or id"),
        "output": Param(
            "file:///tmp/anaplan_examples/process_with_files",
            type="string",
            description="Where the report and the dumps go: a local path or a URL (file://, s3://, ...)",
        ),
    },
) as dag:

    @task
    def write_sources(params: dict[str, Any] | None = None) -> list[str]:
        """Write the files the process's imports read (here generated; in real life, tonight's extracts)."""
        assert params is not None
        ObjectStoragePath(f"{params['output']}/sources").mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in ((EMPLOYEES_FILE, EMPLOYEES_CSV), (SALES_FILE, SALES_ACTUALS_CSV)):
            path = ObjectStoragePath(f"{params['output']}/sources/{name}")
            path.write_text(text)
            written.append(str(path))
        return written

    # [START howto_operator_anaplan_run_process]
    run_process = AnaplanRunProcessOperator(
        task_id="run_process",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        model_id="{{ params.model }}",
        process="{{ params.process }}",
        # {Anaplan file: local path, URL, ObjectStoragePath or text}, uploaded before the process starts
        uploads={
            EMPLOYEES_FILE: "{{ params.output }}/sources/" + EMPLOYEES_FILE,
            SALES_FILE: "{{ params.output }}/sources/" + SALES_FILE,
        },
        # {export: destination}, downloaded once the process succeeded; a directory keeps the export's name
        downloads={REPORT_EXPORT: "{{ params.output }}/reports/"},
        fail_on="never",
        dump_to="{{ params.output }}/dumps/",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=4 * 3600,
    )
    # [END howto_operator_anaplan_run_process]

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        """Every step's outcome, and the files the process run left."""
        for step in result["steps"]:
            print(f"step {step['number']} {step['name']!r}: {step['outcome']}, {step['failed_rows']} rejected")
        for download in result.get("downloads", []):
            print(f"{download['name']}: {download['row_count']} rows saved to {download['path']}")
        for path in result["dump_paths"]:
            print(f"Rejected rows saved to {path}")
        return {
            "outcome": result["outcome"],
            "rejected": result["rows"]["failed"],
            "files": [d["path"] for d in result.get("downloads", [])] + result["dump_paths"],
        }

    write_sources() >> run_process
    report(run_process.output)
