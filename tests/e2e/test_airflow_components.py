"""Real Airflow, as deployed: scheduler, DAG processor, triggerer and API server as separate processes.

They share one fresh ``AIRFLOW_HOME`` (SQLite, LocalExecutor) whose DAGs folder is ``example_dags/``. The test
triggers ``anaplan_mapped_imports`` (three mapped, deferrable ``AnaplanRunActionOperator`` tasks) through the REST
API against the emulator (uvicorn on 127.0.0.1 in this process; every import runs a few seconds and they queue on
the model), and checks that

* the tasks deferred and their triggers ran in the triggerer process (its log names them);
* killing the triggerer (SIGKILL, mid-wait) and starting another one still ends in success: the new triggerer takes
  the orphaned triggers over once the dead one's heartbeat is older than ``triggerer_health_check_threshold``
  (lowered to a few seconds here), and re-running a trigger from the top only polls;
* the emulator ran exactly one Anaplan task per import (no restart, retry or reattach started a second one).

Every component runs in its own process group (``start_new_session``); each whole group is stopped in a finally
(SIGTERM, then SIGKILL), so no LocalExecutor worker or log server outlives the test. The worker and triggerer log
servers are not started (``--skip-serve-logs``), so the test binds no fixed port; the API server takes a free one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import engine_for
from tests.conftest import EXAMPLE_DAGS_DIR
from tests.emulator.conftest import LiveServer

pytestmark = pytest.mark.slow

DAG_ID = "anaplan_mapped_imports"
IMPORTS = {"112000000002", "112000000001", "112000000003"}
# Seconds per import; the three queue on the model, so the triggers wait about 8, 16 and 24 s. Not shorter: Airflow
# 3.3.2's scheduler fails a resumed task when it drains the worker's defer-exit event only after the trigger fired and
# the task was queued again (apache/airflow#67287, fixed on main by #68741); at 4 s a loaded machine lost that race.
TASK_DURATION = 8.0
HEALTH_THRESHOLD = 4  # [triggerer] triggerer_health_check_threshold: when a silent triggerer counts as dead
TRIGGER_CLASSPATH = "airflow_provider_anaplan.triggers.anaplan.AnaplanTaskTrigger"
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 120.0
RUN_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Component:
    """One Airflow component in a process group of its own, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it reaches its workers too
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash or an OOM kill would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the group, then SIGKILL whatever is left of it after ``grace`` seconds."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break  # the whole group is gone
            self.proc.poll()
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


def wait_for(what: str, check: Callable[[], Any], timeout: float, components: list[Component]) -> Any:
    """Poll ``check`` until it returns something truthy; fail with every component's log tail on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        for component in components:
            if component.proc.poll() is not None and component.name != "triggerer-1":
                pytest.fail(f"{component.name} exited with {component.proc.returncode}:\n{component.log()[-4000:]}")
        try:
            value = check()
        except (httpx.HTTPError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.name} ---\n{c.log()[-3000:]}" for c in components)
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{tails}")
        time.sleep(0.5)


@pytest.fixture
def emulator() -> Iterator[LiveServer]:
    app: EmulatorApp = create_app()
    engine_for(app.state).options.task_duration = TASK_DURATION
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def airflow_env(tmp_path: Path, emulator: LiveServer) -> dict[str, str]:
    """The environment every component shares: one AIRFLOW_HOME, SQLite, LocalExecutor, quick heartbeats."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the components start `airflow` subcommands
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS_DIR),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            # Shared by every process: workers' execution-API tokens must verify in the API server.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_THRESHOLD),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "ANAPLAN_EXAMPLE_POLL_INTERVAL": "0.5",
            "AIRFLOW_CONN_ANAPLAN_DEFAULT": json.dumps(
                {
                    "conn_type": "anaplan",
                    "login": DEFAULT_USER_EMAIL,
                    "password": DEFAULT_USER_PASSWORD,
                    "extra": {"base_url": emulator.url, "timeout": 10},
                }
            ),
        }
    )
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=STARTUP_TIMEOUT
    )
    return env


def test_deferred_tasks_survive_a_triggerer_crash(
    airflow_env: dict[str, str], emulator: LiveServer, tmp_path: Path
) -> None:
    env = airflow_env
    logs = tmp_path / "logs"
    logs.mkdir()
    api = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    components: list[Component] = []
    closers: list[Callable[[], None]] = []

    def start(name: str, *args: str) -> Component:
        component = Component(name, list(args), env, logs)
        components.append(component)
        return component

    try:
        start("api-server", "api-server", "--port", env["AIRFLOW__API__PORT"], "--host", "127.0.0.1")
        start("dag-processor", "dag-processor")
        scheduler = start("scheduler", "scheduler", "--skip-serve-logs")
        triggerer = start("triggerer-1", "triggerer", "--skip-serve-logs")
        client = httpx.Client(base_url=api, timeout=10)
        closers.append(client.close)

        def healthy() -> bool:
            health = client.get("/api/v2/monitor/health").json()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(p) or {}).get("status") == "healthy" for p in parts)

        wait_for("every component to report healthy", healthy, STARTUP_TIMEOUT, components)
        token = client.get("/auth/token").json()["access_token"]  # all-admins mode: no credentials needed
        client.headers["Authorization"] = f"Bearer {token}"
        wait_for("the DAG to be parsed", lambda: client.get(f"/api/v2/dags/{DAG_ID}").is_success, 60, components)
        client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        response = client.post(f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {}})
        response.raise_for_status()
        run_id = response.json()["dag_run_id"]

        def task_instances() -> dict[str, dict[str, Any]]:
            body = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
            return {f"{ti['task_id']}[{ti['map_index']}]": ti for ti in body["task_instances"]}

        def deferred_imports() -> dict[str, dict[str, Any]]:
            """The deferred mapped imports whose trigger a triggerer has taken (``trigger.triggerer_id``)."""
            return {
                key: ti["trigger"]
                for key, ti in task_instances().items()
                if key.startswith("run_import")
                and ti["state"] == "deferred"
                and (ti.get("trigger") or {}).get("triggerer_id") is not None
            }

        def fail_fast(tis: dict[str, dict[str, Any]]) -> None:
            """A failed task ends the wait at once, with the errors the tasks logged."""
            if any(ti["state"] in ("failed", "upstream_failed") for ti in tis.values()):
                errors = sorted(set(re.findall(r"'exc_value': (\"[^\"]*\"|'[^']*')", scheduler.log())))
                pytest.fail(f"tasks failed: { {k: ti['state'] for k, ti in tis.items()} }; errors: {errors}")

        def all_deferred() -> dict[str, dict[str, Any]] | None:
            """Two or more imports deferred to a triggerer, and none left on a worker (so from now on only
            triggers talk to Anaplan)."""
            tis = task_instances()
            fail_fast(tis)
            imports = {k: ti["state"] for k, ti in tis.items() if k.startswith("run_import")}
            deferred = deferred_imports()
            settled = len(imports) == 3 and all(state in ("deferred", "success") for state in imports.values())
            return deferred if settled and len(deferred) >= 2 else None

        taken = wait_for("the imports to defer to the triggerer", all_deferred, 90, components)
        assert {t["classpath"] for t in taken.values()} == {TRIGGER_CLASSPATH}
        [first_job] = {t["triggerer_id"] for t in taken.values()}
        # Only the triggers poll Anaplan now: the emulator's request count grows while the first triggerer runs them.
        before = emulator.app.state.counters.get("requests", 0)

        def polled() -> bool:
            fail_fast(task_instances())
            return emulator.app.state.counters.get("requests", 0) >= before + 2

        wait_for("the first triggerer to poll Anaplan", polled, 20, components)
        triggerer.kill()  # mid-wait: at least two imports are still queued or running in Anaplan
        second = start("triggerer-2", "triggerer", "--skip-serve-logs")

        later_jobs: set[int] = set()

        def run_state() -> str | None:
            later_jobs.update(t["triggerer_id"] for t in deferred_imports().values())
            state = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
            return state if state in ("success", "failed") else None

        final = wait_for("the DAG run to end", run_state, RUN_TIMEOUT, components)
        states = {key: ti["state"] for key, ti in task_instances().items()}
        assert final == "success", states
        assert set(states.values()) == {"success"}, states
        assert len([k for k in states if k.startswith("run_import")]) == 3

        # The triggers ran in triggerer processes: the first triggerer's job took them, and after its crash another
        # triggerer job (the second process) took over those it left.
        jobs = client.get("/api/v2/jobs", params={"job_type": "TriggererJob"}).json()["jobs"]
        assert len(jobs) == 2, jobs
        second_job = max(job["id"] for job in jobs)
        assert first_job != second_job and first_job in {job["id"] for job in jobs}
        assert later_jobs - {first_job} == {second_job}, (first_job, later_jobs)
        assert second.proc.poll() is None  # still running: it did not crash on the inherited triggers
        # The second triggerer wrote the trigger logs of the imports it finished (next to each task's log).
        fired = [
            path
            for path in (Path(env["AIRFLOW_HOME"]) / "logs").rglob(f"*.trigger.{second_job}.log")
            if "Trigger fired event" in path.read_text(errors="replace")
        ]
        assert len(fired) >= len(taken), fired
        # Exactly one Anaplan task per import: neither the crash nor the takeover started another.
        tasks = anaplan_tasks(emulator)
        assert Counter(object_id for object_id, _ in tasks) == Counter(dict.fromkeys(IMPORTS, 1)), tasks
        assert all(state == "COMPLETE" for _, state in tasks), tasks
    finally:
        for close in closers:
            close()
        for component in reversed(components):
            component.stop()


def anaplan_tasks(server: LiveServer) -> list[tuple[str, str]]:
    """(object id, state) of every task the emulator ran."""
    engine = engine_for(server.app.state)
    return [(t.object_id, t.state) for tasks in engine.tasks.values() for t in tasks.values()]
