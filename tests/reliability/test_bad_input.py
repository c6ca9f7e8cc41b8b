"""Bad input answered: a corpus of wrong connection fields, PEMs, ids, names, sources, destinations, mapping parameters,
chunk sizes, timeouts and URLs, each answered with our own error class and a message that names the field and the fix.

The corpus is data (:data:`CASES`): one :class:`Case` per input, with the layer it enters (``client``, ``hook``; the
operators add ``operator`` cases later), a category for the summary in docs/reliability.md, the call, the expected
error class and the key words its message must contain. The one test runs every case and checks that:

* the error is an instance of the expected :class:`AnaplanError` subclass, defined in this package (never a raw httpx,
  pydantic, cryptography or OS exception, whatever its ``__cause__``);
* at the hook layer it is also an ``AirflowException`` (so ``soft_fail`` and retries behave as Airflow users expect);
* its message contains every key word (the field at fault and what to do), compared case-insensitively.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
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

from .conftest import (
    EMPLOYEES_IMPORT,
    MODEL,
    NIGHTLY_LOAD,
    SALES_EXPORT,
    SALES_FILE,
    SALES_IMPORT,
    WORKSPACE,
    CertificateKit,
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


Call = Callable[[Ctx], Any]


@dataclass(frozen=True)
class Case:
    id: str
    layer: str  # client | hook | operator (later)
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


# --------------------------------------------------------------------------------------------------- the runner
@pytest.fixture
def ctx(certificate_kit: CertificateKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    app = create_app()
    engine_for(app.state).options.task_duration = 0.0
    return Ctx(app, certificate_kit, tmp_path, monkeypatch)


def raised_by(call: Call, ctx: Ctx) -> BaseException | None:
    try:
        result = call(ctx)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=f"{c.layer}-{c.id}") for c in CASES],
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
    assert {c.layer for c in CASES} == {"client", "hook"}
