"""End-to-end DAG for tests/operators (run with dag.test() against the emulator; see test_run_action.py)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG

from airflow_provider_anaplan.operators import AnaplanRunActionOperator
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor


class CrashingFirstTry(AnaplanRunActionOperator):
    """Its first try dies right after starting the Anaplan task, as a lost worker would; the retry must reattach."""

    #: Set by the test: called by the first try before it starts the Anaplan task (to make that task slow).
    before_first_start = None

    def submit_job(self, context):
        if context["ti"].try_number == 1 and CrashingFirstTry.before_first_start is not None:
            CrashingFirstTry.before_first_start()
        return super().submit_job(context)

    def poll_until_complete(self, external_id, context):
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after the Anaplan task started")
        return super().poll_until_complete(external_id, context)


with DAG("anaplan_operators_e2e", schedule=None, params={"action": "Optimize Territories"}) as dag:
    optimize = AnaplanRunActionOperator(
        task_id="optimize", action="{{ params.action }}", deferrable=True, poll_interval=0.05, timeout=120
    )
    watch = AnaplanTaskStatusSensor(
        task_id="watch",
        action="{{ params.action }}",
        anaplan_task_id="{{ ti.xcom_pull(task_ids='optimize', key='anaplan_task_id') }}",
        deferrable=True,
        poke_interval=0.05,
        timeout=60,
    )
    crashing = CrashingFirstTry(
        task_id="sort", action="Sort Products", retries=1, retry_delay=timedelta(0), poll_interval=0.05, timeout=120
    )
    optimize >> watch >> crashing
