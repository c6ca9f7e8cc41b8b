"""Fixtures for hook tests: the emulator on a loopback socket, `anaplan` connections as env vars, credentials."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from airflow_provider_anaplan.client import token_cache
from airflow_provider_anaplan.emulator import DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD, EmulatorApp, create_app
from airflow_provider_anaplan.hooks.anaplan import forget_shared_clients
from tests.emulator.conftest import LiveServer

CERT_EMAIL = "cert.user@anaplan.example"
KEY_PASSWORD = "key-password-123"
ROTATING_CLIENT = "5f3a9c1e7b2d4f6a8c0e1b3d5f7a9c2e"
ROTATING_REFRESH_TOKEN = "demo-rotating-refresh-token-0001"
STATIC_CLIENT = "0d4b8e2a6c1f4a9b7e3d5c8a2f6b1e4d"
STATIC_CLIENT_SECRET = "demo-client-secret"
STATIC_REFRESH_TOKEN = "demo-static-refresh-token-0001"


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Every test starts without cached tokens or shared clients (forgotten, never logged out)."""
    token_cache.clear()
    forget_shared_clients()
    yield
    token_cache.clear()
    forget_shared_clients()


@pytest.fixture
def emulator() -> EmulatorApp:
    return create_app()


@pytest.fixture
def live(emulator: EmulatorApp) -> Iterator[LiveServer]:
    """The emulator served by uvicorn on 127.0.0.1."""
    server = LiveServer(emulator)
    server.start()
    yield server
    server.stop()


def connection_env(conn_id: str, form: str, login: str | None, password: str | None, extra: dict[str, Any]) -> str:
    """An ``AIRFLOW_CONN_...`` value for an anaplan connection, in Airflow's JSON or URI form."""
    if form == "json":
        return json.dumps({"conn_type": "anaplan", "login": login, "password": password, "extra": extra})
    userinfo = ""
    if login or password:
        userinfo = f"{quote(login or '', safe='')}:{quote(password or '', safe='')}@"
    query = urlencode({k: json.dumps(v) if not isinstance(v, str) else v for k, v in extra.items()})
    return f"anaplan://{userinfo}/?{query}" if query else f"anaplan://{userinfo}"


SetConnection = Callable[..., str]


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch) -> SetConnection:
    """``set_connection(conn_id, form="json"|"uri", login=..., password=..., **extra)``: an env-var connection."""

    def set_(conn_id: str, form: str = "json", login: str | None = None, password: str | None = None, **extra: Any):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_env(conn_id, form, login, password, extra))
        return conn_id

    return set_


@pytest.fixture
def basic_connection(live: LiveServer, set_connection: SetConnection) -> str:
    """Connection ``anaplan_basic``: the emulator's default user, on the live emulator."""
    return set_connection(
        "anaplan_basic", login=DEFAULT_USER_EMAIL, password=DEFAULT_USER_PASSWORD, base_url=live.url, timeout=10
    )


@dataclass(frozen=True)
class CertificateKit:
    cert_pem: str
    key_pem: str
    encrypted_key_pem: str  # PKCS#8, encrypted with KEY_PASSWORD
    legacy_encrypted_key_pem: str  # traditional OpenSSL with Proc-Type/DEK-Info headers, KEY_PASSWORD


@pytest.fixture(scope="session")
def certificate_kit() -> CertificateKit:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_EMAIL)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(CERT_EMAIL)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    password = KEY_PASSWORD.encode()
    return CertificateKit(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        encrypted_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        ).decode(),
        legacy_encrypted_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(password),
        ).decode(),
    )


@pytest.fixture
def trusted_certificate(emulator: EmulatorApp, certificate_kit: CertificateKit) -> CertificateKit:
    """The kit's certificate trusted by the emulator, with a (password-less) user for its email."""
    emulator.state.add_trusted_certificate(certificate_kit.cert_pem)
    emulator.state.add_user(CERT_EMAIL, None)
    return certificate_kit


def login_token(url: str) -> str:
    """A token for the default user, obtained outside the hook (as a user of ``auth_type=token`` would)."""
    response = httpx.post(f"{url}/token/authenticate", auth=(DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD))
    response.raise_for_status()
    return response.json()["tokenInfo"]["tokenValue"]


def one_line(pem: str) -> str:
    """A PEM as a one-line form field leaves it: newlines turned into spaces."""
    return " ".join(pem.split("\n")).strip()
