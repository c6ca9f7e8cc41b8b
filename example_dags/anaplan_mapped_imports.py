"""Example 6: dynamic task mapping over several imports of a model.

``imports_to_run`` checks the list given in the ``imports`` param against the model (so a typo fails before any
import starts, with the closest names) and returns it; ``AnaplanRunActionOperator.partial(...).expand(action=...)``
then runs one mapped task instance per import, each deferring to the triggerer while Anaplan works. Anaplan runs one
action at a time per model, so the imports queue there; the log and the XCom value tell time spent queued from time
spent running. ``summarize`` reads every mapped result.

Mapping over models instead works the same way: ``.expand_kwargs([{"model_id": ..., "action": ...}, ...])``.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from airflow_provider_anaplan.operators import AnaplanRunActionOperator

#: Seconds between status polls; Anaplan advises 5. The demo and the tests lower it for the emulator.
POLL_INTERVAL = float(os.environ.get("ANAPLAN_EXAMPLE_POLL_INTERVAL", "5"))

with DAG(
    dag_id="anaplan_mapped_imports",
    description="Run several Anaplan imports as mapped tasks",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["anaplan", "example"],
    params={
        "workspace": Param("FP&A Production", type="string", description="Workspace name or id"),
        "model": Param("Sales Forecast", type="string", description="Model name or id"),
        "imports": Param(
            [
                "Products from Products.csv",
                "Sales Actuals from Sales Actuals.csv",
                "Forecast from Sales Forecast DEV",
            ],
            type="array",
            items={"type": "string"},
            minItems=1,
            description="Names (or ids) of the imports to run, one mapped task each",
        ),
    },
) as dag:

    @task
    def imports_to_run(params: dict[str, Any] | None = None) -> list[str]:
        """Fail early on a name the model does not have; return the imports to map over."""
        assert params is not None
        hook = AnaplanHook("anaplan_default")
        known = hook.list_imports(model=params["model"], workspace=params["workspace"])
        names = {i.name for i in known} | {i.id for i in known}
        missing = [name for name in params["imports"] if name not in names]
        if missing:
            raise ValueError(f"Model {params['model']!r} has no import named {missing}; it has {sorted(names)}")
        return list(params["imports"])

    # [START howto_operator_anaplan_mapped_imports]
    run_import = AnaplanRunActionOperator.partial(
        task_id="run_import",
        anaplan_conn_id="anaplan_default",
        workspace_id="{{ params.workspace }}",
        model_id="{{ params.model }}",
        kind="import",
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=3600,
        map_index_template="{{ task.action }}",
    ).expand(action=imports_to_run())
    # [END howto_operator_anaplan_mapped_imports]

    @task
    def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
        """One line per import: outcome and rows loaded."""
        table = {r["action_name"]: {"outcome": r["outcome"], "loaded": r["rows"]["loaded"]} for r in results}
        for name, row in table.items():
            print(f"{name}: {row['outcome']}, {row['loaded']} row(s) loaded")
        return table

    summarize(run_import.output)
