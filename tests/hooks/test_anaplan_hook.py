"""AnaplanHook against the emulator over real HTTP, with connections resolved by Airflow from env vars."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import redact
from cryptography.hazmat.primitives import serialization

import airflow_provider_anaplan
from airflow_provider_anaplan import exceptions
from airflow_provider_anaplan.client import errors as client_errors
from airflow_provider_anaplan.client import token_cache
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp
from airflow_provider_anaplan.hooks.anaplan import (
    AnaplanHook,
    VariableRefreshTokenStore,
    default_refresh_token_variable,
    rebuild_pem,
)
from tests.emulator.conftest import LiveServer
from tests.hooks.conftest import (
    CERT_EMAIL,
    KEY_PASSWORD,
    ROTATING_CLIENT,
    ROTATING_REFRESH_TOKEN,
    STATIC_CLIENT,
    STATIC_CLIENT_SECRET,
    STATIC_REFRESH_TOKEN,
    CertificateKit,
    SetConnection,
    login_token,
    one_line,
)

WORKSPACE = "8a81b01c7d2e4f3a9b5c6d7e8f901a2b"
MODEL = "75A40874E6B64FA3AE0743278996850F"


def is_masked(secret: str) -> bool:
    """True when Airflow's secret masker hides ``secret`` in any log line."""
    return secret not in str(redact(f"value={secret} end"))


# --------------------------------------------------------------------------------------------------- every auth type
def _auth_connection(
    auth_type: str, live: LiveServer, kit: CertificateKit | None, form: str
) -> tuple[dict[str, Any], str]:
    """(set_connection kwargs, the email the connection authenticates as)."""
    common = {"base_url": live.url, "timeout": 10, "workspace_id": WORKSPACE, "model_id": MODEL}
    if auth_type == "basic":
        return {"login": DEFAULT_USER_EMAIL, "password": DEFAULT_USER_PASSWORD, **common}, DEFAULT_USER_EMAIL
    if auth_type == "certificate":
        assert kit is not None
        # the JSON form as a user pastes the PEMs into one-line fields; the URI form with intact newlines and an
        # encrypted key
        if form == "json":
            extra = {"certificate": one_line(kit.cert_pem), "private_key": one_line(kit.key_pem)}
        else:
            extra = {
                "certificate": kit.cert_pem,
                "private_key": kit.encrypted_key_pem,
                "private_key_password": KEY_PASSWORD,
            }
        return {"auth_type": "certificate", **extra, **common}, CERT_EMAIL
    if auth_type == "token":
        return {"auth_type": "token", "token": login_token(live.url), **common}, DEFAULT_USER_EMAIL
    return {
        "auth_type": "oauth",
        "oauth_client_id": STATIC_CLIENT,
        "oauth_client_secret": STATIC_CLIENT_SECRET,
        "oauth_refresh_token": STATIC_REFRESH_TOKEN,
        "oauth_refresh_token_variable": f"anaplan_test_token_{uuid.uuid4().hex}",
        **common,
    }, DEFAULT_USER_EMAIL


@pytest.mark.parametrize("form", ["json", "uri"])
@pytest.mark.parametrize("auth_type", ["basic", "certificate", "token", "oauth"])
def test_every_auth_type_through_airflow_connection_resolution(
    auth_type: str,
    form: str,
    live: LiveServer,
    trusted_certificate: CertificateKit,
    set_connection: SetConnection,
    request: pytest.FixtureRequest,
) -> None:
    if auth_type == "oauth":
        request.getfixturevalue("airflow_db")  # the rotated-token Variable lives in the metadata DB here
    kwargs, email = _auth_connection(auth_type, live, trusted_certificate, form)
    conn_id = set_connection(f"anaplan_{auth_type}_{form}", form=form, **kwargs)

    hook = AnaplanHook(conn_id)
    assert hook.auth_type == auth_type
    assert (hook.workspace_id, hook.model_id) == (WORKSPACE, MODEL)
    assert hook.get_current_user().email == email
    assert WORKSPACE in {w.id for w in hook.list_workspaces()}
    assert {i.name for i in hook.list_imports()} >= {"Employees from Employees.csv"}
    assert hook.test_connection()[0] is True


def test_connection_built_by_airflow_from_the_conn_type_gets_the_hook(basic_connection: str) -> None:
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(basic_connection).get_hook()
    assert isinstance(hook, AnaplanHook)
    assert hook.anaplan_conn_id == basic_connection
    assert hook.test_connection() == (True, "Authenticated with basic auth; 2 workspace(s) visible")


def test_hook_arguments_override_the_connection_and_names_resolve(
    live: LiveServer, set_connection: SetConnection
) -> None:
    conn_id = set_connection(
        "anaplan_names",
        login=DEFAULT_USER_EMAIL,
        password=DEFAULT_USER_PASSWORD,
        base_url=live.url,
        workspace_id="no such workspace",
        model_id="no such model",
    )
    hook = AnaplanHook(conn_id, workspace_id="FP&A Production", model_id="Sales Forecast", max_attempts=2)
    assert hook.resolve_location() == (WORKSPACE, MODEL)
    assert hook.get_model().name == "Sales Forecast"
    assert hook.resolve_object("import", "Employees from Employees.csv").startswith("112")
    assert hook.run(lambda c: c.resolve_model("Sales Forecast", WORKSPACE)) == MODEL
    assert hook.get_conn().settings.max_attempts == 2


# --------------------------------------------------------------------------------------------------- PEM
def test_rebuild_pem_restores_one_line_pems(certificate_kit: CertificateKit) -> None:
    for pem in (certificate_kit.cert_pem, certificate_kit.key_pem, certificate_kit.legacy_encrypted_key_pem):
        assert rebuild_pem(one_line(pem)) == pem
        assert rebuild_pem(pem.replace("\n", "\\n")) == pem  # literal \n, as some secret stores keep them
        assert rebuild_pem(pem) == pem
    assert "Proc-Type: 4,ENCRYPTED\nDEK-Info: " in rebuild_pem(one_line(certificate_kit.legacy_encrypted_key_pem))
    key = rebuild_pem(one_line(certificate_kit.legacy_encrypted_key_pem)).encode()
    assert serialization.load_pem_private_key(key, password=KEY_PASSWORD.encode()).key_size == 2048
    assert rebuild_pem("~/keys/anaplan.pem") == "~/keys/anaplan.pem"  # a path stays a path


def test_certificate_and_key_as_paths(
    live: LiveServer, trusted_certificate: CertificateKit, set_connection: SetConnection, tmp_path: Any
) -> None:
    (tmp_path / "cert.pem").write_text(trusted_certificate.cert_pem)
    (tmp_path / "key.pem").write_text(trusted_certificate.legacy_encrypted_key_pem)
    conn_id = set_connection(
        "anaplan_cert_paths",
        certificate=str(tmp_path / "cert.pem"),
        private_key=str(tmp_path / "key.pem"),
        private_key_password=KEY_PASSWORD,
        base_url=live.url,
    )
    hook = AnaplanHook(conn_id)
    assert hook.auth_type == "certificate"  # inferred from the extras
    assert hook.get_current_user().email == CERT_EMAIL


# --------------------------------------------------------------------------------------------------- broken connections
def _broken_connections(kit: CertificateKit, tmp_path: Any) -> list[tuple[dict[str, Any], str]]:
    url = {"base_url": "http://127.0.0.1:9"}
    return [
        ({"password": DEFAULT_USER_PASSWORD, **url}, "needs Login: put the Anaplan user's email address"),
        ({"login": DEFAULT_USER_EMAIL, **url}, "needs Password: put the Anaplan user's password"),
        ({"auth_type": "saml", "login": "a@b.c", "password": "x" * 8}, "extra auth_type is 'saml'; use one of"),
        ({"auth_type": "certificate", "certificate": kit.cert_pem}, "certificate is given without extra private_key"),
        ({"private_key": kit.key_pem}, "needs extra certificate"),
        (
            {"certificate": kit.cert_pem, "private_key": kit.encrypted_key_pem, "private_key_password": "wrong-pw"},
            "private_key_password is wrong",
        ),
        ({"certificate": kit.cert_pem, "private_key": kit.encrypted_key_pem}, "give private_key_password"),
        ({"certificate": str(tmp_path / "missing.pem"), "private_key": kit.key_pem}, "certificate is neither PEM"),
        ({"auth_type": "token"}, "needs extra token"),
        ({"auth_type": "oauth", "oauth_client_id": STATIC_CLIENT}, "needs extra oauth_refresh_token"),
        ({"oauth_refresh_token": STATIC_REFRESH_TOKEN}, "needs extra oauth_client_id"),
        (
            {"login": "a@b.c", "password": "x" * 8, "api_url": "https://api.anaplan.com/2/0"},
            "extra api_url must be an origin without a path",
        ),
        ({"login": "a@b.c", "password": "x" * 8, "verify": "/no/such/ca.pem"}, "extra verify is '/no/such/ca.pem'"),
        ({"login": "a@b.c", "password": "x" * 8, "timeout": "soon"}, "extra timeout must be a number of seconds"),
        ({"login": "a@b.c", "password": "x" * 8, "proxy": "not a url ::"}, "extra proxy must be a URL such as"),
    ]


def test_each_broken_connection_fails_at_hook_build_naming_the_field(
    certificate_kit: CertificateKit, set_connection: SetConnection, tmp_path: Any
) -> None:
    for number, (fields, expected) in enumerate(_broken_connections(certificate_kit, tmp_path)):
        login, password = fields.pop("login", None), fields.pop("password", None)
        conn_id = set_connection(f"anaplan_broken_{number}", login=login, password=password, **fields)
        with pytest.raises(exceptions.ConfigurationError) as caught:
            AnaplanHook(conn_id)
            pytest.fail(f"no error for {fields}")
        assert expected in str(caught.value), (fields, str(caught.value))
        assert str(caught.value).startswith(f"Anaplan connection '{conn_id}': ") or f"'{conn_id}' (" in str(
            caught.value
        )
        assert isinstance(caught.value, AirflowException)
        assert isinstance(caught.value, client_errors.ConfigurationError)
        assert "BEGIN" not in str(caught.value)  # never any key material in a message


def test_missing_connection_and_unknown_options_fail_at_build(basic_connection: str) -> None:
    with pytest.raises(AirflowException, match="anaplan_nowhere"):
        AnaplanHook("anaplan_nowhere")
    with pytest.raises(exceptions.ConfigurationError, match="unknown option"):
        AnaplanHook(basic_connection, retries=3)


# Airflow 3.3's own Connection.get_hook() uses its deprecated ProvidersManager.hooks (not our code).
@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_airflow_test_connection_reports_a_broken_connection(set_connection: SetConnection) -> None:
    from airflow.models.connection import Connection as ConnectionModel

    conn_id = set_connection("anaplan_no_key", certificate="/etc/hostname")
    status, message = ConnectionModel.get_connection_from_secrets(conn_id).test_connection()
    assert status is False
    assert "private_key" in message


# --------------------------------------------------------------------------------------------------- test_connection
def test_test_connection_true_and_false(live: LiveServer, set_connection: SetConnection, basic_connection: str) -> None:
    ok, message = AnaplanHook(basic_connection).test_connection()
    assert (ok, message) == (True, "Authenticated with basic auth; 2 workspace(s) visible")

    wrong = set_connection("anaplan_wrong", login=DEFAULT_USER_EMAIL, password="not-the-password", base_url=live.url)
    ok, message = AnaplanHook(wrong).test_connection()
    assert ok is False
    assert "AuthenticationError" in message and "401" in message
    assert "not-the-password" not in message

    down = set_connection(
        "anaplan_down", login=DEFAULT_USER_EMAIL, password="some-password", base_url="http://127.0.0.1:9"
    )
    ok, message = AnaplanHook(down, max_attempts=1).test_connection()
    assert ok is False and "TransportError" in message


# --------------------------------------------------------------------------------------------------- errors
def test_client_errors_come_out_as_their_airflow_twins(basic_connection: str) -> None:
    hook = AnaplanHook(basic_connection)
    with pytest.raises(exceptions.NameNotFoundError) as caught:
        hook.get_model("Sales Forcast", workspace=WORKSPACE)
    error = caught.value
    assert isinstance(error, AirflowException)
    assert isinstance(error, client_errors.NameNotFoundError) and isinstance(error, client_errors.NotFoundError)
    assert "Did you mean: 'Sales Forecast'" in str(error)
    assert "Sales Forecast" in error.close_matches

    with pytest.raises(exceptions.NotFoundError) as not_found:
        hook.get_model_status("75A40874E6B64FA3AE07432789968999", WORKSPACE)
    assert not_found.value.status == 404 and isinstance(not_found.value, AirflowException)

    with pytest.raises(exceptions.InvalidInputError, match="No Anaplan model given"):
        hook.list_imports()


def test_every_client_error_has_a_twin() -> None:
    for cls in vars(client_errors).values():
        if isinstance(cls, type) and issubclass(cls, client_errors.AnaplanError):
            twin = exceptions.twin_of(cls)
            assert twin is exceptions.TWINS[cls]
            assert issubclass(twin, cls) and issubclass(twin, AirflowException)
            for base in cls.__bases__:
                if base in exceptions.TWINS:
                    assert issubclass(twin, exceptions.TWINS[base])  # the twins mirror the client's tree
    cause = KeyError("x")
    try:
        try:
            raise cause
        except KeyError as exc:
            raise client_errors.ServerError("boom", status=503, method="GET", path="/2/0/x") from exc
    except client_errors.ServerError as original:
        twin = exceptions.to_airflow_error(original)
    assert type(twin) is exceptions.ServerError
    assert (str(twin), twin.status, twin.path, twin.__cause__) == ("boom", 503, "/2/0/x", cause)
    plain = ValueError("not ours")
    assert exceptions.to_airflow_error(plain) is plain


# --------------------------------------------------------------------------------------------------- async + sharing
@pytest.mark.asyncio
async def test_1000_concurrent_async_clients_share_one_token_and_one_http_client(
    set_connection: SetConnection, emulator: EmulatorApp
) -> None:
    # The emulator in-process (httpx's ASGI transport): a loopback server in this process's other thread would
    # spend 3 s of GIL on the 1000 requests; the sharing under test happens above the transport either way.
    conn_id = set_connection(
        "anaplan_many", login=DEFAULT_USER_EMAIL, password=DEFAULT_USER_PASSWORD, base_url="http://emulator.test"
    )
    transport = httpx.ASGITransport(app=emulator)
    hooks = [AnaplanHook(conn_id, transport=transport) for _ in range(1000)]
    assert all(h.auth_type is None for h in hooks)  # built on an event loop: the connection is read on first use
    clients = await asyncio.gather(*(h.aget_client() for h in hooks))
    assert len({id(c) for c in clients}) == 1
    users = await asyncio.gather(*(h.arun(lambda c: c.get_current_user()) for h in hooks))
    assert {u.email for u in users} == {DEFAULT_USER_EMAIL}
    assert emulator.state.counters["auth.authenticate"] == 1
    assert len(clients[0].transport._clients) == 1  # one httpx.AsyncClient for this loop
    with pytest.raises(RuntimeError, match="arun"):
        hooks[0].run(lambda c: c.get_current_user())
    await clients[0].aclose()


@pytest.mark.asyncio
async def test_on_an_event_loop_sync_methods_refuse_but_test_connection_works(basic_connection: str) -> None:
    hook = AnaplanHook(basic_connection)
    with pytest.raises(RuntimeError, match=r"await hook\.arun"):
        hook.list_workspaces()
    with pytest.raises(RuntimeError, match=r"await hook\.aget_client"):
        hook.get_model()
    assert hook.test_connection() == (True, "Authenticated with basic auth; 2 workspace(s) visible")


def test_sync_calls_in_a_row_reuse_the_token(basic_connection: str, emulator: EmulatorApp) -> None:
    first, second = AnaplanHook(basic_connection), AnaplanHook(basic_connection)
    first.list_workspaces()
    second.list_workspaces()
    first.get_current_user()
    assert first.get_conn() is second.get_conn()
    assert emulator.state.counters["auth.authenticate"] == 1


# --------------------------------------------------------------------------------------------------- masking
def test_secrets_are_masked_and_never_logged(
    live: LiveServer,
    set_connection: SetConnection,
    trusted_certificate: CertificateKit,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "emulator-password"
    conn_id = set_connection("anaplan_mask", login=DEFAULT_USER_EMAIL, password=password, base_url=live.url)
    hook = AnaplanHook(conn_id)
    hook.list_workspaces()
    token = token_cache.peek(hook.get_conn().auth, hook.get_conn().settings)
    assert token is not None
    wrong = set_connection(
        "anaplan_mask_wrong", login=DEFAULT_USER_EMAIL, password="wrong-secret-pw", base_url=live.url
    )
    with pytest.raises(exceptions.AuthenticationError):
        AnaplanHook(wrong).list_workspaces()

    proxy_password = "proxy-pass-9876"
    key_conn = set_connection(
        "anaplan_mask_cert",
        certificate=one_line(trusted_certificate.cert_pem),
        private_key=one_line(trusted_certificate.encrypted_key_pem),
        private_key_password=KEY_PASSWORD,
        proxy=f"http://proxyuser:{proxy_password}@127.0.0.1:3128",
        base_url=live.url,
    )
    AnaplanHook(key_conn)
    key_line = trusted_certificate.encrypted_key_pem.splitlines()[3]

    secrets = [password, "wrong-secret-pw", token.value, KEY_PASSWORD, proxy_password, key_line]
    for secret in secrets:
        assert is_masked(secret), secret
    captured = capsys.readouterr()
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in captured.out + captured.err
    assert any("Obtained a new Anaplan token" in r.getMessage() for r in caplog.records)  # logs were captured


# --------------------------------------------------------------------------------------------------- OAuth rotation
def _variable(key: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def _oauth_connection(set_connection: SetConnection, live: LiveServer, variable: str | None = None) -> str:
    extra = {"oauth_refresh_token_variable": variable} if variable else {}
    return set_connection(
        "anaplan_rotating",
        auth_type="oauth",
        oauth_client_id=ROTATING_CLIENT,
        oauth_refresh_token=ROTATING_REFRESH_TOKEN,
        base_url=live.url,
        **extra,
    )


def _forget_process_memory() -> None:
    """What a new worker process starts with: no token, no rotated refresh token in memory."""
    from airflow_provider_anaplan.hooks.anaplan import forget_shared_clients

    token_cache.clear()
    forget_shared_clients()


def test_oauth_rotation_is_persisted_and_read_by_the_next_process(
    airflow_db: Any, live: LiveServer, set_connection: SetConnection, emulator: EmulatorApp
) -> None:
    conn_id = _oauth_connection(set_connection, live)
    key = default_refresh_token_variable(ROTATING_CLIENT, ROTATING_REFRESH_TOKEN)
    assert key.startswith(f"anaplan_oauth_refresh_token__{ROTATING_CLIENT}__") and "token" in key
    with contextlib.suppress(Exception):
        from airflow.models.variable import Variable

        Variable.delete(key)

    AnaplanHook(conn_id).get_current_user()
    first = _variable(key)
    assert first and first != ROTATING_REFRESH_TOKEN and is_masked(first)

    _forget_process_memory()
    AnaplanHook(conn_id).get_current_user()  # starts from the stored token (the connection's is spent)
    second = _variable(key)
    assert second and second not in (first, ROTATING_REFRESH_TOKEN)
    assert emulator.state.counters["oauth.token"] == 2


def test_oauth_invalid_grant_rereads_the_stored_token_and_tries_once_more(
    airflow_db: Any, live: LiveServer, set_connection: SetConnection, emulator: EmulatorApp
) -> None:
    variable = f"anaplan_test_refresh_token_{uuid.uuid4().hex}"
    conn_id = _oauth_connection(set_connection, live, variable)
    hook = AnaplanHook(conn_id)
    hook.get_current_user()
    ours = _variable(variable)

    # Another process (the triggerer, say) refreshes with the same chain and stores the next token.
    response = httpx.post(
        f"{live.url}/oauth/token",
        json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": ours},
    )
    response.raise_for_status()
    theirs = response.json()["refresh_token"]
    VariableRefreshTokenStore(variable).save(theirs)

    # Our access token dies; the in-memory refresh token is spent: invalid_grant, re-read, one more try.
    client = hook.get_conn()
    access = token_cache.peek(client.auth, client.settings)
    assert access is not None
    emulator.state.revoke_token(emulator.state.live_token(access.value))
    calls = emulator.state.counters["oauth.token"]
    assert hook.get_current_user().email == DEFAULT_USER_EMAIL
    assert emulator.state.counters["oauth.token"] == calls + 2  # the refused one, then the stored one
    newest = _variable(variable)
    assert newest not in (ours, theirs)

    # Spent behind the hook's back without storing the successor: nothing newer exists, the refusal is final.
    httpx.post(
        f"{live.url}/oauth/token",
        json={"grant_type": "refresh_token", "client_id": ROTATING_CLIENT, "refresh_token": newest},
    ).raise_for_status()
    emulator.state.revoke_token(emulator.state.live_token(token_cache.peek(client.auth, client.settings).value))
    with pytest.raises(exceptions.AuthenticationError, match=r"authorize the (OAuth )?client again"):
        hook.get_current_user()


def test_oauth_rotation_with_a_user_callback(live: LiveServer, set_connection: SetConnection) -> None:
    conn_id = _oauth_connection(set_connection, live)
    saved: list[str] = []
    hook = AnaplanHook(conn_id, on_refresh_token=saved.append, load_refresh_token=lambda: None)
    hook.get_current_user()
    assert len(saved) == 1 and saved[0] != ROTATING_REFRESH_TOKEN and is_masked(saved[0])
    with pytest.raises(exceptions.ConfigurationError, match="not both"):
        AnaplanHook(conn_id, on_refresh_token=saved.append, refresh_token_store=VariableRefreshTokenStore("x"))


@pytest.mark.asyncio
async def test_async_oauth_rotation_persists_off_the_event_loop(
    live: LiveServer, set_connection: SetConnection
) -> None:
    conn_id = _oauth_connection(set_connection, live)
    saved: list[str] = []
    hooks = [AnaplanHook(conn_id, on_refresh_token=saved.append) for _ in range(50)]
    users = await asyncio.gather(*(h.arun(lambda c: c.get_current_user()) for h in hooks))
    assert {u.email for u in users} == {DEFAULT_USER_EMAIL}
    assert len(saved) == 1  # one refresh for all fifty
    await (await hooks[0].aget_client()).aclose()


# --------------------------------------------------------------------------------------------------- the form
EXTRAS = {
    "auth_type",
    "certificate",
    "private_key",
    "private_key_password",
    "token",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_refresh_token",
    "workspace_id",
    "model_id",
    "auth_url",
    "api_url",
    "oauth_url",
    "proxy",
    "verify",
    "timeout",
}
SECRETS = {"private_key", "private_key_password", "token", "oauth_client_secret", "oauth_refresh_token", "proxy"} | {
    "keystore",
    "keystore_password",
    "key_password",
}


def test_provider_info_declares_the_connection_type() -> None:
    info = airflow_provider_anaplan.get_provider_info()
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == AnaplanHook.conn_type == "anaplan"
    assert conn_type["hook-class-name"] == f"{AnaplanHook.__module__}.{AnaplanHook.__name__}"
    assert conn_type["hook-name"] == AnaplanHook.hook_name == "Anaplan"
    assert AnaplanHook.default_conn_name == "anaplan_default"
    assert info["hooks"] == [{"integration-name": "Anaplan", "python-modules": [AnaplanHook.__module__]}]
    assert set(conn_type["conn-fields"]) >= EXTRAS
    secret_fields = {k for k, v in conn_type["conn-fields"].items() if v["schema"].get("format") == "password"}
    assert secret_fields == SECRETS
    behaviour = conn_type["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"host", "port", "schema"}
    assert AnaplanHook.get_ui_field_behaviour() == {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


@contextlib.contextmanager
def _isolated_providers_manager() -> Iterator[None]:
    """A fresh ProvidersManager for the test and the old one back after; mocked wtforms/flask modules removed."""
    from airflow.providers_manager import ProvidersManager

    before = set(sys.modules)
    with contextlib.ExitStack() as stack:
        if "_instance" in vars(ProvidersManager):  # Airflow 3.2+
            stack.enter_context(mock.patch.object(ProvidersManager, "_instance", None))
        else:  # Airflow 3.1: a Singleton metaclass
            from airflow.utils.singleton import Singleton

            stack.enter_context(mock.patch.dict(Singleton._instances))
            Singleton._instances.pop(ProvidersManager, None)
        stack.enter_context(mock.patch.object(ProvidersManager, "_initialized", False))
        try:
            yield
        finally:
            for name in set(sys.modules) - before:
                if isinstance(sys.modules[name], mock.MagicMock):
                    del sys.modules[name]


def test_connection_form_through_the_api_servers_hook_meta_service() -> None:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    HookMetaService.hook_meta_data.cache_clear()
    with _isolated_providers_manager():
        try:
            metadata = HookMetaService.hook_meta_data()
        finally:
            HookMetaService.hook_meta_data.cache_clear()
    (anaplan,) = [m for m in metadata if m.connection_type == "anaplan"]
    assert anaplan.hook_class_name == "airflow_provider_anaplan.hooks.anaplan.AnaplanHook"
    assert anaplan.hook_name == "Anaplan"
    standard = anaplan.standard_fields
    assert standard is not None
    assert standard.host.hidden and standard.port.hidden and standard.url_schema.hidden
    assert standard.login.title == "User email (basic auth)" and not standard.login.hidden
    assert standard.password.title == "Password (basic auth)"
    extra = anaplan.extra_fields
    assert extra is not None and set(extra) >= EXTRAS
    dumped = json.loads(json.dumps(extra, default=str))
    assert {k for k, v in dumped.items() if v["schema"].get("format") == "password"} == SECRETS
    assert dumped["auth_type"]["schema"]["enum"][:4] == ["basic", "certificate", "token", "oauth"]
    assert dumped["oauth_client_id"]["schema"]["title"] == "OAuth client id"
    assert "integer" in dumped["timeout"]["schema"]["type"]
