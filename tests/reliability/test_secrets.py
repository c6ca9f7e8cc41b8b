"""Secrets kept: every auth type through the client and the hook at DEBUG level, and no credential anywhere.

Each run uses fresh random credentials (a password, a key password, OAuth client secrets and refresh tokens) and the
tokens the emulator issues, and does real work (metadata, an upload, an import, a forced re-authentication) and
fails in the ways users meet (wrong password, refused token, spent refresh token, a 5xx or lost answer from the auth
service). Everything it produced is then searched for every secret, raw and in its base64 forms (standard and
URL-safe, padded and not, and ``base64(email:password)`` as in a Basic header):

* every log record (root logger and the package's, httpx's and httpcore's at DEBUG) and the formatted log text;
* everything written to the process's stdout and stderr (file-descriptor capture, the emulator's uvicorn included);
* every exception raised: ``str``, ``repr``, the formatted traceback with its chain, its attributes, its pickle;
* the ``repr``/``str`` of the client, transport, settings, auth objects, cached tokens, hook and what it resolved;
* the hook's ``test_connection()`` message.

Operator runs (task logs, XCom, rendered templates, serialized trigger kwargs) add their own pieces to a
:class:`Haystack` in a later round. TLS verification and key material on disk are checked at the end.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import pickle
import secrets
import ssl
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_anaplan import exceptions
from airflow_provider_anaplan.client import (
    AnaplanClient,
    AnaplanError,
    AuthenticationError,
    BasicAuth,
    CertificateAuth,
    ClientSettings,
    ConfigurationError,
    OAuthRefreshTokenAuth,
    StaticTokenAuth,
    TransportError,
    token_cache,
)
from airflow_provider_anaplan.emulator import EmulatorApp, create_app
from airflow_provider_anaplan.emulator.engine import engine_for
from airflow_provider_anaplan.emulator.state import OAuthClient, RefreshToken
from airflow_provider_anaplan.hooks.anaplan import AnaplanHook
from tests.emulator.conftest import FakeClock

from .conftest import (
    CERT_EMAIL,
    MODEL,
    SALES_FILE,
    SALES_IMPORT,
    SCANS,
    WORKSPACE,
    CertificateKit,
    Server,
    ServerFactory,
    TickingSleep,
    one_line,
)

AUTH_TYPES = ("basic", "certificate", "token", "oauth-rotating", "oauth-secret")
USER_EMAIL = "reliability.secret.user@anaplan.example"
SMALL_CSV = b"Region,Product,Month,Units,Revenue\nNorth,Laptop,Mar 26,1,1200\nSouth,Monitor,Mar 26,ten,1\n"


# --------------------------------------------------------------------------------------------------- secrets
@dataclass
class Secrets:
    """The credentials of one run, fresh and random, registered with the emulator."""

    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(16))
    wrong_password: str = field(default_factory=lambda: "wrong-" + secrets.token_hex(16))
    rotating_client: str = field(default_factory=lambda: secrets.token_hex(16))
    rotating_refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_hex(24))
    secret_client: str = field(default_factory=lambda: secrets.token_hex(16))
    client_secret: str = field(default_factory=lambda: "cs-" + secrets.token_hex(24))
    secret_refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_hex(24))
    bogus_refresh_token: str = field(default_factory=lambda: "rt-" + secrets.token_hex(24))
    rotated: list[str] = field(default_factory=list)  # refresh tokens persisted through the hook's callback

    def register(self, app: EmulatorApp, kit: CertificateKit) -> None:
        state = app.state
        user = state.add_user(USER_EMAIL, self.password)
        state.add_trusted_certificate(kit.cert_pem)
        state.add_user(CERT_EMAIL, None)
        state.oauth_clients[self.rotating_client] = OAuthClient(self.rotating_client, None, rotatable=True)
        state.oauth_clients[self.secret_client] = OAuthClient(self.secret_client, self.client_secret, rotatable=False)
        state.refresh_tokens[self.rotating_refresh_token] = RefreshToken(
            self.rotating_refresh_token, self.rotating_client, user.id, state.clock() + 3600
        )
        state.refresh_tokens[self.secret_refresh_token] = RefreshToken(
            self.secret_refresh_token, self.secret_client, user.id, None
        )

    def needles(self, app: EmulatorApp, kit: CertificateKit) -> dict[str, str]:
        """Every secret of the run, by a label that names it without showing it, in every form searched."""
        raw = {
            "password": self.password,
            "wrong password": self.wrong_password,
            "key password": kit.key_password,
            "client secret": self.client_secret,
            "refresh token (rotating, seed)": self.rotating_refresh_token,
            "refresh token (secret client)": self.secret_refresh_token,
            "refresh token (bogus)": self.bogus_refresh_token,
        }
        for number, value in enumerate(app.state.refresh_tokens):
            raw.setdefault(f"refresh token #{number} issued", value)
        for number, value in enumerate(app.state.tokens):
            raw[f"token #{number} issued"] = value
        for number, line in enumerate(kit.key_body_lines()):
            raw[f"private key PEM line #{number}"] = line
        out: dict[str, str] = {}
        for label, value in raw.items():
            out[label] = value
            if label.startswith("private key"):
                continue  # already base64
            for form, encoded in b64_forms(value).items():
                out[f"{label} ({form})"] = encoded
        for email, password in ((USER_EMAIL, self.password), (USER_EMAIL, self.wrong_password)):
            for form, encoded in b64_forms(f"{email}:{password}").items():
                out[f"Basic credentials of {password[:5]}… ({form})"] = encoded
        return out


def b64_forms(value: str) -> dict[str, str]:
    raw = value.encode()
    standard, urlsafe = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {"base64": standard, "base64 unpadded": standard.rstrip("="), "urlsafe base64": urlsafe.rstrip("=")}


class Haystack:
    """Everything a run produced that a person or a log shipper could see, by where it came from."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []

    def add(self, where: str, text: Any) -> None:
        self.pieces.append((where, text if isinstance(text, str) else str(text)))

    def add_error(self, where: str, error: BaseException) -> None:
        self.add(f"{where}: str", str(error))
        self.add(f"{where}: repr", repr(error))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(error)))
        self.add(f"{where}: attributes", repr(vars(error)))
        self.add(f"{where}: args", repr(error.args))
        try:
            self.add(f"{where}: pickle", pickle.dumps(error).decode("latin-1"))
        except Exception as exc:  # an unpicklable error is a finding of its own, but not a leak
            self.add(f"{where}: pickle failed", repr(exc))

    def add_objects(self, where: str, *objects: Any) -> None:
        for obj in objects:
            self.add(f"{where}: repr({type(obj).__name__})", repr(obj))
            self.add(f"{where}: str({type(obj).__name__})", str(obj))

    def add_logs(self, caplog: pytest.LogCaptureFixture) -> int:
        for record in caplog.records:
            self.add(f"log {record.name}", record.getMessage())
            if record.exc_info:
                self.add(f"log {record.name} exc_info", "".join(traceback.format_exception(*record.exc_info)))
        self.add("log text", caplog.text)
        return len(caplog.records)

    def hits(self, needles: dict[str, str]) -> list[str]:
        return [
            f"{label} in {where}" for label, needle in needles.items() for where, text in self.pieces if needle in text
        ]

    @property
    def size(self) -> int:
        return sum(len(text) for _, text in self.pieces)


def scan(haystack: Haystack, needles: dict[str, str], what: str) -> None:
    hits = haystack.hits(needles)
    SCANS.append(
        f"{what}: {len(needles)} needles x {len(haystack.pieces)} pieces ({haystack.size:,} chars): {len(hits)}"
    )
    assert hits == [], "secrets leaked:\n" + "\n".join(hits[:50])


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("airflow_provider_anaplan", "httpx", "httpcore", "uvicorn", "airflow"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


@pytest.fixture
def app(clock: FakeClock) -> EmulatorApp:
    emulator = create_app(clock=clock)
    engine_for(emulator.state).options.task_duration = 0.0  # the hook polls on the real clock: finish at once
    return emulator


@pytest.fixture
def creds(app: EmulatorApp, certificate_kit: CertificateKit) -> Secrets:
    found = Secrets()
    found.register(app, certificate_kit)
    return found


@pytest.fixture
def server(app: EmulatorApp, plug: Callable[[EmulatorApp], Server]) -> Server:
    return plug(app)


async def _token(url: str, email: str, password: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/token/authenticate", auth=(email, password))
        return answer.json()["tokenInfo"]["tokenValue"]


# --------------------------------------------------------------------------------------------------- the client
def client_auth(auth_type: str, creds: Secrets, kit: CertificateKit, token: str) -> Any:
    if auth_type == "basic":
        return BasicAuth(USER_EMAIL, creds.password)
    if auth_type == "certificate":
        return CertificateAuth(kit.cert_pem, kit.encrypted_key_pem, kit.key_password)
    if auth_type == "token":
        return StaticTokenAuth(token)
    if auth_type == "oauth-rotating":
        return OAuthRefreshTokenAuth(
            creds.rotating_client, creds.rotating_refresh_token, on_refresh_token=creds.rotated.append
        )
    return OAuthRefreshTokenAuth(creds.secret_client, creds.secret_refresh_token, creds.client_secret)


def wrong_auth(auth_type: str, creds: Secrets, kit: CertificateKit) -> Any:
    """The same kind of credential, refused by Anaplan."""
    if auth_type == "basic":
        return BasicAuth(USER_EMAIL, creds.wrong_password)
    if auth_type == "certificate":
        return CertificateAuth(kit.cert_pem, kit.key_pem)  # refused once the emulator stops trusting the certificate
    if auth_type == "token":
        return StaticTokenAuth("tok-" + secrets.token_hex(20))
    if auth_type == "oauth-rotating":
        return OAuthRefreshTokenAuth(creds.rotating_client, creds.bogus_refresh_token)
    return OAuthRefreshTokenAuth(creds.secret_client, creds.secret_refresh_token, "cs-" + secrets.token_hex(8))


@pytest.mark.asyncio
@pytest.mark.parametrize("auth_type", AUTH_TYPES)
async def test_the_client_leaks_no_secret_at_debug_level(
    auth_type: str,
    app: EmulatorApp,
    creds: Secrets,
    certificate_kit: CertificateKit,
    server: Server,
    clock: FakeClock,
    ticking: TickingSleep,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    haystack = Haystack()
    settings = ClientSettings(
        base_url=server.url, clock=clock, sleep=ticking, timeout=10.0, backoff_base=0.01, max_attempts=3
    )
    token = await _token(server.url, USER_EMAIL, creds.password)
    auth = client_auth(auth_type, creds, certificate_kit, token)
    async with AnaplanClient(auth, settings=settings) as client:
        assert (await client.get_current_user()).email == (CERT_EMAIL if auth_type == "certificate" else USER_EMAIL)
        await client.list_workspaces()
        await client.upload_file(MODEL, SALES_FILE, SMALL_CSV)
        outcome = await client.run_action(MODEL, SALES_IMPORT, poll_interval=1)
        assert outcome.failure_dump_available
        cached = token_cache.peek(client.auth, client.settings)
        assert cached is not None
        haystack.add_objects("client", client, client.transport, client.settings, auth, cached)
        if auth_type != "token":  # the token dies behind the client's back: it re-authenticates and says so
            app.state.revoke_token(app.state.tokens[cached.value])
            await client.list_models(WORKSPACE)
        else:
            app.state.revoke_token(app.state.tokens[token])
            with pytest.raises(AuthenticationError) as refused:
                await client.list_models(WORKSPACE)
            haystack.add_error("revoked static token", refused.value)

    # Failures a user meets: refused credentials, and the auth service failing or losing its answer.
    wrong = wrong_auth(auth_type, creds, certificate_kit)
    trusted = list(app.state.trusted_certificates_pem)
    app.state.trusted_certificates_pem.clear()
    token_cache.clear()
    async with AnaplanClient(wrong, settings=settings) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_workspaces()
        haystack.add_error("refused credentials", caught.value)
        haystack.add_objects("refused client", client, wrong)
    app.state.trusted_certificates_pem.extend(trusted)
    if auth_type != "token":
        token_cache.clear()
        path = r"^/oauth/token$" if auth_type.startswith("oauth") else r"^/token/authenticate$"
        app.faults.add_rule("server_error", path=path, count=5, status=503)
        fresh = client_auth(auth_type, creds, certificate_kit, token)
        async with AnaplanClient(fresh, settings=settings) as client:
            with pytest.raises(AnaplanError) as failed:
                await client.list_workspaces()
            haystack.add_error("auth service 503", failed.value)
        app.faults.clear_rules()
        app.faults.add_rule("drop", path=path, count=5)
        token_cache.clear()
        fresh = client_auth(auth_type, creds, certificate_kit, token)
        async with AnaplanClient(fresh, settings=settings) as client:
            with pytest.raises(TransportError) as lost:
                await client.list_workspaces()
            haystack.add_error("auth service answer lost", lost.value)

    assert haystack.add_logs(debug_logs) > 10
    assert any(r.levelno == logging.DEBUG and r.name.startswith("httpcore") for r in debug_logs.records)
    out, err = capfd.readouterr()
    haystack.add("stdout", out)
    haystack.add("stderr", err)
    scan(haystack, creds.needles(app, certificate_kit), f"client, {auth_type}")


@pytest.mark.asyncio
async def test_certificate_errors_name_the_problem_without_key_material(
    certificate_kit: CertificateKit, debug_logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    kit, haystack = certificate_kit, Haystack()
    wrong_password = "kp-" + secrets.token_hex(16)
    for label, build in {
        "wrong key password": lambda: CertificateAuth(kit.cert_pem, kit.encrypted_key_pem, wrong_password),
        "no key password": lambda: CertificateAuth(kit.cert_pem, kit.encrypted_key_pem),
        "key of another certificate": lambda: CertificateAuth(kit.cert_pem, kit.other_rsa_key_pem),
        "truncated key": lambda: CertificateAuth(
            kit.cert_pem, kit.key_pem[: len(kit.key_pem) // 2] + kit.key_pem[-30:]
        ),
        "key in place of the certificate": lambda: CertificateAuth(kit.key_pem, kit.key_pem),
        "legacy key, wrong password": lambda: CertificateAuth(kit.cert_pem, kit.legacy_encrypted_key_pem, "nope"),
    }.items():
        with pytest.raises(ConfigurationError) as caught:
            build()
        haystack.add_error(label, caught.value)
    haystack.add_logs(debug_logs)
    out, err = capfd.readouterr()
    haystack.add("stdout", out + err)
    needles = {f"key line #{n}": line for n, line in enumerate(kit.key_body_lines())}
    needles |= {"key password": kit.key_password, "wrong key password": wrong_password}
    scan(haystack, needles, "certificate errors")


# --------------------------------------------------------------------------------------------------- the hook
def hook_connection(
    auth_type: str, creds: Secrets, kit: CertificateKit, token: str, url: str, tmp_path: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(connection fields, hook keyword arguments) for one auth type."""
    common = {"base_url": url, "workspace_id": WORKSPACE, "model_id": MODEL, "timeout": 10}
    if auth_type == "basic":
        return {"login": USER_EMAIL, "password": creds.password, **common}, {}
    if auth_type == "certificate":  # one-line PEMs, as pasted into the form's password fields
        extra = {"certificate": one_line(kit.cert_pem), "private_key": one_line(kit.legacy_encrypted_key_pem)}
        return {**extra, "private_key_password": kit.key_password, **common}, {}
    if auth_type == "certificate-paths":
        (tmp_path / "cert.pem").write_text(kit.cert_pem)
        (tmp_path / "key.pem").write_text(kit.encrypted_key_pem)
        extra = {"certificate": str(tmp_path / "cert.pem"), "private_key": str(tmp_path / "key.pem")}
        return {**extra, "private_key_password": kit.key_password, **common}, {}
    if auth_type == "token":
        return {"auth_type": "token", "token": token, **common}, {}
    if auth_type == "oauth-rotating":
        extra = {"oauth_client_id": creds.rotating_client, "oauth_refresh_token": creds.rotating_refresh_token}
        store = {"on_refresh_token": creds.rotated.append, "load_refresh_token": lambda: (creds.rotated or [None])[-1]}
        return {**extra, **common}, store
    extra = {
        "oauth_client_id": creds.secret_client,
        "oauth_client_secret": creds.client_secret,
        "oauth_refresh_token": creds.secret_refresh_token,
    }
    return {**extra, **common}, {"on_refresh_token": creds.rotated.append, "load_refresh_token": lambda: None}


@pytest.mark.parametrize("auth_type", [*AUTH_TYPES[:2], "certificate-paths", *AUTH_TYPES[2:]])
def test_the_hook_leaks_no_secret_at_debug_level(
    auth_type: str,
    app: EmulatorApp,
    creds: Secrets,
    certificate_kit: CertificateKit,
    server: Server,
    set_connection: Callable[..., str],
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    haystack = Haystack()
    token = asyncio.run(_token(server.url, USER_EMAIL, creds.password))
    fields, kwargs = hook_connection(auth_type, creds, certificate_kit, token, server.url, tmp_path)
    conn_id = set_connection(f"anaplan_secret_{auth_type.replace('-', '_')}", **fields)
    hook = AnaplanHook(conn_id, max_attempts=2, backoff_base=0.01, **kwargs)
    assert hook.test_connection()[0] is True
    hook.list_workspaces()
    hook.run(lambda c: c.upload_and_import(MODEL, SALES_IMPORT, SMALL_CSV, poll_interval=0.05))
    client = hook.get_conn()
    cached = token_cache.peek(client.auth, client.settings)
    assert cached is not None
    haystack.add_objects("hook", hook, client, client.auth, client.settings, cached, hook._resolved)
    app.state.revoke_token(app.state.tokens[cached.value])
    if auth_type == "token":
        with pytest.raises(exceptions.AuthenticationError) as refused:
            hook.list_imports()
        haystack.add_error("revoked static token", refused.value)
        ok, message = hook.test_connection()
        assert ok is False
        haystack.add("test_connection after refusal", message)
    else:
        assert hook.list_imports()  # re-authenticates on its own

    # A connection with the wrong secret of the same kind: refused, as an AirflowException.
    wrong = dict(fields)
    if auth_type == "basic":
        wrong["password"] = creds.wrong_password
    elif auth_type.startswith("certificate"):
        wrong["private_key_password"] = creds.wrong_password
    elif auth_type == "token":
        wrong["token"] = "tok-" + secrets.token_hex(20)
    else:
        wrong["oauth_refresh_token"] = creds.bogus_refresh_token
    wrong_id = set_connection(f"{conn_id}_wrong", **wrong)
    try:
        wrong_hook = AnaplanHook(
            wrong_id, max_attempts=2, on_refresh_token=lambda _: None, load_refresh_token=lambda: None
        )
        with pytest.raises(AirflowException) as caught:
            wrong_hook.list_workspaces()
        ok, message = wrong_hook.test_connection()
        haystack.add("test_connection of the wrong connection", message)
        haystack.add_objects("wrong hook", wrong_hook)
    except AirflowException as exc:  # refused when the hook is built (a key password that cannot decrypt the key)
        caught = pytest.ExceptionInfo.from_exc_info((type(exc), exc, exc.__traceback__))
    assert isinstance(caught.value, exceptions.AnaplanError)
    haystack.add_error("refused connection", caught.value)

    assert haystack.add_logs(debug_logs) > 5
    out, err = capfd.readouterr()
    haystack.add("stdout", out)
    haystack.add("stderr", err)
    scan(haystack, creds.needles(app, certificate_kit), f"hook, {auth_type}")


# --------------------------------------------------------------------------------------------------- TLS
def test_tls_verification_is_on_unless_the_connection_turns_it_off(
    set_connection: Callable[..., str], tmp_path: Path
) -> None:
    assert ClientSettings().verify is True
    assert ClientSettings().httpx_options()["verify"] is True
    assert ClientSettings(base_url="https://emulator.example").httpx_options()["verify"] is True
    bundle, _ = _self_signed(tmp_path)
    base = {"login": USER_EMAIL, "password": "pw", "base_url": "https://anaplan.example"}
    for value, expected in [(None, True), ("true", True), ("yes", True), ("false", False), ("0", False)]:
        extra = {} if value is None else {"verify": value}
        hook = AnaplanHook(set_connection(f"anaplan_verify_{value}", **base, **extra))
        assert hook.get_conn().settings.verify is expected, value
    hook = AnaplanHook(set_connection("anaplan_verify_bundle", **base, verify=str(bundle)))
    context = hook.get_conn().settings.httpx_options()["verify"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for 127.0.0.1 and its key, as files (the emulator's TLS, not a credential)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = tmp_path / "server-cert.pem", tmp_path / "server-key.pem"
    if cert_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_an_untrusted_server_certificate_is_refused_by_default(
    serve: ServerFactory, creds: Secrets, app: EmulatorApp, set_connection: Callable[..., str], tmp_path: Path
) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server = serve(app, ssl_certfile=str(cert_path), ssl_keyfile=str(key_path))
    assert server.url.startswith("https://")
    fields = {"login": USER_EMAIL, "password": creds.password, "base_url": server.url, "timeout": 5}

    default = AnaplanHook(set_connection("anaplan_tls_default", **fields), max_attempts=3)
    with pytest.raises(exceptions.TransportError, match="could not be verified") as caught:
        default.list_workspaces()
    assert "not retried" in str(caught.value) and isinstance(caught.value, AirflowException)
    assert app.state.counters.get("requests", 0) == 0  # nothing, not even the password, reached the server

    pinned = AnaplanHook(set_connection("anaplan_tls_bundle", **fields, verify=str(cert_path)))
    assert pinned.list_workspaces()
    insecure = AnaplanHook(set_connection("anaplan_tls_off", **fields, verify="false"))
    assert insecure.list_workspaces()

    async def direct() -> None:
        async with AnaplanClient(BasicAuth(USER_EMAIL, creds.password), base_url=server.url, max_attempts=2) as c:
            with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                await c.list_workspaces()
        async with AnaplanClient(
            BasicAuth(USER_EMAIL, creds.password), base_url=server.url, verify=str(cert_path)
        ) as c:
            assert await c.list_workspaces()

    asyncio.run(direct())


# ----------------------------------------------------------------------------------------------- key material on disk
_WRITES: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _WRITES is None or event != "open" or not args:
        return
    path, mode, flags = [*args, None, None][:3]
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)
    )
    if writing and isinstance(path, str | bytes | os.PathLike):
        text = os.fsdecode(path)
        if "__pycache__" not in text and not text.endswith(".pyc"):
            _WRITES.append(text)


_AUDIT_INSTALLED = False


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def test_no_key_material_is_written_to_disk(
    app: EmulatorApp,
    creds: Secrets,
    certificate_kit: CertificateKit,
    server: Server,
    set_connection: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    kit = certificate_kit
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "cert.pem").write_text(kit.cert_pem)
    (tmp_path / "keys" / "key.pem").write_text(kit.legacy_encrypted_key_pem)
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    home = Path(os.environ["AIRFLOW_HOME"])
    before = {**_files(home), **_files(tmp_path)}
    inline = set_connection(
        "anaplan_disk_inline",
        certificate=one_line(kit.cert_pem),
        private_key=kit.encrypted_key_pem.replace("\n", "\\n"),  # literal \\n, as some secret stores keep it
        private_key_password=kit.key_password,
        base_url=server.url,
    )
    paths = set_connection(
        "anaplan_disk_paths",
        certificate=str(tmp_path / "keys" / "cert.pem"),
        private_key=str(tmp_path / "keys" / "key.pem"),
        private_key_password=kit.key_password,
        base_url=server.url,
    )
    with _recording() as writes:
        for conn_id in (inline, paths):
            hook = AnaplanHook(conn_id)
            assert hook.get_current_user().email == CERT_EMAIL

        async def direct() -> None:
            auth = CertificateAuth(kit.cert_pem.encode(), kit.encrypted_key_pem.encode(), kit.key_password)
            async with AnaplanClient(auth, base_url=server.url) as client:
                await client.get_current_user()

        asyncio.run(direct())
    assert writes == [], f"files opened for writing: {writes}"
    after = {**_files(home), **_files(tmp_path)}
    changed = [p for p, mtime in after.items() if before.get(p) != mtime]
    assert changed == []
    lines = kit.key_body_lines()
    for path in after:
        if Path(path).parent == tmp_path / "keys":
            continue  # the user's own key files, read in place
        text = Path(path).read_bytes().decode("latin-1")
        assert not any(line in text for line in lines), path


class _recording:
    """Context manager form of the ``file_writes`` audit hook."""

    def __enter__(self) -> list[str]:
        global _WRITES, _AUDIT_INSTALLED
        if not _AUDIT_INSTALLED:
            sys.addaudithook(_audit)
            _AUDIT_INSTALLED = True
        _WRITES = []
        return _WRITES

    def __exit__(self, *exc_info: object) -> None:
        global _WRITES
        _WRITES = None
