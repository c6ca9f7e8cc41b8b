"""Bad input answered: a corpus of wrong connection fields, PEMs, ids, names, sources, destinations, mapping parameters,
chunk sizes, timeouts, URLs and templated values, each answered with our own error class and a message that names the
field and the fix.

The corpus is data (:data:`CASES`): one :class:`Case` per input, with the layer it enters (``client``, ``hook`` or
``operator``), a category for the summary in docs/reliability.md, the call, the expected error class and the key words
its message must contain. The one test runs every case and checks that:

* the error is an instance of the expected :class:`AnaplanError` subclass, defined in this package (never a raw httpx,
  pydantic, cryptography or OS exception, whatever its ``__cause__``);
* at the hook and operator layers it is also an ``AirflowException`` (so ``soft_fail`` and retries behave as Airflow
  users expect);
* its message contains every key word (the field at fault and what to do), compared case-insensitively.

Operator cases are of three kinds: built (the error comes when the DAG file is parsed: ``__init__``), run (the
operator, in a DAG, has its templates rendered with :meth:`render_template_fields` and is executed against the
emulator served over HTTP, as a worker would), and rendered by a real task runner: the DAG
``dags/anaplan_bad_input.py`` runs once through ``dag.test()`` and each of its failed tasks is a case.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from airflow.sdk import DAG, ObjectStoragePath
from airflow.sdk.exceptions import AirflowException
from cryptography import exceptions as crypto_exceptions

from airflow_provider_anaplan import exceptions
from airflow_provider_anaplan.client import (
    AnaplanClient,
    AnaplanError,
    BasicAuth,
    CertificateAuth,
    ClientSettings,
    ConfigurationError,
    InvalidInputError,
    NameNotFoundError,
    NotFoundError,
    OAuthRefreshTokenAuth,
    StaticTokenAuth,
)
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from airflow_provider_anaplan.operators import (
    AnaplanALMSyncOperator,
    AnaplanExportAndDownloadOperator,
    AnaplanRunActionOperator,
    AnaplanRunProcessOperator,
    AnaplanUploadAndImportOperator,
)
from airflow_provider_anaplan.sensors import AnaplanTaskStatusSensor
from tests.operators.conftest import make_context

from . import _rendered
from .conftest import (
    EMPLOYEES_IMPORT,
    MODEL,
    NIGHTLY_LOAD,
    SALES_EXPORT,
    SALES_FILE,
    SALES_IMPORT,
    WORKSPACE,
    CertificateKit,
    Server,
    one_line,
)

BASE = "http://emulator.test"
RAW = (httpx.HTTPError, httpx.InvalidURL, pydantic.ValidationError, crypto_exceptions.UnsupportedAlgorithm, OSError)
TASK_ID = "0123456789ABCDEF0123456789ABCDEF"


# --------------------------------------------------------------------------------------------------- the corpus
@dataclass
class Ctx:
    """What a case may use: the in-process emulator, the certificate kit, a scratch directory, connections."""

    app: EmulatorApp
    kit: CertificateKit
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    request: pytest.FixtureRequest
    _connections: int = 0

    def settings(self, **options: Any) -> ClientSettings:
        return ClientSettings(base_url=BASE, transport=httpx.ASGITransport(app=self.app), **options)

    def client(self) -> AnaplanClient:
        return AnaplanClient(BasicAuth(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD), settings=self.settings())

    def connection(self, login: str | None = None, password: str | None = None, **extra: Any) -> str:
        self._connections += 1
        conn_id = f"anaplan_bad_input_{self._connections}"
        value = {"conn_type": "anaplan", "login": login, "password": password, "extra": extra}
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
        return conn_id

    def hook(self, fields: dict[str, Any], **options: Any) -> AnaplanHook:
        fields = {"base_url": BASE, **fields}
        conn_id = self.connection(**fields)
        return AnaplanHook(conn_id, transport=httpx.ASGITransport(app=self.app), **options)

    def serve(self) -> Server:
        """Serve this case's emulator over HTTP (the session's uvicorn) as ``anaplan_default``, which operators use:
        basic auth, the FP&A Production workspace and the Sales Forecast model by default."""
        server: Server = self.request.getfixturevalue("plug")(self.app)
        extra = {"base_url": server.url, "workspace_id": WORKSPACE, "model_id": MODEL, "timeout": 10}
        value = {"conn_type": "anaplan", "login": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD, "extra": extra}
        self.monkeypatch.setenv("AIRFLOW_CONN_ANAPLAN_DEFAULT", json.dumps(value))
        return server


Call = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Case:
    id: str
    layer: str  # client | hook | operator
    category: str
    call: Call
    error: type[AnaplanError]
    words: tuple[str, ...]


def on_client(method: str, *args: Any, **kwargs: Any) -> Call:
    """``client.<method>(*args, **kwargs)`` on a client of the in-process emulator (coroutines and streams drained)."""

    async def run(ctx: Ctx) -> None:
        async with ctx.client() as client:
            result = getattr(client, method)(*(a(ctx) if callable(a) else a for a in args), **kwargs)
            if inspect.isawaitable(result):
                result = await result
            if inspect.isasyncgen(result) or hasattr(result, "__anext__"):
                async for _ in result:
                    pass

    return lambda ctx: run(ctx)


def hook_with(fields: dict[str, Any], then: Callable[[AnaplanHook], Any] | None = None, **options: Any) -> Call:
    """A hook on a connection with these fields (Login/Password as ``login``/``password``), then ``then(hook)``."""

    def run(ctx: Ctx) -> None:
        hook = ctx.hook(fields, **options)
        if then is not None:
            then(hook)

    return run


def cert_hook(**extra: Any) -> Call:
    """A certificate connection; values are callables of the kit (``lambda kit: kit.cert_pem``) or plain values."""

    def run(ctx: Ctx) -> None:
        ctx.hook({k: v(ctx.kit, ctx.tmp_path) if callable(v) else v for k, v in extra.items()})

    return run


def with_kit(build: Callable[[CertificateKit], Any]) -> Call:
    return lambda ctx: build(ctx.kit)


BASIC = {"login": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD}
GARBAGE_KEY = "-----BEGIN PRIVATE KEY----- bm90IGEga2V5 -----END PRIVATE KEY-----"
GARBAGE_CERT = "-----BEGIN CERTIFICATE----- bm90IGEgY2VydA== -----END CERTIFICATE-----"
CSV = b"Region,Product,Month,Units,Revenue\nNorth,Laptop,Mar 26,1,1\n"
C, H = "client", "hook"
Conf, Inv = ConfigurationError, InvalidInputError


def _ints() -> Iterator[int]:
    yield from (1, 2, 3)


async def _into_text_file(ctx: Ctx) -> None:
    with (ctx.tmp_path / "out.txt").open("w") as handle:
        await on_client("download_file", MODEL, SALES_FILE, handle)(ctx)


CASES: list[Case] = [
    # ---- connection fields (the hook reads them when it is built)
    Case("no login", H, "connection fields", hook_with({"password": "pw"}), Conf, ("login", "email address")),
    Case("no password", H, "connection fields", hook_with({"login": "a@b.example"}), Conf, ("password field",)),
    Case(
        "unknown auth_type",
        H,
        "connection fields",
        hook_with({**BASIC, "auth_type": "saml"}),
        Conf,
        ("auth_type", "'saml'", "basic, certificate, token"),
    ),
    Case("token auth without token", H, "connection fields", hook_with({"auth_type": "token"}), Conf, ("extra token",)),
    Case(
        "oauth without client id",
        H,
        "connection fields",
        hook_with({"auth_type": "oauth", "oauth_refresh_token": "rt-1"}),
        Conf,
        ("oauth_client_id",),
    ),
    Case(
        "oauth without refresh token",
        H,
        "connection fields",
        hook_with(
            {"auth_type": "oauth", "oauth_client_id": "c1"},
            load_refresh_token=lambda: None,
            on_refresh_token=lambda _: None,
        ),
        Conf,
        ("oauth_refresh_token",),
    ),
    Case(
        "unknown hook option", H, "connection fields", hook_with(BASIC, retries=3), Conf, ("unknown option", "retries")
    ),
    # ---- URLs, TLS, proxy, timeouts in the connection
    Case(
        "api_url with /2/0",
        H,
        "URLs",
        hook_with({**BASIC, "api_url": "https://api.anaplan.com/2/0"}),
        Conf,
        ("api_url", "without a path", "adds /2/0"),
    ),
    Case(
        "base_url not http",
        H,
        "URLs",
        hook_with({**BASIC, "base_url": "ftp://anaplan.example"}),
        Conf,
        ("base_url", "http:// or https://"),
    ),
    Case(
        "base_url with credentials",
        H,
        "URLs",
        hook_with({**BASIC, "base_url": "https://user:pw@anaplan.example"}),
        Conf,
        ("base_url", "credentials"),
    ),
    Case(
        "verify path missing",
        H,
        "URLs",
        hook_with({**BASIC, "verify": "/no/such/ca.pem"}),
        Conf,
        ("verify", "path of a pem ca bundle"),
    ),
    Case(
        "verify file not PEM",
        H,
        "URLs",
        lambda ctx: (
            (ctx.tmp_path / "ca.txt").write_text("not a bundle")
            and ctx.hook({**BASIC, "verify": str(ctx.tmp_path / "ca.txt")})
        ),
        Conf,
        ("verify", "ca bundle"),
    ),
    Case(
        "proxy not a URL",
        H,
        "URLs",
        hook_with({**BASIC, "proxy": "not a url ::"}),
        Conf,
        ("proxy", "http://proxy.example"),
    ),
    Case(
        "proxy ftp scheme",
        H,
        "URLs",
        hook_with({**BASIC, "proxy": "ftp://proxy.example:21"}),
        Conf,
        ("proxy", "http://"),
    ),
    Case(
        "timeout not a number",
        H,
        "timeouts",
        hook_with({**BASIC, "timeout": "soon"}),
        Conf,
        ("timeout", "number of seconds"),
    ),
    Case("timeout zero", H, "timeouts", hook_with({**BASIC, "timeout": 0}), Conf, ("timeout", "greater than 0")),
    Case("timeout negative", H, "timeouts", hook_with({**BASIC, "timeout": "-5"}), Conf, ("timeout", "greater than 0")),
    Case("hook option timeout", H, "timeouts", hook_with(BASIC, timeout=-1), Conf, ("timeout", "> 0")),
    # ---- PEM contents in the connection
    Case(
        "wrong key password",
        H,
        "PEM contents",
        cert_hook(
            certificate=lambda k, _: k.cert_pem,
            private_key=lambda k, _: one_line(k.encrypted_key_pem),
            private_key_password="not-it",
        ),
        Conf,
        ("private_key_password is wrong",),
    ),
    Case(
        "encrypted key, mangled label",
        H,
        "PEM contents",
        cert_hook(
            certificate=lambda k, _: k.cert_pem,
            private_key=lambda k, _: k.encrypted_key_pem.replace("BEGIN ENCRYPTED PRIVATE", "BEGIN ENCRYPTED PRIVTE"),
            private_key_password=lambda k, _: k.key_password,
        ),
        Conf,
        ("private_key", "malformed"),
    ),
    Case(
        "encrypted key, no password",
        H,
        "PEM contents",
        cert_hook(certificate=lambda k, _: k.cert_pem, private_key=lambda k, _: k.legacy_encrypted_key_pem),
        Conf,
        ("encrypted", "private_key_password"),
    ),
    Case(
        "key is garbage PEM",
        H,
        "PEM contents",
        cert_hook(certificate=lambda k, _: k.cert_pem, private_key=GARBAGE_KEY),
        Conf,
        ("private_key", "malformed"),
    ),
    Case(
        "certificate is garbage PEM",
        H,
        "PEM contents",
        cert_hook(certificate=GARBAGE_CERT, private_key=lambda k, _: k.key_pem),
        Conf,
        ("certificate", "malformed"),
    ),
    Case(
        "certificate without key",
        H,
        "PEM contents",
        cert_hook(auth_type="certificate", certificate=lambda k, _: k.cert_pem),
        Conf,
        ("without extra private_key", "pem text or a file path"),
    ),
    Case(
        "key without certificate",
        H,
        "PEM contents",
        cert_hook(private_key=lambda k, _: k.key_pem),
        Conf,
        ("extra certificate", "pem text or a file path"),
    ),
    Case(
        "certificate path missing",
        H,
        "PEM contents",
        cert_hook(certificate=lambda _, t: str(t / "missing.crt"), private_key=lambda k, _: k.key_pem),
        Conf,
        ("certificate", "neither pem content nor a readable file"),
    ),
    Case(
        "key path missing",
        H,
        "PEM contents",
        cert_hook(certificate=lambda k, _: k.cert_pem, private_key=lambda _, t: str(t / "missing.key")),
        Conf,
        ("private_key", "neither pem content nor a readable file"),
    ),
    Case(
        "EC key",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.ec_cert_pem, k.ec_key_pem)),
        Conf,
        ("private_key", "rsa"),
    ),
    Case(
        "key of another certificate",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.cert_pem, k.other_rsa_key_pem)),
        Conf,
        ("does not match",),
    ),
    Case(
        "expired certificate",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.expired_cert_pem, k.key_pem)),
        Conf,
        ("certificate", "expired"),
    ),
    Case(
        "certificate not yet valid",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.future_cert_pem, k.key_pem)),
        Conf,
        ("not valid before",),
    ),
    Case(
        "key in the certificate's place",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.key_pem, k.key_pem)),
        Conf,
        ("certificate", "begin certificate"),
    ),
    Case(
        "certificate as a number",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(12345, k.key_pem)),
        Conf,
        ("certificate", "pem text"),
    ),
    Case(
        "payload version v3",
        C,
        "PEM contents",
        with_kit(lambda k: CertificateAuth(k.cert_pem, k.key_pem, payload_version="v3")),
        Conf,
        ("payload_version", "'v1' or 'v2'"),
    ),
    # ---- credentials given to the client
    Case("empty email", C, "credentials", lambda _: BasicAuth("", "pw"), Conf, ("email", "empty")),
    Case(
        "no password (client)",
        C,
        "credentials",
        lambda _: BasicAuth("a@b.example", None),
        Conf,  # type: ignore[arg-type]
        ("password", "empty"),
    ),
    Case(
        "token with a space", C, "credentials", lambda _: StaticTokenAuth("abc def"), Conf, ("token", "printable ascii")
    ),
    Case("token not ASCII", C, "credentials", lambda _: StaticTokenAuth("tökén"), Conf, ("token", "printable ascii")),
    Case("empty OAuth client id", C, "credentials", lambda _: OAuthRefreshTokenAuth(" ", "rt"), Conf, ("client_id",)),
    Case(
        "OAuth secret not a string",
        C,
        "credentials",
        lambda _: OAuthRefreshTokenAuth("c", "rt", 123),
        Conf,  # type: ignore[arg-type]
        ("client_secret", "string"),
    ),
    Case(
        "on_refresh_token not callable",
        C,
        "credentials",
        lambda _: OAuthRefreshTokenAuth("c", "rt", on_refresh_token="save"),
        Conf,  # type: ignore[arg-type]
        ("on_refresh_token", "callable"),
    ),
    Case(
        "auth not an auth",
        C,
        "credentials",
        lambda _: AnaplanClient("user:pw"),
        Conf,  # type: ignore[arg-type]
        ("auth must be", "basicauth"),
    ),
    # ---- client settings and URLs
    Case(
        "base_url without scheme",
        C,
        "URLs",
        lambda _: ClientSettings(base_url="api.anaplan.com"),
        Conf,
        ("base_url", "http:// or https://"),
    ),
    Case(
        "api_url with /2/0 (client)",
        C,
        "URLs",
        lambda _: ClientSettings(api_url="https://api.anaplan.com/2/0"),
        Conf,
        ("api_url", "adds /2/0"),
    ),
    Case(
        "port out of range",
        C,
        "URLs",
        lambda _: ClientSettings(base_url="http://host:99999"),
        Conf,
        ("base_url", "not a valid url"),
    ),
    Case(
        "proxy ftp (client)",
        C,
        "URLs",
        lambda _: ClientSettings(proxy="ftp://p.example:21"),
        Conf,
        ("proxy", "http://host:port"),
    ),
    Case("verify a number", C, "URLs", lambda _: ClientSettings(verify=123), Conf, ("verify", "ca bundle")),  # type: ignore[arg-type]
    Case("timeout zero (client)", C, "timeouts", lambda _: ClientSettings(timeout=0), Conf, ("timeout", "> 0")),
    Case(
        "timeout as text", C, "timeouts", lambda _: ClientSettings(timeout="30"), Conf, ("timeout", "e.g. timeout=60")
    ),  # type: ignore[arg-type]
    Case("max_attempts zero", C, "timeouts", lambda _: ClientSettings(max_attempts=0), Conf, ("max_attempts", ">= 1")),
    Case("jitter above 1", C, "timeouts", lambda _: ClientSettings(jitter=2), Conf, ("jitter", "between 0 and 1")),
    Case(
        "unknown client setting",
        C,
        "URLs",
        lambda _: AnaplanClient(BasicAuth("a@b.example", "pw"), retries=3),
        Conf,
        ("unknown client setting", "retries"),
    ),
    # ---- ids and names
    Case(
        "task id malformed",
        C,
        "ids and names",
        on_client("get_task", MODEL, SALES_IMPORT, "abc"),
        Inv,
        ("task id", "32 hex"),
    ),
    Case(
        "export id where an import is asked",
        C,
        "ids and names",
        on_client("run_action", MODEL, SALES_EXPORT, kind="import"),
        Inv,
        ("export id", "import id"),
    ),
    Case(
        "unknown id prefix",
        C,
        "ids and names",
        on_client("run_action", MODEL, "999000000000"),
        Inv,
        ("not the id of anything that can be run", "112"),
    ),
    Case(
        "model name misspelt",
        C,
        "ids and names",
        on_client("resolve_model", "Sales Forcast"),
        NameNotFoundError,
        ("no model named", "did you mean", "sales forecast"),
    ),
    Case(
        "import name misspelt",
        C,
        "ids and names",
        on_client("run_action", MODEL, "Employes from Employees.csv"),
        NameNotFoundError,
        ("did you mean", "employees from employees.csv"),
    ),
    Case(
        "workspace id malformed",
        C,
        "ids and names",
        on_client("get_workspace", "8a81b01c"),
        Inv,
        ("workspace id", "32 hex"),
    ),
    Case(
        "process step id malformed",
        C,
        "ids and names",
        on_client("stream_failure_dump", MODEL, NIGHTLY_LOAD, TASK_ID, object_id="step1"),
        Inv,
        ("object_id", "12-digit"),
    ),
    Case("sort without a field", C, "ids and names", on_client("list_workspaces", sort="+"), Inv, ("sort", "'+name'")),
    Case(
        "action kind unknown",
        C,
        "ids and names",
        on_client("run_action", MODEL, SALES_IMPORT, kind="report"),
        Inv,
        ("kind", "import, export, process or action"),
    ),
    # ---- upload sources and file targets
    Case(
        "upload to an export's file",
        C,
        "sources",
        on_client("upload_file", MODEL, SALES_EXPORT, CSV),
        Inv,
        ("export's output file", "113"),
    ),
    Case(
        "upload to an unknown file id",
        C,
        "sources",
        on_client("upload_file", MODEL, "113999999999", CSV),
        NotFoundError,
        ("113999999999", "allow_new_file=true"),
    ),
    Case(
        "upload to an empty file name",
        C,
        "sources",
        on_client("upload_file", MODEL, " ", CSV),
        Inv,
        ("file name or id", "non-empty"),
    ),
    Case(
        "source is a number",
        C,
        "sources",
        on_client("upload_file", MODEL, SALES_FILE, 12345),
        Inv,
        ("cannot upload", "bytes, str, a path"),
    ),
    Case(
        "source str naming a file",
        C,
        "sources",
        lambda ctx: (
            (ctx.tmp_path / "sales.csv").write_bytes(CSV)
            and on_client("upload_file", MODEL, SALES_FILE, str(ctx.tmp_path / "sales.csv"))(ctx)
        ),
        Inv,
        ("str naming an existing file", "pathlib.path"),
    ),
    Case(
        "source yields numbers",
        C,
        "sources",
        on_client("upload_file", MODEL, SALES_FILE, _ints()),
        Inv,
        ("must yield bytes",),
    ),
    Case(
        "source path missing",
        C,
        "sources",
        lambda ctx: on_client("upload_file", MODEL, SALES_FILE, ctx.tmp_path / "missing.csv")(ctx),
        Inv,
        ("missing.csv",),
    ),
    # ---- download destinations
    Case(
        "destination a number",
        C,
        "destinations",
        on_client("download_file", MODEL, SALES_FILE, 42),
        Inv,
        ("destination", "path or a binary file object"),
    ),
    Case(
        "destination directory missing",
        C,
        "destinations",
        lambda ctx: on_client("download_file", MODEL, SALES_FILE, ctx.tmp_path / "no" / "such" / "out.csv")(ctx),
        Inv,
        ("destination", "out.csv"),
    ),
    Case(
        "destination a text file", C, "destinations", lambda ctx: _into_text_file(ctx), Inv, ("destination", "binary")
    ),
    # ---- mapping parameters
    Case(
        "mapping as text",
        C,
        "mapping parameters",
        on_client("run_action", MODEL, SALES_IMPORT, mapping_parameters="Version=Actual"),
        Inv,
        ("mapping_parameters", "mapping or a list"),
    ),
    Case(
        "mapping pair incomplete",
        C,
        "mapping parameters",
        on_client("run_action", MODEL, SALES_IMPORT, mapping_parameters=[("Version",)]),
        Inv,
        ("entity type", "entity name", "{'version': 'actual'}"),
    ),
    Case(
        "mapping value not text",
        C,
        "mapping parameters",
        on_client("run_action", MODEL, SALES_IMPORT, mapping_parameters={"Version": 2025}),
        Inv,
        ("entity name",),
    ),
    Case(
        "mapping on an export",
        C,
        "mapping parameters",
        on_client("run_action", MODEL, SALES_EXPORT, mapping_parameters={"Version": "Actual"}),
        Inv,
        ("imports and processes",),
    ),
    # ---- chunk sizes, concurrency, compression
    Case(
        "chunk_size zero",
        C,
        "chunk sizes",
        on_client("upload_file", MODEL, SALES_FILE, CSV, chunk_size=0),
        Inv,
        ("chunk_size", "50 mb"),
    ),
    Case(
        "chunk_size above 50 MB",
        C,
        "chunk sizes",
        on_client("upload_file", MODEL, SALES_FILE, CSV, chunk_size=60 * 1024 * 1024),
        Inv,
        ("chunk_size", "50 mb"),
    ),
    Case(
        "chunk_size as text",
        C,
        "chunk sizes",
        on_client("upload_file", MODEL, SALES_FILE, CSV, chunk_size="1MB"),
        Inv,
        ("chunk_size", "bytes"),
    ),
    Case(
        "concurrency zero",
        C,
        "chunk sizes",
        on_client("upload_file", MODEL, SALES_FILE, CSV, concurrency=0),
        Inv,
        ("concurrency", ">= 1"),
    ),
    Case(
        "download concurrency zero",
        C,
        "chunk sizes",
        on_client("download_file", MODEL, SALES_FILE, concurrency=0),
        Inv,
        ("concurrency", ">= 1"),
    ),
    Case(
        "compress level 11",
        C,
        "chunk sizes",
        on_client("upload_file", MODEL, SALES_FILE, CSV, compress=11),
        Inv,
        ("compress", "0-9"),
    ),
    # ---- waits and timeouts
    Case(
        "poll_interval zero",
        C,
        "timeouts",
        on_client("run_action", MODEL, SALES_IMPORT, poll_interval=0),
        Inv,
        ("poll_interval", "> 0"),
    ),
    Case(
        "wait timeout negative",
        C,
        "timeouts",
        on_client("run_action", MODEL, SALES_IMPORT, timeout=-1),
        Inv,
        ("timeout", ">= 0"),
    ),
    Case(
        "locale empty",
        C,
        "timeouts",
        on_client("run_action", MODEL, EMPLOYEES_IMPORT, locale=""),
        Inv,
        ("locale", "en_us"),
    ),
    # ---- hook calls
    Case(
        "no model anywhere",
        H,
        "ids and names",
        hook_with(BASIC, then=lambda h: h.list_files()),
        Inv,
        ("model_id", "connection"),
    ),
    Case(
        "no workspace anywhere",
        H,
        "ids and names",
        hook_with(BASIC, then=lambda h: h.get_workspace()),
        Inv,
        ("workspace",),
    ),
    Case(
        "object kind unknown",
        H,
        "ids and names",
        hook_with(BASIC, then=lambda h: h.resolve_object("report", "x", model=MODEL)),
        Inv,
        ("kind must be file, import, export, process or action",),
    ),
    Case(
        "model name misspelt (hook)",
        H,
        "ids and names",
        hook_with(BASIC, then=lambda h: h.get_model("Sales Forcast", workspace=WORKSPACE)),
        NameNotFoundError,
        ("did you mean", "sales forecast"),
    ),
    Case(
        "chunk_size zero (hook)",
        H,
        "chunk sizes",
        hook_with(BASIC, then=lambda h: h.run(lambda c: c.upload_file(MODEL, SALES_FILE, CSV, chunk_size=0))),
        Inv,
        ("chunk_size", "50 mb"),
    ),
]


# --------------------------------------------------------------------------------------------------- operators
@dataclass(frozen=True)
class At:
    """A parameter value made from the case's context (a path under its scratch directory, say)."""

    make: Callable[[Ctx], Any]


def tmp(relative: str, kind: str | None = None) -> At:
    """``ctx.tmp_path / relative``; ``kind`` makes it first: ``"dir"``, ``"file"`` (a small CSV) or ``"file-dir"``
    (a directory named like a file, e.g. where a download's file would go)."""

    def make(ctx: Ctx) -> Path:
        path = ctx.tmp_path / relative
        if kind in ("dir", "file-dir"):
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(CSV)
        return path

    return At(make)


def as_str(value: At) -> At:
    return At(lambda ctx: str(value.make(ctx)))


EMPLOYEES_CSV = "Code,Name,Parent,Start Date,Salary\nE201,Barbara Liskov,North,2024-01-01,120000\n"
SALES_REPORT = "Sales Report.csv"  # the name of export 116000000000 and of its file
DEFAULTS: dict[type, dict[str, Any]] = {
    AnaplanUploadAndImportOperator: {
        "import_": "Employees from Employees.csv",
        "source": EMPLOYEES_CSV,
        "poll_interval": 0.01,
    },
    AnaplanExportAndDownloadOperator: {
        "export": SALES_REPORT,
        "destination": as_str(tmp("out/sales.csv")),
        "poll_interval": 0.01,
    },
    AnaplanRunProcessOperator: {"process": NIGHTLY_LOAD, "poll_interval": 0.01},
    AnaplanRunActionOperator: {"action": "Sort Products", "poll_interval": 0.01},
    AnaplanALMSyncOperator: {"source_model": "Sales Forecast DEV", "target_models": [MODEL], "poll_interval": 0.01},
    AnaplanTaskStatusSensor: {"action": EMPLOYEES_IMPORT, "poke_interval": 0.01, "timeout": 5},
}
Up, Ex, Proc, Act, Alm, Sensor = (
    AnaplanUploadAndImportOperator,
    AnaplanExportAndDownloadOperator,
    AnaplanRunProcessOperator,
    AnaplanRunActionOperator,
    AnaplanALMSyncOperator,
    AnaplanTaskStatusSensor,
)


def _operator(ctx: Ctx, cls: type, params: dict[str, Any] | None, native: bool, kwargs: dict[str, Any]) -> Any:
    """``cls`` in a DAG of its own, as a DAG file would declare it (values made from the context first)."""
    dag = DAG("anaplan_bad_input_cases", schedule=None, params=params or {}, render_template_as_native_obj=native)
    given = {**DEFAULTS[cls], **kwargs}

    def made(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: made(v) for k, v in value.items()}
        return value.make(ctx) if isinstance(value, At) else value

    given = {k: made(v) for k, v in given.items()}
    return cls(task_id="bad_input", dag=dag, **given)


def build(cls: type, **kwargs: Any) -> Call:
    """Only declare the operator: the error must come when the DAG file is parsed."""
    return lambda ctx: _operator(ctx, cls, None, False, kwargs)


def run_op(cls: type, *, params: dict[str, Any] | None = None, native: bool = False, **kwargs: Any) -> Call:
    """Declare the operator, render its templates as the task runner does just before ``execute`` (with the DAG's
    Jinja environment: a native one with ``native``), then execute it on the worker against the served emulator."""

    def run(ctx: Ctx) -> Any:
        ctx.serve()
        operator = _operator(ctx, cls, params, native, kwargs)
        context = make_context(params=dict(params or {}))
        operator.render_template_fields(context)
        return operator.execute(context)

    return run


DAGS = Path(__file__).parent / "dags"
#: The one ``dag.test()`` run of dags/anaplan_bad_input.py, shared by its cases: task id -> final state.
_DAG_RUN: dict[str, str] = {}


def _hand_the_error_to_callbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1 only: its task runner's ``main()`` puts the task's error in the context (``context["exception"]``)
    before ``finalize`` runs the failure callbacks, but the in-process runner of ``dag.test()`` does not (3.3's
    does). Do what ``main()`` does, so that the callback sees the error a deployed task's callback would see."""
    from airflow.sdk.execution_time import task_runner

    original = task_runner.finalize

    def finalize(ti: Any, state: Any, context: Any, log: Any, error: BaseException | None = None) -> Any:
        if context.get("exception") is None:
            context["exception"] = error
        return original(ti, state, context, log, error)

    monkeypatch.setattr(task_runner, "finalize", finalize)


def rendered_by_dag_test(task_id: str) -> Call:
    """The error of ``task_id`` in the one ``dag.test()`` run of dags/anaplan_bad_input.py (run at the first such
    case, against that case's emulator; the DB is created then too)."""

    def run(ctx: Ctx) -> None:
        if not _DAG_RUN:
            ctx.request.getfixturevalue("airflow_db")
            ctx.serve()
            bundle = {"classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {"path": str(DAGS)}}
            bundles = [{"name": "anaplan-bad-input", **bundle}]
            ctx.monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
            spec = importlib.util.spec_from_file_location("anaplan_bad_input", DAGS / "anaplan_bad_input.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _rendered.ERRORS.clear()
            _hand_the_error_to_callbacks(ctx.monkeypatch)
            try:
                dag_run = module.dag.test()
            finally:
                gc.collect()  # the run's event loops' sockets are collected here, under this case's filters
            _DAG_RUN.update({ti.task_id: ti.state for ti in dag_run.get_task_instances()})
        assert _DAG_RUN.get(task_id) == "failed", _DAG_RUN
        error = _rendered.ERRORS.get(task_id)
        assert error is not None, f"{task_id} failed without an exception: {_rendered.ERRORS}"
        raise error

    return run


OP = "operator"
MB50 = 50 * 1024 * 1024

OPERATOR_CASES: list[Case] = [
    # ---- chunk sizes and upload settings (checked when the DAG file is parsed)
    Case("upload chunk_size zero", OP, "chunk sizes", build(Up, chunk_size=0), Inv, ("chunk_size", "from 1 to")),
    Case("upload chunk_size negative", OP, "chunk sizes", build(Up, chunk_size=-1), Inv, ("chunk_size", "50 mb")),
    Case(
        "upload chunk_size above 50 MB", OP, "chunk sizes", build(Up, chunk_size=MB50 + 1), Inv, ("chunk_size", "50 mb")
    ),
    Case("upload chunk_size as text", OP, "chunk sizes", build(Up, chunk_size="1MB"), Inv, ("chunk_size", "integer")),
    Case("upload chunk_size True", OP, "chunk sizes", build(Up, chunk_size=True), Inv, ("chunk_size", "integer")),
    Case("process chunk_size float", OP, "chunk sizes", build(Proc, chunk_size=1.5e6), Inv, ("chunk_size", "integer")),
    Case("process concurrency zero", OP, "chunk sizes", build(Proc, concurrency=0), Inv, ("concurrency", ">= 1")),
    Case("upload compress 11", OP, "chunk sizes", build(Up, compress=11), Inv, ("compress", "0-9")),
    Case("upload encoding unknown", OP, "chunk sizes", build(Up, encoding="utf-9"), Inv, ("encoding", "'utf-8'")),
    # ---- timeouts and poll intervals
    Case("operator poll_interval zero", OP, "timeouts", build(Act, poll_interval=0), Inv, ("poll_interval", "> 0")),
    Case(
        "poll_interval as text",
        OP,
        "timeouts",
        build(Act, poll_interval="5"),
        Inv,
        ("poll_interval", "number of seconds", "not a string"),
    ),
    Case("operator timeout negative", OP, "timeouts", build(Ex, timeout=-1), Inv, ("timeout", "> 0")),
    Case("timeout zero timedelta", OP, "timeouts", build(Ex, timeout=timedelta(0)), Inv, ("timeout", "timedelta")),
    Case("operator timeout as text", OP, "timeouts", build(Up, timeout="60"), Inv, ("timeout", "number of seconds")),
    Case("guard_timeout as text", OP, "timeouts", build(Up, guard_timeout="10"), Inv, ("guard_timeout", "number")),
    Case("guard_timeout negative", OP, "timeouts", build(Up, guard_timeout=-1), Inv, ("guard_timeout", ">= 0")),
    Case(
        "sensor poke_interval negative", OP, "timeouts", build(Sensor, poke_interval=-1), Inv, ("poke_interval", "> 0")
    ),
    Case("sensor timeout as text", OP, "timeouts", build(Sensor, timeout="60"), Inv, ("timeout", "number of seconds")),
    Case("sensor timeout negative", OP, "timeouts", build(Sensor, timeout=-5), Inv, ("timeout", ">= 0")),
    # ---- choices and flags
    Case(
        "fail_on unknown",
        OP,
        "choices and flags",
        build(Up, fail_on="sometimes"),
        Inv,
        ("fail_on", "rejected, warnings"),
    ),
    Case("sensor fail_on unknown", OP, "choices and flags", build(Sensor, fail_on="always"), Inv, ("fail_on", "never")),
    Case(
        "source_kind unknown",
        OP,
        "choices and flags",
        build(Up, source_kind="file"),
        Inv,
        ("source_kind", "'auto', 'path', 'text'"),
    ),
    Case(
        "operator kind unknown", OP, "choices and flags", build(Act, kind="dashboard"), Inv, ("kind", "import, export")
    ),
    Case(
        "deferrable as text",
        OP,
        "choices and flags",
        build(Act, deferrable="false"),
        Inv,
        ("deferrable", "true or false"),
    ),
    Case(
        "take_offline as text",
        OP,
        "choices and flags",
        build(Alm, take_offline="no"),
        Inv,
        ("take_offline", "true or false"),
    ),
    Case(
        "count_rows as text", OP, "choices and flags", build(Ex, count_rows="yes"), Inv, ("count_rows", "true, false")
    ),
    Case("header_rows negative", OP, "choices and flags", build(Ex, header_rows=-1), Inv, ("header_rows", ">= 0")),
    Case("ALM with fail_on", OP, "choices and flags", build(Alm, fail_on="never"), Inv, ("fail_on", "remove it")),
    Case(
        "ALM revision and new_revision_name",
        OP,
        "choices and flags",
        build(Alm, revision="Forecast by channel", new_revision_name="Release 7"),
        Inv,
        ("revision", "new_revision_name", "not both"),
    ),
    # ---- ids and names (resolved at run time: unknown names list the closest ones)
    Case(
        "import misspelt",
        OP,
        "ids and names",
        run_op(Up, import_="Employes from Employees.csv"),
        NameNotFoundError,
        ("import_", "did you mean", "'employees from employees.csv'"),
    ),
    Case(
        "export id as import_",
        OP,
        "ids and names",
        run_op(Up, import_=SALES_EXPORT),
        Inv,
        ("import_", "export id", "start with 112"),
    ),
    Case(
        "export's file as file",
        OP,
        "ids and names",
        run_op(Up, file=SALES_EXPORT),
        Inv,
        ("file: ", "export's output file", "leave file unset"),
    ),
    Case(
        "import id as export",
        OP,
        "ids and names",
        run_op(Ex, export=EMPLOYEES_IMPORT),
        Inv,
        ("export", "start with 116"),
    ),
    Case(
        "action id as process",
        OP,
        "ids and names",
        run_op(Proc, process="117000000001"),
        Inv,
        ("process", "start with 118"),
    ),
    Case(
        "model misspelt",
        OP,
        "ids and names",
        run_op(Act, model_id="Sales Forcast"),
        NameNotFoundError,
        ("model_id", "did you mean", "'sales forecast'"),
    ),
    Case(
        "workspace misspelt",
        OP,
        "ids and names",
        run_op(Act, workspace_id="FP&A Prodution"),
        NameNotFoundError,
        ("workspace_id", "did you mean", "'fp&a production'"),
    ),
    Case(
        "connection missing",
        OP,
        "connection fields",
        run_op(Act, anaplan_conn_id="anaplan_prod"),
        Conf,
        ("anaplan_conn_id", "'anaplan_prod'", "create it"),
    ),
    Case(
        "sensor action misspelt",
        OP,
        "ids and names",
        run_op(Sensor, action="Sort Prodcts"),
        NameNotFoundError,
        ("action", "did you mean", "'sort products'"),
    ),
    Case(
        "sensor task id malformed",
        OP,
        "ids and names",
        run_op(Sensor, anaplan_task_id="abc"),
        Inv,
        ("anaplan_task_id", "32 hex", "xcom_pull"),
    ),
    Case(
        "ALM revision misspelt",
        OP,
        "ids and names",
        run_op(Alm, revision="Forecast by chanel"),
        NameNotFoundError,
        ("revision", "did you mean", "'forecast by channel'"),
    ),
    Case(
        "ALM target misspelt",
        OP,
        "ids and names",
        run_op(Alm, target_models=["Sales Forcast"]),
        NameNotFoundError,
        ("target_models", "did you mean", "'sales forecast'"),
    ),
    Case(
        "ALM source as a target",
        OP,
        "ids and names",
        run_op(Alm, target_models=["Sales Forecast DEV"]),
        Inv,
        ("target_models", "own sync", "remove it"),
    ),
    Case(
        "ALM new revision name too long",
        OP,
        "ids and names",
        run_op(Alm, new_revision_name="Release " + "x" * 60),
        Inv,
        ("new_revision_name", "at most 60 characters"),
    ),
    # ---- upload sources
    Case(
        "operator source path missing",
        OP,
        "sources",
        run_op(Up, source=as_str(tmp("missing.csv"))),
        Inv,
        ("source", "missing.csv", "does not exist"),
    ),
    Case("source a directory", OP, "sources", run_op(Up, source=tmp("data", "dir")), Inv, ("source", "not a file")),
    Case(
        "source unreadable",
        OP,
        "sources",
        run_op(Up, source="/proc/self/mem"),  # a file every process may open and none may read from its start
        Inv,
        ("source", "could not be read", "readable"),
    ),
    Case(
        "source ObjectStoragePath missing",
        OP,
        "sources",
        run_op(Up, source=At(lambda ctx: ObjectStoragePath(f"file://{ctx.tmp_path}/nope.csv"))),
        Inv,
        ("source", "nope.csv", "does not exist"),
    ),
    Case("source a number", OP, "sources", run_op(Up, source=42), Inv, ("source", "a path", "text or bytes")),
    Case(
        "process uploads source missing",
        OP,
        "sources",
        run_op(Proc, uploads={"Employees.csv": as_str(tmp("gone/employees.csv"))}),
        Inv,
        ("uploads['employees.csv']", "does not exist"),
    ),
    Case(
        "process uploads not a dict",
        OP,
        "sources",
        build(Proc, uploads=["Employees.csv"]),
        Inv,
        ("uploads", "dict keyed by ids or names"),
    ),
    # ---- destinations
    Case(
        "operator destination a number",
        OP,
        "destinations",
        build(Ex, destination=42),
        Inv,
        ("destination", "a local path"),
    ),
    Case(
        "destination under a file",
        OP,
        "destinations",
        run_op(Ex, destination=At(lambda ctx: str(tmp("plain.txt", "file").make(ctx) / "out.csv"))),
        Inv,
        ("destination", "not a directory"),
    ),
    Case(
        "destination not writable",
        OP,
        "destinations",
        run_op(Ex, destination="/proc/anaplan/out.csv"),  # /proc takes no new directory, whoever asks
        Inv,
        ("destination", "writable directory"),
    ),
    Case(
        "destination an existing directory",
        OP,
        "destinations",
        run_op(Ex, destination=At(lambda ctx: str(tmp(f"exports/{SALES_REPORT}", "file-dir").make(ctx).parent))),
        Inv,
        ("destination", "existing directory", "give a file name"),
    ),
    Case(
        "process downloads under a file",
        OP,
        "destinations",
        run_op(Proc, downloads={SALES_REPORT: At(lambda ctx: str(tmp("f.txt", "file").make(ctx) / "x/"))}),
        Inv,
        ("downloads['sales report.csv']", "not a directory"),
    ),
    Case(
        "solution_log_to under a file",
        OP,
        "destinations",
        run_op(Act, solution_log_to=At(lambda ctx: str(tmp("log.txt", "file").make(ctx) / "log.txt"))),
        Inv,
        ("solution_log_to", "not a directory"),
    ),
    Case("dump_to a number", OP, "destinations", build(Up, dump_to=42), Inv, ("dump_to", "objectstoragepath")),
    Case(
        "dump_to under a file",
        OP,
        "destinations",
        run_op(Up, dump_to=At(lambda ctx: str(tmp("dumps.txt", "file").make(ctx) / "{task_id}.csv"))),
        Inv,
        ("dump_to", "not a directory", "give a path in a directory"),
    ),
    Case(
        "ALM report_to under a file",
        OP,
        "destinations",
        run_op(Alm, report_to=At(lambda ctx: str(tmp("r.txt", "file").make(ctx) / "reports"))),
        Inv,
        ("report_to", "not a directory"),
    ),
    # ---- mapping parameters
    Case(
        "mapping value a number",
        OP,
        "mapping parameters",
        run_op(Up, mapping_parameters={"Version": 2025}),
        Inv,
        ("mapping_parameters", "entity name", "{'version': 'actual'}"),
    ),
    Case(
        "process mapping pair incomplete",
        OP,
        "mapping parameters",
        run_op(Proc, mapping_parameters=[("Version",)]),
        Inv,
        ("mapping_parameters", "entity type"),
    ),
    Case(
        "mapping on a sort action",
        OP,
        "mapping parameters",
        run_op(Act, mapping_parameters={"Version": "Actual"}),
        Inv,
        ("mapping_parameters", "imports and processes", "remove"),
    ),
    # ---- templated values, rendered with the DAG's own Jinja environment
    Case(
        "native template renders a dict as the action",
        OP,
        "templated values",
        run_op(Act, native=True, params={"cfg": {"name": "Sort Products"}}, action="{{ params.cfg }}"),
        Inv,
        ("action", "dict", "params.cfg.name"),
    ),
    Case(
        "native template renders a dict as the source",
        OP,
        "templated values",
        run_op(Up, native=True, params={"src": {"path": "/data/employees.csv"}}, source="{{ params.src }}"),
        Inv,
        ("source", "dict", "text or bytes"),
    ),
    Case(
        "native template renders a dict as target_models",
        OP,
        "templated values",
        run_op(Alm, native=True, params={"t": {"model": MODEL}}, target_models="{{ params.t }}"),
        Inv,
        ("target_models", "list"),
    ),
    Case(
        "template renders a blank workspace",
        OP,
        "templated values",
        run_op(Ex, params={"ws": " "}, workspace_id="{{ params.ws }}"),
        Inv,
        ("workspace_id", "empty string"),
    ),
    Case(
        "template renders an empty destination",
        OP,
        "templated values",
        run_op(Ex, params={"out": ""}, destination="{{ params.out }}"),
        Inv,
        ("destination", "empty string"),
    ),
    Case(
        "template renders an empty connection id",
        OP,
        "templated values",
        run_op(Act, params={"conn": ""}, anaplan_conn_id="{{ params.conn }}"),
        Inv,
        ("anaplan_conn_id", "empty string"),
    ),
    Case(
        "template renders a mapping dict as text",
        OP,
        "templated values",
        run_op(Up, params={"mapping": {"Version": "Actual"}}, mapping_parameters="{{ params.mapping }}"),
        Inv,
        ("mapping_parameters", "text", "render_template_as_native_obj"),
    ),
    # ---- templated values rendered by a real task runner (dag.test() of dags/anaplan_bad_input.py)
    Case(
        "dag.test: model_id renders empty",
        OP,
        "templated values",
        rendered_by_dag_test("empty_model"),
        Inv,
        ("model_id", "empty string", "none for the default"),
    ),
    Case(
        "dag.test: anaplan_conn_id renders empty",
        OP,
        "templated values",
        rendered_by_dag_test("empty_conn"),
        Inv,
        ("anaplan_conn_id", "empty string"),
    ),
    Case(
        "dag.test: mapping dict renders as text",
        OP,
        "templated values",
        rendered_by_dag_test("mapping_as_text"),
        Inv,
        ("mapping_parameters", "text", "render_template_as_native_obj"),
    ),
    Case(
        "dag.test: export name misspelt",
        OP,
        "templated values",
        rendered_by_dag_test("misspelt_export"),
        NameNotFoundError,
        ("export", "did you mean", "'sales report.csv'"),
    ),
    Case(
        "dag.test: xcom_pull renders None as the task id",
        OP,
        "templated values",
        rendered_by_dag_test("watch"),
        Inv,
        ("anaplan_task_id", "'none'", "xcom_pull"),
    ),
]
CASES += OPERATOR_CASES


# --------------------------------------------------------------------------------------------------- the runner
@pytest.fixture
def ctx(
    certificate_kit: CertificateKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Ctx:
    app = create_app()
    engine_for(app.state).options.task_duration = 0.0
    return Ctx(app, certificate_kit, tmp_path, monkeypatch, request)


def raised_by(call: Call, ctx: Ctx) -> BaseException | None:
    try:
        result = call(ctx)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:
        return exc
    return None


DAG_TEST_MARKS = (
    # dag.test() runs each task under a throw-away event loop; its HTTP clients are collected after the run.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    # Airflow 3.1.8 only: its in-process execution API uses a status name that newer starlette deprecates.
    pytest.mark.filterwarnings("ignore:'HTTP_422_UNPROCESSABLE_ENTITY' is deprecated"),
)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=f"{c.layer}-{c.id}", marks=DAG_TEST_MARKS if c.id.startswith("dag.test") else ())
        for c in CASES
    ],
)
def test_bad_input_is_answered_with_our_error_naming_the_field_and_the_fix(case: Case, ctx: Ctx) -> None:
    error = raised_by(case.call, ctx)
    assert error is not None, "no error was raised"
    assert not isinstance(error, RAW) or isinstance(error, AnaplanError), f"raw {type(error).__module__}: {error!r}"
    assert isinstance(error, case.error), f"expected {case.error.__name__}, got {type(error).__name__}: {error}"
    assert type(error).__module__.startswith("airflow_provider_anaplan."), type(error)
    if case.layer != "client":
        assert isinstance(error, AirflowException) and isinstance(error, exceptions.AnaplanError), type(error).__mro__
    message = str(error).lower()
    missing = [word for word in case.words if word.lower() not in message]
    assert not missing, f"the message lacks {missing}: {error}"


def test_the_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    categories = Counter(c.category for c in CASES)
    assert set(categories) >= {
        "connection fields",
        "PEM contents",
        "ids and names",
        "sources",
        "destinations",
        "mapping parameters",
        "chunk sizes",
        "timeouts",
        "URLs",
        "credentials",
    }
    assert {c.layer for c in CASES} == {"client", "hook", "operator"}
    operators = [c for c in CASES if c.layer == "operator"]
    assert len(operators) >= 30
    assert {c.category for c in operators} >= {
        "ids and names",
        "sources",
        "destinations",
        "mapping parameters",
        "chunk sizes",
        "timeouts",
        "templated values",
        "choices and flags",
        "connection fields",
    }
