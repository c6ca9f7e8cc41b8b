"""Secrets kept, operator level: every operator and the sensor under real Airflow, for every auth type, at DEBUG.

For each auth type (basic; certificate with an encrypted key and its password; static token; OAuth with a rotating
refresh token; OAuth with a client secret) one DAG of ``dags/anaplan_secrets_operators.py`` runs through
``dag.test()`` against the emulator over real HTTP, with fresh random credentials in an ``AIRFLOW_CONN_…``
connection, Airflow's loggers and the standard library's at DEBUG. The DAG holds every operator and the sensor, with
templated fields (Params, ``{{ ds }}``, an XCom pull), deferrable ones whose triggers ``dag.test()`` runs inline,
worker ones, and two that fail on purpose (rejected rows, a misspelt name). Everything the run produced is then
searched for every secret of the run, raw and in its base64 forms (see :meth:`Secrets.needles`):

* every log record (root, ``airflow``, the package's loggers, ``httpx``, ``httpcore``) and the formatted log text;
* everything written to stdout and stderr: the task runner's, the operators' and the triggers' structured logs, which
  ``dag.test()`` prints without Airflow's masker, so they are searched raw (but see :data:`ECHO`);
* every XCom row of the run (stored and deserialized), its rendered template fields
  (``RenderedTaskInstanceFields``), and every row of every table of the metadata DB, the serialized DAG included
  (the value of the Variable that keeps the rotated OAuth refresh token aside: it lives there by design, under a name
  Airflow masks, and is checked on its own);
* each trigger as the scheduler stores it (the ``trigger`` row: classpath and decrypted kwargs), as ``dag.test()``
  rebuilt and ran it (``repr``, attributes, ``serialize()``, its serde form, its pickle) and the event it yielded;
* each task instance that ended and its task object (``repr``, attributes), as an Airflow listener receives them, and
  the error that failed it (``str``, ``repr``, traceback, attributes, pickle);
* every file the run wrote (the downloads, the failure dump, the ALM reports) and any log file under ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import logging
import os
import pickle
import re
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from airflow_provider_anaplan.emulator import EmulatorApp, create_app
from airflow_provider_anaplan.emulator.alm_state import REVISION_REGIONS, SALES_FORECAST_DEV, alm_for
from airflow_provider_anaplan.emulator.engine import engine_for
from tests.emulator.conftest import FakeClock

from .conftest import SCANS, CertificateKit, Server
from .test_secrets import AUTH_TYPES, USER_EMAIL, Haystack, Secrets, _token, b64_forms, hook_connection, scan

pytestmark = [
    # dag.test() runs each trigger under a throw-away asyncio.run(); the shared HTTP client of that loop is left
    # open there, as a real triggerer (one long-lived loop) must leave it.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    # Airflow 3.1.8 only: its in-process execution API uses a status name newer starlette deprecates.
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
]

DAGS = Path(__file__).parent / "dags"
TEST_MODEL = "7E57000000000000000000000000A001"
#: Emulator seconds an action (a process: each step), a sync or a report takes, and how far each poll of a task moves
#: the emulator's clock: a task ends at its third poll whatever the machine's speed, so every deferrable operator
#: defers (its own first poll sees the task running) and the trigger sees the end.
TASK_DURATION, POLL_TICK = 0.25, 0.1
TASK_POLL = re.compile(r"/(tasks|syncTasks|comparisonReportTasks|summaryReportTasks)/[^/]+$")
hookimpl = pluggy.HookimplMarker("airflow")  # Airflow's listener hooks
ROTATED_TOKEN_VARIABLE = "anaplan_oauth_refresh_token__"  # prefix of the hook's default Variable name
LOGGERS = ("airflow", "airflow.task", "airflow.triggers", "airflow_provider_anaplan", "httpx", "httpcore", "uvicorn")


# --------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def _one_execution_api_per_process() -> Iterator[None]:
    """Airflow 3.1 builds a new in-process Execution API app for every task dag.test() runs (about 3 s each); 3.3
    caches it. Do what 3.3 does, on 3.1 too (as tests/e2e does)."""
    import functools

    from airflow.sdk.execution_time import supervisor

    with pytest.MonkeyPatch.context() as mp:
        api_server = supervisor.in_process_api_server
        if not hasattr(api_server, "cache_info"):
            mp.setattr(supervisor, "in_process_api_server", functools.lru_cache(maxsize=1)(api_server))
        yield


@pytest.fixture(scope="module")
def dags_module() -> Any:
    """The DAG file, loaded once (``dag.test()`` runs the task objects of the DAG it is called on)."""
    spec = importlib.util.spec_from_file_location("anaplan_secrets_dags", DAGS / "anaplan_secrets_operators.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.AUTH_TYPES == AUTH_TYPES
    return module


@pytest.fixture
def dag_bundle(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``dag.test()`` needs the DAG in a bundle: this directory first (so only it is parsed), then the dags folder."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "anaplan-reliability-dags", "classpath": local, "kwargs": {"path": str(DAGS)}},
        {"name": "dags-folder", "classpath": local, "kwargs": {}},
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=time.time())


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    """The bundled tenant, its clock moved by the polls (see :class:`PollClock`), and "Sales Forecast TEST" (a copy of
    DEV at the revision production is at) for the ALM sync."""
    emulator = create_app(clock=clock)
    engine_for(emulator.state).options.task_duration = TASK_DURATION
    alm = alm_for(emulator.state)
    alm.options.sync_duration = TASK_DURATION
    alm.options.report_duration = 0.02
    alm.copy_model(SALES_FORECAST_DEV, "Sales Forecast TEST", model_id=TEST_MODEL, revision_id=REVISION_REGIONS)
    return emulator


@pytest.fixture
def creds(app: EmulatorApp, certificate_kit: CertificateKit) -> Secrets:
    found = Secrets()
    found.register(app, certificate_kit)
    return found


class PollClock:
    """The emulator as served: every GET of a task (a poll) first moves the emulator's clock by ``POLL_TICK``."""

    def __init__(self, app: EmulatorApp, clock: FakeClock) -> None:
        self.app, self.clock = app, clock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and TASK_POLL.search(scope["path"]):
            self.clock.advance(POLL_TICK)
        await self.app(scope, receive, send)


@pytest.fixture
def server(app: EmulatorApp, clock: FakeClock, plug: Callable[[Any], Server]) -> Server:
    return plug(PollClock(app, clock))


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG: the standard library's (captured raw by ``caplog``) and Airflow's structured loggers (the
    task runner's, the operators' and the triggers' ``self.log``, written to stdout), as ``[logging] logging_level =
    DEBUG`` would set them."""
    import importlib

    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    for module in ("airflow._shared.logging.structlog", "airflow.sdk._shared.logging.structlog"):
        try:
            levels = importlib.import_module(module).PER_LOGGER_LEVELS
        except (ImportError, AttributeError):
            continue
        monkeypatch.setitem(levels, "", logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


class TriggerSpy:
    """The triggers ``dag.test()`` built from the kwargs the tasks deferred with, and the events they yielded (the
    real ``_run_inline_trigger`` runs them; this only keeps what passed through)."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, Any, Any]] = []  # (task id, trigger, event)


@pytest.fixture
def trigger_spy(monkeypatch: pytest.MonkeyPatch) -> TriggerSpy:
    from airflow.sdk.definitions import dag as dag_module

    spy = TriggerSpy()
    real = dag_module._run_inline_trigger

    def run_inline_trigger(trigger: Any, task_sdk_ti: Any) -> Any:
        event = real(trigger, task_sdk_ti)
        spy.runs.append((task_sdk_ti.task_id, trigger, event))
        return event

    monkeypatch.setattr(dag_module, "_run_inline_trigger", run_inline_trigger)
    return spy


class TaskListener:
    """An Airflow listener (the task runner calls it as each task ends): the task instance that ran, with the task
    object, and the error that failed it."""

    def __init__(self) -> None:
        self.ended: dict[str, dict[str, Any]] = {}

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self.ended[task_instance.task_id] = {"ti": task_instance, "task": task_instance.task, "exception": None}

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self.ended[task_instance.task_id] = {"ti": task_instance, "task": task_instance.task, "exception": error}


@pytest.fixture
def task_listener() -> Iterator[TaskListener]:
    from airflow.sdk.execution_time import task_runner

    listener = TaskListener()
    manager = task_runner.get_listener_manager()
    manager.add_listener(listener)
    yield listener
    manager.pm.unregister(listener)


class StoreSpy:
    """Each rotated refresh token the hook writes to its Variable, and whether Airflow's masker already masked it
    at that moment (the real ``VariableRefreshTokenStore.save`` then runs)."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, bool]] = []


@pytest.fixture
def store_spy(monkeypatch: pytest.MonkeyPatch) -> StoreSpy:
    from airflow.sdk._shared.secrets_masker import redact

    from airflow_provider_anaplan.hooks.anaplan import VariableRefreshTokenStore

    spy = StoreSpy()
    real = VariableRefreshTokenStore.save

    def save(self: VariableRefreshTokenStore, refresh_token: str) -> None:
        spy.saved.append((self.key, refresh_token not in str(redact(f"value={refresh_token}"))))
        real(self, refresh_token)

    monkeypatch.setattr(VariableRefreshTokenStore, "save", save)
    return spy


# --------------------------------------------------------------------------------------------------- collecting
def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return zlib.decompress(value).decode("utf-8", errors="replace")  # the compressed serialized DAG
        except zlib.error:
            return value.decode("latin-1")
    return value if isinstance(value, str) else repr(value)


def metadata_db(haystack: Haystack, dag_id: str, run_id: str) -> dict[str, Any]:
    """XCom, rendered fields and triggers of the run as pieces of their own, then every row of every table."""
    import sqlalchemy as sa
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.settings import engine
    from airflow.utils.session import create_session

    found: dict[str, Any] = {"xcom": {}, "rendered": {}, "triggers": []}
    with create_session() as session:
        for row in session.scalars(XComModel.get_many(run_id=run_id, dag_ids=dag_id, key=None)).all():
            value = XComModel.deserialize_value(row)
            found["xcom"][(row.task_id, row.key)] = value
            haystack.add(f"xcom {row.task_id}/{row.key} stored", _text(row.value))
            haystack.add(f"xcom {row.task_id}/{row.key}", json.dumps(value, default=repr))
        query = sa.select(RenderedTaskInstanceFields).where(
            RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
        )
        for rtif in session.scalars(query).all():
            found["rendered"][rtif.task_id] = rtif.rendered_fields
            haystack.add(f"rendered fields of {rtif.task_id}", json.dumps(rtif.rendered_fields, default=repr))
        for trigger in session.scalars(sa.select(Trigger)).all():
            found["triggers"].append((trigger.classpath, trigger.kwargs))
            haystack.add(f"trigger row {trigger.id}: kwargs", repr(trigger.kwargs))
            haystack.add(f"trigger row {trigger.id}: stored", _text(trigger.encrypted_kwargs))
    with engine.connect() as db:
        for table in sa.inspect(engine).get_table_names():
            rows = db.execute(sa.text(f'SELECT * FROM "{table}"')).mappings().all()  # names from the schema
            for number, row in enumerate(rows):
                values = dict(row)
                if table == "variable" and str(values.get("key")).startswith(ROTATED_TOKEN_VARIABLE):
                    values.pop("val")  # the rotated refresh token's home, by design: checked in the test
                haystack.add(f"db {table} row {number}", " | ".join(_text(v) for v in values.values()))
    return found


def run_pieces(haystack: Haystack, spy: TriggerSpy, ended: dict[str, dict[str, Any]]) -> None:
    """The triggers as dag.test() rebuilt them, their events, and the tasks that ran with their exceptions."""
    try:
        from airflow.sdk.serde import serialize as serde
    except ImportError:  # Airflow 3.1 has no serde: its own form is in the trigger row, JSON here
        serde = None
    for number, (_, trigger, event) in enumerate(spy.runs):
        classpath, kwargs = trigger.serialize()
        haystack.add(f"trigger #{number}: repr", repr(trigger))
        haystack.add(f"trigger #{number}: attributes", repr(vars(trigger)))
        haystack.add(f"trigger #{number}: serialize()", repr((classpath, kwargs)))
        haystack.add(f"trigger #{number}: stored form", json.dumps(serde(kwargs) if serde else kwargs))
        haystack.add(f"trigger #{number}: pickle", pickle.dumps((classpath, kwargs)).decode("latin-1"))
        haystack.add(f"trigger #{number}: event", repr(event))
    for task_id, end in ended.items():
        task = end["task"]
        haystack.add(f"task {task_id}: repr", repr(task))
        haystack.add(f"task {task_id}: attributes", repr(vars(task)))
        haystack.add(f"task {task_id}: task instance", repr(end["ti"]))
        if end["exception"] is not None:
            haystack.add_error(f"task {task_id}: exception", end["exception"])


#: Airflow echoes every message between a task and its supervisor at DEBUG: the supervisor ("Received message from
#: task runner", production code) and dag.test()'s in-process comms ("Sending request", test-only). Two messages carry
#: a secret by nature: ``MaskSecret``, the request to mask it (a real supervisor logs its body as "(body omitted)"), and
#: ``PutVariable`` of the rotated OAuth refresh token (a real supervisor writes its log through Airflow's masker, which
#: the hook tells about the token before it writes the Variable: :class:`StoreSpy`). dag.test() prints to stdout
#: without the masker, so these lines are scanned as the masker writes them, and everything else as it is.
ECHO = re.compile(
    r"^.*\[debug\s*\] (?:Sending request|Received message from task runner)\s.*msg=(?:MaskSecret|PutVariable)\(.*$",
    re.MULTILINE,
)


def supervisor_echoes(stdout: str) -> tuple[str, list[str]]:
    """stdout without the echoes of ``MaskSecret`` and ``PutVariable`` messages; those echoes as the masker writes."""
    from airflow.sdk._shared.secrets_masker import redact

    return ECHO.sub("", stdout), [redact(match.group(0)) for match in ECHO.finditer(stdout)]


def written_files(haystack: Haystack, *roots: Path) -> list[Path]:
    files = [p for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()]
    for path in files:
        haystack.add(f"file {path}", path.read_bytes().decode("latin-1"))
    return files


# --------------------------------------------------------------------------------------------------- the test
@pytest.mark.slow  # real Airflow: one dag.test() of 10 tasks and 5 triggers per auth type (5-10 s each)
@pytest.mark.parametrize("auth_type", AUTH_TYPES)
def test_operators_leak_no_secret_at_debug_level(
    auth_type: str,
    app: EmulatorApp,
    creds: Secrets,
    certificate_kit: CertificateKit,
    server: Server,
    set_connection: Callable[..., str],
    dags_module: Any,
    dag_bundle: None,
    trigger_spy: TriggerSpy,
    store_spy: StoreSpy,
    task_listener: TaskListener,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    kit, haystack = certificate_kit, Haystack()
    token = asyncio.run(_token(server.url, USER_EMAIL, creds.password)) if auth_type == "token" else ""
    fields, _ = hook_connection(auth_type, creds, kit, token, server.url, tmp_path)
    conn_id = set_connection(dags_module.conn_id_for(auth_type), **fields)
    dag = dags_module.DAGS[auth_type]
    out = tmp_path / "out"
    logs_home = Path(os.environ["AIRFLOW_HOME"]) / "logs"

    try:
        dag_run = dag.test(run_conf={"out": str(out)})
    finally:
        gc.collect()  # the inline triggers' loops leave their clients to the collector: here, under our filters
    ended = task_listener.ended
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    errors = {task_id: repr(end["exception"]) for task_id, end in ended.items() if end["exception"] is not None}
    assert {t for t, s in states.items() if s == "failed"} == dags_module.FAILING, (states, errors)
    assert {t for t, s in states.items() if s == "success"} == set(states) - dags_module.FAILING, (states, errors)

    db = metadata_db(haystack, dag.dag_id, dag_run.run_id)
    run_pieces(haystack, trigger_spy, ended)
    files = written_files(haystack, out, logs_home)
    haystack.add("DAG run", repr(dag_run))
    haystack.add_objects("DAG", dag, *dag.tasks)
    records = haystack.add_logs(debug_logs)
    stdout, stderr = capfd.readouterr()
    stdout, echoes = supervisor_echoes(stdout)
    assert "***" not in stdout  # raw: nothing else needed Airflow's masker (and a masked output would hide a leak)
    haystack.add("stdout", stdout)
    haystack.add("stderr", stderr)
    haystack.add("stdout: supervisor echoes, masked", "\n".join(echoes))

    # Not vacuous: each kind of piece holds what the run must have put there.
    xcom, rendered = db["xcom"], db["rendered"]
    started = xcom[("start_outside_airflow", "return_value")]
    assert xcom[("upload_and_import", "return_value")]["outcome"] == "success"
    assert xcom[("export_and_download", "return_value")]["row_count"] > 0
    assert xcom[("run_process", "return_value")]["steps"]
    assert xcom[("watch_task", "return_value")]["task_id"] == started
    assert xcom[("alm_sync", "return_value")]["targets"][0]["target_model_id"] == TEST_MODEL
    assert xcom[("import_rejected_rows", "anaplan_outcome")]["rows"]["failed"] == 1
    assert rendered["upload_and_import"]["source"] == dags_module.CLEAN_CSV
    assert rendered["export_and_download"]["destination"] == f"{out}/exports/{dag_run.logical_date:%Y-%m-%d}/"
    assert rendered["watch_task"]["anaplan_task_id"] == started
    assert set(ended) == set(states)
    assert "did you mean" in str(ended["misspelt_action"]["exception"]).lower()
    assert "rejected rows fail the task" in str(ended["import_rejected_rows"]["exception"])
    assert sorted(task_id for task_id, _, _ in trigger_spy.runs) == sorted(dags_module.DEFERRING)
    assert all(event is not None for _, _, event in trigger_spy.runs)
    assert {trigger.serialize()[1]["anaplan_conn_id"] for _, trigger, _ in trigger_spy.runs} == {conn_id}
    assert conn_id in {kwargs.get("anaplan_conn_id") for _, kwargs in db["triggers"]}
    assert records > 100
    assert any(r.levelno == logging.DEBUG and r.name.startswith("httpcore") for r in debug_logs.records)
    assert "[debug    ]" in stdout and "Task failed with exception" in stdout  # the task runner, at DEBUG
    for line in ("Deferring: the triggerer polls Anaplan task", "Started Anaplan task", "Promoting revision"):
        assert line in stdout  # the operators' own task log lines
    assert any("***" in line for line in echoes)  # the masker knew what the echoes carry
    assert len([kwargs for _, kwargs in db["triggers"] if kwargs.get("anaplan_conn_id") == conn_id]) == len(
        dags_module.DEFERRING
    )
    assert {p.relative_to(out).parts[0] for p in files if out in p.parents} == {"exports", "process", "dumps", "alm"}
    # The rotated refresh token went to its Variable (a name Airflow masks), masked before it was written.
    rotating = auth_type == "oauth-rotating"
    assert bool(store_spy.saved) is rotating and all(masked for _, masked in store_spy.saved), store_spy.saved
    if rotating:
        from airflow.models.variable import Variable

        key = store_spy.saved[-1][0]
        live = [t for t, r in app.state.refresh_tokens.items() if r.client_id == creds.rotating_client and not r.used]
        assert "token" in key and Variable.get(key) in live
    scan(haystack, creds.needles(app, kit), f"operators, {auth_type}")


def test_the_scan_finds_a_planted_secret() -> None:
    """The scan is not blind: a secret, or one of its base64 forms, planted in a piece is reported with its place."""
    creds = Secrets()
    needles = {"password": creds.password, **{f"password ({k})": v for k, v in b64_forms(creds.password).items()}}
    haystack = Haystack()
    haystack.add("xcom upload/return_value", json.dumps({"outcome": "success", "note": f"pw={creds.password}"}))
    haystack.add("trigger #0: stored form", json.dumps({"echo": {"x": b64_forms(creds.password)["urlsafe base64"]}}))
    haystack.add("clean", "nothing here")
    hits = haystack.hits(needles)
    assert "password in xcom upload/return_value" in hits
    assert "password (urlsafe base64) in trigger #0: stored form" in hits
    assert not [hit for hit in hits if hit.endswith(" in clean")]
    with pytest.raises(AssertionError, match="secrets leaked"):
        scan(haystack, needles, "planted")
    assert SCANS.pop().startswith("planted: ")  # not a scan of a run: keep it out of the summary


def test_only_the_supervisor_echoes_are_masked_before_the_scan(airflow_db: Path) -> None:
    """The echoes of MaskSecret/PutVariable are scanned as Airflow's masker writes them; any other line stays raw, so
    a secret an operator logged is still found, masked or not."""
    from airflow.sdk.log import mask_secret

    creds = Secrets()
    mask_secret(creds.password)
    stdout = "\n".join(
        [
            "2026-01-01T00:00:00.000000Z [debug    ] Sending request                loc=supervisor.py:2055 "
            f"msg=MaskSecret(value='{creds.password}', name=None, type='MaskSecret')",
            "2026-01-01T00:00:00.000001Z [debug    ] Received message from task runner [supervisor] "
            f"loc=supervisor.py:1786 msg=PutVariable(key='k', value='{creds.password}', type='PutVariable')",
            f"2026-01-01T00:00:00.000002Z [info     ] Logging in with {creds.password} [airflow.task.operators.x]",
            f"2026-01-01T00:00:00.000003Z [debug    ] Sending request msg=GetVariable(key='{creds.client_secret}')",
        ]
    )
    rest, echoes = supervisor_echoes(stdout)
    assert len(echoes) == 2 and all(creds.password not in line and "***" in line for line in echoes)
    haystack = Haystack()
    haystack.add("stdout", rest)
    haystack.add("echoes", "\n".join(echoes))
    assert haystack.hits({"password": creds.password, "client secret": creds.client_secret}) == [
        "password in stdout",
        "client secret in stdout",
    ]
