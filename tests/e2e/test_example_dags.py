"""Every example DAG in ``example_dags/`` runs through ``dag.test()`` against the emulator over real HTTP.

Each test gets a fresh emulator (uvicorn on 127.0.0.1, in a thread of the test process) and the connection
``anaplan_default`` pointing at it, runs one example with its default params (the emulator seed's names) and an
``output`` under ``tmp_path``, and checks what the DAG did: task states, XCom results, the files it wrote, and the
Anaplan tasks the emulator ran (exactly one per action: no retry or reattach started a second one).
"""

from __future__ import annotations

import gc
import importlib.util
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_anaplan.client import token_cache
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.alm_state import (
    REVISION_CHANNELS,
    REVISION_REGIONS,
    SALES_FORECAST_DEV,
    alm_for,
)
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook, forget_shared_clients
from tests.conftest import EXAMPLE_DAGS_DIR
from tests.emulator.conftest import LiveServer

pytestmark = [
    pytest.mark.slow,
    # dag.test() runs each trigger under a throw-away asyncio.run(); the shared HTTP client of that loop is left
    # open there, as a real triggerer (one long-lived loop) must leave it.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    # Airflow 3.1.8 only: its in-process execution API uses a status name newer starlette deprecates.
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
]

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"
EMPLOYEES_IMPORT = "112000000000"
NIGHTLY_LOAD = "118000000000"
OPTIMIZER = "117000000002"
SALES_REPORT = "116000000000"
TEST_MODEL = "7E57000000000000000000000000A001"
TASK_DURATION = 0.1

#: Example DAG file stem -> the test below that checks it. A new example without a test fails test_every_example...
COVERED = {
    "anaplan_nightly_load",
    "anaplan_export_to_storage",
    "anaplan_process_with_files",
    "anaplan_alm_promotion",
    "anaplan_wait_for_external_task",
    "anaplan_mapped_imports",
}


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def _one_execution_api_per_process() -> Iterator[None]:
    """Airflow 3.1 builds a new in-process Execution API app for every task dag.test() runs (about 3 s each);
    3.3 caches it (``functools.lru_cache`` on ``in_process_api_server``). Do what 3.3 does, on 3.1 too."""
    import functools

    from airflow.sdk.execution_time import supervisor

    with pytest.MonkeyPatch.context() as mp:
        api_server = supervisor.in_process_api_server
        if not hasattr(api_server, "cache_info"):
            mp.setattr(supervisor, "in_process_api_server", functools.lru_cache(maxsize=1)(api_server))
        yield


@pytest.fixture
def emulator() -> EmulatorApp:
    """The bundled tenant, quick, plus "Sales Forecast TEST": a copy of DEV at the revision production is at (as
    ``scripts/run_examples.py`` adds it for the ALM example)."""
    app = create_app()
    engine_for(app.state).options.task_duration = TASK_DURATION
    alm = alm_for(app.state)
    alm.options.sync_duration = alm.options.report_duration = 0.2
    alm.copy_model(SALES_FORECAST_DEV, "Sales Forecast TEST", model_id=TEST_MODEL, revision_id=REVISION_REGIONS)
    return app


@pytest.fixture
def live(emulator: EmulatorApp, airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The emulator on a loopback socket, ``anaplan_default`` pointing at it, the examples polling fast."""
    token_cache.clear()
    forget_shared_clients()
    server = LiveServer(emulator)
    server.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANAPLAN_DEFAULT",
        json.dumps(
            {
                "conn_type": "anaplan",
                "login": DEFAULT_USER_EMAIL,
                "password": DEFAULT_USER_PASSWORD,
                "extra": {"base_url": server.url, "timeout": 10},
            }
        ),
    )
    monkeypatch.setenv("ANAPLAN_EXAMPLE_POLL_INTERVAL", "0.05")
    yield server
    server.stop()
    token_cache.clear()
    forget_shared_clients()
    gc.collect()  # the trigger loops' unclosed transports warn here, under this module's filters, not in a later test


class Run:
    """One ``dag.test()`` of an example: the DAG run, its task instances and XCom return values."""

    def __init__(self, dag_run: Any) -> None:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        self.dag_run = dag_run
        self.state = str(dag_run.state)
        self.tis = {(ti.task_id, ti.map_index): str(ti.state) for ti in dag_run.get_task_instances()}
        self.values: dict[str, list[Any]] = {}
        with create_session() as session:
            rows = session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key="return_value")
            ).all()
            for row in sorted(rows, key=lambda r: (r.task_id, r.map_index)):
                self.values.setdefault(row.task_id, []).append(XComModel.deserialize_value(row))

    def value(self, task_id: str) -> Any:
        [value] = self.values[task_id]
        return value

    def assert_success(self) -> None:
        assert self.state == "success", self.tis
        assert set(self.tis.values()) == {"success"}, self.tis


def run_example(name: str, **conf: Any) -> Run:
    spec = importlib.util.spec_from_file_location(f"e2e_{name}", EXAMPLE_DAGS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Run(module.dag.test(run_conf=conf or None))


def anaplan_tasks(app: EmulatorApp) -> Counter[tuple[str, str]]:
    """(kind, object id) of every task the emulator ran, with how many times."""
    engine = engine_for(app.state)
    return Counter((t.kind, t.object_id) for tasks in engine.tasks.values() for t in tasks.values())


def emulator_list_items(app: EmulatorApp, list_name: str) -> set[str]:
    """Codes of a list's items in the emulated model (what the imports loaded)."""
    data = engine_for(app.state).model_data(MODEL)
    return {item.code for item in data.lists[list_name].items.values()}


def hook() -> AnaplanHook:
    return AnaplanHook("anaplan_default")


# ---------------------------------------------------------------------------------------------------- the DAGs
def test_every_example_parses_and_has_a_test_here() -> None:
    """No import errors; every tenant-specific value is a param with the seed's default; every DAG is covered."""
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

    bag = DagBag(str(EXAMPLE_DAGS_DIR))  # LOAD_EXAMPLES is off (tests/conftest.py)
    assert not bag.import_errors
    files = {Path(dag.fileloc).stem for dag in bag.dags.values()}
    assert files == COVERED
    for dag in bag.dags.values():
        assert "example" in dag.tags
        params = dag.params.dump()
        if "workspace" in params:
            assert params["workspace"] == "FP&A Production"


def test_nightly_load(live: LiveServer, emulator: EmulatorApp, tmp_path: Path) -> None:
    run = run_example("anaplan_nightly_load", output=f"file://{tmp_path}")
    run.assert_success()
    [csv_file] = tmp_path.glob("new_hires_*.csv")
    assert run.value("extract_new_hires") == f"file://{csv_file}"

    load = run.value("load_employees")
    assert load["outcome"] == "partial_success" and load["file_id"] == "113000000000"
    assert load["rows"]["loaded"] == 3 and load["rows"]["failed"] == 2
    [dump] = load["dump_paths"]
    dump_file = Path(dump.removeprefix("file://"))
    assert dump_file.parent == tmp_path / "rejected"
    rejected = dump_file.read_text()
    assert "Christine Darden" in rejected and "Melba Roy Mouton" in rejected and "Gladys West" not in rejected
    assert run.value("check_rejects") == {"loaded": 3, "rejected": 2, "dumps": [dump]}
    # The rows really are in the model now: the emulator's Employees list has the three good ones.
    employees = emulator_list_items(emulator, "Employees")
    assert {"E201", "E202", "E203"} <= employees and not {"E204", "E205"} & employees
    assert anaplan_tasks(emulator) == Counter({("imports", EMPLOYEES_IMPORT): 1})


def test_nightly_load_fails_when_too_many_rows_are_rejected(live: LiveServer, tmp_path: Path) -> None:
    run = run_example("anaplan_nightly_load", output=f"file://{tmp_path}", max_rejected_rows=1)
    assert run.state == "failed"
    assert run.tis[("load_employees", -1)] == "success"
    assert run.tis[("check_rejects", -1)] == "failed"
    assert len(list((tmp_path / "rejected").iterdir())) == 1  # the dump is kept all the same


def test_export_to_storage(live: LiveServer, emulator: EmulatorApp, tmp_path: Path) -> None:
    run = run_example("anaplan_export_to_storage", output=f"file://{tmp_path}")
    run.assert_success()
    export = run.value("export_sales")
    [day] = tmp_path.iterdir()
    report = day / "Sales Report.csv"
    assert export["path"] == f"file://{report}" and export["outcome"] == "success"
    assert export["size"] == report.stat().st_size and export["row_count"] == 2
    lines = report.read_text().splitlines()
    assert lines[0] == "Region,Product,Month,Units,Revenue" and len(lines) == 3
    assert run.value("revenue_by_region") == {"North": 14400.0, "South": 9000.0}  # the seeded Sales cells
    assert not list(day.glob("*.part*")) and not [p for p in day.iterdir() if p.name.startswith(".")]
    assert anaplan_tasks(emulator) == Counter({("exports", SALES_REPORT): 1})


def test_process_with_files(live: LiveServer, emulator: EmulatorApp, tmp_path: Path) -> None:
    run = run_example("anaplan_process_with_files", output=f"file://{tmp_path}")
    run.assert_success()

    process = run.value("run_process")
    assert process["outcome"] == "partial_success"
    steps = {s["object_id"]: s for s in process["steps"]}
    assert [s["outcome"] for s in process["steps"]] == ["success", "partial_success", "success", "success"]
    assert steps[EMPLOYEES_IMPORT]["failed_rows"] == 1
    assert {u["file_id"] for u in process["uploads"]} == {"113000000000", "113000000001"}
    [dump] = process["dump_paths"]
    dump_file = Path(dump.removeprefix("file://"))
    assert dump_file.parent == tmp_path / "dumps"
    dump_text = dump_file.read_text()
    assert "Mary Jackson" in dump_text and "Katherine Johnson" not in dump_text

    [download] = process["downloads"]
    text = (tmp_path / "reports" / "Sales Report.csv").read_text()
    assert download["path"] == f"file://{tmp_path}/reports/Sales Report.csv"
    assert text.splitlines()[0] == "Region,Product,Month,Units,Revenue"
    assert "North,Laptop,Mar 26,20,24000" in text  # the uploaded actuals went through the process into the export
    assert download["row_count"] == len(text.splitlines()) - 1
    assert run.value("report") == {
        "outcome": "partial_success",
        "rejected": 1,
        "files": [download["path"], dump],
    }
    assert anaplan_tasks(emulator) == Counter({("processes", NIGHTLY_LOAD): 1})


def test_alm_promotion(live: LiveServer, emulator: EmulatorApp, tmp_path: Path) -> None:
    run = run_example("anaplan_alm_promotion", output=f"file://{tmp_path}")
    run.assert_success()
    test, prod = run.value("promote_to_test"), run.value("promote_to_prod")
    assert test["revision_id"] == prod["revision_id"] == REVISION_CHANNELS == run.value("check_test")
    [to_test], [to_prod] = test["targets"], prod["targets"]
    assert (to_test["target_model_id"], to_test["status"]) == (TEST_MODEL, "synced")
    assert (to_prod["target_model_id"], to_prod["status"]) == (MODEL, "synced")
    assert to_test["target_revision_before"] == to_prod["target_revision_before"] == REVISION_REGIONS
    assert to_test["target_revision_after"] == to_prod["target_revision_after"] == REVISION_CHANNELS
    for stage, target in (("test", to_test), ("prod", to_prod)):
        comparison = Path(target["comparison_report_path"].removeprefix("file://"))
        assert comparison.parent == tmp_path / "reports" / stage
        assert "Object Type" in comparison.read_text()
        summary = json.loads(Path(target["summary_report_path"].removeprefix("file://")).read_text())
        assert summary["target_model_id"] == target["target_model_id"]
        assert summary["source_revision_id"] == REVISION_CHANNELS
    # Production was taken offline for its sync and is back online; TEST was never taken offline.
    assert emulator.state.models[MODEL].active_state == "PRODUCTION"
    counters = emulator.state.counters
    assert counters["alm.online_status.offline"] == counters["alm.online_status.online"] == 1
    assert counters["alm.sync_tasks"] == 2  # one sync per target

    again = run_example("anaplan_alm_promotion", output=f"file://{tmp_path}")  # a rerun changes nothing
    again.assert_success()
    assert [t["status"] for t in again.value("promote_to_test")["targets"]] == ["up_to_date"]
    assert [t["status"] for t in again.value("promote_to_prod")["targets"]] == ["up_to_date"]
    assert counters["alm.sync_tasks"] == 2


def test_wait_for_external_task(live: LiveServer, emulator: EmulatorApp) -> None:
    run = run_example("anaplan_wait_for_external_task")
    run.assert_success()
    started = run.value("start_outside_airflow")
    summary = run.value("wait_for_task")
    assert summary["task_id"] == started and summary["outcome"] == "success"
    assert summary["action_name"] == "Optimize Territories"
    assert run.value("report") == "success"
    assert anaplan_tasks(emulator) == Counter({("actions", OPTIMIZER): 1})  # the sensor only watched


def test_wait_for_a_task_really_started_outside_airflow(live: LiveServer, emulator: EmulatorApp) -> None:
    """``start_it_here=False``: the sensor watches the action's newest task, here started by the test itself."""
    outside = hook().run(lambda c: c.run_action(MODEL, OPTIMIZER, workspace_id=WORKSPACE, wait=False)).task_id
    run = run_example("anaplan_wait_for_external_task", start_it_here=False)
    run.assert_success()
    assert "start_outside_airflow" not in run.values  # it started nothing (None is not pushed)
    assert run.value("wait_for_task")["task_id"] == outside
    assert anaplan_tasks(emulator) == Counter({("actions", OPTIMIZER): 1})


def test_wait_fails_when_the_watched_task_is_cancelled(live: LiveServer, emulator: EmulatorApp) -> None:
    engine_for(emulator.state).options.task_duration = 3.0
    outside = hook().run(lambda c: c.run_action(MODEL, OPTIMIZER, workspace_id=WORKSPACE, wait=False)).task_id
    hook().run(lambda c: c.cancel_task(MODEL, OPTIMIZER, outside, workspace_id=WORKSPACE, wait=False))
    run = run_example("anaplan_wait_for_external_task", start_it_here=False)
    assert run.state == "failed"
    assert run.tis[("wait_for_task", -1)] == "failed"
    assert run.tis[("report", -1)] == "upstream_failed"


def test_mapped_imports(live: LiveServer, emulator: EmulatorApp) -> None:
    run = run_example("anaplan_mapped_imports")
    run.assert_success()
    imports = ["Products from Products.csv", "Sales Actuals from Sales Actuals.csv", "Forecast from Sales Forecast DEV"]
    assert [k for k in run.tis if k[0] == "run_import"] == [("run_import", i) for i in range(3)]
    results = run.values["run_import"]
    assert [r["action_name"] for r in results] == imports
    assert all(r["outcome"] == "success" for r in results)
    assert results[0]["rows"]["loaded"] == 2 and results[1]["rows"]["loaded"] == 4  # the seeded file contents
    assert set(run.value("summarize")) == set(imports)
    assert anaplan_tasks(emulator) == Counter(
        {("imports", "112000000002"): 1, ("imports", "112000000001"): 1, ("imports", "112000000003"): 1}
    )


def test_mapped_imports_stop_before_anaplan_on_an_unknown_import(live: LiveServer, emulator: EmulatorApp) -> None:
    run = run_example("anaplan_mapped_imports", imports=["Products from Products.csv", "Sales from Nowhere.csv"])
    assert run.state == "failed"
    assert run.tis[("imports_to_run", -1)] == "failed"
    assert not anaplan_tasks(emulator)
