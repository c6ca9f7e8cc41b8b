"""Example 5: a deferrable sensor waits for an Anaplan task that was started outside Airflow.

Planners often start an action themselves (an optimizer run from the Anaplan UI, a CloudWorks schedule). This DAG
waits for that task to end, in the triggerer (``deferrable=True``: no worker slot is held while Anaplan works), and
passes its verdict on. The sensor applies the operators' row policy (``fail_on``) and never cancels the task it
watches, not even on timeout.

Against the emulator nobody else starts tasks, so ``start_it_here`` (default true) makes the first task start one
through the hook, standing in for "outside Airflow". On a real tenant set it to false: the sensor then watches the
action's newest task.

Needs a running triggerer (``airflow triggerer``); ``dag.test()`` runs the trigger inline.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor

#: Seconds between status polls; Anaplan advises 5. The demo and the tests lower it for the emulator.
POLL_INTERVAL = float(os.environ.get("ANAPLAN_EXAMPLE_POLL_INTERVAL", "5"))

with DAG(
    dag_id="anaplan_wait_for_external_task",
    description="Wait (deferred) for an Anaplan task started outside Airflow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["anaplan", "example"],
    params={
        "workspace": Param("FP&A Production", type="string", description="Workspace name or id"),
        "model": Param("Sales Forecast", type="string", description="Model name or id"),
        "action": Param(
            "Optimize Territories", type="string", description="The import, export, process or action to watch"
        ),
        "start_it_here": Param(
            True,
            type="boolean",
            description="Start the task from this DAG (the emulator has nobody else to start it). "
            "False on a real tenant: watch the action's newest task.",
        ),
    },
) as dag:

    @task
    def start_outside_airflow(params: dict[str, Any] | None = None) -> str | None:
        """Stands in for a planner or a schedule: start the action and return at once (``wait=False``)."""
        assert params is not None
        if not params["start_it_here"]:
            print("start_it_here is false: watching the newest task of", params["action"])
            return None
        hook = AnaplanHook("anaplan_default")

        async def start(client: Any) -> str:
            workspace_id, model_id = await hook.aresolve_location(client, params["workspace"], params["model"])
            outcome = await client.run_action(model_id, params["action"], workspace_id=workspace_id, wait=False)
            return outcome.task_id

        task_id = hook.run(start)
        print(f"Started Anaplan task {task_id} of {params['action']!r}")
        return task_id

    # [START howto_sensor_anaplan_task_status]
    wait = AnaplanTaskStatusSensor(
        task_id="wait_for_task",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        model_id="{{ params.model }}",
        action="{{ params.action }}",
        # The id the upstream task returned; empty means "the action's newest task".
        anaplan_task_id="{{ ti.xcom_pull(task_ids='start_outside_airflow') or '' }}",
        deferrable=True,
        poke_interval=POLL_INTERVAL,
        timeout=6 * 3600,
    )
    # [END howto_sensor_anaplan_task_status]

    @task
    def report(summary: dict[str, Any]) -> str:
        """Use the sensor's XCom value: the watched task's id, outcome and row counts."""
        print(f"Anaplan task {summary['task_id']} of {summary['action_name']!r} ended: {summary['outcome']}")
        return summary["outcome"]

    start_outside_airflow() >> wait
    report(wait.output)
