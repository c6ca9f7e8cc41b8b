"""Example 4: ALM promotion dev -> test -> prod, with the comparison reports kept.

1. ``promote_to_test`` (``AnaplanALMSyncOperator``) takes the DEV model's latest revision (or the one named in
   ``revision``), checks that the TEST model can take it, generates the comparison report (object by object) and the
   summary, saves both under ``output/reports/test/``, and syncs TEST. A target already at the revision is reported
   ``up_to_date`` and left alone, so a rerun changes nothing.
2. ``check_test`` is the gate: here it only checks what the promotion reported; in real life, run your test
   pipelines against the TEST model here, or make it a human approval.
3. ``promote_to_prod`` promotes **the same revision** (its id from ``promote_to_test``'s XCom, not whatever DEV's
   latest is by then) into production, taking it offline during the sync and always back online after, and keeps its
   reports under ``output/reports/prod/``.

Each ALM call needs the Workspace Administrator role on the models. ALM syncs cannot be cancelled through Anaplan's
API: a timeout fails the task but the sync goes on.

The emulator's bundled tenant has "Sales Forecast DEV" and "Sales Forecast" (production); ``./scripts/demo`` adds
"Sales Forecast TEST", a copy of DEV at the revision production is at (what an Anaplan admin does once with "Copy
model"). Against your tenant, set the three model params.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_anaplan.operators import AnaplanALMSyncOperator

#: Seconds between status polls; Anaplan advises 5. The demo and the tests lower it for the emulator.
POLL_INTERVAL = float(os.environ.get("ANAPLAN_EXAMPLE_POLL_INTERVAL", "5"))

with DAG(
    dag_id="anaplan_alm_promotion",
    description="Promote an Anaplan model revision from DEV to TEST to PROD, keeping the comparison reports",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["anaplan", "example"],
    params={
        "workspace": Param("FP&A Production", type="string", description="Workspace (name or id) of the models"),
        "dev_model": Param("Sales Forecast DEV", type="string", description="The source model"),
        "test_model": Param("Sales Forecast TEST", type="string", description="Synced first"),
        "prod_model": Param("Sales Forecast", type="string", description="Synced once TEST passed"),
        "revision": Param("latest", type="string", description="'latest', or a revision id or name of DEV"),
        "output": Param(
            "file:///tmp/anaplan_examples/alm_promotion",
            type="string",
            description="Where the comparison and summary reports go: a local path or a URL",
        ),
    },
) as dag:
    # [START howto_operator_anaplan_alm_sync]
    promote_to_test = AnaplanALMSyncOperator(
        task_id="promote_to_test",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        source_model="{{ params.dev_model }}",
        target_models=["{{ params.test_model }}"],
        revision="{{ params.revision }}",
        report_to="{{ params.output }}/reports/test/",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=4 * 3600,
    )
    # [END howto_operator_anaplan_alm_sync]

    @task
    def check_test(result: dict[str, Any]) -> str:
        """The gate between TEST and PROD; returns the revision id that passed."""
        for target in result["targets"]:
            summary = target.get("summary") or {}
            print(
                f"{target['target_model_id']}: {target['status']} at revision {target['target_revision_after']}"
                f" ({summary.get('created', 0)} created, {summary.get('modified', 0)} modified,"
                f" {summary.get('deleted', 0)} deleted); report: {target.get('comparison_report_path', '-')}"
            )
            if target["target_revision_after"] != result["revision_id"]:
                raise ValueError(f"{target['target_model_id']} is not at revision {result['revision_id']}")
        return result["revision_id"]

    passed = check_test(promote_to_test.output)

    promote_to_prod = AnaplanALMSyncOperator(
        task_id="promote_to_prod",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        source_model="{{ params.dev_model }}",
        target_models=["{{ params.prod_model }}"],
        revision="{{ ti.xcom_pull(task_ids='check_test') }}",  # exactly what TEST got
        report_to="{{ params.output }}/reports/prod/",
        take_offline=True,  # users cannot open production while it syncs; always back online after
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=4 * 3600,
    )

    passed >> promote_to_prod
