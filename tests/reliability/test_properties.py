"""Property-based tests: the emulator answers malformed requests with a 4xx, and the client turns any malformed answer
into an AnaplanError.

(a) Requests are built from the emulator's real route templates with random segment values (real ids, near misses,
    junk, unicode, percent-escapes), random methods, query strings, headers and bodies, sent in-process through
    ``httpx.ASGITransport``. The only 500s allowed are the live ones listed in docs/emulator.md: a fabricated 12-digit
    import id under ``…/imports/{importId}`` and ``…/files/{fileId}/complete`` without a body.
(b) A small ASGI app stands in for Anaplan and answers every API call with a random status, headers and body (random
    JSON, JSON shaped like Anaplan's envelopes with wrong types inside, non-JSON, nothing); a random client call must
    end in a value or an :class:`AnaplanError`, never another exception, and never hang.

Both are derandomized (the same examples on every run) and bounded in examples and time.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import json
import re
import shutil
import string
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from airflow_provider_anaplan.client import AnaplanClient, AnaplanError, BasicAuth, ClientSettings, StaticTokenAuth
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import engine_for
from tests.emulator.conftest import FakeClock

from .conftest import MODEL, NIGHTLY_LOAD, SALES_EXPORT, SALES_FILE, SALES_IMPORT, WORKSPACE

# Hypothesis keeps caches under ./.hypothesis by default; keep them in a temporary directory instead (there is no
# example database either: ``database=None``).
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="anaplan-reliability-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)

BOUNDED = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BASE = "http://emulator.test"

# --------------------------------------------------------------------------------------------------- (a) the emulator
_TEMPLATE_APP = create_app()
ROUTES = [(r.method, r.template) for r in _TEMPLATE_APP.router.routes if r.template.startswith("/2/0/")]
_MODEL = _TEMPLATE_APP.state.models[MODEL]
REAL_VALUES = [
    WORKSPACE,
    MODEL,
    *list(_TEMPLATE_APP.state.models)[:3],
    *list(_MODEL.files),
    *list(_MODEL.imports),
    *list(_MODEL.exports),
    *list(_MODEL.processes),
    *list(_MODEL.actions),
    "imports",
    "exports",
    "processes",
    "actions",
    "0",
    "1",
]
TRICKY_VALUES = [
    "112999999999",  # a well-formed id that does not exist
    "1120000000001",
    "-1",
    "00",
    "1" * 40,
    "9" * 5000,  # more digits than int() converts
    "\u0661",  # Arabic-indic digit one: isdigit() and int() agree
    "\u00b2",  # superscript two: isdigit() is True, int() refuses
    "%",
    "%00",
    "..",
    "a b",
    "ü",
    "\u202e",
    "null",
    "{}",
    "75a40874e6b64fa3ae0743278996850f",
]
segment = st.one_of(
    st.sampled_from(REAL_VALUES),
    st.sampled_from(TRICKY_VALUES),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=40),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1, max_size=20),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=4),
    max_leaves=12,
)
BODY_KEYS = [
    "chunkCount",
    "localeName",
    "mappingParameters",
    "id",
    "name",
    "modelIdsToDelete",
    "status",
    "description",
    "sourceRevisionId",
    "sourceModelId",
    "targetRevisionId",
    "entityType",
    "entityName",
]
shaped_json = st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=4)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped_json.map(lambda v: json.dumps(v).encode()),
    st.just(b"\x1f\x8b\x08\x00garbage"),  # a gzip header and then junk
)
query_keys = [
    "offset",
    "limit",
    "sort",
    "s",
    "modelDetails",
    "tenantDetails",
    "showImportDataSource",
    "sourceModelId",
    "appliedAfter",
    "appliedBefore",
    "tenant",
    "x",
]
queries = st.dictionaries(
    st.sampled_from(query_keys),
    st.one_of(segment, st.sampled_from(["-1", "+name", "name,-id", "%", "true", ""])),
    max_size=3,
)
content_types = st.sampled_from(
    ["application/json", "application/octet-stream", "application/x-gzip", "text/plain", "multipart/form-data", ""]
)
accepts = st.sampled_from(["application/json", "*/*", "application/octet-stream", "text/csv", ""])
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])


def fill(template: str, values: list[str]) -> str:
    names = re.findall(r"\{[^}]+\}", template)
    path = template
    for name, value in zip(names, values, strict=False):
        path = path.replace(name, quote(value, safe="-_.~") or "x", 1)
    return path


def allowed_500(method: str, path: str, body: bytes, app: EmulatorApp) -> bool:
    """The live 500s of docs/emulator.md: a fabricated 12-digit import id, and a bodiless ``…/complete``."""
    decoded = unquote(path)
    imported = re.fullmatch(r"/2/0/(?:workspaces/[^/]+/)?models/([^/]+)/imports/(\d{12})/?", decoded)
    if method == "GET" and imported:
        model = app.state.models.get(imported.group(1))
        return model is None or imported.group(2) not in model.imports
    complete = re.fullmatch(r"/2/0/(?:workspaces/[^/]+/)?models/[^/]+/files/[^/]+/complete/?", decoded)
    return method == "POST" and complete is not None and not body.strip()


_TOKENS: dict[str, str] = {}


async def _login(client: httpx.AsyncClient) -> str:
    answer = await client.post("/token/authenticate", auth=(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))
    return answer.json()["tokenInfo"]["tokenValue"]


@BOUNDED
@given(
    route=st.sampled_from(ROUTES),
    values=st.lists(segment, min_size=6, max_size=6),
    method=st.one_of(st.none(), methods),  # None: the route's own method
    query=queries,
    body=bodies,
    content_type=content_types,
    accept=accepts,
    auth=st.sampled_from(["token", "token", "token", "none", "junk", "bearer"]),
)
def test_the_emulator_never_answers_500_to_a_malformed_request(
    route: tuple[str, str],
    values: list[str],
    method: str | None,
    query: dict[str, str],
    body: bytes,
    content_type: str,
    accept: str,
    auth: str,
) -> None:
    app = _TEMPLATE_APP  # one tenant for every example: what earlier examples changed is part of the input
    path = fill(route[1], values)
    verb = method or route[0]

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            token = _TOKENS.get("token") or _TOKENS.setdefault("token", await _login(client))
            headers: dict[str, str | bytes] = {"Accept": accept} if accept else {}
            if content_type:
                headers["Content-Type"] = content_type
            headers["Authorization"] = {
                "token": f"AnaplanAuthToken {token}",
                "bearer": f"Bearer {token}",
                "junk": "AnaplanAuthToken \u00e9t\u00e9".encode("latin-1"),
                "none": "",
            }[auth]
            if not headers["Authorization"]:
                del headers["Authorization"]
            return await client.request(verb, path, params=query, content=body, headers=headers)

    response = asyncio.run(send())
    if response.status_code >= 500:
        assert allowed_500(verb, path, body, app), (verb, path, query, body[:80], response.status_code, response.text)
    else:
        assert response.status_code < 500


@pytest.mark.parametrize("chunk", ["\u00b2", "\u0663", "9" * 5000, "0" * 30 + "1"])
def test_a_chunk_id_that_is_not_a_decimal_number_is_a_404_not_a_500(chunk: str) -> None:
    app = create_app()

    async def send() -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            token = await _login(client)
            path = fill("/2/0/models/{m}/files/{f}/chunks/{c}", [MODEL, SALES_FILE, chunk])
            answer = await client.get(path, headers={"Authorization": f"AnaplanAuthToken {token}"})
            return answer.status_code

    assert asyncio.run(send()) < 500


# --------------------------------------------------------------------------------------------------- (b) the client
TASK_ID = "0123456789ABCDEF0123456789ABCDEF"
WIRE_KEYS = [
    "workspaces",
    "models",
    "model",
    "workspace",
    "user",
    "files",
    "file",
    "imports",
    "exports",
    "processes",
    "actions",
    "importMetadata",
    "exportMetadata",
    "processMetadata",
    "requestStatus",
    "task",
    "tasks",
    "chunks",
    "meta",
    "paging",
    "status",
    "tokenInfo",
    "revisions",
    "result",
    "nestedResults",
    "details",
    "taskId",
    "taskState",
    "id",
    "name",
    "chunkCount",
    "currentPageSize",
    "totalSize",
    "successful",
    "failureDumpAvailable",
    "values",
    "creationTime",
    "objectId",
    "currentStep",
    "progress",
]
wire_values: st.SearchStrategy[Any] = st.recursive(
    json_values | st.sampled_from([TASK_ID, "COMPLETE", "IN_PROGRESS", "CANCELLED", SALES_FILE, MODEL, WORKSPACE]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(WIRE_KEYS), children, max_size=5),
    max_leaves=15,
)
answer_bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=100),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(WIRE_KEYS), wire_values, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(WIRE_KEYS), wire_values, max_size=5).map(lambda v: json.dumps(v).encode()[:-3]),
)
answers = st.tuples(
    st.one_of(st.sampled_from([200, 200, 200, 201, 204, 400, 401, 404, 409, 429, 500, 503]), st.integers(200, 599)),
    answer_bodies,
    st.sampled_from(["application/json", "application/octet-stream", "text/html", ""]),
    st.one_of(
        st.none(),
        st.sampled_from(
            ["1", "0", "-5", "1e400", "nan", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]
        ),
    ),
)


class FuzzAnaplan:
    """Answers each API call with the next scripted (status, body, content type, Retry-After); 404 when none is left.

    With ``fuzz_auth`` the auth service is scripted too, else it issues a token; this is a fuzzing server, not a mock:
    it checks nothing and asserts nothing about what the client sends.
    """

    def __init__(self, script: list[tuple[int, bytes, str, str | None]], fuzz_auth: bool) -> None:
        self.script = list(script)
        self.fuzz_auth = fuzz_auth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["path"].startswith(("/token/", "/oauth/")) and not self.fuzz_auth:
            body = json.dumps({"tokenInfo": {"tokenValue": "fuzz-token", "expiresAt": 4_102_444_800_000}}).encode()
            status, content_type, retry_after = 201, "application/json", None
        elif self.script:
            status, body, content_type, retry_after = self.script.pop(0)
        else:
            status, body, content_type, retry_after = 404, b'{"status": {"code": 404, "message": "gone"}}', "", None
        headers = [(b"content-length", str(len(body)).encode())]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        if retry_after is not None:
            headers.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(result: Any) -> Any:
    if hasattr(result, "__anext__"):
        return [chunk async for chunk in result]
    return result


CALLS: dict[str, Callable[[AnaplanClient], Any]] = {
    "current user": lambda c: c.get_current_user(),
    "workspaces": lambda c: c.list_workspaces(),
    "models": lambda c: c.list_models(WORKSPACE),
    "model": lambda c: c.get_model(MODEL),
    "model status": lambda c: c.get_model_status(MODEL, WORKSPACE),
    "files": lambda c: c.list_files(MODEL, WORKSPACE),
    "import metadata": lambda c: c.get_import_metadata(MODEL, SALES_IMPORT),
    "export metadata": lambda c: c.get_export_metadata(MODEL, SALES_EXPORT),
    "process metadata": lambda c: c.get_process_metadata(MODEL, NIGHTLY_LOAD),
    "resolve by name": lambda c: c.resolve_import(MODEL, "Sales Actuals"),
    "tasks": lambda c: c.list_tasks(MODEL, SALES_IMPORT),
    "task": lambda c: c.get_task(MODEL, SALES_IMPORT, TASK_ID),
    "start": lambda c: c.run_action(MODEL, SALES_IMPORT, wait=False),
    "wait": lambda c: c.wait_for_task(MODEL, SALES_IMPORT, TASK_ID, poll_interval=1, timeout=5),
    "cancel": lambda c: c.cancel_task(MODEL, SALES_EXPORT, TASK_ID, poll_interval=1, timeout=5),
    "upload": lambda c: c.upload_file(MODEL, SALES_FILE, b"a,b\n1,2\n" * 100, chunk_size=300, concurrency=2),
    "download": lambda c: c.download_file(MODEL, SALES_FILE, io.BytesIO()),
    "dump": lambda c: c.get_failure_dump(MODEL, SALES_IMPORT, TASK_ID, io.BytesIO()),
    "revisions": lambda c: c.list_revisions(MODEL),
}


class FakeSleep:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.clock.advance(min(seconds, 1e9))
        await asyncio.sleep(0)


@BOUNDED
@given(
    call=st.sampled_from(sorted(CALLS)),
    script=st.lists(answers, min_size=1, max_size=8),
    fuzz_auth=st.booleans(),
    static=st.booleans(),
)
def test_the_client_turns_any_malformed_answer_into_an_anaplan_error(
    call: str, script: list[tuple[int, bytes, str, str | None]], fuzz_auth: bool, static: bool
) -> None:
    clock = FakeClock()
    fuzz = FuzzAnaplan(script, fuzz_auth)
    options = ClientSettings(
        base_url="http://anaplan.fuzz",
        transport=httpx.ASGITransport(app=fuzz),
        clock=clock,
        sleep=FakeSleep(clock),
        max_attempts=3,
        max_retry_time=30.0,
        backoff_base=0.01,
    )
    auth = StaticTokenAuth("fuzz-static-token") if static else BasicAuth("fuzz@anaplan.example", "pw")

    async def run() -> Any:
        async with AnaplanClient(auth, settings=options) as client:
            return await asyncio.wait_for(_drain(await _maybe(CALLS[call](client))), timeout=20)

    try:
        asyncio.run(run())
    except AnaplanError:
        pass
    except BaseException as exc:  # anything else is a crash the user would see as a raw traceback
        pytest.fail(f"{call}: {type(exc).__module__}.{type(exc).__name__}: {exc!r}")
    finally:
        from airflow_provider_anaplan.client import token_cache

        token_cache.clear()


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


def test_the_fuzzing_server_reaches_the_parsers() -> None:
    """A sanity check of (b): well-formed scripted answers are read, so the property exercises real parsing."""
    body = json.dumps(
        {
            "workspaces": [{"id": WORKSPACE, "name": "W", "active": True}],
            "meta": {"paging": {"currentPageSize": 1, "offset": 0, "totalSize": 1}},
        }
    ).encode()
    fuzz = FuzzAnaplan([(200, body, "application/json", None)], fuzz_auth=False)
    options = ClientSettings(base_url="http://anaplan.fuzz", transport=httpx.ASGITransport(app=fuzz))

    async def run() -> list[Any]:
        async with AnaplanClient(BasicAuth("fuzz@anaplan.example", "pw"), settings=options) as client:
            return await client.list_workspaces()

    assert [w.id for w in asyncio.run(run())] == [WORKSPACE]
    assert engine_for(_TEMPLATE_APP.state) is not None
