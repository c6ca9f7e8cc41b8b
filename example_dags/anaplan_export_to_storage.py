"""Example 2: export to storage: run an export and stream its file into an ``ObjectStoragePath``.

``AnaplanExportAndDownloadOperator`` runs the "Sales Report.csv" export and streams the file into ``output``, a
``file://`` URL in the demo; an ``s3://``, ``gs://`` or ``abfs://`` URL (with ``ObjectStoragePath``'s usual
connection) works the same, with bounded memory. A destination ending with ``/`` is a directory: the file keeps the
export's name. The download goes through a temporary name, so readers never see half a file.

``revenue_by_region`` then reads the file back through ``ObjectStoragePath``, as any downstream task would.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from airflow_provider_anaplan.operators import AnaplanExportAndDownloadOperator

#: Seconds between status polls; Anaplan advises 5. The demo and the tests lower it for the emulator.
POLL_INTERVAL = float(os.environ.get("ANAPLAN_EXAMPLE_POLL_INTERVAL", "5"))

with DAG(
    dag_id="anaplan_export_to_storage",
    description="Export from Anaplan into object storage",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["anaplan", "example"],
    params={
        "workspace": Param("FP&A Production", type="string", description="Workspace name or id"),
        "model": Param("Sales Forecast", type="string", description="Model name or id"),
        "export": Param("Sales Report.csv", type="string", description="The export (name or id)"),
        "output": Param(
            "file:///tmp/anaplan_examples/export_to_storage",
            type="string",
            description="Where the file goes: a local path or a URL (file://, s3://, gs://, ...)",
        ),
    },
) as dag:
    # [START howto_operator_anaplan_export_and_download]
    export_sales = AnaplanExportAndDownloadOperator(
        task_id="export_sales",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        model_id="{{ params.model }}",
        export="{{ params.export }}",
        destination="{{ params.output }}/{{ ds }}/",  # a directory: the file keeps the export's name
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
    )
    # [END howto_operator_anaplan_export_and_download]

    @task
    def revenue_by_region(result: dict[str, Any]) -> dict[str, float]:
        """Read the exported file back through ObjectStoragePath and total the revenue per region."""
        path = ObjectStoragePath(result["path"])
        print(f"{path}: {result['size']} bytes, {result['row_count']} rows")
        totals: dict[str, float] = defaultdict(float)
        for row in csv.DictReader(io.StringIO(path.read_text())):
            totals[row["Region"]] += float(row["Revenue"] or 0)
        for region, revenue in sorted(totals.items()):
            print(f"  {region}: {revenue:,.0f}")
        return dict(totals)

    revenue_by_region(export_sales.output)
