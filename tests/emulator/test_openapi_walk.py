"""Fidelity walk: every route the emulator serves, each JSON answer validated against the community OpenAPI specs.

The specs are read in place from ``../shared/anaplan-openapi/`` (next to the repository), never copied. Each request is
mapped to the spec's path template, method and status code, and its body is validated with ``openapi_schema_validator``
(OAS 3.0). Routes under ``/__emulator/`` are the emulator's own admin API and are exempt.

Rules the walk applies:
- Every route must be exercised, and must have answered at least one 2xx (unless it is an error-only route below).
  A route is exercised by an explicit case, or automatically: a GET whose path parameters the walk knows how to fill
  from the seed is requested once with good ids, and every /2/0 route is requested once without a token (401).
- An undocumented 4xx is validated against the service's generic error schema; an undocumented 5xx must be listed in
  ``UNDOCUMENTED_STATUS``. A route the spec does not describe must be listed in ``NOT_IN_SPEC``.
- A schema violation fails the walk unless ``ALLOWED`` lists it. Every entry of the three lists must still trigger,
  so none can outlive the deviation it excuses.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator._asgi import Route
from airflow_provider_anaplan.emulator.engine import EngineOptions

from .conftest import BASE, FakeClock

SPEC_DIR = Path(__file__).parents[3] / "shared" / "anaplan-openapi"
API = "/2/0"
EXEMPT_PREFIX = "/__emulator/"

# Seed ids (airflow_provider_anaplan/emulator/seed.json).
WS = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"  # FP&A Production
WS_HR = "8a81b01c3e5f4a7b9c1d2e3f4a5b6c7d"  # HR Planning
MODEL = "75A40874E6B64FA3AE0743278996850F"  # Sales Forecast (in WS, open)
MODEL_DEV = "A1C4E2B97F3D4C5E8A6B0D2F4E6A8C01"  # Sales Forecast DEV (in WS; no exports, processes or actions)
MODEL_HR = "3C9E5A1B7D2F4E6A8B0C1D3E5F7A9B2C"  # Workforce Plan (in WS_HR)
USER_ID = "8a81b09d5f1e4c2a9b3e7d6f10a2c4e8"
ROTATING_CLIENT = "5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e"
STATIC_CLIENT = "0d4b8e2a6c1f4a9b7e3d5c8a2f6b1e4d"  # has a secret: an authorization-code client
_DEVICE_GRANT = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": ROTATING_CLIENT}

# Path parameters the automatic sweep fills with ids that exist in MODEL.
AUTO_FILL = {
    "workspaceId": WS,
    "modelId": MODEL,
    "userId": USER_ID,
    "fileId": "113000000000",
    "importId": "112000000000",
    "exportId": "116000000000",
    "processId": "118000000000",
    "actionId": "117000000000",
    # the bulk routes (emulator/bulk.py) name their parameters in snake case; {kind} is one of the four action kinds
    "workspace_id": WS,
    "model_id": MODEL,
    "file_id": "113000000000",
    "chunk_id": "0",
    "kind": "exports",
    "object_id": "116000000000",
}

# Schema violations that are known deviations: (spec, field, validator keyword) -> reason.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("integration", "email", "pattern"): (
        "spec bug: User.email's pattern is over-escaped and rejects ordinary addresses (anaplan-api.md §9)"
    ),
    ("integration", "lastSavedSerialNumber", "type"): (
        "spec says string; the emulator sends the serial as an integer, which clients accept (anaplan-api.md §9)"
    ),
    ("oauth", "error", "enum"): (
        "spec's ErrorPayload enum lacks RFC 6749 'invalid_client', which an unknown client_id gets"
    ),
    ("alm", "creationTime", "type"): (
        "ALM task creationTime is epoch milliseconds (an integer), as Anaplan's Apiary examples and real clients have "
        "it; the spec's date-time string would break those clients (anaplan-api.md §9)"
    ),
}

# Statuses the spec does not list for an operation but live Anaplan answers: (method, spec template, status) -> reason.
UNDOCUMENTED_STATUS: dict[tuple[str, str, int], str] = {
    ("GET", "/models/{modelId}/imports/{importId}", 500): "live: a fabricated import id gets 500 (anaplan-api.md §3.3)",
    ("GET", "/workspaces/{workspaceId}/models/{modelId}/imports/{importId}", 500): (
        "live: a fabricated import id gets 500 (anaplan-api.md §3.3)"
    ),
    ("POST", "/workspaces/{workspaceId}/models/{modelId}/files/{fileId}/complete", 500): (
        "live: completing an upload without a body gets 500 (anaplan-api.md §3.2)"
    ),
}

# Emulator routes the spec has no path for: (method, route template) -> ((method, spec template) to validate
# against, or None for an error-only route validated against the generic error schema; reason).
NOT_IN_SPEC: dict[tuple[str, str], tuple[tuple[str, str] | None, str]] = {
    ("GET", f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}"): (
        None,
        "live answers 405 Method Not Allowed; the spec leaves the path out (anaplan-openapi issue #25)",
    ),
    ("GET", f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}/status"): (
        ("GET", "/models/{modelId}/status"),
        "the spec's description of GET /models/{modelId}/status says the workspace form returns the same body",
    ),
    ("POST", f"{API}/workspaces/{{workspaceId}}/models/{{modelId}}/status"): (
        ("GET", "/models/{modelId}/status"),
        "the form Anaplan's help pages document (anaplan-api.md §3.7): same requestStatus, plus the envelope",
    ),
}

# The bulk routes (emulator/bulk.py) the spec lacks. Each is validated against the workspace-form operation it mirrors:
# (method, route suffix, spec method, spec suffix, reason). A route suffix with {kind} serves all four action kinds;
# the walk sends exports through the model-only form and actions through the workspace-form cancel, matching the alias.
_WS_ROUTE, _MODEL_ROUTE, _WS_SPEC = (
    f"{API}/workspaces/{{workspace_id}}/models/{{model_id}}",
    f"{API}/models/{{model_id}}",
    "/workspaces/{workspaceId}/models/{modelId}",
)
_MODEL_ONLY = "the model-only form exists live (anaplan-api.md §3.0); the spec has only the workspace form"
_CANCEL = (
    "cancel is DELETE on the task-status URL and answers the status body (anaplan-api.md §3.5, §8.8); "
    "the spec has no DELETE, and every kind's status schema is the same"
)
_PROCESS_DUMP = (
    "process dumps (…/dumps/{objectId}, anaplan-api.md §3.6, §8.12) are not in the spec; "
    "same bodies as the import dump routes"
)
_BULK_NOT_IN_SPEC = [
    ("POST", "/files/{file_id}", "POST", "/files/{fileId}", _MODEL_ONLY),
    ("PUT", "/files/{file_id}", "PUT", "/files/{fileId}", _MODEL_ONLY),
    ("GET", "/files/{file_id}", "GET", "/files/{fileId}", _MODEL_ONLY),
    ("DELETE", "/files/{file_id}", "DELETE", "/files/{fileId}", _MODEL_ONLY),
    ("POST", "/files/{file_id}/complete", "POST", "/files/{fileId}/complete", _MODEL_ONLY),
    ("PUT", "/files/{file_id}/chunks/{chunk_id}", "PUT", "/files/{fileId}/chunks/{chunkId}", _MODEL_ONLY),
    ("GET", "/files/{file_id}/chunks/{chunk_id}", "GET", "/files/{fileId}/chunks/{chunkId}", _MODEL_ONLY),
    ("POST", "/{kind}/{object_id}/tasks", "POST", "/exports/{exportId}/tasks", _MODEL_ONLY),
    ("GET", "/{kind}/{object_id}/tasks", "GET", "/exports/{exportId}/tasks", _MODEL_ONLY),
    ("GET", "/{kind}/{object_id}/tasks/{task_id}", "GET", "/exports/{exportId}/tasks/{taskId}", _MODEL_ONLY),
    (
        "DELETE",
        "/{kind}/{object_id}/tasks/{task_id}",
        "GET",
        "/exports/{exportId}/tasks/{taskId}",
        _CANCEL + "; model-only",
    ),
    ("GET", "/imports/{object_id}/tasks/{task_id}/dump", "GET", "/imports/{importId}/tasks/{taskId}/dump", _MODEL_ONLY),
    (
        "GET",
        "/imports/{object_id}/tasks/{task_id}/dump/chunks",
        "GET",
        "/imports/{importId}/tasks/{taskId}/dump/chunks",
        _MODEL_ONLY,
    ),
    (
        "GET",
        "/imports/{object_id}/tasks/{task_id}/dump/chunks/{chunk_id}",
        "GET",
        "/imports/{importId}/tasks/{taskId}/dump/chunks/{chunkId}",
        _MODEL_ONLY,
    ),
    (
        "GET",
        "/optimizeActions/{object_id}/tasks/{task_id}/solutionLogs",
        "GET",
        "/optimizeActions/{actionId}/tasks/{correlationId}/solutionLogs",
        _MODEL_ONLY,
    ),
]
for _method, _suffix, _spec_method, _spec_suffix, _reason in _BULK_NOT_IN_SPEC:
    NOT_IN_SPEC[(_method, _MODEL_ROUTE + _suffix)] = ((_spec_method, _WS_SPEC + _spec_suffix), _reason)
NOT_IN_SPEC[("DELETE", _WS_ROUTE + "/{kind}/{object_id}/tasks/{task_id}")] = (
    ("GET", _WS_SPEC + "/actions/{actionId}/tasks/{taskId}"),
    _CANCEL,
)
for _tail, _spec_tail in (("", ""), ("/chunks", "/chunks"), ("/chunks/{chunk_id}", "/chunks/{chunkId}")):
    for _prefix in (_WS_ROUTE, _MODEL_ROUTE):
        NOT_IN_SPEC[("GET", f"{_prefix}/processes/{{object_id}}/tasks/{{task_id}}/dumps/{{step_id}}{_tail}")] = (
            ("GET", f"{_WS_SPEC}/imports/{{importId}}/tasks/{{taskId}}/dump{_spec_tail}"),
            _PROCESS_DUMP,
        )


# --------------------------------------------------------------------------------------------------- the specs
@dataclass
class SpecOp:
    service: str
    template: str
    method: str
    operation: dict[str, Any]
    regex: re.Pattern[str]
    literal_chars: int


@dataclass
class Specs:
    documents: dict[str, dict[str, Any]]
    registry: Registry
    ops: list[SpecOp]

    @classmethod
    def load(cls) -> Specs:
        if not SPEC_DIR.is_dir():
            pytest.fail(f"the OpenAPI specs are missing: expected them in {SPEC_DIR}")
        documents = {
            p.name.removesuffix("-openapi.json"): json.loads(p.read_text("utf-8")) for p in SPEC_DIR.glob("*.json")
        }
        assert {"integration", "authentication", "oauth", "alm"} <= documents.keys()
        registry = Registry().with_resources(
            (f"urn:anaplan-openapi:{name}", Resource(contents=doc, specification=DRAFT4))
            for name, doc in documents.items()
        )
        ops: list[SpecOp] = []
        for service, doc in documents.items():
            for template, item in doc["paths"].items():
                normal = template.rstrip("/") or "/"
                pieces = re.split(r"\{\w+\}", normal)
                regex = re.compile("^" + "[^/]+".join(re.escape(p) for p in pieces) + "$")
                for method, operation in item.items():
                    if method in ("get", "post", "put", "delete", "patch"):
                        ops.append(SpecOp(service, template, method.upper(), operation, regex, len("".join(pieces))))
        return cls(documents, registry, ops)

    def find(self, method: str, path: str) -> SpecOp | None:
        """The operation whose template matches ``path`` (with the most literal characters when several do)."""
        if path.startswith(API + "/"):
            services, rest = ("integration", "alm"), path[len(API) :]
        else:
            services, rest = ("authentication", "oauth"), path
        rest = rest.rstrip("/") or "/"
        found = [op for op in self.ops if op.service in services and op.method == method and op.regex.match(rest)]
        return max(found, key=lambda op: op.literal_chars, default=None)

    def op(self, method: str, template: str) -> SpecOp:
        return next(o for o in self.ops if o.method == method and o.template == template)

    def resolve(self, service: str, node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """A response object, following a local ``$ref``; returns (object, its JSON pointer when it was a ref)."""
        ref = node.get("$ref")
        if ref is None:
            return node, None
        pointer = ref.removeprefix("#")
        target: Any = self.documents[service]
        for part in pointer.strip("/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return target, pointer

    def errors(self, service: str, pointer: str, instance: Any) -> list[Any]:
        uri = f"urn:anaplan-openapi:{service}#{quote(pointer, safe='/~')}"
        validator = OAS30Validator({"$ref": uri}, registry=self.registry, format_checker=oas30_format_checker)
        return list(validator.iter_errors(instance))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _generic_error(path: str) -> tuple[str, str] | None:
    """The error schema a service uses for answers its spec does not describe one by one."""
    if path.startswith(API + "/"):
        return "integration", "/components/schemas/ErrorResponse"
    if path.startswith("/token/"):
        return "authentication", "/components/schemas/ErrorResponse"
    if path.startswith("/oauth/"):
        return "oauth", "/components/schemas/ErrorPayload"
    return None


# --------------------------------------------------------------------------------------------------- the walk
@dataclass
class Case:
    method: str
    path: str
    status: int
    auth: str = "token"  # "token", "none", or "header" (use ``headers`` as given, after placeholder filling)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None  # a raw body (file chunks); give its Content-Type in ``headers`` with auth="header"
    save: tuple[str, ...] = ()  # (slot, *JSON keys): keep a value of the answer for later paths, e.g. a task id


@dataclass
class Walk:
    app: EmulatorApp
    specs: Specs
    problems: list[str] = field(default_factory=list)
    statuses: dict[tuple[str, str], set[int]] = field(default_factory=dict)  # route -> statuses seen
    used_allowed: set[tuple[str, str, str]] = field(default_factory=set)
    used_status: set[tuple[str, str, int]] = field(default_factory=set)
    used_not_in_spec: set[tuple[str, str]] = field(default_factory=set)

    def route_of(self, method: str, path: str) -> Route | None:
        route, _params, _exists = self.app.router.match(method, path)
        return route

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        where = f"{method} {path} -> {response.status_code}"
        route = self.route_of(method, path)
        if route is None:
            self.problems.append(f"{where}: no emulator route serves this request")
            return
        self.statuses.setdefault((route.method, route.template), set()).add(response.status_code)
        op = self.specs.find(method, path)
        exception = NOT_IN_SPEC.get((route.method, route.template))
        if op is None:
            if exception is None:
                self.problems.append(f"{where}: the specs have no {method} {route.template}; add NOT_IN_SPEC if meant")
                return
            self.used_not_in_spec.add((route.method, route.template))
            alias, _reason = exception
            if alias is None:
                if response.status_code < 400:
                    self.problems.append(f"{where}: an error-only route (NOT_IN_SPEC) answered success")
                self.validate_generic(where, path, response)
                return
            op = self.specs.op(*alias)
        self.validate(where, op, path, response)

    def validate(self, where: str, op: SpecOp, path: str, response: httpx.Response) -> None:
        status = response.status_code
        responses = op.operation.get("responses", {})
        key = str(status) if str(status) in responses else "default" if "default" in responses else None
        if key is None:
            if 400 <= status < 500:
                self.validate_generic(where, path, response)
            elif (op.method, op.template, status) in UNDOCUMENTED_STATUS:
                self.used_status.add((op.method, op.template, status))
                self.validate_generic(where, path, response)
            else:
                self.problems.append(f"{where}: status {status} is not documented for {op.method} {op.template}")
            return
        pointer = f"/paths/{_escape(op.template)}/{op.method.lower()}/responses/{key}"
        spec_response, ref_pointer = self.specs.resolve(op.service, responses[key])
        pointer = ref_pointer or pointer
        content = spec_response.get("content") or {}
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if not content:
            if not response.content:
                return
            if status >= 400:
                self.validate_generic(where, path, response)
            else:
                self.problems.append(f"{where}: the spec describes no body, the emulator sent {media or 'bytes'}")
            return
        if media not in content:
            self.problems.append(f"{where}: content type {media!r} is not one of {sorted(content)}")
            return
        if media == "application/json" and "schema" in content[media]:
            self.validate_json(where, op.service, f"{pointer}/content/{_escape(media)}/schema", response)

    def validate_generic(self, where: str, path: str, response: httpx.Response) -> None:
        generic = _generic_error(path)
        if generic is None:
            self.problems.append(f"{where}: no generic error schema for this service")
            return
        self.validate_json(where, *generic, response)

    def validate_json(self, where: str, service: str, pointer: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            self.problems.append(f"{where}: the body is not JSON")
            return
        for error in self.specs.errors(service, pointer, body):
            names = [p for p in error.absolute_path if isinstance(p, str)]
            key = (service, names[-1] if names else "", str(error.validator))
            if key in ALLOWED:
                self.used_allowed.add(key)
            else:
                location = ".".join(str(p) for p in error.absolute_path) or "<body>"
                self.problems.append(f"{where}: {location}: {error.message[:300]}")


def _basic(email: str = DEFAULT_USER_EMAIL, password: str = DEFAULT_USER_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()


def _read_cases() -> list[Case]:
    """Requests that leave the tenant as it was."""
    ws_model = f"{API}/workspaces/{WS}/models/{MODEL}"
    model = f"{API}/models/{MODEL}"
    cases = [
        # auth service and OAuth
        Case("POST", "/token/authenticate", 201, "header", {"Authorization": _basic()}),
        Case("POST", "/token/authenticate", 401, "header", {"Authorization": _basic(password="wrong")}),
        Case("POST", "/token/authenticate", 400, "header", {"Authorization": "Basic !!!"}),
        Case("POST", "/token/refresh", 200),
        Case("POST", "/token/refresh", 400, "header", {"Authorization": "Bearer {token}"}),
        Case("GET", "/token/validate", 200),
        Case("GET", "/token/validate", 401, "header", {"Authorization": "AnaplanAuthToken not-a-token"}),
        Case(
            "POST",
            "/oauth/token",
            200,
            "none",
            json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": "{refresh}"},
        ),
        Case(
            "POST",
            "/oauth/token",
            400,
            "none",
            json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": "made-up"},
        ),
        Case("POST", "/oauth/token", 401, "none", json={"grant_type": "refresh_token", "client_id": "0" * 32}),
        # the device grant (approval through the admin endpoint is exempt: tests/emulator/test_device_grant.py)
        Case(
            "POST",
            "/oauth/device/code",
            200,
            "none",
            json={"client_id": ROTATING_CLIENT, "scope": "openid profile email offline_access"},
            save=("device_code", "device_code"),
        ),
        Case("POST", "/oauth/device/code", 401, "none", json={"client_id": "0" * 32}),
        Case("POST", "/oauth/device/code", 400, "none", json={"client_id": STATIC_CLIENT}),  # unauthorized_client
        Case("POST", "/oauth/token", 400, "none", json={**_DEVICE_GRANT, "device_code": "{device_code}"}),  # pending
        Case("POST", "/oauth/token", 400, "none", json={**_DEVICE_GRANT, "device_code": "made-up"}),  # invalid_grant
        # users, workspaces, models
        Case("GET", f"{API}/users/me", 200),
        Case("GET", f"{API}/users/{USER_ID}", 200),
        Case("GET", f"{API}/users/{'0' * 32}", 404),
        Case("GET", f"{API}/users?sort=-email&limit=1&offset=1", 200),
        Case("GET", f"{API}/users?sort=email", 400),
        Case("GET", f"{API}/workspaces?tenantDetails=true&sort=-name&s=plan", 200),
        Case("GET", f"{API}/workspaces?limit=1", 200),
        Case("GET", f"{API}/workspaces?limit=abc", 400),
        Case("GET", f"{API}/workspaces/{WS}?tenantDetails=true", 200),
        Case("GET", f"{API}/workspaces/{'f' * 32}", 404),
        Case("GET", f"{API}/models?modelDetails=true&sort=+name&limit=2&offset=1", 200),
        Case("GET", f"{API}/models?s=nothing-matches", 200),
        Case("GET", f"{API}/workspaces/{WS}/models?modelDetails=true", 200),
        Case("GET", f"{API}/workspaces/{'f' * 32}/models", 404),
        Case("GET", f"{model}?modelDetails=true", 200),
        Case("GET", f"{API}/models/{'F' * 32}", 404),
        Case("GET", ws_model, 405),
        Case("GET", f"{model}/status", 200),
        Case("GET", f"{ws_model}/status", 200),
        Case("POST", f"{ws_model}/status", 200),
        Case("GET", f"{API}/workspaces/{WS_HR}/models/{MODEL}/status", 404),
        # model objects, both path forms
        Case("GET", f"{ws_model}/files?sort=-name", 200),
        Case("GET", f"{API}/models/{MODEL_HR}/files", 200),
        Case("GET", f"{ws_model}/imports/", 200),
        Case("GET", f"{model}/imports?limit=2&offset=2", 200),
        Case("GET", f"{ws_model}/imports/112000000003", 200),  # a MODEL import: no source
        Case("GET", f"{model}/imports/112000000001", 200),
        Case("GET", f"{model}/imports/112999999999", 500),
        Case("GET", f"{ws_model}/imports/112999999999", 500),
        Case("GET", f"{model}/imports/not-an-id", 404),
        Case("GET", f"{ws_model}/exports", 200),
        Case("GET", f"{API}/models/{MODEL_DEV}/exports", 200),  # empty: no "exports" key
        Case("GET", f"{ws_model}/exports/116000000001", 200),
        Case("GET", f"{model}/exports/116999999999", 404),
        Case("GET", f"{model}/processes", 200),
        Case("GET", f"{ws_model}/processes/118000000000?showImportDataSource=true", 200),
        Case("GET", f"{model}/processes/118000000001", 200),
        Case("GET", f"{model}/processes/118999999999", 404),
        Case("GET", f"{model}/actions?sort=-id", 200),
        Case("GET", f"{API}/workspaces/{WS}/models/{MODEL_DEV}/actions", 200),
        Case("GET", f"{API}/workspaces/{WS_HR}/models/{MODEL}/actions", 404),
    ]
    return cases


@dataclass
class Advance:
    """A step of the bulk cases that moves the walk's FakeClock, so that queued tasks run and complete."""

    seconds: float


# MODEL's bulk objects (seed.json, seed_data.json).
SALES_FILE, SALES_IMPORT, PRODUCTS_IMPORT = "113000000001", "112000000001", "112000000002"
SALES_EXPORT, EMPLOYEES_EXPORT, NIGHTLY_LOAD = "116000000000", "116000000001", "118000000000"
DELETE_CLOSED, SORT_PRODUCTS, OPTIMIZE = "117000000000", "117000000001", "117000000002"


def _raw(content_type: str) -> dict[str, str]:
    """Headers of a raw-body request (a file chunk), with the walk's token (use with auth="header")."""
    return {"Authorization": "AnaplanAuthToken {token}", "Content-Type": content_type}


def _gzip_bomb(size: int) -> bytes:
    """A small gzip body that inflates to ``size`` zero bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(bytes(1 << 20)) for _ in range(size >> 20)]
    parts += [compressor.compress(bytes(size % (1 << 20))), compressor.flush()]
    return b"".join(parts)


def _bulk_cases() -> list[Case | Advance]:
    """Files, tasks, dumps and optimizer logs, in both path forms; they change MODEL's files and data."""
    ws_model = f"{API}/workspaces/{WS}/models/{MODEL}"
    model = f"{API}/models/{MODEL}"
    octet, gzipped = _raw("application/octet-stream"), _raw("application/x-gzip")
    header = b"Region,Product,Month,Units,Revenue\n"
    good = b"North,Laptop,Mar 26,10,12000\nWest,Support Plan,Mar 26,5,1000\n"
    bad = b"South,Monitor,Mar 26,ten,2000\nEast,Hoverboard,Mar 26,1,100\n"  # a bad number, an unknown product
    bomb = _gzip_bomb(EngineOptions().max_chunk_bytes + 1)
    locale = {"localeName": "en_US"}
    mapping = {**locale, "mappingParameters": [{"entityType": "Version", "entityName": "Actual"}]}
    sales_import = f"{ws_model}/imports/{SALES_IMPORT}/tasks"
    model_sales_import = f"{model}/imports/{SALES_IMPORT}/tasks"
    process = f"{ws_model}/processes/{NIGHTLY_LOAD}/tasks"
    process_dump = f"{process}/{{process_task}}/dumps/{SALES_IMPORT}"
    model_process_dump = f"{model}/processes/{NIGHTLY_LOAD}/tasks/{{process_task}}/dumps/{SALES_IMPORT}"
    return [
        # chunked upload: count -1, chunks (raw or gzip, either form), complete; the limits
        Case("POST", f"{ws_model}/files/{SALES_FILE}", 200, json={"chunkCount": -1}),
        Case("PUT", f"{ws_model}/files/{SALES_FILE}/chunks/0", 204, "header", octet, content=header + good),
        Case("PUT", f"{model}/files/{SALES_FILE}/chunks/1", 204, "header", gzipped, content=gzip.compress(bad)),
        Case("PUT", f"{ws_model}/files/{SALES_FILE}/chunks/2", 400, "header", gzipped, content=b"not gzip"),
        Case("PUT", f"{model}/files/{SALES_FILE}/chunks/2", 413, "header", gzipped, content=bomb),
        Case("PUT", f"{ws_model}/files/{SALES_FILE}/chunks/1000", 400, "header", octet, content=good),
        Case("POST", f"{ws_model}/files/{SALES_FILE}/complete", 500),  # no body: 500, as live
        Case("POST", f"{ws_model}/files/{SALES_FILE}/complete", 200, json={"id": SALES_FILE}),
        Case("POST", f"{model}/files/{SALES_FILE}/complete", 200, json={"id": SALES_FILE}),
        Case("POST", f"{ws_model}/files/{SALES_FILE}", 400, json={"chunkCount": 1001}),
        Case("POST", f"{ws_model}/files/{SALES_FILE}", 400, json={"count": 1}),
        # an unknown id creates a new file (the answer names its id); a gap in the chunks is refused at complete
        Case("POST", f"{model}/files/WalkUpload.csv", 200, json={"chunkCount": -1}, save=("new_file", "file", "id")),
        Case("PUT", f"{model}/files/{{new_file}}/chunks/1", 204, "header", octet, content=good),
        Case("POST", f"{model}/files/{{new_file}}/complete", 400, json={"id": "{new_file}"}),
        # single-shot upload, download, delete
        Case("PUT", f"{ws_model}/files/{{new_file}}", 204, "header", octet, content=header + good),
        Case("PUT", f"{model}/files/{{new_file}}", 204, "header", octet, content=header + good),
        Case("GET", f"{ws_model}/files/{{new_file}}", 200),
        Case("GET", f"{model}/files/{{new_file}}/chunks", 200),
        Case("GET", f"{ws_model}/files/{{new_file}}/chunks?offset=1", 200),  # an empty page: no "chunks" key
        Case("GET", f"{ws_model}/files/{{new_file}}/chunks/0", 200),
        Case("GET", f"{model}/files/{{new_file}}/chunks/0", 200),
        Case("GET", f"{ws_model}/files/{{new_file}}/chunks/1", 404),
        Case("DELETE", f"{ws_model}/files/{{new_file}}", 204),
        Case("GET", f"{model}/files/{{new_file}}", 404),  # no content left
        Case("DELETE", f"{model}/files/{{new_file}}", 204),
        Case("GET", f"{ws_model}/files/113999999999/chunks", 404),
        # tasks: one at a time per model, task_duration (1 s) per action or process step; the rest wait
        Case("POST", sales_import, 200, json=locale, save=("import_task", "task", "taskId")),
        Case("GET", f"{sales_import}/{{import_task}}", 200),  # IN_PROGRESS, no result yet
        Case("GET", f"{sales_import}/{{import_task}}/dump", 404),  # not complete yet
        Case("POST", process, 200, json=mapping, save=("process_task", "task", "taskId")),
        Case(
            "POST", f"{ws_model}/exports/{SALES_EXPORT}/tasks", 200, json=locale, save=("export_task", "task", "taskId")
        ),
        Case(
            "POST", f"{ws_model}/actions/{OPTIMIZE}/tasks", 200, json=locale, save=("optimizer_task", "task", "taskId")
        ),
        Case(
            "POST", f"{ws_model}/actions/{SORT_PRODUCTS}/tasks", 200, json=locale, save=("cancelled", "task", "taskId")
        ),
        Case("DELETE", f"{ws_model}/actions/{SORT_PRODUCTS}/tasks/{{cancelled}}", 200),  # CANCELLING
        Case("POST", f"{model}/exports/{EMPLOYEES_EXPORT}/tasks", 200, json=locale, save=("queued", "task", "taskId")),
        Case("GET", f"{model}/exports/{EMPLOYEES_EXPORT}/tasks/{{queued}}", 200),  # NOT_STARTED
        Case("DELETE", f"{model}/exports/{EMPLOYEES_EXPORT}/tasks/{{queued}}", 200),
        Case("POST", sales_import, 400, json={"mappingParameters": []}),  # no localeName
        Case("POST", f"{ws_model}/exports/{SALES_IMPORT}/tasks", 404, json=locale),  # an import id under exports
        Case("GET", f"{sales_import}/{'0' * 32}", 404),
        Advance(60.0),
        Case("GET", f"{sales_import}/{{import_task}}", 200),  # COMPLETE, some rows rejected
        Case("GET", f"{sales_import}?sort=-creationDate", 200),  # a `tasks` array, not the spec's single `task`
        Case("GET", f"{process}/{{process_task}}", 200),  # nestedResults, one per step
        Case("GET", process, 200),
        Case("GET", f"{ws_model}/exports/{SALES_EXPORT}/tasks/{{export_task}}", 200),
        Case("GET", f"{ws_model}/actions/{OPTIMIZE}/tasks", 200),
        Case("GET", f"{ws_model}/actions/{SORT_PRODUCTS}/tasks/{{cancelled}}", 200),  # CANCELLED, no result
        Case("GET", f"{model}/exports/{EMPLOYEES_EXPORT}/tasks", 200),
        # failure dumps: the import's, and a process step's (by the step's objectId); a clean step has none
        Case("GET", f"{sales_import}/{{import_task}}/dump", 200),
        Case("GET", f"{model_sales_import}/{{import_task}}/dump", 200),
        Case("GET", f"{sales_import}/{{import_task}}/dump/chunks", 200),
        Case("GET", f"{model_sales_import}/{{import_task}}/dump/chunks", 200),
        Case("GET", f"{sales_import}/{{import_task}}/dump/chunks/0", 200),
        Case("GET", f"{model_sales_import}/{{import_task}}/dump/chunks/0", 200),
        Case("GET", f"{sales_import}/{{import_task}}/dump/chunks/1", 404),
        Case("GET", process_dump, 200),
        Case("GET", model_process_dump, 200),
        Case("GET", f"{process_dump}/chunks", 200),
        Case("GET", f"{model_process_dump}/chunks", 200),
        Case("GET", f"{process_dump}/chunks/0", 200),
        Case("GET", f"{model_process_dump}/chunks/0", 200),
        Case("GET", f"{process}/{{process_task}}/dumps/{PRODUCTS_IMPORT}", 404),
        # the optimizer's solution log; the export's output (file id = export id)
        Case("GET", f"{ws_model}/optimizeActions/{OPTIMIZE}/tasks/{{optimizer_task}}/solutionLogs", 200),
        Case("GET", f"{model}/optimizeActions/{OPTIMIZE}/tasks/{{optimizer_task}}/solutionLogs", 200),
        Case("GET", f"{ws_model}/optimizeActions/{DELETE_CLOSED}/tasks/{{optimizer_task}}/solutionLogs", 404),
        Case("GET", f"{ws_model}/files/{SALES_EXPORT}/chunks", 200),
        Case("GET", f"{model}/files/{SALES_EXPORT}/chunks/0", 200),
        Case("GET", f"{ws_model}/files/{SALES_EXPORT}", 200),
    ]


# ALM seed ids (emulator/alm_state.py): the revisions of MODEL_DEV, and the seeded tasks of the sync into MODEL.
REV_INITIAL, REV_REGIONS, REV_CHANNELS = (f"D0A1B2C3D4E5F60718293A4B5C6D7E0{n}" for n in (1, 2, 3))
SEED_SYNC, SEED_COMPARISON, SEED_SUMMARY = (f"5E1F0A2B3C4D4E5F8A9B0C1D2E3F4A0{n}" for n in (1, 2, 3))


def _alm_cases() -> list[Case]:
    """The ALM routes (emulator/alm.py). They add a revision to MODEL_DEV and sync a revision into MODEL, and leave
    MODEL online as it was."""
    alm, dev = f"{API}/models/{MODEL}/alm", f"{API}/models/{MODEL_DEV}/alm"
    octet = {"Authorization": "AnaplanAuthToken {token}", "Accept": "application/octet-stream"}
    ids = {"sourceRevisionId": REV_CHANNELS, "sourceModelId": MODEL_DEV, "targetRevisionId": REV_REGIONS}
    window = "appliedAfter=2020-01-01&appliedBefore=2100-12-31&sort=-appliedOn&limit=2&offset=1"
    return [
        Case("GET", f"{dev}/revisions?{window}", 200),
        Case("GET", f"{dev}/revisions?appliedAfter=yesterday", 400),
        Case("GET", f"{API}/models/{MODEL_HR}/alm/latestRevision", 200),  # no revision: the key is left out
        Case("GET", f"{API}/models/{'F' * 32}/alm/latestRevision", 404),
        Case("GET", f"{alm}/revisions/{REV_REGIONS}/appliedToModels", 200),
        Case("GET", f"{alm}/revisions/{'0' * 32}/appliedToModels", 404),
        Case("GET", f"{alm}/syncableRevisions?sourceModelId={MODEL_DEV}", 200),
        Case("GET", f"{alm}/syncTasks/{SEED_SYNC}", 200),
        Case("GET", f"{alm}/comparisonReportTasks/{SEED_COMPARISON}", 200),
        Case("GET", f"{alm}/summaryReportTasks/{SEED_SUMMARY}", 200),
        Case("GET", f"{alm}/comparisonReports/{REV_INITIAL}/{REV_REGIONS}", 200, "header", octet),
        Case("GET", f"{alm}/comparisonReports/{REV_INITIAL}/{REV_REGIONS}", 406),  # Accept: */*
        Case("GET", f"{alm}/summaryReports/{REV_INITIAL}/{REV_REGIONS}", 200),
        Case("GET", f"{alm}/summaryReports/{REV_REGIONS}/{REV_CHANNELS}", 404),  # never generated
        Case("PUT", f"{API}/models/{MODEL}/onlineStatus", 204, json={"status": "offline"}),
        Case("POST", f"{API}/models/{MODEL}/onlineStatus", 204, json={"status": "online"}),
        Case("PUT", f"{API}/models/{MODEL}/onlineStatus", 400, json={"status": "sideways"}),
        Case("POST", f"{dev}/revisions", 201, json={"name": "Walk", "description": "made by the OpenAPI walk"}),
        Case("POST", f"{dev}/revisions", 400, json={"name": "x" * 61}),
        Case("POST", f"{alm}/comparisonReportTasks", 201, json=ids, save=("alm_comparison", "task", "taskId")),
        Case("GET", f"{alm}/comparisonReportTasks/{{alm_comparison}}", 200),
        Case("POST", f"{alm}/summaryReportTasks", 201, json=ids),
        Case("POST", f"{alm}/syncTasks", 201, json=ids, save=("alm_sync", "task", "taskId")),
        Case("GET", f"{alm}/syncTasks/{{alm_sync}}", 200),
        Case("GET", f"{alm}/syncTasks", 200),
        Case("POST", f"{alm}/syncTasks", 400, json={"sourceModelId": MODEL_DEV}),
    ]


def _destructive_cases() -> list[Case]:
    """Requests that change the tenant; they run last."""
    return [
        Case("POST", f"{API}/workspaces/{WS_HR}/bulkDeleteModels", 200, json={"modelIdsToDelete": [MODEL_HR]}),
        Case("POST", f"{API}/workspaces/{WS}/bulkDeleteModels", 200, json={"modelIdsToDelete": [MODEL, "0" * 32]}),
        Case("POST", f"{API}/workspaces/{WS}/bulkDeleteModels", 400, json={"modelIds": []}),
        Case("POST", "/token/logout", 401, "header", {"Authorization": "AnaplanAuthToken not-a-token"}),
        Case("POST", "/token/logout", 204, "header", {"Authorization": "AnaplanAuthToken {spare}"}),
    ]


def _fill(value: Any, slots: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in slots.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, slots) for k, v in value.items()}
    return value


async def _send(client: httpx.AsyncClient, case: Case, slots: dict[str, str]) -> httpx.Response:
    if case.auth == "token":
        headers = {"Authorization": f"AnaplanAuthToken {slots['token']}"}
    elif case.auth == "none":
        headers = {}
    else:
        headers = _fill(case.headers, slots)
    path = _fill(case.path, slots)
    return await client.request(case.method, path, headers=headers, json=_fill(case.json, slots), content=case.content)


def _concrete(template: str, values: dict[str, str], default: str | None = None) -> str | None:
    """``template`` with its parameters filled from ``values`` (or ``default``); None when one cannot be filled."""
    missing = [n for n in re.findall(r"\{(\w+)\}", template) if n not in values and default is None]
    if missing:
        return None
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), default or ""), template)


async def _login(client: httpx.AsyncClient) -> str:
    response = await client.post("/token/authenticate", headers={"Authorization": _basic()})
    assert response.status_code == 201, response.text
    return response.json()["tokenInfo"]["tokenValue"]


@pytest.mark.asyncio
async def test_every_route_matches_the_openapi_specs() -> None:
    specs = Specs.load()
    clock = FakeClock()
    app = create_app(clock=clock)
    walk = Walk(app, specs)
    routes = [r for r in app.router.routes if not r.template.startswith(EXEMPT_PREFIX)]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        slots = {
            "token": await _login(client),
            "spare": await _login(client),
            "refresh": "demo-rotating-refresh-token-0001",
        }

        async def run(case: Case) -> None:
            response = await _send(client, case, slots)
            if response.status_code != case.status:
                walk.problems.append(f"{case.method} {case.path}: expected {case.status}, got {response.status_code}")
            elif case.save:
                value = response.json()
                for key in case.save[1:]:
                    value = value[key]
                slots[case.save[0]] = value
            walk.check(case.method, urlsplit(str(response.request.url)).path, response)

        for case in _read_cases():
            await run(case)
        for route in routes:
            if route.method == "GET" and (path := _concrete(route.template, AUTO_FILL)) is not None:
                response = await client.get(path, headers={"Authorization": f"AnaplanAuthToken {slots['token']}"})
                walk.check("GET", path, response)
            if route.template.startswith(API + "/"):
                path = _concrete(route.template, AUTO_FILL, default="0") or ""
                await run(Case(route.method, path, 401, "none"))
        for case in _alm_cases():
            await run(case)
        for step in _bulk_cases():
            if isinstance(step, Advance):
                clock.advance(step.seconds)
            else:
                await run(step)
        for case in _destructive_cases():
            await run(case)

    for route in routes:
        seen = walk.statuses.get((route.method, route.template), set())
        error_only = NOT_IN_SPEC.get((route.method, route.template), ("", ""))[0] is None
        if not seen:
            walk.problems.append(f"{route.method} {route.template}: never exercised; add a Case")
        elif not error_only and not any(200 <= s < 300 for s in seen):
            walk.problems.append(f"{route.method} {route.template}: no successful answer was validated; add a Case")
    walk.problems += [f"stale ALLOWED entry {k}: {r}" for k, r in ALLOWED.items() if k not in walk.used_allowed]
    walk.problems += [
        f"stale UNDOCUMENTED_STATUS entry {k}: {r}" for k, r in UNDOCUMENTED_STATUS.items() if k not in walk.used_status
    ]
    walk.problems += [
        f"stale NOT_IN_SPEC entry {k}: {r[1]}" for k, r in NOT_IN_SPEC.items() if k not in walk.used_not_in_spec
    ]
    assert not walk.problems, "\n".join(walk.problems)


def test_the_walk_catches_a_deviation_it_does_not_allow() -> None:
    """The validator is live: a body that breaks the spec is reported, and the allow-list only excuses its own keys."""
    specs = Specs.load()
    walk = Walk(create_app(clock=FakeClock()), specs)
    path = f"{API}/models/{MODEL}"
    bad = {"model": {"id": MODEL, "activeState": "HALF_OPEN", "lastSavedSerialNumber": 7}}
    walk.check("GET", path, httpx.Response(200, json=bad))
    assert len(walk.problems) == 1 and "activeState" in walk.problems[0]
    assert walk.used_allowed == {("integration", "lastSavedSerialNumber", "type")}
    walk.problems.clear()
    walk.check("GET", f"{API}/models/{MODEL}/files", httpx.Response(503, json={"status": {"code": 503}}))
    assert walk.problems and "not documented" in walk.problems[0]
